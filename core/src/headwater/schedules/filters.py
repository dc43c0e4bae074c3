"""Filters: keep or drop a schedule's events by their start time.

A filter is any callable ``(datetime) -> bool``; the ones here are attrs subclasses of
:class:`Filter`, so a schedule that uses them can be serialized (a plain function cannot).
Each looks at the event's wall-clock time in the event's own time zone (the clock's zone),
e.g. ``IsWeekday()`` means a weekday where the clock runs.
"""

from __future__ import annotations

import abc
import calendar
from datetime import datetime, time

import attrs

__all__ = [
    "Filter",
    "IsWeekday",
    "IsWeekend",
    "IsMonthStart",
    "IsMonthEnd",
    "AtTime",
    "BetweenTimes",
    "OnDate",
    "BetweenDates",
]


def _to_time(value: object) -> str:
    """A wall-clock time as an ISO string (kept plain for serialization), from a ``time`` or "HH:MM[:SS]"."""
    if isinstance(value, str):
        try:
            value = time.fromisoformat(value)
        except ValueError:
            value = None
    if not isinstance(value, time) or value.tzinfo is not None:
        raise TypeError(
            f"A filter time must be a naive datetime.time or an 'HH:MM[:SS]' string (a wall-clock time in the "
            f"event's zone), e.g. time(9, 30) or '09:30', got {value!r}."
        )
    return value.isoformat()


def _local_time(dt: datetime) -> time:
    return dt.timetz().replace(tzinfo=None)


def _month(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, int) or not 1 <= value <= 12:
        raise ValueError(f"{type(instance).__name__} {attribute.name} must be a month 1-12, got {value!r}.")


def _day(instance: object, attribute: attrs.Attribute, value: object) -> None:
    if not isinstance(value, int) or not 1 <= value <= 31:
        raise ValueError(f"{type(instance).__name__} {attribute.name} must be a day of the month 1-31, got {value!r}.")


@attrs.frozen(auto_attribs=False)
class Filter(abc.ABC):
    """Base class of serializable filters: ``filter(start_time)`` is True to keep the event."""

    @abc.abstractmethod
    def __call__(self, dt: datetime) -> bool:
        """True to keep an event starting at ``dt``."""


@attrs.frozen
class IsWeekday(Filter):
    """Monday to Friday."""

    def __call__(self, dt: datetime) -> bool:
        return dt.weekday() < 5


@attrs.frozen
class IsWeekend(Filter):
    """Saturday and Sunday."""

    def __call__(self, dt: datetime) -> bool:
        return dt.weekday() >= 5


@attrs.frozen
class IsMonthStart(Filter):
    """The first day of a month."""

    def __call__(self, dt: datetime) -> bool:
        return dt.day == 1


@attrs.frozen
class IsMonthEnd(Filter):
    """The last day of a month."""

    def __call__(self, dt: datetime) -> bool:
        return dt.day == calendar.monthrange(dt.year, dt.month)[1]


@attrs.frozen
class AtTime(Filter):
    """Exactly at wall-clock time ``at``: a ``time`` or "HH:MM[:SS]", stored as an ISO string."""

    at: str = attrs.field(converter=_to_time)

    def __call__(self, dt: datetime) -> bool:
        return _local_time(dt) == time.fromisoformat(self.at)


@attrs.frozen
class BetweenTimes(Filter):
    """Between wall-clock times ``start`` and ``end`` inclusive; wraps midnight when ``start > end``.

    Times are a ``time`` or "HH:MM[:SS]", stored as ISO strings.
    """

    start: str = attrs.field(converter=_to_time)
    end: str = attrs.field(converter=_to_time)

    def __call__(self, dt: datetime) -> bool:
        t, start, end = _local_time(dt), time.fromisoformat(self.start), time.fromisoformat(self.end)
        if start <= end:
            return start <= t <= end
        return t >= start or t <= end


@attrs.frozen
class OnDate(Filter):
    """On one day of the year (``month``, ``day``)."""

    month: int = attrs.field(validator=_month)
    day: int = attrs.field(validator=_day)

    def __call__(self, dt: datetime) -> bool:
        return (dt.month, dt.day) == (self.month, self.day)


@attrs.frozen
class BetweenDates(Filter):
    """Between two days of the year inclusive; wraps the new year when the start is after the end."""

    start_month: int = attrs.field(validator=_month)
    start_day: int = attrs.field(validator=_day)
    end_month: int = attrs.field(validator=_month)
    end_day: int = attrs.field(validator=_day)

    def __call__(self, dt: datetime) -> bool:
        d = (dt.month, dt.day)
        start, end = (self.start_month, self.start_day), (self.end_month, self.end_day)
        if start <= end:
            return start <= d <= end
        return d >= start or d <= end
