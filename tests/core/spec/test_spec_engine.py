"""The tick engine: ticks, failure semantics, retries, timeouts, long-running tasks, run_flow."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import headwater
from headwater import signals
from headwater.spec import FlowEngine, FlowFailedError, Status, TickLimitError, register, unregister
from headwater.states import Retrying, Skipped, TimedOut, TriggerFailed

engine = FlowEngine()


def t(key: str, task_type: str = "noop", **extra: Any) -> dict[str, Any]:
    return {"key": key, "task_type": task_type, **extra}


def fail(key: str, **extra: Any) -> dict[str, Any]:
    return t(key, "python", task_params={"callable": "spec_helpers:boom", "kwargs": {"message": f"{key} broke"}}, **extra)


def statuses(flow: headwater.Flow) -> dict[str, str]:
    return {task.key: task.status.value for task in flow.sorted_tasks() if task.key != "ROOT"}


@pytest.fixture
def calls() -> Iterator[list[str]]:
    """A task type ``record`` that appends its task's key here."""
    seen: list[str] = []
    register("record", lambda task, ctx: seen.append(task.key))
    yield seen
    unregister("record")


def test_a_tick_runs_what_was_ready_when_it_started(calls: list[str]) -> None:
    flow = headwater.Flow.from_flow_spec(
        {"tasks": [t("a", "record"), t("b", "record", precursors=[]), t("c", "record", precursors=["a", "b"])]}
    )
    engine.tick_flow(flow)
    assert calls == ["a", "b"]
    assert statuses(flow) == {"a": "COMPLETED", "b": "COMPLETED", "c": "PENDING"}
    assert flow.to_flow_dict()["num_tickable_tasks"] == 1
    engine.tick_flow(flow)
    assert calls == ["a", "b", "c"] and flow.status == "COMPLETED"
    engine.tick_flow(flow)  # a finished flow is left alone
    assert calls == ["a", "b", "c"]


def test_fail_fast_fails_the_flow_at_the_first_failure_and_records_it(calls: list[str]) -> None:
    flow = headwater.Flow.from_flow_spec(
        {"tasks": [fail("a"), t("b", "record", precursors=[]), t("c", "record", precursors=["a"])]}
    )
    engine.tick_flow(flow)
    assert flow.status == "FAILED"
    assert calls == ["b"], "a failure never stops the other tasks of the same tick"
    assert statuses(flow) == {"a": "FAILED", "b": "COMPLETED", "c": "PENDING"}
    [error] = flow.data["errors"]
    assert error["task"] == "a" and "a broke" in error["message"]
    assert "RuntimeError: a broke" in error["traceback"] and "spec_helpers.py" in error["traceback"]
    assert "'a' failed" in flow.state.message
    engine.tick_flow(flow)
    assert calls == ["b"]


def test_without_fail_fast_every_other_branch_finishes_and_all_errors_are_recorded(calls: list[str]) -> None:
    flow = headwater.Flow.from_flow_spec(
        {
            "cfg": {"fail_fast": False},
            "tasks": [
                fail("a1"),
                t("a2", "record"),  # after a1: skipped
                t("a3", "record"),  # after a2: skipped too
                t("b1", "record", precursors=[]),
                fail("b2"),  # after b1
                t("c1", "record", precursors=[]),
                t("c2", "record"),
                t("join", "record", precursors=["a3", "c2"]),  # one failed branch upstream: skipped
            ],
        }
    )
    engine.tick_flow_until_has_no_pending(flow)
    assert flow.status == "FAILED"
    assert statuses(flow) == {
        "a1": "FAILED", "a2": "SKIPPED", "a3": "SKIPPED", "b1": "COMPLETED", "b2": "FAILED",
        "c1": "COMPLETED", "c2": "COMPLETED", "join": "SKIPPED",
    }
    assert calls == ["b1", "c1", "c2"]
    assert isinstance(flow.task_by_slug("a2").state, TriggerFailed)
    assert "upstream task 'a1' failed" in flow.task_by_slug("a2").state.message
    assert "upstream task 'a2' failed" in flow.task_by_slug("a3").state.message
    assert [e["task"] for e in flow.data["errors"]] == ["a1", "b2"]
    assert all(e["traceback"] for e in flow.data["errors"])
    assert "2 task(s) failed: a1, b2" in flow.state.message


def test_run_flow_returns_the_state_or_raises_a_clear_error() -> None:
    ok = headwater.Flow.from_flow_spec({"tasks": [t("a")]})
    assert engine.run_flow(ok).is_successful()
    bad = headwater.Flow.from_flow_spec({"label": "doomed", "tasks": [fail("a")]})
    with pytest.raises(FlowFailedError) as info:
        engine.run_flow(bad)
    assert "'doomed' FAILED" in str(info.value) and "task 'a'" in str(info.value) and "a broke" in str(info.value)
    assert info.value.flow is bad


def test_run_flow_raises_when_ticks_run_out() -> None:
    flow = headwater.Flow.from_flow_spec({"label": "long", "tasks": [t("a"), t("b"), t("c")]})
    with pytest.raises(TickLimitError) as info:
        engine.run_flow(flow, max_ticks=2)
    assert "'long' is still RUNNING after 2 tick(s)" in str(info.value) and "c" in str(info.value)
    assert flow.status == "RUNNING"
    assert engine.run_flow(flow, max_ticks=1).is_successful()


