"""Adjustments: move a schedule's event times (Prefect 1's ``prefect.schedules.adjustments``).

An adjustment is a callable ``(datetime) -> datetime``: ``add(timedelta(hours=1))`` shifts every
event, ``next_weekday`` moves a weekend event to the Monday after. Pass them to
``Schedule(clocks=[...], adjustments=[...])``; they apply after the filters, in order.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

__all__ = ["Adjustment", "Add", "NextWeekday", "add", "next_weekday"]


@attrs.frozen(auto_attribs=False)
class Adjustment:
    """Base class of the adjustments here: attrs classes, so schedules that use them can be compared and pickled."""

    def __call__(self, dt: datetime) -> datetime:  # pragma: no cover - abstract
        raise NotImplementedError


def _interval(value: object) -> timedelta:
    if not isinstance(value, timedelta):
        raise TypeError(f"adjustments.add() takes a datetime.timedelta, got {value!r}.")
    return value


@attrs.frozen
class Add(Adjustment):
    """Shift each event by ``interval``."""

    interval: timedelta = attrs.field(converter=_interval)

    def __call__(self, dt: datetime) -> datetime:
        return dt + self.interval


@attrs.frozen
class NextWeekday(Adjustment):
    """A Saturday or Sunday event moves to the Monday after, at the same wall-clock time; weekdays stay."""

    def __call__(self, dt: datetime) -> datetime:
        while dt.weekday() >= 5:
            dt = dt + timedelta(days=1)
        return dt


def add(interval: timedelta) -> Add:
    """Prefect 1's ``adjustments.add(interval)``: shift every event by ``interval``."""
    return Add(interval)


next_weekday = NextWeekday()
"""Prefect 1's ``adjustments.next_weekday``: weekend events move to the next Monday."""
