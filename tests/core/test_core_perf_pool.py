"""Issue 19: the process pool ships a mapped task once per flow run and sends each chunk only inputs and map indexes.

Behaviour only (no timings): every child keeps its exact state, result, retries and
``headwater.context``; the task object is pickled once however many chunks it runs in; a
child whose result cannot travel fails alone; context changes a ``before_task_run`` hook
makes reach the worker.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from headwater import Flow, Task, context
from headwater.executors import ProcessExecutor, ThreadExecutor
from headwater.plugins import hookimpl
from headwater.states import Failed, Success

PICKLED: list[str] = []


class CountedTask(Task):
    """A task that records, in this process, each time it is pickled (shipped to a worker)."""

    def __getstate__(self) -> dict[str, Any]:
        PICKLED.append(self.name)
        return super().__getstate__()

    def run(self, x: int) -> dict[str, Any]:
        return {
            "x": x,
            "square": x * x,
            "map_index": context.get("map_index"),
            "task_full_name": context.get("task_full_name"),
            "flow_run_id": context.get("flow_run_id"),
            "flow_name": context.get("flow_name"),
            "task_run_count": context.get("task_run_count"),
            "extra": context.get("extra"),
        }


class SometimesUnpicklable(Task):
    def run(self, x: int) -> Any:
        return threading.Lock() if x == 3 else x


def test_a_mapped_task_is_shipped_once_and_every_child_keeps_its_state_and_context() -> None:
    PICKLED.clear()
    counted = CountedTask(name="counted")
    with Flow("ship-once") as flow:
        out = counted.map(list(range(40)))
    state = flow.run(executor=ProcessExecutor(max_workers=2, chunksize=10))  # four chunks
    assert state.is_successful(), state
    children = state.result[out].map_states
    assert PICKLED == ["counted"]  # one shipment for four chunks, not one per chunk or per child
    assert all(type(c) is Success for c in children)
    values = [c.result for c in children]
    run_ids = {v["flow_run_id"] for v in values}
    assert len(run_ids) == 1 and None not in run_ids
    for i, value in enumerate(values):
        assert value["x"] == i and value["square"] == i * i
        assert value["map_index"] == i and value["task_full_name"] == f"counted[{i}]"
        assert value["flow_name"] == "ship-once" and value["task_run_count"] == 1 and value["extra"] is None
    stamps = [c.ts for c in children]
    assert all(isinstance(t, float) and t > 0 for t in stamps)  # each child's own timestamp survives the trip
    assert state.result[out].result == values


def test_the_task_is_shipped_again_in_the_next_flow_run() -> None:
    PICKLED.clear()
    counted = CountedTask(name="again")
    with Flow("twice") as flow:
        counted.map(list(range(6)))
    executor = ProcessExecutor(max_workers=2, chunksize=2)
    assert flow.run(executor=executor).is_successful()
    assert flow.run(executor=executor).is_successful()
    assert PICKLED == ["again", "again"]  # workers (and what they cached) live for one flow run


def test_a_child_whose_result_cannot_travel_fails_alone() -> None:
    with Flow("unpicklable") as flow:
        out = SometimesUnpicklable(name="maybe").map(list(range(8)))
    state = flow.run(executor=ProcessExecutor(max_workers=2, chunksize=4))
    children = state.result[out].map_states
    assert state.is_failed()
    assert [type(c).__name__ for c in children] == ["Success"] * 3 + ["Failed"] + ["Success"] * 4
    assert [c.result for i, c in enumerate(children) if i != 3] == [0, 1, 2, 4, 5, 6, 7]
    failed = children[3]
    assert isinstance(failed, Failed) and failed.message is not None
    assert "could not send a lock result back" in failed.message and "maybe" in failed.message


class ContextHook:
    """A lifecycle plugin that adds a per-child value to the context in the flow-run process."""

    @hookimpl
    def before_task_run(self, task: Any, map_index: int | None, context: dict[str, Any]) -> None:
        if map_index is not None:
            context["extra"] = f"hooked-{map_index}"


def test_context_a_hook_changes_reaches_each_child(headwater_plugin_manager: Any) -> None:
    headwater_plugin_manager.register(ContextHook(), name="context-hook")
    PICKLED.clear()
    counted = CountedTask(name="hooked")
    with Flow("hooked") as flow:
        out = counted.map(list(range(12)))
    state = flow.run(executor=ProcessExecutor(max_workers=2, chunksize=5))
    values = [c.result for c in state.result[out].map_states]
    assert [v["extra"] for v in values] == [f"hooked-{i}" for i in range(12)]
    assert [v["map_index"] for v in values] == list(range(12))
    assert PICKLED == ["hooked"]


def test_start_method_is_checked() -> None:
    with pytest.raises(ValueError, match="'fork' is refused"):
        ProcessExecutor(start_method="fork")
    with pytest.raises(ValueError, match="start_method 'nope' is not available"):
        ProcessExecutor(start_method="nope")


def test_spawned_workers_behave_the_same() -> None:
    PICKLED.clear()
    counted = CountedTask(name="spawned")
    with Flow("spawned") as flow:
        out = counted.map(list(range(9)))
    state = flow.run(executor=ProcessExecutor(max_workers=2, chunksize=3, start_method="spawn"))
    assert [c.result["square"] for c in state.result[out].map_states] == [i * i for i in range(9)]
    assert PICKLED == ["spawned"]


def test_workers_see_the_environment_as_it_is_when_the_run_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    executor = ProcessExecutor(max_workers=1)
    assert flow_reading_env().run(executor=executor).is_successful()  # the forkserver exists from here on
    monkeypatch.setenv("HW_PERF_POOL_VALUE", "set-later")
    flow = flow_reading_env()
    state = flow.run(executor=executor)
    assert [c.result for c in state.result[flow.get_tasks(name="read_env")[0]].map_states] == ["set-later"] * 3


class ReadEnv(Task):
    def run(self, x: int) -> str | None:
        import os

        return os.environ.get("HW_PERF_POOL_VALUE")


def flow_reading_env() -> Flow:
    with Flow("env") as flow:
        ReadEnv(name="read_env").map([1, 2, 3])
    return flow


class SlowOnTwo(Task):
    def run(self, x: int) -> int:
        import time

        if x == 2:
            time.sleep(5)
        return x


class Upstream(Task):
    def run(self, x: int) -> int:
        from headwater import signals

        if x == 1:
            raise signals.SKIP("skip item 1")
        if x == 3:
            raise ValueError("item 3 fails")
        return x


class Downstream(Task):
    def run(self, x: int) -> int:
        return x * 10


def test_a_child_times_out_alone_inside_its_chunk() -> None:
    with Flow("timeouts") as flow:
        out = SlowOnTwo(name="slow", timeout=1).map(list(range(6)))
    state = flow.run(executor=ProcessExecutor(max_workers=2, chunksize=3))
    children = state.result[out].map_states
    assert [type(c).__name__ for c in children] == ["Success", "Success", "TimedOut", "Success", "Success", "Success"]
    assert [c.result for i, c in enumerate(children) if i != 2] == [0, 1, 3, 4, 5]


def test_children_of_a_map_over_skipped_and_failed_items_are_each_decided() -> None:
    with Flow("decided") as flow:
        up = Upstream(name="up").map(list(range(5)))
        down = Downstream(name="down").map(up)
    state = flow.run(executor=ProcessExecutor(max_workers=2, chunksize=2))
    children = state.result[down].map_states
    assert [type(c).__name__ for c in children] == ["Success", "Skipped", "Success", "TriggerFailed", "Success"]
    assert [children[i].result for i in (0, 2, 4)] == [0, 20, 40]


def pair() -> tuple[int, float]:
    return (1, 2.0)


def test_a_plain_call_returning_a_tuple_comes_back_as_it_is() -> None:
    executor = ProcessExecutor(max_workers=1)
    with executor.start():
        assert executor.submit(pair).result(timeout=60) == (1, 2.0)  # never mistaken for a compact Success


SCRIPT_IMPORTED_ONCE = '''
import os, sys, time
from headwater import Flow, task
from headwater.executors import ProcessExecutor

with open(sys.argv[1], "a") as fh:  # top-level side effect: runs wherever this script is imported
    fh.write(f"{__name__} {os.getpid()}\\n")

@task
def where(x):
    time.sleep(0.05)
    return os.getpid()

if __name__ == "__main__":
    with Flow("imported-once") as flow:
        pids = where.map(list(range(6)))
    state = flow.run(executor=ProcessExecutor(max_workers=3, chunksize=1))
    print(len(set(state.result[pids].result)))
'''


def test_the_main_script_is_imported_once_for_all_workers(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "flow_script.py"
    script.write_text(SCRIPT_IMPORTED_ONCE)
    marks = tmp_path / "imports.txt"
    out = subprocess.run([sys.executable, str(script), str(marks)], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    workers = int(out.stdout.split()[-1])
    lines = marks.read_text().splitlines()
    assert workers >= 2
    # the script itself, and the forkserver that every worker forks from: not once more per worker
    assert sorted(line.split()[0] for line in lines) == ["__main__", "__mp_main__"], lines


class Chatty(Task):
    def run(self, x: int) -> int:
        self.logger.info("child %d of %s", x, context.get("task_full_name"))
        if x == 3:
            raise ValueError("three is bad")
        return x


def test_task_logs_of_workers_reach_this_process_with_their_task_names() -> None:
    import logging

    seen: list[tuple[str, str, str]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.name, record.levelname, record.getMessage()))

    handler = Collect(logging.DEBUG)
    logger = logging.getLogger("headwater")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with Flow("chatty") as flow:
            Chatty(name="chatty").map(list(range(6)))
        state = flow.run(executor=ProcessExecutor(max_workers=2, chunksize=2))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert not state.is_successful()
    infos = sorted(m for name, level, m in seen if name == "headwater.chatty" and level == "INFO")
    assert infos == sorted(f"child {i} of chatty[{i}]" for i in range(6))
    errors = [m for name, level, m in seen if name == "headwater.chatty" and level == "ERROR"]
    assert len(errors) == 1 and "ValueError: three is bad" in errors[0] and "Traceback" in errors[0]


class Sleepy(Task):
    def run(self, x: int) -> int:
        import time

        time.sleep(0.02)
        return x * 2


@pytest.mark.parametrize("executor_class", [ProcessExecutor, ThreadExecutor])
def test_a_chunk_that_runs_long_reports_its_children_as_they_finish(monkeypatch: pytest.MonkeyPatch,
                                                                    executor_class: Any) -> None:
    """A worker sends a chunk's states back after CHUNK_SECONDS; the engine sends the rest again."""
    from headwater.executors import pool

    monkeypatch.setattr(pool, "CHUNK_SECONDS", 0.05)
    sleepy = Sleepy(name="sleepy")
    with Flow("time-boxed-chunks") as flow:
        out = sleepy.map(list(range(24)))
    reports: list[int] = []
    state = flow.run(executor=executor_class(max_workers=2, chunksize=12),
                     on_task_state=lambda task, s, i: reports.append(i) if i is not None and s.is_finished() else None)
    assert state.is_successful(), state
    children = state.result[out].map_states
    assert [c.result for c in children] == [x * 2 for x in range(24)]
    assert all(type(c) is Success for c in children)
    assert sorted(reports) == list(range(24))  # each child reported once
    # Two chunks of 12, 20 ms per child, 50 ms per trip: each chunk came back in several parts,
    # so the first children were reported before their chunk's last ones had run.
    first_of_each = [reports.index(0), reports.index(12)]
    assert max(first_of_each) < 8, reports


