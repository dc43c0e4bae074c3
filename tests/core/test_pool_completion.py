"""The pools answer the engine from a completion queue: a scheduling step costs what finished, not what is in flight."""

from __future__ import annotations

import concurrent.futures as cf
import threading
from pathlib import Path

import pytest

from headwater import Flow, task
from headwater.executors import ProcessExecutor, ThreadExecutor


def test_completed_returns_finished_futures_without_waiting_on_every_one(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_wait(*args: object, **kwargs: object) -> None:
        raise AssertionError("cf.wait looks at every in-flight future")

    monkeypatch.setattr(cf, "wait", no_wait)
    gate = threading.Event()
    executor = ThreadExecutor(max_workers=4)
    with executor.start():
        slow = [executor.submit(gate.wait, 5) for _ in range(3)]
        fast = executor.submit(lambda: 7)
        pending = {*slow, fast}
        assert executor.completed(pending, timeout=5) == [fast]
        pending.discard(fast)
        assert executor.completed(pending, timeout=0) == []  # nothing else finished yet
        gate.set()
        done: list[object] = []
        while len(done) < 3:
            done += executor.completed(pending - set(done), timeout=5)
        assert set(done) == set(slow)


def test_futures_someone_else_waited_for_are_skipped() -> None:
    executor = ThreadExecutor(max_workers=2)
    with executor.start():
        other = executor.submit(lambda: 1)
        other.result()
        mine = executor.submit(lambda: 2)
        assert executor.completed({mine}, timeout=5) == [mine]


@task
def one(i: int) -> int:
    return i


@task
def total(values: list[int]) -> int:
    return sum(values)


@pytest.mark.parametrize("executor", [ThreadExecutor(max_workers=4), ProcessExecutor(max_workers=2)], ids=["threads", "processes"])
def test_fan_out_through_the_queue_keeps_every_state(executor: object) -> None:
    n = 300 if isinstance(executor, ThreadExecutor) else 40
    with Flow("fan") as flow:
        out = total([one(i) for i in range(n)])
    state = flow.run(executor=executor)
    assert state.is_successful() and state.result[out].result == sum(range(n))
    assert sum(1 for s in state.result.values() if s.is_successful()) == len(flow.tasks)


@task(max_retries=1, retry_delay=0)
def flaky_square(x: int) -> int:
    import os

    marker = f"{os.environ['HW_CHUNK_DIR']}/{x}"
    if x % 7 == 3 and not os.path.exists(marker):  # fails once per item in another process: retried alone
        open(marker, "w").close()
        raise ValueError(f"item {x} failed once")
    if x == 13:
        raise RuntimeError("item 13 always fails")
    return x * x


def test_mapped_children_travel_in_chunks_with_exact_per_item_states(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from unittest import mock

    from headwater.engine import task_runner

    monkeypatch.setenv("HW_CHUNK_DIR", str(tmp_path))
    executor = ProcessExecutor(max_workers=2, chunksize=10)
    assert executor.map_chunksize(1000) == 10 and ProcessExecutor(max_workers=2).map_chunksize(1000) == 125
    assert ProcessExecutor(max_workers=2).map_chunksize(3) == 1
    assert ThreadExecutor(max_workers=4).map_chunksize(1000) == 62 and ThreadExecutor(max_workers=4).map_chunksize(15) == 1
    assert ThreadExecutor(max_workers=4).map_chunksize(100_000) == 4096 and ThreadExecutor(chunksize=1).map_chunksize(1000) == 1
    with Flow("chunks") as flow:
        squares = flaky_square.map(list(range(40)))
    with mock.patch.object(executor, "submit", wraps=executor.submit) as submit:
        state = flow.run(executor=executor)
    batches = [c for c in submit.call_args_list if c.args[0] is task_runner.run_task_batch]
    assert len(batches) == 4  # 40 children in chunks of 10; the retries go one by one
    children = state.result[squares].map_states
    assert [type(s).__name__ for s in children].count("Success") == 39
    assert type(children[13]).__name__ == "Failed" and "always fails" in children[13].message
    assert all(children[i].result == i * i for i in range(40) if i != 13)
    assert {i for i in range(40) if i % 7 == 3} == {int(p.name) for p in tmp_path.iterdir()}


def test_chunksize_is_checked() -> None:
    with pytest.raises(ValueError, match="chunksize must be a whole number >= 1"):
        ProcessExecutor(chunksize=0)
    with pytest.raises(ValueError, match="ThreadExecutor: chunksize must be a whole number >= 1"):
        ThreadExecutor(chunksize=True)
