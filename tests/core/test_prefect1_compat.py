"""Prefect 1 compatibility: every name and behaviour through the Prefect 1 import paths (prefect -> headwater)."""

from __future__ import annotations

import json
import logging
import pickle
import typing
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import headwater
from headwater import Flow, Parameter, task


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]


def run_states(flow: Flow, **kwargs: Any) -> Any:
    state = flow.run(**kwargs)
    return state, state.result


# --- headwater.engine.state ---------------------------------------------------------------------------------


def test_engine_state_has_every_prefect1_state_class() -> None:
    from headwater.engine import state

    names = ["State", "Pending", "Scheduled", "Paused", "Resume", "Retrying", "Submitted", "Queued", "ClientFailed",
             "Running", "Cancelling", "Finished", "Success", "Cached", "Mapped", "Skipped", "Looped", "Failed",
             "TriggerFailed", "ValidationFailed", "TimedOut", "Cancelled"]
    for name in names:
        cls = getattr(state, name)
        assert cls is getattr(headwater.states, name)
        assert headwater.states.STATE_CLASSES[name] is cls
    assert state.Paused().is_scheduled() and state.Paused().is_pending() and not state.Paused().is_finished()
    assert isinstance(state.Resume(), state.Scheduled)
    assert isinstance(state.Queued(start_time=5.0), state.Submitted)
    assert state.Looped(loop_count=2).is_finished() and not state.Looped().is_successful()
    assert state.ValidationFailed().is_failed()
    assert "Paused" in headwater.states.SCHEDULED_STATE_NAMES
    assert "Queued" in headwater.states.ACTIVE_STATE_NAMES
    assert "Looped" in headwater.states.FINISHED_STATE_NAMES
    assert "ValidationFailed" in headwater.states.FAILED_STATE_NAMES


# --- signals --------------------------------------------------------------------------------------------------


def test_signals_at_both_paths_and_their_states() -> None:
    from headwater.engine import signals as engine_signals
    from headwater.engine import state

    for name in ("LOOP", "PAUSE", "SKIP", "FAIL", "RETRY", "SUCCESS", "VALIDATIONFAIL", "TRIGGERFAIL",
                 "PrefectStateSignal", "signal_from_state"):
        assert getattr(engine_signals, name) is getattr(headwater.signals, name)
    s = headwater.signals
    assert isinstance(s.LOOP("again", result=3).state, state.Looped)
    assert s.LOOP("again", result=3).state.result == 3
    assert isinstance(s.PAUSE("wait").state, state.Paused)
    assert isinstance(s.VALIDATIONFAIL("bad").state, state.ValidationFailed)
    assert isinstance(s.RETRY("later", start_time=10.0).state, state.Retrying)
    assert getattr(s.RETRY("later", start_time=10.0).state, "start_time") == 10.0  # noqa: B009
    assert s.signal_from_state(state.Failed()) is s.FAIL
    assert s.signal_from_state(state.TriggerFailed()) is s.TRIGGERFAIL
    assert s.signal_from_state(state.ValidationFailed()) is s.VALIDATIONFAIL
    assert s.signal_from_state(state.Skipped()) is s.SKIP
    assert s.signal_from_state(state.Success()) is s.SUCCESS
    assert s.signal_from_state(state.Cached()) is s.SUCCESS
    assert s.signal_from_state(state.Retrying()) is s.RETRY
    assert s.signal_from_state(state.Paused()) is s.PAUSE
    assert s.signal_from_state(state.Looped()) is s.LOOP
    with pytest.raises(ValueError, match="No signal matches"):
        s.signal_from_state(state.Running())


def test_signals_are_not_swallowed_by_except_exception() -> None:
    from headwater.engine import signals

    assert not issubclass(signals.PrefectStateSignal, Exception)
    assert issubclass(signals.SKIP, BaseException)

    @task
    def careful() -> int:
        try:
            raise signals.SKIP("nothing new")
        except Exception:  # user code that catches "everything": as in Prefect 1, signals get through
            return 1

    @task
    def fails() -> int:
        try:
            raise signals.FAIL("bad data")
        except Exception:
            return 1

    with Flow("signals") as flow:
        a = careful()
        b = fails()
    state, states = run_states(flow)
    assert states[a].is_skipped() and states[a].message == "nothing new"
    assert states[b].is_failed() and states[b].message == "bad data"
    assert state.is_failed()


