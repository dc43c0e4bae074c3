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


# --- Prefect 1's filter functions ---------------------------------------------------------------


def _instant(value: object, what: str) -> str:
    """An aware datetime (stdlib or pendulum) as an ISO string; an ISO string (a restored filter) as it is."""
    from headwater.schedules.clocks import check_aware

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return check_aware(value, what).isoformat()


def _start_instant(value: object) -> str:
    return _instant(value, "between_datetimes start")


def _end_instant(value: object) -> str:
    return _instant(value, "between_datetimes end")


def _at_instant(value: object) -> str:
    return _instant(value, "on_datetime dt")


@attrs.frozen
class BetweenDatetimes(Filter):
    """Between two instants inclusive (timezone-aware datetimes, stored as ISO strings)."""

    start: str = attrs.field(converter=_start_instant)
    end: str = attrs.field(converter=_end_instant)

    def __attrs_post_init__(self) -> None:
        _ensure_registered(BetweenDatetimes)

    def __call__(self, dt: datetime) -> bool:
        return datetime.fromisoformat(self.start) <= dt <= datetime.fromisoformat(self.end)


@attrs.frozen
class OnDatetime(Filter):
    """Exactly at one instant (a timezone-aware datetime, stored as an ISO string)."""

    at: str = attrs.field(converter=_at_instant)

    def __attrs_post_init__(self) -> None:
        _ensure_registered(OnDatetime)

    def __call__(self, dt: datetime) -> bool:
        return dt == datetime.fromisoformat(self.at)


is_weekday = IsWeekday()
"""Prefect 1's ``filters.is_weekday``: Monday to Friday."""
is_weekend = IsWeekend()
"""Prefect 1's ``filters.is_weekend``: Saturday and Sunday."""
is_month_start = IsMonthStart()
"""Prefect 1's ``filters.is_month_start``: the first day of the month."""
is_month_end = IsMonthEnd()
"""Prefect 1's ``filters.is_month_end``: the last day of the month."""


def at_time(dt: time) -> AtTime:
    """Prefect 1's ``filters.at_time(time)``: events exactly at that wall-clock time."""
    return AtTime(dt)


def between_times(start: time, end: time) -> BetweenTimes:
    """Prefect 1's ``filters.between_times(start, end)``: wall-clock times, wrapping midnight."""
    return BetweenTimes(start, end)


def between_dates(start_month: int, start_day: int, end_month: int, end_day: int) -> BetweenDates:
    """Prefect 1's ``filters.between_dates(...)``: days of the year, wrapping the new year."""
    return BetweenDates(start_month, start_day, end_month, end_day)


def between_datetimes(start: datetime, end: datetime) -> BetweenDatetimes:
    """Prefect 1's ``filters.between_datetimes(start, end)``: between two instants inclusive."""
    return BetweenDatetimes(start, end)


def on_date(month: int, day: int) -> OnDate:
    """Prefect 1's ``filters.on_date(month, day)``."""
    return OnDate(month, day)


def on_datetime(dt: datetime) -> OnDatetime:
    """Prefect 1's ``filters.on_datetime(dt)``: exactly at one instant."""
    return OnDatetime(dt)


__all__ += [
    "BetweenDatetimes",
    "OnDatetime",
    "is_weekday",
    "is_weekend",
    "is_month_start",
    "is_month_end",
    "at_time",
    "between_times",
    "between_dates",
    "between_datetimes",
    "on_date",
    "on_datetime",
]


def _ensure_registered(cls: type) -> None:
    """Type tags for the filters added for Prefect 1 (see ``clocks.ensure_registered``)."""
    from headwater.schedules.clocks import ensure_registered

    ensure_registered("schedule_filter", cls)


_ensure_registered(BetweenDatetimes)
_ensure_registered(OnDatetime)
