"""Executors (local, thread pool, process pool) running real flows, and cancellation."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

import headwater
from headwater import Flow, Parameter, task, unmapped
from headwater.executors import Executor, LocalExecutor, ProcessExecutor, ThreadExecutor
from headwater.states import Cancelled, Failed, Mapped, Running, State, Success


@task
def numbers(n: int) -> list[int]:
    return list(range(1, n + 1))


@task
def scale(x: int, factor: int) -> dict[str, Any]:
    if x == 3:
        raise ValueError("three is not allowed")
    return {"value": x * factor, "pid": os.getpid(), "map_index": headwater.context.map_index}


@task(trigger=headwater.triggers.all_finished)
def summary(items: list[Any]) -> list[Any]:
    return [item["value"] if isinstance(item, dict) else type(item).__name__ for item in items]


def _mapping_flow() -> tuple[Flow, dict[str, Any]]:
    offset = 1000

    @task
    def shift(item: dict[str, Any]) -> int:  # a closure: travels to worker processes by value
        return item["value"] + offset

    with Flow("executor-mapping") as flow:
        n = Parameter("n", default=4)
        items = numbers(n)
        scaled = scale.map(items, unmapped(10))
        shifted = shift.map(scaled)
        s = summary(scaled)
    return flow, {"scaled": scaled, "shifted": shifted, "summary": s}


def _check_mapping_state(state: State, t: dict[str, Any]) -> list[dict[str, Any]]:
    assert state.is_failed()  # the failed item is a failed reference task
    scaled = state.result[t["scaled"]]
    assert type(scaled) is Mapped
    assert [type(c) for c in scaled.map_states] == [Success, Success, Failed, Success]
    assert "three is not allowed" in scaled.map_states[2].message
    assert isinstance(scaled.map_states[2].result, ValueError)
    values = [c.result for c in scaled.map_states if c.is_successful()]
    assert [v["value"] for v in values] == [10, 20, 40]
    assert [v["map_index"] for v in values] == [0, 1, 3]
    shifted = state.result[t["shifted"]]
    assert [c.result for c in shifted.map_states if c.is_successful()] == [1010, 1020, 1040]
    assert shifted.map_states[2].is_failed()
    assert state.result[t["summary"]].result == [10, 20, "ValueError", 40]
    return values


@pytest.mark.parametrize("executor", [LocalExecutor(), ThreadExecutor(max_workers=2)], ids=repr)
def test_in_process_executors_run_a_mapped_flow(executor: Executor) -> None:
    flow, t = _mapping_flow()
    values = _check_mapping_state(flow.run(executor=executor), t)
    assert {v["pid"] for v in values} == {os.getpid()}


def test_process_executor_runs_a_mapped_flow_in_other_processes() -> None:
    flow, t = _mapping_flow()
    flow.executor = ProcessExecutor(max_workers=2)
    values = _check_mapping_state(flow.run(), t)
    assert os.getpid() not in {v["pid"] for v in values}


def test_thread_executor_runs_independent_tasks_concurrently() -> None:
    # two tasks that each wait for the other: finishes only if both run at the same time
    a_started, b_started = threading.Event(), threading.Event()

    @task
    def a() -> bool:
        a_started.set()
        return b_started.wait(10)

    @task
    def b() -> bool:
        b_started.set()
        return a_started.wait(10)

    with Flow("concurrent") as flow:
        ra, rb = a(), b()
    state = flow.run(executor=ThreadExecutor(2))
    assert state.result[ra].result is True and state.result[rb].result is True


def test_pool_executors_check_their_arguments_and_lifecycle() -> None:
    with pytest.raises(ValueError, match="max_workers must be at least 1"):
        ThreadExecutor(0)
    ex = ThreadExecutor(1)
    with pytest.raises(RuntimeError, match="outside `with executor.start\\(\\):`"):
        ex.submit(print)
    with ex.start():
        assert ex.submit(lambda: 5).result() == 5
    assert repr(ProcessExecutor(3)) == "<ProcessExecutor(max_workers=3)>"


def test_local_executor_returns_done_futures() -> None:
    ex = LocalExecutor()
    ok = ex.submit(lambda: 1)
    err = ex.submit(lambda: 1 / 0)
    assert ok.done() and ok.result() == 1
    with pytest.raises(ZeroDivisionError):
        err.result()
    assert ex.wait([ok, err]) == ({ok, err}, set())


# --- cancellation ------------------------------------------------------------------------------------------


def test_cancel_lets_running_tasks_finish_and_cancels_pending_ones() -> None:
    cancel = threading.Event()
    release = threading.Event()
    observed: list[tuple[str, str]] = []
    flow_states: list[str] = []

    @task
    def stopper() -> str:
        cancel.set()
        return "requested"

    @task
    def busy() -> str:
        # still running when the cancellation is handled; released once pending tasks are Cancelled
        assert release.wait(10), "never released"
        return "finished"

    @task
    def later(x: str) -> str:
        return x

    def on_task_state(t: Any, s: State, i: int | None) -> None:
        observed.append((t.slug, s.name))
        if isinstance(s, Cancelled):
            release.set()

    with Flow("cancel", state_handlers=[lambda f, o, n: flow_states.append(n.name)]) as flow:
        s = stopper()
        b = busy()
        after_stop = later(s)
        after_busy = later(b)
        mapped_after = later.map(numbers(2), upstream_tasks=[b])
    state = flow.run(executor=ThreadExecutor(2), cancel=cancel, on_task_state=on_task_state)

    assert type(state) is Cancelled
    assert state.message == "Flow run was cancelled."
    assert state.result[s].result == "requested"
    assert type(state.result[b]) is Success and state.result[b].result == "finished"
    for t in (after_stop, after_busy, mapped_after):
        assert type(state.result[t]) is Cancelled, t
        assert state.result[t].message == "Flow run was cancelled before this task started."
    assert flow_states == ["Running", "Cancelling", "Cancelled"]
    # busy finished only after the pending tasks had been cancelled
    assert observed.index(("busy-1", "Success")) > observed.index(("later-1", "Cancelled"))


def test_cancel_with_the_local_executor_and_a_callable() -> None:
    requested: list[bool] = []
    ran: list[str] = []

    @task
    def first() -> None:
        ran.append("first")
        requested.append(True)

    @task
    def second() -> None:
        ran.append("second")

    with Flow("cancel-local") as flow:
        f = first()
        s = second(upstream_tasks=[f])
    state = flow.run(cancel=lambda: bool(requested))
    assert ran == ["first"]
    assert type(state) is Cancelled
    assert state.result[f].is_successful()
    assert type(state.result[s]) is Cancelled


def test_cancel_stops_a_task_waiting_to_retry() -> None:
    cancel = threading.Event()
    calls: list[int] = []

    @task(max_retries=3, retry_delay=30)
    def flaky() -> None:
        calls.append(1)
        cancel.set()
        raise RuntimeError("try later")

    with Flow("cancel-retry") as flow:
        f = flaky()
    state = flow.run(cancel=cancel)
    assert calls == [1]
    assert type(state) is Cancelled
    assert type(state.result[f]) is Cancelled


def test_cancelled_state_is_not_running() -> None:
    assert not Cancelled().is_running() and Cancelled().is_finished()
    assert Running().is_running()