def test_a_handler_may_keep_its_task_running_across_ticks() -> None:
    polls: list[int] = []

    def wait_three_ticks(task: Any, ctx: Any) -> Any:
        polls.append(1)
        task.data["polls"] = len(polls)
        if len(polls) < 3:
            ctx.keep_running(f"poll {len(polls)}")
        return "ready"

    register("waiter", wait_three_ticks)
    try:
        flow = headwater.Flow.from_flow_spec({"tasks": [t("w", "waiter"), t("after")]})
        engine.tick_flow(flow)
        assert flow.task_by_slug("w").status == "RUNNING" and flow.task_by_slug("w").state.message == "poll 1"
        resumed = headwater.Flow.from_flow_dict(flow.to_flow_dict())  # the RUNNING task survives a round trip
        engine.tick_flow(resumed)
        engine.tick_flow(resumed)
        assert resumed.task_by_slug("w").status == "COMPLETED"
        assert resumed.task_by_slug("w").data == {"polls": 3, "result": "ready"}
        engine.tick_flow(resumed)
        assert resumed.status == "COMPLETED"
    finally:
        unregister("waiter")


def test_retries_use_the_core_task_runner() -> None:
    attempts: list[int] = []

    def flaky(task: Any, ctx: Any) -> None:
        attempts.append(headwater.context.task_run_count)
        if len(attempts) < 3:
            raise RuntimeError("not yet")

    register("flaky", flaky)
    try:
        flow = headwater.Flow.from_flow_spec({"tasks": [t("f", "flaky", max_retries=2)]})
        engine.tick_flow(flow)
        assert isinstance(flow.task_by_slug("f").state, Retrying)
        assert flow.task_by_slug("f").status == "RUNNING"
        engine.tick_flow_until_has_no_pending(flow)
        assert flow.status == "COMPLETED" and attempts == [1, 2, 3]
        assert "errors" not in flow.data

        attempts.clear()
        once = headwater.Flow.from_flow_spec({"tasks": [t("f", "flaky", max_retries=1)]})
        engine.tick_flow_until_has_no_pending(once)
        assert once.status == "FAILED" and attempts == [1, 2]
    finally:
        unregister("flaky")


def test_a_timeout_ends_the_task_timed_out() -> None:
    register("sleepy", lambda task, ctx: __import__("time").sleep(2))
    try:
        flow = headwater.Flow.from_flow_spec({"tasks": [t("s", "sleepy", timeout=0.05)]})
        engine.tick_flow(flow)
        assert isinstance(flow.task_by_slug("s").state, TimedOut)
        assert flow.status == "FAILED" and "timed out" in flow.data["errors"][0]["message"]
    finally:
        unregister("sleepy")


def test_signals_work_in_handlers(calls: list[str]) -> None:
    def skip(task: Any, ctx: Any) -> None:
        raise signals.SKIP("nothing to do")

    register("skipper", skip)
    try:
        flow = headwater.Flow.from_flow_spec(
            {"tasks": [t("s", "skipper"), t("after", "record"), t("other", "record", precursors=[])]}
        )
        engine.tick_flow_until_has_no_pending(flow)
        assert statuses(flow) == {"s": "SKIPPED", "after": "SKIPPED", "other": "COMPLETED"}
        assert isinstance(flow.task_by_slug("after").state, Skipped)
        assert flow.status == "COMPLETED" and calls == ["other"]
    finally:
        unregister("skipper")


def test_a_returned_value_lands_in_the_task_data() -> None:
    flow = headwater.Flow.from_flow_spec(
        {"tasks": [t("a", "python", task_params={"callable": "spec_helpers:add", "kwargs": {"a": 2, "b": 3}})]}
    )
    engine.run_flow(flow)
    assert flow.task_by_slug("a").data == {"result": 5}


def test_state_handlers_see_spec_task_transitions() -> None:
    flow = headwater.Flow.from_flow_spec({"tasks": [t("a")]})
    seen: list[tuple[str, str]] = []
    flow.task_by_slug("a").state_handlers.append(lambda task, old, new: seen.append((old.name, new.name)))
    engine.run_flow(flow)
    assert seen == [("Pending", "Running"), ("Running", "Success")]


def test_the_core_runner_refuses_spec_flows_with_a_pointer() -> None:
    flow = headwater.Flow.from_flow_spec({"tasks": [t("a")]})
    with pytest.raises(TypeError) as info:
        flow.task_by_slug("a").run()
    assert "FlowEngine" in str(info.value)


def test_the_engine_refuses_python_flows() -> None:
    with headwater.Flow("py") as flow:
        headwater.task(lambda: 1)()
    with pytest.raises(ValueError) as info:
        engine.tick_flow(flow)
    assert "not a spec flow" in str(info.value)


def test_status_values() -> None:
    assert [s.value for s in Status] == ["PENDING", "RUNNING", "COMPLETED", "FAILED", "SKIPPED"]


def test_interval_paces_ticks_that_only_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    polls: list[int] = []

    def wait_twice(task: Any, ctx: Any) -> None:
        polls.append(1)
        if len(polls) <= 2:
            ctx.keep_running("waiting")

    sleeps: list[float] = []
    monkeypatch.setattr("headwater.spec.engine.time.sleep", sleeps.append)
    register("waiter", wait_twice)
    try:
        flow = headwater.Flow.from_flow_spec({"tasks": [t("w", "waiter"), t("after")]})
        engine.tick_flow_until_has_no_pending(flow, interval=0.5)
        assert flow.status == "COMPLETED" and len(polls) == 3
        assert sleeps == [0.5, 0.5], "a sleep after each tick where nothing finished, none once the flow is done"
    finally:
        unregister("waiter")