def test_replies_are_decoded_by_the_waiter_not_by_the_pools_manager_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The manager thread hands workers their next chunks; building thousands of states there would stall them."""
    from headwater.executors import pool

    threads: list[str] = []
    real = pool._expand_all

    def expand_all(items: Any) -> list[Any]:
        threads.append(threading.current_thread().name)
        return real(items)

    monkeypatch.setattr(pool, "_expand_all", expand_all)
    with Flow("decoded-here") as flow:
        out = CountedTask(name="decoded").map(list(range(40)))
    state = flow.run(executor=ProcessExecutor(max_workers=2, chunksize=10))
    assert state.is_successful(), state
    assert [c.result["x"] for c in state.result[out].map_states] == list(range(40))
    assert len(threads) >= 4 and set(threads) == {threading.current_thread().name}


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("cannot pickle this on purpose")


def unpicklable() -> Unpicklable:
    return Unpicklable()


def test_a_reply_that_raises_when_decoded_is_the_futures_exception() -> None:
    executor = ProcessExecutor(max_workers=1)
    with executor.start():
        future = executor.submit(unpicklable)
        error = future.exception(timeout=60)
        assert type(error).__name__ == "UnpicklableResultError" and "Unpicklable" in str(error)
        with pytest.raises(type(error), match="Unpicklable"):
            future.result(timeout=0)
