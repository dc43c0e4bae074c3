"""A run that starts from given task states (Prefect 1's ``task_states``), ``return_tasks``, pause and resume, and cancel."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from headwater import Flow, Parameter, signals, task, triggers
from headwater.engine.flow_runner import FlowRunner
from headwater.engine.state import Failed, Mapped, Paused, Pending, Resume, Success
from headwater.executors import ThreadExecutor


def _counting_flow() -> tuple[Flow, dict[str, int], Any, Any, Any]:
    calls: dict[str, int] = {}

    @task
    def extract() -> list[int]:
        calls["extract"] = calls.get("extract", 0) + 1
        return [1, 2, 3]

    @task
    def transform(x: list[int]) -> int:
        calls["transform"] = calls.get("transform", 0) + 1
        return sum(x)

    @task
    def load(x: int) -> int:
        calls["load"] = calls.get("load", 0) + 1
        return x * 10

    with Flow("etl") as flow:
        e = extract()
        t = transform(e)
        l_ = load(t)
    return flow, calls, e, t, l_


def test_a_given_finished_state_is_kept_and_feeds_downstream() -> None:
    flow, calls, e, t, l_ = _counting_flow()
    state = FlowRunner(flow).run(task_states={e: Success("from before", result=[5, 5])})
    assert state.is_successful()
    assert "extract" not in calls  # not run again
    assert state.result[e].message == "from before"
    assert state.result[t].result == 10 and state.result[l_].result == 100


def test_failed_states_are_kept_too_unless_dropped() -> None:
    flow, calls, e, t, l_ = _counting_flow()
    state = flow.run(task_states={e: Success(result=[1]), t: Failed("broke earlier")})
    assert state.is_failed() and calls == {}  # load's trigger failed on the kept Failed state
    state = flow.run(task_states={e: Success(result=[1])})  # a restart passes only what it keeps
    assert state.is_successful() and state.result[l_].result == 10 and calls == {"transform": 1, "load": 1}


def test_return_tasks_limits_the_states_returned() -> None:
    flow, _, e, t, l_ = _counting_flow()
    state = FlowRunner(flow).run(return_tasks=[l_])
    assert set(state.result) == {l_} and state.result[l_].result == 60
    assert set(flow.run(return_tasks=[e, t]).result) == {e, t}


def test_flow_run_keyword_arguments_stay_parameters_when_named_so() -> None:
    @task
    def echo(x: Any) -> Any:
        return x

    with Flow("named") as flow:
        r = echo(Parameter("return_tasks"))
    state = flow.run(return_tasks="a parameter value")
    assert state.result[r].result == "a parameter value"


def test_run_arguments_win_over_the_constructor() -> None:
    @task
    def who() -> Any:
        import headwater

        return headwater.context.get("who")

    with Flow("ctx") as flow:
        w = who()
    runner = FlowRunner(flow, context={"who": "constructor"})
    assert runner.run(context={"who": "run"}).result[w].result == "run"
    assert FlowRunner(flow).run(state=Success("done already")).message == "done already"


def test_mapped_restart_reruns_only_the_children_not_kept() -> None:
    seen: list[int] = []

    @task
    def items() -> list[int]:
        return [1, 2, 3, 4]

    @task
    def double(x: int) -> int:
        seen.append(x)
        return 2 * x

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("mapped") as flow:
        i = items()
        d = double.map(i)
        s = total(d)
    before = Mapped(map_states=[Success(result=2), None, Success(result=6), Failed("boom")])  # type: ignore[list-item]
    state = flow.run(task_states={i: Success(result=[1, 2, 3, 4]), d: before})
    assert seen == [2]  # only the child given as None ran; the Failed child is kept, as finished states are
    assert state.result[d].map_states[1].result == 4 and state.result[d].map_states[3].is_failed()
    assert type(state.result[s]).__name__ == "TriggerFailed" and state.is_failed()


def test_mapped_restart_with_failed_children_given_as_pending() -> None:
    seen: list[int] = []

    @task
    def double(x: int) -> int:
        seen.append(x)
        return 2 * x

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("mapped2") as flow:
        d = double.map([1, 2, 3])
        s = total(d)
    before = Mapped(map_states=[Success(result=2), Pending(), Success(result=6)])
    state = flow.run(task_states={d: before})
    assert seen == [2] and state.result[s].result == 12


def test_a_paused_task_holds_back_its_downstream_and_the_run_ends_paused() -> None:
    ran: list[str] = []

    @task
    def prepare() -> int:
        ran.append("prepare")
        return 1

    @task(trigger=triggers.manual_only)
    def approve(x: int) -> int:
        ran.append("approve")
        return x + 1

    @task
    def publish(x: int) -> int:
        ran.append("publish")
        return x * 100

    with Flow("approval") as flow:
        p = prepare()
        a = approve(p)
        out = publish(a)
    first = flow.run()
    assert isinstance(first, Paused) and "approve" in (first.message or "")
    assert isinstance(first.result[a], Paused)
    assert isinstance(first.result[out], Pending) and "approve" in (first.result[out].message or "")
    assert ran == ["prepare"]
    # The resume: the paused task gets Resume, finished ones are kept.
    resumed = flow.run(task_states={p: first.result[p], a: Resume("approved")})
    assert resumed.is_successful() and resumed.result[out].result == 200
    assert ran == ["prepare", "approve", "publish"]


def test_a_kept_paused_state_stays_paused() -> None:
    @task
    def step() -> int:
        raise AssertionError("must not run while paused")

    with Flow("still-paused") as flow:
        s = step()
    state = flow.run(task_states={s: Paused("waiting")})
    assert isinstance(state, Paused) and state.result[s].message == "waiting"


def test_resume_lets_pause_signal_code_continue() -> None:
    @task
    def gate() -> str:
        import headwater

        if not headwater.context.get("resume"):
            raise signals.PAUSE("needs a human")
        return "through"

    with Flow("gate") as flow:
        g = gate()
    assert isinstance(flow.run().result[g], Paused)
    assert flow.run(task_states={g: Resume()}).result[g].result == "through"


def test_cancel_cancels_queued_futures_through_the_executor() -> None:
    started = threading.Event()
    release = threading.Event()

    @task
    def slow(i: int) -> int:
        started.set()
        release.wait(5)
        return i

    with Flow("cancel-queued") as flow:
        m = slow.map(list(range(6)))
    cancel = threading.Event()

    def cancel_soon() -> None:
        started.wait(5)
        cancel.set()
        time.sleep(0.5)
        release.set()

    threading.Thread(target=cancel_soon, daemon=True).start()
    state = flow.run(executor=ThreadExecutor(max_workers=1), cancel=cancel)
    assert type(state).__name__ == "Cancelled"
    children = state.result[m].map_states
    names = [type(c).__name__ for c in children]
    assert names[0] == "Success"  # the running one finished
    assert names.count("Cancelled") >= 4, names  # the queued ones were cancelled, not run


@pytest.mark.parametrize("given", [Success(result=[1]), Failed("x")])
def test_given_states_are_not_written_again(given: Any) -> None:
    flow, _, e, t, _l = _counting_flow()
    written: list[Any] = []
    flow.run(task_states={e: given}, on_task_state=lambda task, state, index: written.append(task))
    assert e not in written and t in written


def test_task_runner_runs_one_attempt_from_upstream_states() -> None:
    from headwater.core import Edge
    from headwater.engine.state import Retrying, TriggerFailed
    from headwater.engine.task_runner import TaskRunner

    @task
    def add(x: int, y: int) -> int:
        return x + y

    @task
    def up() -> int:
        return 1

    u1, u2 = up, up.copy()
    edges = {Edge(u1, add, key="x"): Success(result=2), Edge(u2, add, key="y"): Success(result=3)}
    assert TaskRunner(add).run(upstream_states=edges).result == 5
    failed = {Edge(u1, add, key="x"): Failed("no"), Edge(u2, add, key="y"): Success(result=3)}
    assert isinstance(TaskRunner(add).run(upstream_states=failed), TriggerFailed)
    assert TaskRunner(add).run(state=Success(result=9)).result == 9  # finished: returned as it is

    @task(max_retries=1, retry_delay=__import__("datetime").timedelta(seconds=0))
    def flaky() -> int:
        raise ValueError("first time")

    first = TaskRunner(flaky).run()
    assert isinstance(first, Retrying) and first.run_count == 1
    assert TaskRunner(flaky).run(state=first).is_failed()  # the second attempt is the last

    @task(trigger=triggers.manual_only)
    def gated() -> str:
        return "ran"

    assert isinstance(TaskRunner(gated).run(), Paused)
    assert TaskRunner(gated).run(state=Resume()).result == "ran"


def test_pause_task_with_a_duration_pauses_until_a_time() -> None:
    from datetime import timedelta

    from headwater.utilities.tasks import pause_task

    @task
    def wait_a_bit() -> str:
        pause_task("cooling down", duration=timedelta(minutes=5))
        return "done"

    with Flow("timed-pause") as flow:
        w = wait_a_bit()
    before = time.time()
    paused = flow.run().result[w]
    assert isinstance(paused, Paused) and paused.message == "cooling down"
    assert paused.start_time is not None and before + 299 <= paused.start_time <= time.time() + 301
    assert flow.run(task_states={w: Resume()}).result[w].result == "done"
