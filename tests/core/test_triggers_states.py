"""Triggers, signals and the State classes."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from headwater import Flow, signals, states, task, triggers
from headwater.core.edge import Edge
from headwater.states import (
    Cached,
    Cancelled,
    Cancelling,
    Failed,
    Finished,
    Mapped,
    Pending,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Submitted,
    Success,
    TimedOut,
    TriggerFailed,
)


@task
def ok() -> str:
    return "ok"


@task
def bad() -> None:
    raise ValueError("bad")


@task
def skipper() -> None:
    raise signals.SKIP("nothing to do")


def _run_with_trigger(trigger: Any, *upstream: Any) -> State:
    @task(trigger=trigger)
    def target() -> str:
        return "ran"

    with Flow(f"trigger-{trigger.__name__}") as flow:
        t = target(upstream_tasks=[u() for u in upstream])
    return flow.run().result[t]


# --- triggers in flows ---------------------------------------------------------------------------------

RAN = "ran"
TF = "TriggerFailed"


@pytest.mark.parametrize(
    ("trigger", "upstream", "expected"),
    [
        (triggers.all_successful, (ok, ok), RAN),
        (triggers.all_successful, (ok, bad), TF),
        (triggers.all_finished, (ok, bad), RAN),
        (triggers.always_run, (bad, bad), RAN),
        (triggers.all_failed, (bad, bad), RAN),
        (triggers.all_failed, (ok, bad), TF),
        (triggers.any_successful, (ok, bad), RAN),
        (triggers.any_successful, (bad, bad), TF),
        (triggers.any_failed, (ok, bad), RAN),
        (triggers.any_failed, (ok, ok), TF),
        (triggers.none_failed, (ok, ok), RAN),
        (triggers.none_failed, (ok, bad), TF),
    ],
)
def test_triggers_in_a_flow(trigger: Any, upstream: tuple[Any, ...], expected: str) -> None:
    state = _run_with_trigger(trigger, *upstream)
    if expected == RAN:
        assert type(state) is Success and state.result == "ran"
    else:
        assert type(state) is TriggerFailed
        assert f"Trigger was '{trigger.__name__}'" in state.message
        assert isinstance(state.result, signals.TRIGGERFAIL)


def test_all_successful_is_the_default_and_names_the_failed_upstream() -> None:
    with Flow("default-trigger") as flow:
        a, b = ok(), bad()
        t = ok(upstream_tasks=[a, b])
    assert t.trigger is triggers.all_successful
    state = flow.run().result[t]
    assert state.message == "Trigger was 'all_successful' but some of the upstream tasks failed: bad-1"


def test_a_trigger_failure_propagates_down_the_chain() -> None:
    with Flow("chain-fail") as flow:
        b = bad()
        t1 = ok(upstream_tasks=[b])
        t2 = ok(upstream_tasks=[t1])
    state = flow.run()
    assert type(state.result[t1]) is TriggerFailed
    assert type(state.result[t2]) is TriggerFailed
    assert "ok-1" in state.result[t2].message


def test_none_failed_runs_after_a_skip_with_skip_propagation_off() -> None:
    with Flow("none-failed-skip") as flow:
        t = ok.copy(trigger=triggers.none_failed, skip_on_upstream_skip=False)(upstream_tasks=[skipper()])
    assert flow.run().result[t].result == "ok"


def test_a_trigger_that_raises_an_error_fails_the_task() -> None:
    def broken_trigger(upstream_states: Any) -> bool:
        raise KeyError("oops")

    state = _run_with_trigger(broken_trigger, ok)
    assert type(state) is Failed
    assert "Error in the trigger of task 'target'" in state.message


def test_trigger_functions_directly() -> None:
    edge = Edge(ok, bad)
    assert triggers.all_successful({edge: Success()}) is True
    assert triggers.all_successful({edge: Skipped()}) is True  # skipped counts as success
    with pytest.raises(signals.TRIGGERFAIL, match="upstream tasks failed: ok$"):  # names the upstream task
        triggers.all_successful({edge: Failed()})
    with pytest.raises(signals.TRIGGERFAIL, match="not finished"):
        triggers.all_finished({edge: Running()})
    assert triggers.any_successful({}) is True
    with pytest.raises(signals.PAUSE, match="manual_only"):  # Prefect 1: pauses until resumed
        triggers.manual_only({})
    from headwater.utilities.context import context

    with context(resume=True):
        assert triggers.manual_only({}) is True
    with pytest.raises(signals.SKIP):
        triggers.not_all_skipped({edge: Skipped()})


# --- signals -------------------------------------------------------------------------------------------------


def test_skip_signal_skips_and_propagates_unless_opted_out() -> None:
    with Flow("skip") as flow:
        s = skipper()
        after = ok(upstream_tasks=[s])
        runs_anyway = ok.copy(skip_on_upstream_skip=False)(upstream_tasks=[s])
    state = flow.run()
    assert type(state.result[s]) is Skipped
    assert state.result[s].message == "nothing to do"
    assert type(state.result[after]) is Skipped
    assert "skip_on_upstream_skip=False" in state.result[after].message
    assert state.result[runs_anyway].result == "ok"
    assert state.is_successful()  # skipped counts as success


def test_fail_signal_fails_with_its_message_and_retries_apply() -> None:
    calls: list[int] = []

    @task(max_retries=1)
    def failing() -> None:
        calls.append(1)
        raise signals.FAIL("validation failed: 3 bad rows")

    with Flow("fail") as flow:
        f = failing()
    s = flow.run().result[f]
    assert type(s) is Failed
    assert s.message == "validation failed: 3 bad rows"
    assert isinstance(s.result, signals.FAIL)
    assert s.traceback is not None and "FAIL" in s.traceback
    assert len(calls) == 2


def test_retry_signal_retries_without_max_retries() -> None:
    calls: list[int] = []

    @task
    def needs_two() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise signals.RETRY("not yet")
        return len(calls)

    seen: list[str] = []
    with Flow("retry-signal") as flow:
        t = needs_two()
    state = flow.run(on_task_state=lambda task, s, i: seen.append(f"{s.name}:{s.message}"))
    assert state.result[t].result == 2
    assert seen == ["Retrying:not yet", "Success:Task run succeeded."]


def test_endrun_signal_ends_in_exactly_the_given_state() -> None:
    @task
    def early() -> None:
        raise signals.ENDRUN(Success("done early", result=5))

    @task
    def cancel_me() -> None:
        raise signals.ENDRUN(Cancelled("gave up"))

    with Flow("endrun") as flow:
        e = early()
        after = ok.copy()(upstream_tasks=[e])
        c = cancel_me()
    state = flow.run()
    assert state.result[e] == Success("done early", result=5)
    assert state.result[after].result == "ok"
    assert type(state.result[c]) is Cancelled and state.result[c].message == "gave up"


def test_success_signal() -> None:
    @task
    def quick() -> None:
        raise signals.SUCCESS("short cut", result=7)

    with Flow("success-signal") as flow:
        q = quick()
    assert flow.run().result[q] == Success("short cut", result=7)


def test_signals_carry_their_states() -> None:
    assert type(signals.FAIL("x").state) is Failed
    assert type(signals.SKIP("x").state) is Skipped
    assert type(signals.RETRY("x").state) is Retrying
    assert type(signals.TRIGGERFAIL("x").state) is TriggerFailed
    assert signals.FAIL("why").state.message == "why"
    assert isinstance(signals.SKIP(), signals.HeadwaterSignal)


# --- states ----------------------------------------------------------------------------------------------------

ALL_STATES = [
    Pending, Scheduled, Submitted, Running, Retrying, Success, Failed, TriggerFailed,
    Skipped, Cancelling, Cancelled, TimedOut, Cached, Mapped,
]

PREDICATES = {
    "is_pending": {Pending, Scheduled, Retrying},
    "is_scheduled": {Scheduled, Retrying},
    "is_retrying": {Retrying},
    "is_submitted": {Submitted},
    "is_running": {Running, Cancelling},
    "is_cancelling": {Cancelling},
    "is_finished": {Success, Failed, TriggerFailed, Skipped, Cancelled, TimedOut, Cached, Mapped},
    "is_successful": {Success, Skipped, Cached, Mapped},
    "is_failed": {Failed, TriggerFailed, TimedOut},
    "is_skipped": {Skipped},
    "is_cached": {Cached},
    "is_mapped": {Mapped},
    "is_timed_out": {TimedOut},
    "is_cancelled": {Cancelled},
}


@pytest.mark.parametrize("predicate", sorted(PREDICATES))
def test_state_predicates(predicate: str) -> None:
    true_for = {cls for cls in ALL_STATES if getattr(cls(), predicate)()}
    assert true_for == PREDICATES[predicate]


@pytest.mark.parametrize("cls", ALL_STATES, ids=lambda c: c.__name__)
def test_state_message_result_timestamp(cls: type[State]) -> None:
    before = time.time()
    s = cls("a message", result={"k": 1})
    after = time.time()
    assert s.message == "a message"
    assert s.result == {"k": 1}
    assert s.name == cls.__name__
    assert repr(s) == f'<{cls.__name__}: "a message">'  # Prefect 1's repr
    assert before <= s.ts <= after
    assert isinstance(s.timestamp, datetime) and s.timestamp.tzinfo is UTC
    assert isinstance(s, State)
    assert getattr(states, cls.__name__) is cls
    assert cls.__name__ in states.__all__


def test_state_equality_is_by_type_message_and_result() -> None:
    assert Success("m", 1) == Success("m", 1)
    assert Success("m", 1) != Success("m", 2)
    assert Success("m", 1) != Cached("m", 1)
    assert Failed("m") != Success("m")
    assert repr(Pending()) == "<Pending>"
    assert len({Success("m", 1), Success("m", 1)}) == 2  # hashed by identity


def test_state_hierarchy() -> None:
    assert issubclass(Retrying, Scheduled) and issubclass(Scheduled, Pending)
    assert issubclass(Cancelling, Running)
    for cls in (Success, Failed, Cancelled):
        assert issubclass(cls, Finished)
    for cls in (TriggerFailed, TimedOut):
        assert issubclass(cls, Failed)


def test_state_specific_fields() -> None:
    r = Retrying("again", start_time=123.0, run_count=2)
    assert r.start_time == 123.0 and r.run_count == 2
    m = Mapped("m", [1, 2], map_states=[Success(result=1), Success(result=2)])
    assert m.n_map_states == 2
    c = Cached(cached_until=10.0, cached_inputs={"x": 1})
    assert c.cached_until == 10.0 and c.cached_inputs == {"x": 1}
    f = Failed("f", ValueError("v"), traceback="tb")
    assert f.traceback == "tb"
    assert Scheduled().start_time is None
