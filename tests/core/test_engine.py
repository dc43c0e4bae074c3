"""The engine: running flows, task options (retries, timeout, cache, handlers), context, schedules."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

import headwater
from headwater import Flow, Parameter, Task, task
from headwater.engine.cache import all_inputs, never_use, task_cache
from headwater.executors import LocalExecutor, ThreadExecutor
from headwater.states import (
    Cached,
    Failed,
    Pending,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    task_cache.clear()
    yield
    task_cache.clear()


@task
def one() -> int:
    return 1


@task
def inc(x: int) -> int:
    return x + 1


@task
def boom() -> None:
    raise ValueError("boom")


# --- flow.run() and its state ---------------------------------------------------------------------


def test_run_returns_flow_state_with_every_task_state() -> None:
    with Flow("states") as flow:
        a = one()
        b = inc(a)
    state = flow.run()
    assert type(state) is Success
    assert state.message == "All reference tasks succeeded."
    assert set(state.result) == {a, b}
    assert type(state.result[a]) is Success and state.result[a].result == 1
    assert state.result[b].result == 2
    assert state.result[b].message == "Task run succeeded."
    assert state.timestamp.tzinfo is not None


def test_flow_state_follows_terminal_tasks_by_default() -> None:
    # a failed root whose downstream is TriggerFailed: both are failures, the flow fails
    with Flow("terminal") as flow:
        bad = boom()
        after = inc(bad)
        ok = one()
    state = flow.run()
    assert state.is_failed()
    assert state.message == "boom-1 raised ValueError('boom'); 1 downstream task did not run"
    assert type(state.result[after]) is TriggerFailed
    assert "boom-1" in state.result[after].message
    assert state.result[ok].is_successful()


def test_flow_state_follows_explicit_reference_tasks() -> None:
    @task(trigger=headwater.triggers.all_finished)
    def cleanup(x: object) -> str:
        return "cleaned"

    with Flow("reference") as flow:
        bad = boom()
        c = cleanup(bad)
    assert flow.run().is_successful()  # the only terminal task succeeded
    flow.set_reference_tasks([bad, c])
    state = flow.run()
    assert state.is_failed()
    assert "boom-1" in state.message


def test_independent_branches_keep_going_after_a_failure() -> None:
    ran: list[str] = []

    @task
    def record(name: str) -> str:
        ran.append(name)
        return name

    with Flow("branches") as flow:
        bad = boom()
        inc(bad)
        good = record("a")
        record2 = record(good)
    state = flow.run()
    assert ran == ["a", "a"]
    assert state.result[record2].result == "a"
    assert state.is_failed()


def test_run_with_an_executor_argument_overrides_the_flows() -> None:
    calls: list[str] = []

    class CountingExecutor(LocalExecutor):
        def submit(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(args[0].name)
            return super().submit(fn, *args, **kwargs)

    with Flow("exec", executor=CountingExecutor()) as flow:
        inc(one())
    flow.run()
    assert calls == ["one", "inc"]
    flow.run(executor=LocalExecutor())
    assert calls == ["one", "inc"]


def test_on_task_state_sees_each_final_state() -> None:
    seen: list[tuple[str, str, int | None]] = []
    with Flow("observe") as flow:
        inc(one())
    flow.run(on_task_state=lambda t, s, i: seen.append((t.slug, s.name, i)))
    assert seen == [("one-1", "Success", None), ("inc-1", "Success", None)]


# --- state handlers ---------------------------------------------------------------------------------


def _names(transitions: list[tuple[State, State]]) -> list[tuple[str, str]]:
    return [(o.name, n.name) for o, n in transitions]


def test_task_state_handlers_see_each_transition() -> None:
    transitions: list[tuple[State, State]] = []
    seen_tasks: list[Task] = []

    def handler(t: Task, old: State, new: State) -> None:
        seen_tasks.append(t)
        transitions.append((old, new))

    @task(state_handlers=[handler])
    def work() -> int:
        return 3

    with Flow("handlers") as flow:
        w = work()
    flow.run()
    assert _names(transitions) == [("Pending", "Running"), ("Running", "Success")]
    assert transitions[1][1].result == 3
    assert seen_tasks == [w, w]


def test_task_state_handler_can_replace_the_state() -> None:
    def recover(t: Task, old: State, new: State) -> State | None:
        if new.is_failed():
            return Success(f"recovered from {new.result!r}", result=0)
        return None

    with Flow("replace") as flow:
        b = boom.copy(state_handlers=[recover])()
        after = inc(b)
    state = flow.run()
    assert state.is_successful()
    assert state.result[b].message == "recovered from ValueError('boom')"
    assert state.result[after].result == 1


def test_task_state_handlers_see_states_decided_without_running() -> None:
    transitions: list[tuple[State, State]] = []

    def handler(t: Task, old: State, new: State) -> None:
        transitions.append((old, new))

    with Flow("handlers-trigger") as flow:
        inc.copy(state_handlers=[handler])(boom())
    flow.run()
    assert _names(transitions) == [("Pending", "TriggerFailed")]


def test_flow_state_handlers_see_transitions_and_can_replace_the_final_state() -> None:
    transitions: list[tuple[State, State]] = []
    flows: list[Flow] = []

    def handler(f: Flow, old: State, new: State) -> State | None:
        flows.append(f)
        transitions.append((old, new))
        if new.is_failed():
            return Success("failure accepted", new.result)
        return None

    with Flow("flow-handlers", state_handlers=[handler]) as flow:
        boom()
    state = flow.run()
    assert _names(transitions) == [("Pending", "Running"), ("Running", "Failed")]
    assert flows == [flow, flow]
    assert type(state) is Success and state.message == "failure accepted"


# --- retries --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("executor", [LocalExecutor(), ThreadExecutor(2)], ids=repr)
def test_retry_delay_does_not_block_other_ready_tasks(executor: Any) -> None:
    events: list[str] = []
    lock = threading.Lock()
    attempts = {"n": 0}

    def log(event: str) -> None:
        with lock:
            events.append(event)

    @task(max_retries=1, retry_delay=0.3)
    def flaky() -> str:
        attempts["n"] += 1
        log(f"flaky-{attempts['n']}")
        if attempts["n"] == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    @task
    def step(name: str) -> None:
        log(name)

    with Flow("retry-order") as flow:
        f = flaky()
        flow.chain(step.copy()(name="c1"), step.copy()(name="c2"), step.copy()(name="c3"))
    state = flow.run(executor=executor)
    assert state.is_successful(), state.message
    assert state.result[f].result == "ok"
    # c2 and c3 only became ready after flaky's first attempt had failed: they ran while it waited
    assert events.index("flaky-1") < events.index("c2") < events.index("c3") < events.index("flaky-2")


def test_retries_are_visible_to_handlers_and_observers() -> None:
    transitions: list[tuple[State, State]] = []
    observed: list[str] = []
    attempts = {"n": 0}

    @task(max_retries=2, state_handlers=[lambda t, o, n: transitions.append((o, n))])
    def flaky() -> int:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise ConnectionError(f"attempt {attempts['n']}")
        return attempts["n"]

    with Flow("retry-visible") as flow:
        f = flaky()
    state = flow.run(on_task_state=lambda t, s, i: observed.append(s.name))
    assert state.result[f].result == 3
    names = _names(transitions)
    assert names.count(("Running", "Retrying")) == 2
    assert names[-1] == ("Running", "Success")
    retrying = [n for o, n in transitions if isinstance(n, Retrying)]
    assert retrying[0].message.startswith("Retrying after: Error during execution of task: ConnectionError('attempt 1')")
    assert "(run 1 of 3)" in retrying[0].message and "(run 2 of 3)" in retrying[1].message
    assert [r.run_count for r in retrying] == [1, 2]
    assert isinstance(retrying[0].result, ConnectionError)
    assert observed == ["Retrying", "Retrying", "Success"]


def test_retries_run_out_and_the_task_fails() -> None:
    calls: list[int] = []

    @task(max_retries=2, retry_delay=timedelta(0))
    def always() -> None:
        calls.append(headwater.context.get("task_run_count"))
        raise ValueError("still broken")

    with Flow("retry-out") as flow:
        a = always()
    state = flow.run()
    assert calls == [1, 2, 3]
    assert type(state.result[a]) is Failed
    assert "still broken" in state.result[a].message


# --- timeout ------------------------------------------------------------------------------------------------


def test_timeout_ends_a_task_timed_out() -> None:
    release = threading.Event()

    @task(timeout=0.1)
    def slow() -> str:
        release.wait(10)
        return "late"

    @task(timeout=5)
    def quick() -> str:
        return "fast"

    with Flow("timeout") as flow:
        s = slow()
        q = quick()
        after = inc.copy()(s)
    try:
        state = flow.run()
    finally:
        release.set()
    assert type(state.result[s]) is TimedOut
    assert state.result[s].is_failed()
    assert state.result[s].message == "Task 'slow' timed out after 0.1 seconds."
    assert state.result[q].result == "fast"
    assert type(state.result[after]) is TriggerFailed


def test_timeout_keeps_task_errors_and_context() -> None:
    @task(timeout=5)
    def fails() -> None:
        raise KeyError(headwater.context.get("task_name"))

    with Flow("timeout-error") as flow:
        f = fails()
    state = flow.run()
    assert type(state.result[f]) is Failed
    assert state.result[f].result.args == ("fails",)


# --- caching -------------------------------------------------------------------------------------------------


def test_cache_for_reuses_the_result_without_running() -> None:
    calls: list[int] = []

    @task(cache_for=timedelta(minutes=1))
    def expensive() -> int:
        calls.append(1)
        return 42

    with Flow("cache") as flow:
        e = expensive()
        after = inc(e)
    first = flow.run()
    second = flow.run()
    assert len(calls) == 1
    assert type(first.result[e]) is Success
    assert type(second.result[e]) is Cached
    assert second.result[e].result == 42
    assert second.result[e].is_successful()
    assert second.result[e].cached_until is not None
    assert second.result[after].result == 43


def test_state_handlers_see_a_cached_state() -> None:
    transitions: list[tuple[State, State]] = []

    @task(cache_for=60, state_handlers=[lambda t, o, n: transitions.append((o, n))])
    def expensive() -> int:
        return 5

    with Flow("cache-handlers") as flow:
        expensive()
    flow.run()
    transitions.clear()
    flow.run()
    assert _names(transitions) == [("Pending", "Cached")]
    assert transitions[0][1].result == 5


def test_cache_key_is_shared_between_tasks_and_flows() -> None:
    calls: list[str] = []

    @task(cache_for=60, cache_key="shared-key")
    def fetch() -> str:
        calls.append("fetch")
        return "data"

    with Flow("cache-a") as flow_a:
        fetch()
    with Flow("cache-b") as flow_b:
        b = fetch()
    flow_a.run()
    state = flow_b.run()
    assert calls == ["fetch"]
    assert type(state.result[b]) is Cached and state.result[b].result == "data"


def test_cache_validator_decides_reuse() -> None:
    calls: list[object] = []

    @task
    def record(x: int) -> int:
        calls.append(x)
        return x * 2

    with Flow("cache-inputs") as flow:
        p = Parameter("p")
        r = record.copy(cache_for=60, cache_validator=all_inputs)(p)
    assert flow.run(p=1).result[r].result == 2
    assert type(flow.run(p=1).result[r]) is Cached
    assert type(flow.run(p=2).result[r]) is Success  # new input: runs again
    assert calls == [1, 2]

    r.cache_validator = never_use
    assert type(flow.run(p=1).result[r]) is Success
    assert calls == [1, 2, 1]


# --- context --------------------------------------------------------------------------------------------------


def test_context_inside_tasks() -> None:
    seen: dict[str, Any] = {}

    @task
    def look() -> None:
        ctx = headwater.context
        seen.update(
            flow_name=ctx.get("flow_name"),
            task_name=ctx.task_name,
            task_slug=ctx["task_slug"],
            parameters=dict(ctx.get("parameters")),
            map_index=ctx.get("map_index", "absent"),
            scheduled_start_time=ctx.get("scheduled_start_time"),
            today=ctx.get("today"),
            yesterday=ctx.get("yesterday"),
            date=ctx.get("date"),
            logger=ctx.get("logger"),
            custom=ctx.get("custom"),
        )

    start = datetime(2024, 3, 1, 6, 30, tzinfo=UTC)
    with Flow("ctx") as flow:
        look(upstream_tasks=[Parameter("p", default=1)])
    state = flow.run(parameters={"p": 9}, context={"scheduled_start_time": start, "custom": "yes"})
    assert state.is_successful(), state.message
    assert seen == {
        "flow_name": "ctx",
        "task_name": "look",
        "task_slug": "look-1",
        "parameters": {"p": 9},
        "map_index": None,
        "scheduled_start_time": start,
        "today": "2024-03-01",
        "yesterday": "2024-02-29",
        "date": start,
        "logger": seen["logger"],
        "custom": "yes",
    }
    assert seen["logger"].name == "headwater.look"
    # nothing leaks out of the run
    assert headwater.context.get("flow_name") is None
    with pytest.raises(AttributeError, match="has no value 'task_name'"):
        headwater.context.task_name  # noqa: B018


def test_context_default_start_time_is_now_in_utc() -> None:
    seen: dict[str, Any] = {}

    @task
    def look() -> None:
        seen["start"] = headwater.context.scheduled_start_time
        seen["today"] = headwater.context.today

    before = datetime.now(UTC)
    with Flow("ctx-now") as flow:
        look()
    flow.run()
    after = datetime.now(UTC)
    assert before <= seen["start"] <= after
    assert seen["today"] == seen["start"].strftime("%Y-%m-%d")


# --- checkpointing through a task's result ----------------------------------------------------------------------


@attrs.define
class MemoryResult:
    """A stand-in Result: records what was written."""

    written: list[tuple[object, str]] = attrs.field(factory=list)
    location: str | None = None

    def write(self, value: object, **ctx: Any) -> MemoryResult:
        self.written.append((value, ctx["task_slug"]))
        return MemoryResult(location=f"memory://{ctx['task_slug']}")


def test_checkpoint_writes_through_the_tasks_result() -> None:
    result = MemoryResult()
    with Flow("checkpoint") as flow:
        a = one.copy(result=result, checkpoint=True)()
        b = inc.copy(result=result, checkpoint=False)(a)
    state = flow.run()
    assert result.written == [(1, "one-1")]
    assert state.result[a].location == "memory://one-1"
    assert state.result[b].location is None


def test_a_checkpoint_that_cannot_be_written_fails_the_task() -> None:
    class Broken:
        def write(self, value: object, **ctx: Any) -> None:
            raise OSError("disk full")

    with Flow("checkpoint-broken") as flow:
        a = one.copy(result=Broken(), checkpoint=True)()
    state = flow.run()
    assert state.result[a].is_failed()
    assert "could not be checkpointed: disk full" in state.result[a].message


# --- schedules -------------------------------------------------------------------------------------------------------


@attrs.define
class Event:
    start_time: datetime
    parameter_defaults: dict[str, Any] = attrs.field(factory=dict)


@attrs.define
class ListSchedule:
    """A stand-in schedule handing out the given events once each."""

    events: list[Event]

    def next(self, n: int, return_events: bool = False) -> list[Event]:
        return [self.events.pop(0)] if self.events else []


def test_flow_runs_once_per_scheduled_event(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWATER__FLOWS__RUN_ON_SCHEDULE", raising=False)
    seen: list[tuple[str, int]] = []

    @task
    def look(p: int) -> None:
        seen.append((headwater.context.today, p))

    past = datetime.now(UTC) - timedelta(days=3)
    schedule = ListSchedule([Event(past, {"p": 1}), Event(past + timedelta(days=1), {"p": 2})])
    with Flow("scheduled", schedule=schedule) as flow:
        look(Parameter("p", default=0))
    state = flow.run()
    assert state.is_successful()
    assert seen == [(past.strftime("%Y-%m-%d"), 1), ((past + timedelta(days=1)).strftime("%Y-%m-%d"), 2)]


def test_run_on_schedule_false_runs_once_now(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    schedule = ListSchedule([Event(datetime.now(UTC) + timedelta(days=1))])
    with Flow("unscheduled", schedule=schedule) as flow:
        task(lambda: seen.append(1))()
    assert flow.run(run_on_schedule=False).is_successful()
    monkeypatch.setenv("HEADWATER__FLOWS__RUN_ON_SCHEDULE", "false")
    assert flow.run().is_successful()
    assert seen == [1, 1]
    assert len(schedule.events) == 1  # never asked


# --- state objects in the runner's hands ------------------------------------------------------------------------------


def test_running_and_pending_are_not_final_states() -> None:
    for s in (Pending(), Running(), Retrying()):
        assert not s.is_finished()
    assert Skipped().is_successful() and not Skipped().is_failed()
