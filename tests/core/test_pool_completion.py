"""The pools answer the engine from a completion queue: a scheduling step costs what finished, not what is in flight."""

from __future__ import annotations

import concurrent.futures as cf
import threading

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
