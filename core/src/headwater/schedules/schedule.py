"""Schedules: one or more clocks merged in time order, optionally filtered.

``flow.run()`` asks ``schedule.next(1, return_events=True)`` for the next start again and
again and stops when it gets an empty list, so a schedule whose clocks have all passed their
``end_date`` ends a scheduled local run.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, overload

import attrs

from headwater.schedules.clocks import Clock, ClockEvent, CronClock, IntervalClock, resolve_after
from headwater.schedules.filters import Filter

__all__ = ["Schedule", "IntervalSchedule", "CronSchedule", "MAX_REJECTED_EVENTS"]

MAX_REJECTED_EVENTS = 10_000
"""``next()`` gives up after this many events in a row are dropped by filters (a filter that never matches)."""


def _to_clocks(value: Any) -> list[Clock]:
    if isinstance(value, Clock) or not hasattr(value, "__iter__"):
        raise TypeError(f"Schedule clocks must be a list of clocks, e.g. clocks=[IntervalClock(...)], got {value!r}.")
    clocks = list(value)
    if not clocks:
        raise ValueError("A Schedule needs at least one clock, e.g. Schedule(clocks=[CronClock('0 9 * * *')]).")
    for c in clocks:
        if not isinstance(c, Clock):
            hint = " (a Schedule is not a clock: pass its .clocks)" if isinstance(c, Schedule) else ""
            raise TypeError(
                f"Schedule clocks must be Clock objects (IntervalClock, CronClock, DatesClock), got {c!r}{hint}."
            )
    return clocks


def _to_filters(value: Any) -> list[Callable[[datetime], bool]]:
    if value is None:
        return []
    if callable(value) or not hasattr(value, "__iter__"):
        raise TypeError(f"Schedule filters must be a list of callables, e.g. filters=[IsWeekday()], got {value!r}.")
    filters = list(value)
    for f in filters:
        if not callable(f):
            raise TypeError(f"A schedule filter must be a callable taking a datetime and returning a bool, got {f!r}.")
    return filters


def _to_adjustments(value: Any) -> list[Any]:
    if value is None:
        return []
    if callable(value) or not hasattr(value, "__iter__"):
        raise TypeError(
            f"Schedule adjustments must be a list of callables, e.g. adjustments=[adjustments.next_weekday], got {value!r}."
        )
    adjustments = list(value)
    for a in adjustments:
        if not callable(a):
            raise TypeError(f"A schedule adjustment must be a callable taking and returning a datetime, got {a!r}.")
        if type(a).__module__ == "headwater.schedules.adjustments":  # its type tag, even in a cleared registry
            from headwater.schedules.clocks import ensure_registered

            ensure_registered("schedule_filter", type(a))
    return adjustments


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _filters_field() -> Any:
    return attrs.field(factory=list, converter=_to_filters, hash=False)


@attrs.frozen
class Schedule:
    """When a flow runs: the merged events of ``clocks``, kept only where the filters allow.

    An event is kept when every one of ``filters`` returns True, at least one of
    ``or_filters`` does (if any are given) and none of ``not_filters`` does. Filters from
    :mod:`headwater.schedules.filters` (subclasses of :class:`~headwater.schedules.filters.Filter`)
    serialize; any other ``(datetime) -> bool`` callable works too but cannot be serialized.
    """

    clocks: list[Clock] = attrs.field(converter=_to_clocks, hash=False)
    filters: list[Filter] = _filters_field()
    or_filters: list[Filter] = _filters_field()
    not_filters: list[Filter] = _filters_field()
    adjustments: list[Filter] = attrs.field(factory=list, converter=_to_adjustments, hash=False)
    """Prefect 1's adjustments: ``(datetime) -> datetime`` callables applied, in order, to the kept events."""

    @property
    def start_date(self) -> datetime | None:
        """The earliest start date of the clocks (None if any clock has none)."""
        starts = [c.start_date for c in self.clocks]
        if any(s is None for s in starts):
            return None
        return min(starts, key=lambda d: d.timestamp())  # type: ignore[union-attr]

    @property
    def end_date(self) -> datetime | None:
        """The latest end date of the clocks (None if any clock runs forever)."""
        ends = [c.end_date for c in self.clocks]
        if any(e is None for e in ends):
            return None
        return max(ends, key=lambda d: d.timestamp())  # type: ignore[union-attr]

    def _keep(self, when: datetime) -> bool:
        if not all(f(when) for f in self.filters):
            return False
        if self.or_filters and not any(f(when) for f in self.or_filters):
            return False
        return not any(f(when) for f in self.not_filters)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Yield the schedule's events strictly after ``after`` (default: now), in time order.

        When clocks fire at the same instant, the event of the first clock in ``clocks`` wins.
        """
        after_utc = resolve_after(after)
        merged = heapq.merge(*(c.events(after_utc) for c in self.clocks), key=lambda e: _utc(e.start_time))
        last: datetime | None = None
        adjusted_last: datetime | None = None
        rejected = 0
        for event in merged:
            # Compare instants: == on datetimes sharing a tzinfo ignores fold (a repeated DST hour).
            instant = _utc(event.start_time)
            if instant == last:
                continue
            last = instant
            if self._keep(event.start_time):
                rejected = 0
                if self.adjustments:
                    when = event.start_time
                    for adjust in self.adjustments:
                        when = adjust(when)  # type: ignore[assignment]  # adjustments return datetimes
                    if _utc(when) == adjusted_last:  # e.g. Saturday and Sunday both moved to Monday
                        continue
                    adjusted_last = _utc(when)
                    event = attrs.evolve(event, start_time=when)
                yield event
            else:
                rejected += 1
                if rejected >= MAX_REJECTED_EVENTS:
                    return

    @overload
    def next(self, n: int, after: datetime | None = ..., return_events: Literal[False] = ...) -> list[datetime]: ...

    @overload
    def next(self, n: int, after: datetime | None = ..., *, return_events: Literal[True]) -> list[ClockEvent]: ...

    def next(self, n: int, after: datetime | None = None, return_events: bool = False) -> list[Any]:
        """The next ``n`` start times strictly after ``after`` (default: now), fewer when the schedule ends.

        With ``return_events=True``, :class:`ClockEvent` objects carrying each run's
        ``parameter_defaults`` and ``labels`` instead of bare datetimes.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"Schedule.next(n): n is how many start times to return, a whole number >= 0; got {n!r}.")
        result: list[Any] = []
        if n == 0:
            return result
        for event in self.events(after):
            result.append(event if return_events else event.start_time)
            if len(result) == n:
                break
        return result


def IntervalSchedule(  # noqa: N802  (a constructor function, as in Prefect 1)
    interval: timedelta,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
) -> Schedule:
    """A :class:`Schedule` with one :class:`IntervalClock`: every ``interval`` from ``start_date``."""
    return Schedule(clocks=[IntervalClock(interval, start_date=start_date, end_date=end_date)])


def CronSchedule(  # noqa: N802
    cron: str,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    timezone: str | None = None,
    day_or: bool = True,
) -> Schedule:
    """A :class:`Schedule` with one :class:`CronClock`: whenever ``cron`` matches in ``timezone``."""
    return Schedule(
        clocks=[CronClock(cron, start_date=start_date, end_date=end_date, timezone=timezone, day_or=day_or)]
    )
