"""Issue 19: the thread executor's own pool (no per-call condition variables) keeps concurrent.futures' behaviour."""

from __future__ import annotations

import concurrent.futures as cf
import threading

import pytest

from headwater import Flow, task
from headwater.executors import ThreadExecutor
from headwater.executors.base import ALL_COMPLETED, FIRST_COMPLETED
from headwater.executors.pool import TaskFuture


def test_threads_start_on_demand_up_to_max_workers_and_run_calls_concurrently() -> None:
    gate = threading.Event()
    started = threading.Barrier(3, timeout=10)
    names: set[str] = set()

    def blocked() -> str:
        names.add(threading.current_thread().name)
        started.wait()  # all three run at the same time, or this times out
        gate.wait(10)
        return threading.current_thread().name

    executor = ThreadExecutor(max_workers=3)
    with executor.start():
        futures = [executor.submit(blocked) for _ in range(3)]
        extra = executor.submit(lambda: "queued")  # waits for a free thread: at most three exist
        assert not extra.done()
        gate.set()
        assert extra.result(timeout=10) == "queued"
        assert {f.result(timeout=10) for f in futures} == names
    assert len(names) == 3 and all(n.startswith("headwater-task_") for n in names)


def test_futures_give_results_errors_and_callbacks() -> None:
    executor = ThreadExecutor(max_workers=2)
    seen: list[object] = []
    with executor.start():
        ok = executor.submit(lambda: 41 + 1)
        bad = executor.submit(lambda: 1 / 0)
        done, not_done = executor.wait([ok, bad], timeout=10, return_when=ALL_COMPLETED)
        assert done == {ok, bad} and not not_done
        assert isinstance(ok, TaskFuture) and ok.result() == 42 and ok.exception() is None
        with pytest.raises(ZeroDivisionError):
            bad.result()
        assert isinstance(bad.exception(), ZeroDivisionError)
        ok.add_done_callback(lambda f: seen.append(f.result()))  # already done: called at once
        assert seen == [42]
        assert executor.completed({ok, bad}, timeout=5)  # both went through the completion queue


def test_first_completed_and_timeouts() -> None:
    gate = threading.Event()
    executor = ThreadExecutor(max_workers=2)
    with executor.start():
        slow = executor.submit(gate.wait, 10)
        fast = executor.submit(lambda: "fast")
        done, not_done = executor.wait([slow, fast], timeout=10, return_when=FIRST_COMPLETED)
        assert done == {fast} and not_done == {slow}
        with pytest.raises(cf.TimeoutError):
            slow.result(timeout=0.01)
        gate.set()
        assert slow.result(timeout=10) is True


def test_calls_not_started_are_cancelled_and_report_it() -> None:
    gate = threading.Event()
    executor = ThreadExecutor(max_workers=1)
    with executor.start():
        running = executor.submit(gate.wait, 10)
        waiting = executor.submit(lambda: "never")
        assert waiting.cancel() and waiting.cancelled() and waiting.done()
        assert not running.cancel() or running.cancelled()  # a started call cannot be cancelled
        with pytest.raises(cf.CancelledError):
            waiting.result()
        assert waiting in executor.completed({waiting}, timeout=5)  # the engine sees it finish
        gate.set()
    assert running.result(timeout=1) is True


def test_submit_outside_a_flow_run_names_the_fix() -> None:
    with pytest.raises(RuntimeError, match="outside `with executor.start\\(\\):`"):
        ThreadExecutor().submit(print)


@task
def double(x: int) -> int:
    return 2 * x


def test_a_mapped_flow_keeps_every_state_on_threads() -> None:
    with Flow("threads-map") as flow:
        out = double.map(list(range(500)))
    state = flow.run(executor=ThreadExecutor(max_workers=4))
    children = state.result[out].map_states
    assert state.is_successful() and [c.result for c in children] == [2 * i for i in range(500)]