def test_loop_signal_runs_the_task_again_with_the_loop_result() -> None:
    from headwater.engine.signals import LOOP

    seen: list[tuple[int, Any]] = []

    @task
    def fib(n: int) -> int:
        loop = headwater.context.get("task_loop_result", {"a": 0, "b": 1, "i": 0})
        seen.append((headwater.context.get("task_loop_count", 1), loop["i"]))
        if loop["i"] >= n:
            return int(loop["a"])
        raise LOOP(message=f"step {loop['i']}", result={"a": loop["b"], "b": loop["a"] + loop["b"], "i": loop["i"] + 1})

    with Flow("loop") as flow:
        r = fib(10)
    state, states = run_states(flow)
    assert state.is_successful()
    assert states[r].result == 55
    assert seen[0] == (1, 0) and seen[-1] == (11, 10)


def test_pause_validationfail_and_a_trigger_raising_fail() -> None:
    from headwater.engine import signals
    from headwater.engine.state import Paused, ValidationFailed

    @task
    def wait() -> None:
        raise signals.PAUSE("approve me")

    @task
    def after(x: Any) -> int:
        return 1

    @task
    def check() -> None:
        raise signals.VALIDATIONFAIL("schema mismatch")

    def strict(upstream_states: Any) -> bool:
        raise signals.FAIL("custom trigger says no")

    @task(trigger=strict)
    def guarded(x: Any) -> int:
        return 2

    with Flow("pause") as flow:
        p = wait()
        a = after(p)
        v = check()
        g = guarded(1, upstream_tasks=[v])
    state, states = run_states(flow)
    assert isinstance(states[p], Paused)
    assert type(states[a]).__name__ == "Pending" and "paused" in (states[a].message or "")  # held back, as in Prefect 1
    assert isinstance(state, Paused)
    assert isinstance(states[v], ValidationFailed)
    assert states[g].is_failed() and "custom trigger says no" in (states[g].message or "")


# --- results and serializers -----------------------------------------------------------------------------


def test_local_result_checkpoints_into_its_dir(tmp_path: Path) -> None:
    from headwater.engine.results import LocalResult
    from headwater.engine.serializers import JSONSerializer
    from headwater.results import Result

    result = LocalResult(dir=tmp_path / "out", location="{task_name}-{flow_name}.json", serializer=JSONSerializer())
    assert isinstance(result, Result) and (tmp_path / "out").is_dir()

    @task(result=result, checkpoint=True)
    def numbers() -> list[int]:
        return [1, 2, 3]

    with Flow("local-result") as flow:
        n = numbers()
    _, states = run_states(flow)
    written = tmp_path / "out" / "numbers-local-result.json"
    assert json.loads(written.read_text()) == [1, 2, 3]
    assert states[n].location == str(written)
    assert LocalResult(dir=tmp_path, serializer=JSONSerializer()).read(str(written)).value == [1, 2, 3]
    default = LocalResult(dir=tmp_path / "d")
    assert default.location is not None and default.location.startswith(str(tmp_path / "d"))
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="cannot be created"):
        LocalResult(dir=tmp_path / "file" / "sub")


