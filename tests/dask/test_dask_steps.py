"""How DaskExecutor hands the engine its completions: a completion queue, pushed outcomes, one pickle per task.

These are the mechanisms behind a flat cost per task run (benchmarks/dask.py has the figures):
``completed()`` answers from a queue fed by each Dask future as it finishes; small outcomes
travel with the completion (a worker publishes them to the run's event topic), large ones are
fetched with one ``gather``; a task object is pickled once per flow run however many times it runs.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

import dask_helpers as h
from headwater import Flow
from headwater_dask import DaskExecutor
from headwater_dask import executor as dask_executor
from headwater_dask.worker import PUSH_LIMIT

RUN_TIMEOUT = 120.0


def _executing(dask_worker: Any) -> int:
    return len(dask_worker.state.executing)


def test_completed_returns_as_soon_as_one_call_finishes(dask_address: str, dask_client: Any) -> None:
    executor = DaskExecutor(address=dask_address)
    with executor.start():
        topic = executor._run.topic if executor._run is not None else None
        slow = executor.submit(h.sleep_then, "slow", 5.0)
        fast = executor.submit(h.sleep_then, "fast", 0.0)
        done = executor.completed({slow: None, fast: None}, timeout=RUN_TIMEOUT)
        assert done == [fast], "completed() must not wait for every call in flight"
        assert not slow.done()
        assert fast.result() == "fast"
        executor.cancel([slow])
        assert executor.completed({slow: None}, timeout=RUN_TIMEOUT) == [slow]
        assert type(slow.result()).__name__ == "Cancelled"
    deadline = time.monotonic() + RUN_TIMEOUT
    while any(dask_client.run(_executing).values()):  # the cancelled call still runs on its worker, then ends
        assert time.monotonic() < deadline, "the cancelled call never ended on its worker"
        time.sleep(0.1)
    assert topic and not dask_client.get_events(topic), "a cancelled call that ends later publishes nothing"


def test_a_long_chain_gets_exact_states_and_its_result(dask_address: str) -> None:
    n = 300
    with Flow("dask-chain") as flow:
        last = h.plus_one(0)
        for _ in range(n - 1):
            last = h.plus_one(last)
    seen: list[str] = []
    state = flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False,
                     on_task_state=lambda t, s, i: seen.append(type(s).__name__))
    assert state.is_successful(), state
    assert state.result[last].result == n
    assert seen == ["Success"] * n


class _CountGathers:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from distributed import Client

        self.calls = 0
        original = Client.gather

        def gather(client: Any, *args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(client, *args, **kwargs)

        monkeypatch.setattr(Client, "gather", gather)


def test_small_outcomes_come_with_the_completion_and_large_ones_are_gathered(
    dask_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gathers = _CountGathers(monkeypatch)
    with Flow("dask-small-outcomes") as flow:
        small = h.blob_of.map([10, 20, 30])
    state = flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False)
    assert [len(c.result) for c in state.result[small].map_states] == [10, 20, 30]
    assert gathers.calls == 0, "small outcomes are pushed by the workers, not fetched"

    with Flow("dask-large-outcomes") as flow:
        large = h.blob_of.map([PUSH_LIMIT * 2, 5])
    state = flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False)
    assert state.is_successful(), state
    assert [len(c.result) for c in state.result[large].map_states] == [PUSH_LIMIT * 2, 5]
    assert gathers.calls >= 1, "an outcome above PUSH_LIMIT is fetched with gather"


def test_pushed_outcomes_do_not_stay_on_the_scheduler(dask_address: str, dask_client: Any) -> None:
    with Flow("dask-topic-cleanup") as flow:
        h.blob_of.map([1, 2, 3])
    assert flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False).is_successful()
    events = dask_client.get_events()
    left = {topic: len(evs) for topic, evs in events.items() if str(topic).startswith("headwater-dask-")}
    assert not left, f"the run's event topic must be dropped at the end of the run: {left}"


def test_a_task_object_is_pickled_once_per_flow_run(dask_address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pickled: list[str] = []
    original = dask_executor.dumps_blob

    def counting(value: Any) -> bytes:
        pickled.append(getattr(value, "name", "?"))
        return original(value)

    monkeypatch.setattr(dask_executor, "dumps_blob", counting)
    with Flow("dask-one-pickle") as flow:
        pids = h.whoami.map(list(range(40)))
    state = flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False)
    assert state.is_successful(), state
    assert len(state.result[pids].map_states) == 40
    assert pickled.count("whoami") == 1, pickled


def test_mapped_children_share_one_dask_key_prefix(dask_address: str, dask_client: Any) -> None:
    with Flow("dask-one-prefix") as flow:
        h.plus_one.map(list(range(25)))
    assert flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False).is_successful()
    prefixes = dask_client.run_on_scheduler(h.task_prefixes)
    assert "plus_one" in prefixes
    assert not [p for p in prefixes if p.startswith("plus_one[")], "a prefix per child makes the scheduler O(N) per task"
