"""headwater.schedules: clocks, merged schedules, filters, time zones and DST, and flow.run() on a schedule."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest

import headwater
from headwater import Flow, Parameter, task
from headwater.engine.flow_runner import ParameterError
from headwater.schedules import (
    Clock,
    ClockEvent,
    CronClock,
    CronSchedule,
    DatesClock,
    IntervalClock,
    IntervalSchedule,
    NaiveDatetimeError,
    Schedule,
)
from headwater.schedules import filters as f

UTC = UTC
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def berlin(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=BERLIN, fold=fold)


# --- IntervalClock ------------------------------------------------------------------------------------------------


def test_interval_next_counts_from_start_date_and_is_strictly_after() -> None:
    s = IntervalSchedule(timedelta(hours=1), start_date=utc(2024, 1, 1, 0, 30))
    assert s.next(3, after=utc(2024, 1, 1, 2, 0)) == [utc(2024, 1, 1, 2, 30), utc(2024, 1, 1, 3, 30), utc(2024, 1, 1, 4, 30)]
    # an `after` exactly on an event excludes that event
    assert s.next(2, after=utc(2024, 1, 1, 2, 30)) == [utc(2024, 1, 1, 3, 30), utc(2024, 1, 1, 4, 30)]
    # before the start date, the start date itself is the first event
    assert s.next(2, after=utc(2023, 6, 1)) == [utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 1, 30)]


def test_interval_without_start_date_is_aligned_to_2019_01_01_utc() -> None:
    s = IntervalSchedule(timedelta(minutes=5))
    assert s.next(2, after=utc(2024, 5, 5, 10, 7, 13)) == [utc(2024, 5, 5, 10, 10), utc(2024, 5, 5, 10, 15)]


def test_interval_sub_second_precision() -> None:
    s = IntervalSchedule(timedelta(milliseconds=250), start_date=utc(2024, 1, 1))
    after = utc(2024, 1, 1, 0, 0, 1) + timedelta(microseconds=1)
    assert s.next(2, after=after) == [
        utc(2024, 1, 1, 0, 0, 1) + timedelta(milliseconds=250),
        utc(2024, 1, 1, 0, 0, 1) + timedelta(milliseconds=500),
    ]


def test_next_defaults_to_after_now_and_returns_aware_datetimes() -> None:
    before = datetime.now(UTC)
    times = IntervalSchedule(timedelta(seconds=7)).next(3)
    assert len(times) == 3
    assert all(t.tzinfo is not None for t in times)
    assert before < times[0] < times[1] < times[2]
    assert times[1] - times[0] == timedelta(seconds=7)


def test_interval_end_date_is_inclusive_and_ends_the_schedule() -> None:
    s = IntervalSchedule(timedelta(days=1), start_date=utc(2024, 1, 1), end_date=utc(2024, 1, 3))
    assert s.next(10, after=utc(2023, 12, 1)) == [utc(2024, 1, 1), utc(2024, 1, 2), utc(2024, 1, 3)]
    assert s.next(10, after=utc(2024, 1, 2, 12)) == [utc(2024, 1, 3)]
    assert s.next(1, after=utc(2024, 1, 3)) == []
    assert s.next(1, return_events=True) == []  # now is long after the end date


def test_interval_events_are_in_the_start_dates_zone() -> None:
    start = berlin(2024, 1, 1, 9)
    [t] = IntervalSchedule(timedelta(hours=2), start_date=start).next(1, after=utc(2024, 1, 1, 9))
    assert t == utc(2024, 1, 1, 10) and t.tzinfo is BERLIN and t.hour == 11


def test_daily_interval_keeps_local_time_across_dst() -> None:
    s = IntervalSchedule(timedelta(days=1), start_date=berlin(2024, 3, 1, 9))
    times = s.next(3, after=utc(2024, 3, 29, 12))
    assert [t.hour for t in times] == [9, 9, 9]
    assert [t.astimezone(UTC) for t in times] == [utc(2024, 3, 30, 8), utc(2024, 3, 31, 7), utc(2024, 4, 1, 7)]


def test_hourly_interval_is_elapsed_time_across_dst() -> None:
    # clocks go back at 03:00 CEST on 2024-10-27: an hourly clock fires at 02:00 local twice, an hour apart
    s = IntervalSchedule(timedelta(hours=1), start_date=berlin(2024, 10, 26))
    times = s.next(3, after=utc(2024, 10, 26, 23, 30))
    assert [t.astimezone(UTC) for t in times] == [utc(2024, 10, 27, 0), utc(2024, 10, 27, 1), utc(2024, 10, 27, 2)]
    assert [(t.hour, t.utcoffset()) for t in times] == [
        (2, timedelta(hours=2)),
        (2, timedelta(hours=1)),
        (3, timedelta(hours=1)),
    ]


# --- CronClock ------------------------------------------------------------------------------------------------------


def test_cron_next_and_after() -> None:
    s = CronSchedule("*/15 9-10 * * 1-5")  # every 15 minutes 09:00-10:45 on weekdays, UTC
    assert s.next(3, after=utc(2024, 1, 5, 10, 30)) == [  # Friday
        utc(2024, 1, 5, 10, 45),
        utc(2024, 1, 8, 9, 0),  # Monday
        utc(2024, 1, 8, 9, 15),
    ]
    assert s.next(1, after=utc(2024, 1, 8, 9, 0)) == [utc(2024, 1, 8, 9, 15)]
    assert s.next(1, after=utc(2024, 1, 8, 8, 59, 59, 999999)) == [utc(2024, 1, 8, 9, 0)]


def test_cron_start_date_is_inclusive_and_end_date_ends_it() -> None:
    s = CronSchedule("0 0 * * *", start_date=utc(2024, 2, 1), end_date=utc(2024, 2, 3))
    assert s.next(5, after=utc(2020, 1, 1)) == [utc(2024, 2, 1), utc(2024, 2, 2), utc(2024, 2, 3)]
    assert s.next(5, after=utc(2024, 2, 3)) == []


def test_cron_aliases_and_day_or() -> None:
    assert CronSchedule("@daily").next(1, after=utc(2024, 1, 1, 5)) == [utc(2024, 1, 2)]
    # the 1st of the month OR a Monday (croniter's default) versus the 1st AND a Monday
    either = CronSchedule("0 0 1 * 1").next(2, after=utc(2024, 1, 1))
    both = CronSchedule("0 0 1 * 1", day_or=False).next(2, after=utc(2024, 1, 1))
    assert either == [utc(2024, 1, 8), utc(2024, 1, 15)]
    assert both == [utc(2024, 4, 1), utc(2024, 7, 1)]


def test_cron_in_berlin_stays_at_nine_local_across_both_dst_changes() -> None:
    clock = CronClock("0 9 * * *", timezone="Europe/Berlin")
    spring = Schedule([clock]).next(3, after=utc(2024, 3, 30))
    assert [t.astimezone(UTC) for t in spring] == [utc(2024, 3, 30, 8), utc(2024, 3, 31, 7), utc(2024, 4, 1, 7)]
    autumn = Schedule([clock]).next(3, after=utc(2024, 10, 26))
    assert [t.astimezone(UTC) for t in autumn] == [utc(2024, 10, 26, 7), utc(2024, 10, 27, 8), utc(2024, 10, 28, 8)]
    assert all((t.hour, t.minute, t.tzinfo) == (9, 0, BERLIN) for t in spring + autumn)


def test_cron_timezone_defaults_to_the_start_dates_zone_else_utc() -> None:
    assert CronClock("0 9 * * *", start_date=berlin(2024, 1, 1)).timezone == "Europe/Berlin"
    assert CronClock("0 9 * * *", start_date=utc(2024, 1, 1)).timezone == "UTC"
    assert CronClock("0 9 * * *").timezone == "UTC"
    assert CronClock("0 9 * * *", timezone=ZoneInfo("Asia/Tokyo")).timezone == "Asia/Tokyo"
    [t] = CronSchedule("0 9 * * *", start_date=berlin(2024, 7, 1)).next(1, after=utc(2024, 7, 1))
    assert t == utc(2024, 7, 1, 7)


def test_cron_skipped_and_repeated_wall_clock_times_fire_once() -> None:
    half_hourly = CronSchedule("*/30 * * * *", timezone="Europe/Berlin")
    # spring: 02:00-03:00 does not exist; 02:00 and 02:30 land at 03:00 and 03:30, nothing fires twice
    spring = half_hourly.next(4, after=berlin(2024, 3, 31, 1, 10))
    assert [t.astimezone(UTC) for t in spring] == [
        utc(2024, 3, 31, 0, 30),
        utc(2024, 3, 31, 1, 0),
        utc(2024, 3, 31, 1, 30),
        utc(2024, 3, 31, 2, 0),
    ]
    # autumn: 02:00-03:00 happens twice; it fires the first time only
    hourly = CronSchedule("0 * * * *", timezone="Europe/Berlin")
    autumn = hourly.next(3, after=berlin(2024, 10, 27, 1, 30))
    assert autumn == [berlin(2024, 10, 27, 2), berlin(2024, 10, 27, 3), berlin(2024, 10, 27, 4)]
    assert [t.astimezone(UTC) for t in autumn] == [utc(2024, 10, 27, 0), utc(2024, 10, 27, 2), utc(2024, 10, 27, 3)]
    # asked from inside the repeated hour (the second time), the next event is 03:00, not in the past
    assert hourly.next(1, after=berlin(2024, 10, 27, 2, 30, fold=1)) == [utc(2024, 10, 27, 2)]


# --- merged clocks, parameter defaults, labels ---------------------------------------------------------------------


def test_merged_clocks_are_in_time_order_without_duplicates() -> None:
    s = Schedule(
        clocks=[
            IntervalClock(timedelta(hours=6), start_date=utc(2024, 1, 1), parameter_defaults={"who": "interval"}),
            CronClock("0 9 * * *", parameter_defaults={"who": "cron"}, labels=["cron"]),
            DatesClock([utc(2024, 1, 2, 12), utc(2024, 1, 1, 7)], parameter_defaults={"who": "dates"}),
        ]
    )
    events = s.next(7, after=utc(2024, 1, 1, 5), return_events=True)
    assert [(e.start_time, e.parameter_defaults["who"]) for e in events] == [
        (utc(2024, 1, 1, 6), "interval"),
        (utc(2024, 1, 1, 7), "dates"),
        (utc(2024, 1, 1, 9), "cron"),
        (utc(2024, 1, 1, 12), "interval"),
        (utc(2024, 1, 1, 18), "interval"),
        (utc(2024, 1, 2, 0), "interval"),
        (utc(2024, 1, 2, 6), "interval"),
    ]
    # 2024-01-02 12:00 is both an interval and a dates event: it appears once, from the first clock listed
    later = s.next(3, after=utc(2024, 1, 2, 8), return_events=True)
    assert [(e.start_time, e.parameter_defaults["who"]) for e in later] == [
        (utc(2024, 1, 2, 9), "cron"),
        (utc(2024, 1, 2, 12), "interval"),
        (utc(2024, 1, 2, 18), "interval"),
    ]
    assert s.next(3, after=utc(2024, 1, 2, 8)) == [e.start_time for e in later]


def test_same_instant_in_different_zones_is_one_event() -> None:
    s = Schedule([CronClock("0 10 * * *", timezone="Europe/Berlin"), CronClock("0 9 * * *")])
    assert s.next(2, after=utc(2024, 1, 1)) == [utc(2024, 1, 1, 9), utc(2024, 1, 2, 9)]


def test_events_carry_parameter_defaults_and_labels_as_copies() -> None:
    clock = IntervalClock(timedelta(hours=1), start_date=utc(2024, 1, 1), parameter_defaults={"n": 1}, labels=["gpu"])
    s = Schedule([clock, CronClock("30 * * * *")])
    first, second = s.next(2, after=utc(2024, 1, 1, 0, 10), return_events=True)
    assert isinstance(first, ClockEvent)
    assert (first.start_time, first.parameter_defaults, first.labels) == (utc(2024, 1, 1, 0, 30), {}, None)
    assert (second.start_time, second.parameter_defaults, second.labels) == (utc(2024, 1, 1, 1), {"n": 1}, ["gpu"])
    second.parameter_defaults["n"] = 99
    second.labels.append("oops")
    assert clock.parameter_defaults == {"n": 1} and clock.labels == ["gpu"]


def test_next_zero_and_bad_n() -> None:
    s = IntervalSchedule(timedelta(hours=1))
    assert s.next(0) == []
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="whole number"):
            s.next(bad)  # type: ignore[arg-type]


def test_schedule_start_and_end_dates() -> None:
    a = IntervalClock(timedelta(hours=1), start_date=utc(2024, 1, 2), end_date=utc(2024, 2, 1))
    b = DatesClock([utc(2024, 1, 1), utc(2024, 3, 1)])
    assert (Schedule([a, b]).start_date, Schedule([a, b]).end_date) == (utc(2024, 1, 1), utc(2024, 3, 1))
    assert Schedule([a, CronClock("0 0 * * *")]).end_date is None


# --- filters ----------------------------------------------------------------------------------------------------------


def test_filters_or_filters_and_not_filters() -> None:
    hourly = IntervalClock(timedelta(hours=1), start_date=utc(2024, 1, 1))
    weekdays_9_to_11 = Schedule([hourly], filters=[f.IsWeekday(), f.BetweenTimes("09:00", time(11))])
    # 2024-01-05 is a Friday: after 11:00 the next match is Monday 09:00
    assert weekdays_9_to_11.next(4, after=utc(2024, 1, 5, 9, 30)) == [
        utc(2024, 1, 5, 10),
        utc(2024, 1, 5, 11),
        utc(2024, 1, 8, 9),
        utc(2024, 1, 8, 10),
    ]
    either = Schedule([hourly], or_filters=[f.AtTime("06:00"), f.AtTime(time(18))])
    assert either.next(3, after=utc(2024, 1, 1)) == [utc(2024, 1, 1, 6), utc(2024, 1, 1, 18), utc(2024, 1, 2, 6)]
    daily = IntervalClock(timedelta(days=1), start_date=utc(2024, 1, 1))
    not_weekend = Schedule([daily], not_filters=[f.IsWeekend()])
    assert not_weekend.next(2, after=utc(2024, 1, 5, 12)) == [utc(2024, 1, 8), utc(2024, 1, 9)]
    assert Schedule([daily], filters=[f.IsMonthEnd()]).next(2, after=utc(2024, 1, 1)) == [utc(2024, 1, 31), utc(2024, 2, 29)]
    assert Schedule([daily], filters=[f.IsMonthStart()]).next(1, after=utc(2024, 1, 1)) == [utc(2024, 2, 1)]
    assert Schedule([daily], filters=[f.OnDate(3, 1)]).next(1, after=utc(2024, 1, 1)) == [utc(2024, 3, 1)]
    winter = Schedule([daily], filters=[f.BetweenDates(12, 30, 1, 2)])
    assert winter.next(4, after=utc(2024, 1, 1)) == [utc(2024, 1, 2), utc(2024, 12, 30), utc(2024, 12, 31), utc(2025, 1, 1)]
    night = Schedule([hourly], filters=[f.BetweenTimes("23:00", "01:00")])
    assert night.next(3, after=utc(2024, 1, 1, 12)) == [utc(2024, 1, 1, 23), utc(2024, 1, 2, 0), utc(2024, 1, 2, 1)]


def test_filters_see_the_events_local_time_and_plain_callables_work() -> None:
    # 08:00 UTC is 09:00 in Berlin
    s = Schedule([CronClock("0 * * * *", timezone="Europe/Berlin")], filters=[lambda t: t.hour == 9])
    assert s.next(1, after=utc(2024, 1, 1)) == [utc(2024, 1, 1, 8)]


def test_a_filter_that_never_matches_ends_the_schedule_instead_of_hanging() -> None:
    s = Schedule([IntervalClock(timedelta(hours=1))], filters=[f.OnDate(2, 30)])
    assert s.next(1, after=utc(2024, 1, 1)) == []


def test_bad_filters() -> None:
    clock = CronClock("0 0 * * *")
    with pytest.raises(TypeError, match="list of callables"):
        Schedule([clock], filters=f.IsWeekday())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be a callable"):
        Schedule([clock], filters=["weekdays"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="'HH:MM"):
        f.BetweenTimes("9am", "10:00")
    with pytest.raises(ValueError, match="month 1-12"):
        f.OnDate(13, 1)


# --- DatesClock -------------------------------------------------------------------------------------------------------


def test_dates_clock() -> None:
    clock = DatesClock([utc(2024, 5, 1), berlin(2024, 4, 1, 12), utc(2024, 5, 1)])
    assert clock.start_date == utc(2024, 4, 1, 10) and clock.end_date == utc(2024, 5, 1)
    assert Schedule([clock]).next(5, after=utc(2024, 1, 1)) == [utc(2024, 4, 1, 10), utc(2024, 5, 1)]
    assert Schedule([clock]).next(5, after=utc(2024, 4, 1, 10)) == [utc(2024, 5, 1)]
    with pytest.raises(ValueError, match="at least one date"):
        DatesClock([])


# --- bad input ------------------------------------------------------------------------------------------------------


def test_naive_datetimes_are_rejected_everywhere() -> None:
    naive = datetime(2024, 1, 1, 9)
    with pytest.raises(NaiveDatetimeError, match=r"IntervalClock start_date 2024-01-01T09:00:00 is a naive datetime"):
        IntervalSchedule(timedelta(hours=1), start_date=naive)
    with pytest.raises(NaiveDatetimeError, match="CronClock end_date"):
        CronSchedule("0 9 * * *", end_date=naive)
    with pytest.raises(NaiveDatetimeError, match="DatesClock date"):
        DatesClock([naive])
    with pytest.raises(NaiveDatetimeError, match=r"after .* tzinfo=timezone.utc"):
        IntervalSchedule(timedelta(hours=1)).next(1, after=naive)
    with pytest.raises(TypeError, match="got a date"):
        IntervalClock(timedelta(hours=1), start_date=date(2024, 1, 1))  # type: ignore[arg-type]


def test_interval_must_be_a_positive_timedelta() -> None:
    for bad in (timedelta(0), timedelta(seconds=-5)):
        with pytest.raises(ValueError, match="interval must be greater than zero"):
            IntervalClock(bad)
    with pytest.raises(TypeError, match=r"must be a datetime.timedelta, e.g. timedelta\(minutes=5\), got 60"):
        IntervalSchedule(60)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 9 * *", "it has 4 field"),
        ("0 9 * * * *", "it has 6 field"),
        ("0 25 * * *", "not acceptable"),
        ("every day", "it has 2 field"),
        ("@often", "unknown alias"),
        ("0 0 30 2 *", "matches no date"),
        ("", "it has 0 field"),
    ],
)
def test_bad_cron_strings_name_the_string_and_the_format(cron: str, reason: str) -> None:
    with pytest.raises(ValueError) as info:
        CronClock(cron)
    message = str(info.value)
    assert f"Invalid cron string {cron!r}" in message
    assert reason in message
    assert "expected 5 fields 'minute hour day-of-month month day-of-week'" in message


def test_other_bad_clock_arguments() -> None:
    with pytest.raises(TypeError, match="cron must be a string"):
        CronClock(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'Mars/Olympus' is not a known IANA time zone"):
        CronClock("0 9 * * *", timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="fixed UTC offset.*timezone='Europe/Berlin'"):
        CronClock("0 9 * * *", start_date=datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=2))))
    with pytest.raises(ValueError, match="end_date 2024-01-01T00:00:00\\+00:00 is before its start_date"):
        IntervalClock(timedelta(hours=1), start_date=utc(2024, 2, 1), end_date=utc(2024, 1, 1))
    with pytest.raises(TypeError, match=r"labels must be a list of strings, e.g. labels=\['staging'\]"):
        IntervalClock(timedelta(hours=1), labels="staging")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="parameter_defaults must be a dict"):
        IntervalClock(timedelta(hours=1), parameter_defaults=[("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one clock"):
        Schedule(clocks=[])
    with pytest.raises(TypeError, match="a Schedule is not a clock"):
        Schedule(clocks=[IntervalSchedule(timedelta(hours=1))])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="must be a list of clocks"):
        Schedule(clocks=CronClock("0 9 * * *"))  # type: ignore[arg-type]


# --- attrs: frozen, plain fields ----------------------------------------------------------------------------------------


def test_schedules_and_clocks_are_frozen_attrs_classes_with_plain_fields() -> None:
    s = Schedule(
        clocks=[
            IntervalClock(timedelta(minutes=5), start_date=utc(2024, 1, 1), parameter_defaults={"a": 1}, labels=["x"]),
            CronClock("0 9 * * *", start_date=berlin(2024, 1, 1)),
        ],
        filters=[f.BetweenTimes("08:00", "18:00")],
    )
    for obj in (s, *s.clocks, s.filters[0]):
        assert attrs.has(type(obj))
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            obj.labels = []  # type: ignore[misc]
    assert issubclass(IntervalClock, Clock) and attrs.has(Clock)
    assert attrs.asdict(s.clocks[1]) == {
        "cron": "0 9 * * *",
        "start_date": berlin(2024, 1, 1),
        "end_date": None,
        "parameter_defaults": {},
        "labels": None,
        "timezone": "Europe/Berlin",
        "day_or": True,
    }
    assert attrs.asdict(s.filters[0]) == {"start": "08:00:00", "end": "18:00:00"}
    # equal by value; rebuilding from the fields gives the same schedule
    again = Schedule(clocks=[type(c)(**attrs.asdict(c)) for c in s.clocks], filters=list(s.filters))
    assert again == s
    assert hash(s.clocks[0]) == hash(again.clocks[0])


def test_schedules_round_trip_through_the_converter_by_type_tag() -> None:
    import json

    from headwater.serialization import dumps, from_dict

    s = Schedule(
        clocks=[
            IntervalClock(timedelta(hours=6), start_date=utc(2024, 1, 1), parameter_defaults={"a": 1}, labels=["x"]),
            CronClock("0 9 * * *", timezone="Europe/Berlin", end_date=utc(2025, 1, 1)),
            DatesClock([utc(2024, 3, 30, 12)]),
        ],
        filters=[f.IsWeekday()],
        not_filters=[f.BetweenTimes("00:00", "05:59")],
    )
    data = json.loads(dumps(s))
    assert data["type"] == "Schedule"
    assert [c["type"] for c in data["clocks"]] == ["IntervalClock", "CronClock", "DatesClock"]
    back = from_dict(data, Schedule)
    assert back == s
    after = utc(2024, 3, 28)
    assert back.next(6, after=after, return_events=True) == s.next(6, after=after, return_events=True)
    # the cron clock keeps its zone, so 09:00 Berlin survives the DST change after a round trip
    [t] = Schedule([back.clocks[1]]).next(1, after=utc(2024, 4, 1))
    assert t == utc(2024, 4, 1, 7)


# --- flow.run() on a schedule ---------------------------------------------------------------------------------------


@pytest.fixture
def on_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEADWATER__FLOWS__RUN_ON_SCHEDULE", raising=False)


def test_flow_runs_at_each_scheduled_time_until_the_schedule_ends(on_schedule: None) -> None:
    seen: list[datetime] = []

    @task
    def tick() -> None:
        seen.append(headwater.context.scheduled_start_time)

    with Flow("twice") as flow:
        tick()
    start = datetime.now(UTC) + timedelta(seconds=0.5)
    flow.schedule = IntervalSchedule(timedelta(seconds=1), start_date=start, end_date=start + timedelta(seconds=1.5))
    state = flow.run()  # returns once the schedule has no more events
    assert state.is_successful(), state.message
    assert seen == [start, start + timedelta(seconds=1)]


def test_scheduled_runs_use_each_clocks_parameter_defaults(on_schedule: None) -> None:
    seen: list[tuple[int, str]] = []

    @task
    def record(x: int, y: str) -> None:
        seen.append((x, y))

    with Flow("defaults") as flow:
        record(Parameter("x"), Parameter("y", default="flow default"))
    start = datetime.now(UTC) + timedelta(seconds=0.5)
    flow.schedule = Schedule(
        clocks=[
            DatesClock([start], parameter_defaults={"x": 1, "y": "clock"}),
            DatesClock([start + timedelta(seconds=0.3)], parameter_defaults={"x": 2}),
        ]
    )
    # x is required but every clock supplies it; explicit parameters win over clock defaults
    assert flow.run().is_successful()
    assert seen == [(1, "clock"), (2, "flow default")]
    with pytest.raises(ParameterError, match="has no parameter 'z'"):
        flow.run(parameters={"z": 1})


def test_run_on_schedule_false_runs_once_immediately(on_schedule: None) -> None:
    seen: list[datetime] = []

    @task
    def tick() -> None:
        seen.append(headwater.context.scheduled_start_time)

    with Flow("once") as flow:
        tick()
    start = datetime.now(UTC) + timedelta(seconds=3)
    flow.schedule = IntervalSchedule(timedelta(seconds=1), start_date=start, end_date=start)
    assert flow.run(run_on_schedule=False).is_successful()
    assert len(seen) == 1 and seen[0] < start  # run now, not at the scheduled time


def test_env_var_turns_scheduled_runs_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER__FLOWS__RUN_ON_SCHEDULE", "false")
    seen: list[datetime] = []

    @task
    def tick() -> None:
        seen.append(headwater.context.scheduled_start_time)

    with Flow("env-once") as flow:
        tick()
    start = datetime.now(UTC) + timedelta(seconds=3)
    flow.schedule = IntervalSchedule(timedelta(seconds=1), start_date=start, end_date=start)
    assert flow.run().is_successful()
    assert len(seen) == 1 and seen[0] < start


def test_a_scheduled_run_can_be_cancelled_while_waiting(on_schedule: None) -> None:
    cancel = threading.Event()
    cancel.set()
    ran: list[Any] = []
    with Flow("cancelled") as flow:
        task(lambda: ran.append(1))()
    flow.schedule = IntervalSchedule(timedelta(hours=1), start_date=datetime.now(UTC) + timedelta(hours=1))
    state = flow.run(cancel=cancel)
    assert state.is_cancelled(), state
    assert ran == []
