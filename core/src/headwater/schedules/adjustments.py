"""Adjustments: move a schedule's event times (Prefect 1's ``prefect.schedules.adjustments``).

An adjustment is a callable ``(datetime) -> datetime``: ``add(timedelta(hours=1))`` shifts every
event, ``next_weekday`` moves a weekend event to the Monday after. Pass them to
``Schedule(clocks=[...], adjustments=[...])``; they apply after the filters, in order, and a
time that two events are moved to is kept once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from headwater.schedules.filters import Filter

__all__ = ["Adjustment", "Add", "NextWeekday", "add", "next_weekday"]


@attrs.frozen(auto_attribs=False)
class Adjustment(Filter):
    """Base class of the adjustments here: attrs classes, so schedules that use them serialize.

    They serialize by type tag through the schedule-filter registry (hence the ``Filter`` base),
    but they return a datetime, not a bool.
    """

    def __call__(self, dt: datetime) -> datetime:  # type: ignore[override]  # pragma: no cover - abstract
        raise NotImplementedError


def _interval(value: object) -> timedelta:
    if not isinstance(value, timedelta):
        raise TypeError(f"adjustments.add() takes a datetime.timedelta, got {value!r}.")
    return value


@attrs.frozen
class Add(Adjustment):
    """Shift each event by ``interval``."""

    interval: timedelta = attrs.field(converter=_interval)

    def __attrs_post_init__(self) -> None:
        _ensure_registered(Add)

    def __call__(self, dt: datetime) -> datetime:  # type: ignore[override]
        return dt + self.interval


@attrs.frozen
class NextWeekday(Adjustment):
    """A Saturday or Sunday event moves to the Monday after, at the same wall-clock time; weekdays stay."""

    def __attrs_post_init__(self) -> None:
        _ensure_registered(NextWeekday)

    def __call__(self, dt: datetime) -> datetime:  # type: ignore[override]
        while dt.weekday() >= 5:
            dt = dt + timedelta(days=1)
        return dt


def _ensure_registered(cls: type) -> None:
    from headwater.schedules.clocks import ensure_registered

    ensure_registered("schedule_filter", cls)


def add(interval: timedelta) -> Add:
    """Prefect 1's ``adjustments.add(interval)``: shift every event by ``interval``."""
    return Add(interval)


next_weekday = NextWeekday()
"""Prefect 1's ``adjustments.next_weekday``: weekend events move to the next Monday."""
