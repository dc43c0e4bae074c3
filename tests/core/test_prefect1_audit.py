"""Issue 12 audit: Prefect 1 behaviours found missing or different, through the Prefect 1 import paths.

Each test is a difference the audit found, now fixed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from headwater import Flow, task
from headwater.core.parameter import DateTimeParameter
from headwater.engine import state as st
from headwater.engine.results import LocalResult


def test_a_target_under_a_local_result_is_found_by_the_next_run(tmp_path: Path) -> None:
    """Prefect 1 put a target under the LocalResult's ``dir``; it was under ``dir/<flow>/<run id>/``, new every run."""
    calls = []

    @task(target="{task_name}.pkl", checkpoint=True, result=LocalResult(dir=str(tmp_path)))
    def extract():
        calls.append(1)
        return 5

    with Flow("targets") as flow:
        e = extract()
    first = flow.run()
    assert first.result[e].location == str(tmp_path / "extract.pkl")
    second = flow.run()
    assert calls == [1] and second.result[e].is_cached() and second.result[e].result == 5


def test_a_target_keeps_a_static_folder_of_a_templated_location(tmp_path: Path) -> None:
    result = LocalResult(dir=str(tmp_path), location="{flow_name}/{task_name}.pkl")
    assert result.at("done.pkl").location == str(tmp_path / "done.pkl")
    assert LocalResult(dir=str(tmp_path), location="x.pkl").at("y.pkl").location == str(tmp_path / "y.pkl")


def test_a_datetime_parameter_without_an_offset_is_utc() -> None:
    @task
    def show(when):
        return when

    with Flow("dates") as flow:
        s = show(DateTimeParameter("when"))
    value = flow.run(parameters={"when": "2024-01-01"}).result[s].result
    assert value == datetime(2024, 1, 1, tzinfo=UTC) and value.tzinfo is not None


def test_every_prefect1_state_predicate_exists() -> None:
    assert st.Paused().is_paused() and st.Queued().is_queued() and st.Looped(loop_count=1).is_looped()
    assert st.Queued().is_meta_state() and not st.Success().is_meta_state()


def test_cached_takes_prefect1s_expiration() -> None:
    expires = datetime(2030, 1, 1, tzinfo=UTC)
    assert st.Cached(cached_result_expiration=expires).cached_result_expiration == expires


def test_cache_validators_import_from_prefect1s_path() -> None:
    from headwater.engine.cache_validators import all_inputs, duration_only  # noqa: F401


def test_an_rrule_clock_keeps_the_zone_of_its_dtstart() -> None:
    """dateutil's str() of a rule drops the zone of an aware dtstart: occurrences were read as UTC, hours off."""
    from zoneinfo import ZoneInfo

    import pendulum
    from dateutil import rrule

    from headwater.plugins import from_dict, to_dict
    from headwater.schedules import Schedule
    from headwater.schedules.clocks import RRuleClock

    zone = ZoneInfo("America/New_York")
    for start in (datetime(2030, 3, 9, 9, tzinfo=zone), pendulum.datetime(2030, 3, 9, 9, tz="America/New_York")):
        clock = RRuleClock(rrule.rrule(freq=rrule.DAILY, dtstart=start, count=2))
        for schedule in (Schedule(clocks=[clock]), from_dict(to_dict(Schedule(clocks=[clock])), "schedule")):
            times = schedule.next(5, after=datetime(2030, 1, 1, tzinfo=UTC))
            # 09:00 in New York on both days, across the DST change of 10 March (14:00 UTC, then 13:00 UTC)
            assert [t.astimezone(UTC) for t in times] == [datetime(2030, 3, 9, 14, tzinfo=UTC),
                                                            datetime(2030, 3, 10, 13, tzinfo=UTC)]
    fixed = datetime(2030, 1, 1, tzinfo=UTC).astimezone(pendulum.FixedTimezone(-5 * 3600))
    clock = RRuleClock(rrule.rrule(freq=rrule.DAILY, dtstart=fixed, count=1))
    assert Schedule(clocks=[clock]).next(1, after=datetime(2029, 1, 1, tzinfo=UTC)) == [datetime(2030, 1, 1, tzinfo=UTC)]


def test_flow_slugs_maps_each_task_to_its_slug() -> None:
    @task
    def one():
        return 1

    with Flow("slugs") as flow:
        a = one()
        b = one()
    assert flow.slugs == {a: "one-1", b: "one-2"}