def test_prefect_constant_and_secret_results(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.engine.results import ConstantResult, PrefectResult, SecretResult
    from headwater.serialization import from_dict, to_dict

    written = PrefectResult().write({"rows": 3})
    assert written.location == '{"rows": 3}' or json.loads(written.location or "") == {"rows": 3}
    assert PrefectResult().read(written.location or "").value == {"rows": 3}
    assert PrefectResult().exists(written.location) and not PrefectResult().exists("not json")
    restored = from_dict(to_dict(PrefectResult()), "result")
    assert isinstance(restored, PrefectResult)

    @task(result=PrefectResult(), checkpoint=True)
    def count() -> int:
        return 42

    with Flow("prefect-result") as flow:
        c = count()
    _, states = run_states(flow)
    assert states[c].location == "42"

    constant = ConstantResult(constant=[1, 2])
    assert constant.read("anything").value == [1, 2] and constant.exists()
    with pytest.raises(ValueError, match="cannot be written"):
        constant.write(3)

    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__COMPAT_TOKEN", '"s3cr3t"')
    assert SecretResult().read("COMPAT_TOKEN").value == "s3cr3t"
    assert SecretResult().exists("COMPAT_TOKEN") and not SecretResult().exists("NO_SUCH_SECRET_XYZ")
    with pytest.raises(ValueError, match="read-only"):
        SecretResult().write("x")


def test_cloud_results_are_lazy_names_with_install_hints() -> None:
    import headwater.engine.results as results
    import headwater.results

    for name in ("GCSResult", "AzureResult"):  # classes on fsspec; gcsfs/adlfs are needed when they are used
        assert getattr(results, name) is getattr(headwater.results, name)
        assert issubclass(getattr(results, name), headwater.results.Result)
    try:
        s3 = results.S3Result
    except ImportError as exc:
        assert "headwater-s3" in str(exc)
    else:
        assert s3.__name__ == "S3Result"
    with pytest.raises(AttributeError):
        results.NoSuchResult  # noqa: B018


def test_engine_serializers() -> None:
    from headwater.engine import serializers

    for name in ("PickleSerializer", "JSONSerializer", "TextSerializer", "BytesSerializer", "Serializer",
                 "DateTimeSerializer", "PandasSerializer", "CompressedSerializer"):
        assert hasattr(serializers, name)
    assert serializers.JSONSerializer().deserialize(serializers.JSONSerializer().serialize({"a": 1})) == {"a": 1}


# --- headwater.core, utilities --------------------------------------------------------------------------------


def test_core_and_utilities_modules() -> None:
    from headwater.core import Edge, Task
    from headwater.core import Flow as CoreFlow
    from headwater.core import Parameter as CoreParameter
    from headwater.utilities.edges import flatten, mapped, unmapped
    from headwater.utilities.logging import get_logger
    from headwater.utilities.tasks import as_task, tags
    from headwater.utilities.tasks import unmapped as unmapped2

    assert CoreFlow is Flow and CoreParameter is Parameter and Task is headwater.Task
    assert unmapped is unmapped2 is headwater.unmapped and flatten is headwater.flatten and mapped is headwater.mapped
    assert tags is headwater.tags
    assert get_logger("x").name == "headwater.x"
    a, b = Task(name="a"), Task(name="b")
    assert Edge(a, b, key="x").key == "x"
    constant = as_task(5)
    assert constant.run() == 5
    assert issubclass(headwater.TaskCallError, ValueError) and issubclass(headwater.TaskCallError, TypeError)


def test_defaults_from_attrs() -> None:
    from headwater.utilities.tasks import defaults_from_attrs

    class Query(headwater.Task):
        def __init__(self, query: str | None = None, limit: int | None = None, **kwargs: Any) -> None:
            self.query = query
            self.limit = limit
            super().__init__(**kwargs)

        @defaults_from_attrs("query", "limit")
        def run(self, query: str | None = None, limit: int | None = None) -> str:
            return f"{query} limit {limit}"

    q = Query(query="select 1", limit=5)
    assert q.run() == "select 1 limit 5"
    assert q.run(limit=9) == "select 1 limit 9"
    with Flow("defaults") as flow:
        r = q(query="select 2")
    _, states = run_states(flow)
    assert states[r].result == "select 2 limit 5"


def test_tags_context_manager_tags_created_and_called_tasks() -> None:
    @task
    def plain() -> int:
        return 1

    with headwater.tags("etl", "nightly"):
        made = headwater.Task(name="made")
        with headwater.tags("inner"):
            inner_made = headwater.Task(name="inner")
    assert made.tags == {"etl", "nightly"} and inner_made.tags == {"etl", "nightly", "inner"}
    assert headwater.Task(name="outside").tags == set()
    with Flow("tags") as flow:
        with headwater.tags("dwh"):
            a = plain()
        b = plain()
    assert a.tags == {"dwh"} and b.tags == set()
    assert flow.get_tasks(tags=["dwh"]) == [a]


def test_pause_task_pauses_unless_resumed() -> None:
    from headwater.engine.state import Paused
    from headwater.utilities.tasks import pause_task

    @task
    def approve() -> str:
        pause_task("needs approval")
        return "approved"

    with Flow("pause-task") as flow:
        a = approve()
    _, states = run_states(flow)
    assert isinstance(states[a], Paused) and states[a].message == "needs approval"
    _, states = run_states(flow, context={"resume": True})
    assert states[a].result == "approved"


def test_raise_on_exception_raises_out_of_flow_run() -> None:
    from headwater.utilities.debug import raise_on_exception

    @task
    def div(x: int) -> float:
        return 1 / x

    with Flow("debug") as flow:
        div(0)
    with raise_on_exception():
        with pytest.raises(ZeroDivisionError):
            flow.run()
    assert flow.run().is_failed()  # outside the block: a Failed state as usual


def test_is_serializable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.utilities.debug import is_serializable

    assert is_serializable({"a": [1, 2]})
    module = tmp_path / "only_here_compat_mod.py"
    module.write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_here_compat_mod

    assert not is_serializable(only_here_compat_mod.Thing())  # the fresh interpreter cannot import the module


# --- triggers ---------------------------------------------------------------------------------------------------


def test_some_successful_and_some_failed() -> None:
    from headwater.engine.state import Failed, Success
    from headwater.signals import TRIGGERFAIL
    from headwater.triggers import all_finished, always_run, manual_only, not_all_skipped, some_failed, some_successful

    assert always_run is all_finished and callable(manual_only) and callable(not_all_skipped)
    three = {1: Success(), 2: Success(), 3: Failed()}
    assert some_successful(at_least=2)(three)
    assert some_successful(at_least=2, at_most=2)(three)
    with pytest.raises(TRIGGERFAIL, match="some_successful"):
        some_successful(at_least=3)(three)
    with pytest.raises(TRIGGERFAIL):
        some_successful(at_most=1)(three)
    assert some_successful(at_least=0.5)(three)  # a fraction of the upstream tasks
    with pytest.raises(TRIGGERFAIL):
        some_successful(at_least=0.9)(three)
    assert some_failed(at_least=1)(three)
    with pytest.raises(TRIGGERFAIL, match="some_failed"):
        some_failed(at_most=0)(three)
    with pytest.raises(ValueError, match="at_least"):
        some_successful(at_least=-1)
    trigger = pickle.loads(pickle.dumps(some_successful(at_least=1)))
    assert trigger.__name__ == "some_successful" and trigger(three)

    @task
    def ok() -> int:
        return 1

    @task
    def bad() -> int:
        raise ValueError("x")

    @task(trigger=some_successful(at_least=1))
    def report(a: int, b: int) -> str:
        return "ran"

    with Flow("some") as flow:
        r = report(ok(), bad())
    _, states = run_states(flow)
    assert states[r].result == "ran"


# --- schedules ----------------------------------------------------------------------------------------------


def test_filter_functions() -> None:
    from headwater.schedules import Schedule, filters
    from headwater.schedules.clocks import IntervalClock
    from headwater.serialization import dumps, from_dict, to_dict

    sat, mon = utc(2024, 1, 6, 9), utc(2024, 1, 8, 9)
    assert filters.is_weekday(mon) and not filters.is_weekday(sat)
    assert filters.is_weekend(sat) and not filters.is_weekend(mon)
    assert filters.is_month_start(utc(2024, 2, 1)) and filters.is_month_end(utc(2024, 2, 29))
    assert filters.at_time(time(9))(mon) and not filters.at_time(time(10))(mon)
    assert filters.between_times(time(8), time(10))(mon) and not filters.between_times(time(10), time(11))(mon)
    assert filters.between_dates(1, 1, 1, 7)(sat) and not filters.between_dates(2, 1, 3, 1)(sat)
    assert filters.between_datetimes(utc(2024, 1, 1), utc(2024, 1, 7))(sat)
    assert not filters.between_datetimes(utc(2024, 1, 1), utc(2024, 1, 7))(mon)
    assert filters.on_date(1, 8)(mon) and not filters.on_date(1, 9)(mon)
    assert filters.on_datetime(mon)(mon) and not filters.on_datetime(mon)(sat)
    schedule = Schedule([IntervalClock(timedelta(days=1), start_date=utc(2024, 1, 1, 9))],
                        filters=[filters.is_weekday, filters.between_datetimes(utc(2024, 1, 1), utc(2024, 2, 1))],
                        not_filters=[filters.on_datetime(utc(2024, 1, 9, 9))])
    assert schedule.next(3, after=utc(2024, 1, 5, 12)) == [utc(2024, 1, 8, 9), utc(2024, 1, 10, 9), utc(2024, 1, 11, 9)]
    assert from_dict(to_dict(schedule), "schedule") == schedule
    assert "OnDatetime" in dumps(schedule)


def test_adjustments() -> None:
    from headwater.schedules import adjustments

    assert adjustments.add(timedelta(hours=2))(utc(2024, 1, 1, 9)) == utc(2024, 1, 1, 11)
    assert adjustments.next_weekday(utc(2024, 1, 6, 9)) == utc(2024, 1, 8, 9)  # Saturday -> Monday
    assert adjustments.next_weekday(utc(2024, 1, 8, 9)) == utc(2024, 1, 8, 9)
    with pytest.raises(TypeError, match="timedelta"):
        adjustments.add(5)  # type: ignore[arg-type]

    from headwater.schedules import IntervalClock, Schedule
    from headwater.serialization import from_dict, to_dict

    daily = IntervalClock(timedelta(days=1), start_date=utc(2024, 1, 1, 9))
    schedule = Schedule([daily], adjustments=[adjustments.next_weekday, adjustments.add(timedelta(minutes=30))])
    # Thursday, Friday, then Saturday/Sunday/Monday all land on Monday 09:30 (kept once), Tuesday
    assert schedule.next(4, after=utc(2024, 1, 4, 0)) == [utc(2024, 1, 4, 9, 30), utc(2024, 1, 5, 9, 30),
                                                          utc(2024, 1, 8, 9, 30), utc(2024, 1, 9, 9, 30)]
    data = to_dict(schedule)
    assert data["adjustments"] == [{"type": "NextWeekday"}, {"type": "Add", "interval": 1800.0}]
    assert from_dict(data, "schedule") == schedule
    with pytest.raises(TypeError, match="adjustments"):
        Schedule([daily], adjustments=adjustments.next_weekday)


def test_rrule_and_dates_clocks() -> None:
    from dateutil import rrule

    from headwater.schedules import Schedule
    from headwater.schedules.clocks import DatesClock, RRuleClock
    from headwater.serialization import from_dict, to_dict

    last_friday = rrule.rrule(rrule.MONTHLY, byweekday=rrule.FR(-1), dtstart=utc(2024, 1, 1, 18))
    clock = RRuleClock(last_friday)
    assert Schedule([clock]).next(3, after=utc(2024, 1, 1)) == [utc(2024, 1, 26, 18), utc(2024, 2, 23, 18),
                                                                 utc(2024, 3, 29, 18)]
    bounded = RRuleClock(last_friday, start_date=utc(2024, 2, 1), end_date=utc(2024, 3, 1))
    assert Schedule([bounded]).next(5, after=utc(2024, 1, 1)) == [utc(2024, 2, 23, 18)]
    naive = RRuleClock("DTSTART:20240101T090000\nRRULE:FREQ=DAILY;COUNT=3")
    assert Schedule([naive]).next(5, after=utc(2024, 1, 1)) == [utc(2024, 1, 1, 9), utc(2024, 1, 2, 9),
                                                                utc(2024, 1, 3, 9)]
    assert from_dict(to_dict(Schedule([clock])), "schedule") == Schedule([clock])
    with pytest.raises(ValueError, match="RFC 5545"):
        RRuleClock("FREQ=SOMETIMES")
    dates = DatesClock([utc(2024, 5, 1), utc(2024, 4, 1)])
    assert Schedule([dates]).next(3, after=utc(2024, 1, 1)) == [utc(2024, 4, 1), utc(2024, 5, 1)]


def test_pendulum_datetimes_are_accepted() -> None:
    pendulum = pytest.importorskip("pendulum")
    from headwater.schedules import IntervalSchedule

    start = pendulum.datetime(2024, 1, 1, 9, tz="Europe/Berlin")
    schedule = IntervalSchedule(start_date=start, interval=timedelta(days=1))
    assert [d.isoformat() for d in schedule.next(2, after=start)] == ["2024-01-02T09:00:00+01:00",
                                                                     "2024-01-03T09:00:00+01:00"]
    from headwater.schedules import CronSchedule, Schedule, filters
    from headwater.schedules.clocks import DatesClock

    cron = CronSchedule("0 9 * * 1", start_date=start)  # Mondays at 9 in Berlin
    assert [d.isoformat() for d in cron.next(2, after=start)] == ["2024-01-08T09:00:00+01:00", "2024-01-15T09:00:00+01:00"]
    later = pendulum.datetime(2024, 7, 1, 12, tz="UTC")
    assert Schedule([DatesClock([later])]).next(1, after=start) == [later]
    assert filters.is_weekday(start) and not filters.is_weekend(start)


# --- task library: FilterTask, tasks.core, parameters -------------------------------------------------------


def test_filter_task_drops_failed_and_skipped_children() -> None:
    from headwater.signals import SKIP
    from headwater.tasks.control_flow import FilterTask

    @task
    def inverse(x: int) -> float:
        if x == 3:
            raise SKIP("three")
        return 1 / x

    even = FilterTask(filter_func=lambda v: v is not None and not isinstance(v, BaseException) and v < 1)
    with Flow("filter") as flow:
        results = inverse.map([0, 1, 2, 3, 4])
        kept = FilterTask(log_func=lambda kept: f"kept {len(kept)}")(results)
        small = even(results)
    _, states = run_states(flow)
    assert states[kept].result == [1.0, 0.5, 0.25]
    assert states[small].result == [0.5, 0.25]


def test_tasks_core_modules_and_operators() -> None:
    from headwater.tasks.core import collections, constants, function, operators

    assert constants.Constant(3).run() == 3
    assert collections.List().run(**{"arg_1": 1, "arg_2": 2}) in ([1, 2], [2, 1])  # run is keyed by position names
    assert function.FunctionTask(lambda x: x + 1).run(1) == 2
    assert operators.Add().run(2, 3) == 5 and operators.GreaterThan().run(3, 2) is True
    assert operators.Not().run(0) is True and operators.GetAttr().run(1 + 2j, "imag") == 2.0

    @task
    def nums() -> list[int]:
        return [4, 5, 6]

    @task
    def double(x: int) -> int:
        return 2 * x

    with Flow("operators") as flow:
        n = nums()
        first = n[0]
        total = first + 10
        rtotal = 10 - first
        bigger = first > 3
        smaller = first <= 3
        same = first.is_equal(4)
        differs = first.is_not_equal(4)
        both = bigger & same
        either = smaller | same
        negated = bigger.not_()
        piped = first.pipe(double)
        scaled = (first * 2) / 4 // 1 % 3 ** 1
    _, states = run_states(flow)
    values = {name: states[t].result for name, t in [
        ("first", first), ("total", total), ("rtotal", rtotal), ("bigger", bigger), ("smaller", smaller),
        ("same", same), ("differs", differs), ("both", both), ("either", either), ("negated", negated),
        ("piped", piped), ("scaled", scaled)]}
    assert values == {"first": 4, "total": 14, "rtotal": 6, "bigger": True, "smaller": False, "same": True,
                      "differs": False, "both": True, "either": True, "negated": False, "piped": 8,
                      "scaled": ((4 * 2) / 4 // 1) % 3}
    assert isinstance(total, operators.Add) and first == first and first is not total
    with pytest.raises(headwater.TaskCallError):
        nums + 1  # noqa: B018 - outside a flow there is nothing to wire into


def test_datetime_and_json_parameters() -> None:
    from headwater.core import DateTimeParameter, JSONParameter

    @task
    def show(when: datetime | None, config: Any) -> tuple[Any, Any]:
        return when, config

    with Flow("params") as flow:
        when = DateTimeParameter("when", required=False)
        config = JSONParameter("config", default='{"a": 1}')
        r = show(when, config)
    _, states = run_states(flow, parameters={"when": "2024-01-31T09:30:00Z"})
    assert states[r].result == (utc(2024, 1, 31, 9, 30), {"a": 1})
    _, states = run_states(flow, parameters={"config": {"b": 2}})
    assert states[r].result == (None, {"b": 2})
    state, states = run_states(flow, parameters={"when": "not a date"})
    assert state.is_failed() and "ISO-8601" in (states[when].message or "")


# --- task options ------------------------------------------------------------------------------------------


def test_task_run_name_template_and_callable() -> None:
    names: list[str] = []

    @task(task_run_name="load-{table}")
    def load(table: str) -> None:
        names.append(headwater.context.task_run_name)

    @task(task_run_name=lambda **kw: f"item-{kw['x']}-{kw['map_index']}")
    def item(x: int) -> None:
        names.append(headwater.context.task_run_name)

    @task(task_run_name="{missing}")
    def broken() -> None:
        pass

    with Flow("names") as flow:
        load("users")
        item.map([7, 8])
        b = broken()
    _, states = run_states(flow)
    assert sorted(names) == ["item-7-0", "item-8-1", "load-users"]
    assert states[b].is_failed() and "task_run_name" in (states[b].message or "")


def test_on_failure_and_retry_on() -> None:
    calls: list[tuple[str, str]] = []

    def notify(t: Any, state: Any) -> None:
        calls.append((t.name, type(state).__name__))

    attempts = {"io": 0, "value": 0}

    @task(on_failure=notify)
    def fails() -> None:
        raise RuntimeError("boom")

    @task(on_failure=notify)
    def fine() -> int:
        return 1

    @task(max_retries=2, retry_delay=timedelta(0), retry_on=OSError)
    def flaky_io() -> str:
        attempts["io"] += 1
        if attempts["io"] < 3:
            raise ConnectionError("reset")
        return "ok"

    @task(max_retries=2, retry_delay=timedelta(0), retry_on=(OSError, KeyError))
    def wrong_kind() -> None:
        attempts["value"] += 1
        raise ValueError("not retried")

    with Flow("options") as flow:
        f = fails()
        fine()
        io = flaky_io()
        wk = wrong_kind()
    _, states = run_states(flow)
    assert calls == [("fails", "Failed")]
    assert states[f].is_failed()
    assert states[io].result == "ok" and attempts["io"] == 3
    assert states[wk].is_failed() and attempts["value"] == 1
    with pytest.raises(TypeError, match="retry_on"):
        task(lambda: 1, retry_on="OSError")
    with pytest.raises(TypeError, match="on_failure"):
        task(lambda: 1, on_failure=5)
    cloudpickle.loads(cloudpickle.dumps(fails))  # on_failure's handler pickles


def test_nout_from_a_tuple_return_annotation() -> None:
    @task
    def split() -> typing.Tuple[int, str]:  # noqa: UP006 - Prefect 1 code spells it so
        return 1, "a"

    @task
    def split3() -> tuple[int, int, int]:
        return 1, 2, 3

    @task
    def many() -> tuple[int, ...]:
        return (1,)

    assert split.nout == 2 and split3.nout == 3 and many.nout is None

    class Pair(headwater.Task):
        def run(self) -> tuple[int, int]:
            return 3, 4

    assert Pair().nout == 2
    with Flow("nout") as flow:
        a, b = split()
        x, y = Pair()()
    _, states = run_states(flow)
    assert [states[t].result for t in (a, b, x, y)] == [1, "a", 3, 4]


def test_task_and_flow_loggers(caplog: pytest.LogCaptureFixture) -> None:
    class Loud(headwater.Task):
        def run(self) -> int:
            self.logger.info("hello from %s", self.name)
            return 1

    with Flow("loggers") as flow:
        Loud(name="loud")()
    with caplog.at_level(logging.INFO, logger="headwater"):
        flow.run()
    assert any(r.name == "headwater.loud" and r.getMessage() == "hello from loud" for r in caplog.records)
    custom = logging.getLogger("custom")
    t = Loud()
    t.logger = custom
    assert t.logger is custom


# --- flow methods -------------------------------------------------------------------------------------------


@task
def inc(x: int) -> int:
    return x + 1


@task
def dbl(x: int) -> int:
    return 2 * x


def test_flow_replace_keeps_edges_constants_and_references() -> None:
    with Flow("replace") as flow:
        a = inc(1)
        b = inc(a)
        c = inc(b)
    flow.set_reference_tasks([b])
    new_b = dbl.copy()
    flow.replace(b, new_b)
    assert b not in flow.tasks and new_b in flow.tasks
    assert flow.upstream_tasks(new_b) == {a} and flow.downstream_tasks(new_b) == {c}
    assert flow.reference_tasks() == {new_b}
    _, states = run_states(flow)
    assert [states[t].result for t in (a, new_b, c)] == [2, 4, 5]
    first = next(iter(flow.root_tasks()))
    flow.replace(first, 10)  # a value becomes a Constant task
    _, states = run_states(flow)
    assert states[c].result == 21
    with pytest.raises(ValueError, match="not in the flow"):
        flow.replace(b, dbl.copy())


def test_flow_update_copy_chain_and_queries() -> None:
    with Flow("one") as one:
        x = Parameter("x", default=1)
        a = inc(x)
    with Flow("two") as two:
        x2 = Parameter("x", default=5)
        b = dbl(x2)
    merged = one.copy()
    merged.update(two, merge_parameters=True)
    assert len(merged.parameters()) == 1 and merged.upstream_tasks(b) == {x}
    _, states = run_states(merged, parameters={"x": 3})
    assert states[a].result == 4 and states[b].result == 6
    assert b not in one.tasks  # copy() left the original alone
    with pytest.raises(headwater.core.flow.FlowValidationError):
        one.copy().update(two)  # two parameters named x
    t1, t2, t3 = inc.copy(), inc.copy(), inc.copy()
    chained = Flow("chain")
    chained.chain(t1, t2, t3)
    assert [e.upstream_task for e in chained.edges_to(t3)] == [t2]
    assert [e.downstream_task for e in chained.edges_from(t1)] == [t2]
    assert chained.sorted_tasks() == [t1, t2, t3]
    chained.validate()
    assert one.get_tasks(name="inc") == [a] and one.get_tasks(slug=x.slug) == [x]


def test_flow_diagnostic_logger_and_terminal_state_handler() -> None:
    from headwater.engine.state import Failed, Success

    def succeed_anyway(flow: Flow, state: Any, reference_task_states: Any) -> Any:
        if state.is_failed() and all(s.is_failed() for s in reference_task_states.values()):
            return Success("Failures are expected in this flow.", state.result)
        return None

    @task
    def boom() -> None:
        raise ValueError("expected")

    with Flow("terminal", terminal_state_handler=succeed_anyway) as flow:
        boom()
    state = flow.run()
    assert state.is_successful() and state.message == "Failures are expected in this flow."
    with Flow("plain") as plain:
        boom()
    assert isinstance(plain.run(), Failed)
    info = json.loads(flow.diagnostic(secrets=True))
    assert info["flow_information"]["name"] == "terminal" and info["flow_information"]["tasks"] == 1
    assert info["system_information"]["headwater_version"] == headwater.__version__
    assert flow.logger.name == "headwater.terminal"


def test_flow_register_needs_a_project_and_delegates_to_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.client import Client

    with Flow("reg") as flow:
        inc(1)
    with pytest.raises(ValueError, match="project_name"):
        flow.register()
    with pytest.raises(ValueError, match="build=False"):
        flow.register("p", build=False)
    calls: list[tuple[Any, ...]] = []

    def fake_register(self: Client, f: Flow, project_name: str, **options: Any) -> str:
        calls.append((f, project_name, options))
        return "flow-id-1"

    monkeypatch.setattr(Client, "_resource_class", lambda self, name: object)
    monkeypatch.setattr(Client, "register", fake_register)
    assert flow.register(project_name="city", labels=["gpu"], set_schedule_active=False) == "flow-id-1"
    assert calls == [(flow, "city", {"labels": ["gpu"], "schedule": False})]


def test_flow_register_without_the_api_plugin_says_what_to_install(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "from headwater import Flow, Task\n"
        "from headwater.client import MissingClientResourceError\n"
        "f = Flow('x', tasks=[Task()])\n"
        "try:\n    f.register(project_name='p')\n"
        "except MissingClientResourceError as exc:\n    print('ERR', exc)\n"
    )
    env = {**__import__("os").environ, "HEADWATER_BLOCKED_PLUGINS": "cloud-api",
           "HEADWATER_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "ERR" in out.stdout and "pip install headwater-cloud-api" in out.stdout, out.stdout + out.stderr


def test_shell_task_parity() -> None:
    from headwater.tasks.shell import ShellTask

    shell = ShellTask(helper_script="greet() { echo \"hi $1\"; }", return_all=True, log_stderr=True)
    with Flow("shell") as flow:
        lines = shell(command="greet a; greet b")
        last = ShellTask()(command="echo one; echo two")
        bad = ShellTask(log_stderr=True)(command="echo oops >&2; exit 3")
    _, states = run_states(flow)
    assert states[lines].result == ["hi a", "hi b"]
    assert states[last].result == "two"
    assert states[bad].is_failed() and "exit code 3" in (states[bad].message or "")


def test_tasks_created_but_not_added_warn_as_in_prefect1(recwarn: pytest.WarningsRecorder) -> None:
    class Lonely(headwater.Task):
        def run(self) -> int:
            return 1

    with Flow("used"):
        p = Parameter("p", default=1)
        Lonely()(upstream_tasks=[p])  # a copy is added: the original counts as used

        @task
        def inner(x: int) -> int:
            return x

        inner(p)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]
    with pytest.warns(UserWarning, match=r"created but not added to the flow: <Task: forgotten>, <Parameter: q>"):
        with Flow("unused"):
            Lonely(name="forgotten")
            Parameter("q")
    with pytest.raises(RuntimeError):  # no warning on top of an error in the block
        with Flow("error"):
            Lonely(name="x")
            raise RuntimeError("boom")


def test_an_enclosing_context_is_visible_in_tasks() -> None:
    @task
    def who() -> Any:
        return headwater.context.get("who"), headwater.context.get("flow_name"), headwater.context.get("team")

    with Flow("ctx") as flow:
        w = who()
    with headwater.context(who="x", flow_name="not-this", team="a"):
        state = flow.run(context={"team": "b"})
    assert state.result[w].result == ("x", "ctx", "b")  # the run's own keys and explicit context win
    assert flow.run().result[w].result == (None, "ctx", None)
