"""Schedules: when a flow runs (Prefect 1 style clocks, filters and ``schedule.next(n)``).

Import from here::

    from headwater.schedules import CronSchedule, IntervalSchedule, Schedule
    from headwater.schedules.clocks import CronClock, IntervalClock
    from headwater.schedules.filters import IsWeekday

Every datetime is timezone-aware: naive datetimes raise :class:`NaiveDatetimeError`.
"""

from headwater.schedules import adjustments, clocks, filters
from headwater.schedules.clocks import (
    Clock,
    ClockEvent,
    CronClock,
    DatesClock,
    IntervalClock,
    NaiveDatetimeError,
    RRuleClock,
)
from headwater.schedules.schedule import CronSchedule, IntervalSchedule, Schedule

__all__ = [
    "Schedule",
    "IntervalSchedule",
    "CronSchedule",
    "Clock",
    "ClockEvent",
    "IntervalClock",
    "CronClock",
    "DatesClock",
    "RRuleClock",
    "NaiveDatetimeError",
    "clocks",
    "filters",
    "adjustments",
]
