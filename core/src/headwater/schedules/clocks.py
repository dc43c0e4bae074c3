"""Clocks: the sources of a schedule's events (an interval, a cron string, a list of dates).

Every clock yields :class:`ClockEvent` objects in time order with ``events(after)``; a
:class:`~headwater.schedules.Schedule` merges the events of its clocks.

Time zones: every datetime a clock takes or returns is timezone-aware. Naive datetimes are
rejected with :class:`NaiveDatetimeError` rather than guessed at, because a schedule is
evaluated on machines (an agent, the API server) whose local time zone may differ from the
author's. All comparisons are made between instants (in UTC), never between wall-clock times.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
from croniter import CroniterBadDateError, CroniterError, croniter

__all__ = [
    "ClockEvent",
    "Clock",
    "IntervalClock",
    "CronClock",
    "DatesClock",
    "RRuleClock",
    "NaiveDatetimeError",
    "DEFAULT_START_DATE",
]

UTC = UTC

DEFAULT_START_DATE = datetime(2019, 1, 1, tzinfo=UTC)
"""Where an :class:`IntervalClock` without ``start_date`` counts its intervals from (as in Prefect 1)."""

_ONE_DAY = timedelta(days=1)
_ONE_MICROSECOND = timedelta(microseconds=1)
_CRON_ALIASES = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})
_CRON_FORMAT = (
    "expected 5 fields 'minute hour day-of-month month day-of-week', e.g. '0 9 * * 1-5' (09:00 on "
    "weekdays) or '*/15 * * * *' (every 15 minutes), or one of " + ", ".join(sorted(_CRON_ALIASES))
)


class NaiveDatetimeError(ValueError):
    """A schedule was given a datetime without a time zone."""


# --- validation helpers -------------------------------------------------------------------


def check_aware(value: Any, what: str) -> datetime:
    """Return ``value`` if it is a timezone-aware datetime, else raise a clear error about ``what``."""
    if not isinstance(value, datetime):
        kind = "a date" if isinstance(value, date) else type(value).__name__
        raise TypeError(
            f"{what} must be a timezone-aware datetime, got {kind} ({value!r}); "
            "e.g. datetime(2024, 1, 1, 9, 0, tzinfo=timezone.utc)."
        )
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(
            f"{what} {value.isoformat()} is a naive datetime (it has no time zone). Schedules compare "
            "instants, so give it a zone: datetime(..., tzinfo=timezone.utc) or "
            "tzinfo=ZoneInfo('Europe/Berlin'), or call .astimezone() to use this machine's local zone."
        )
    return value


def resolve_after(after: datetime | None) -> datetime:
    """``after`` as an aware UTC datetime; ``None`` means now."""
    if after is None:
        return datetime.now(UTC)
    return _utc(check_aware(after, "after"))


def _utc(value: datetime) -> datetime:
    """``value`` in UTC as a plain ``datetime`` (a pendulum ``DateTime`` does its arithmetic its own way)."""
    v = value.astimezone(UTC)
    if type(v) is not datetime:
        v = datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC, fold=v.fold)
    return v


def _aware_or_none(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if value is not None:
        check_aware(value, f"{type(instance).__name__} {attribute.name}")


def _end_after_start(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    _aware_or_none(instance, attribute, value)
    start = instance.start_date
    if value is not None and start is not None and _utc(value) < _utc(start):
        raise ValueError(
            f"{type(instance).__name__} end_date {value.isoformat()} is before its start_date "
            f"{start.isoformat()}, so the clock would never fire; swap them or drop end_date."
        )


def _to_defaults(value: Mapping[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"parameter_defaults must be a dict of parameter name to value, got {value!r}.")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise TypeError(f"parameter_defaults keys are parameter names and must be strings, got {bad!r}.")
    return dict(value)


def _to_labels(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"labels must be a list of strings, e.g. labels=['staging'], got {value!r}.")
    return list(value)


def _defaults_field() -> Any:
    return attrs.field(factory=dict, converter=_to_defaults, hash=False)


def _labels_field() -> Any:
    return attrs.field(default=None, converter=_to_labels, hash=False)


# --- events and the base clock -------------------------------------------------------------


@attrs.frozen
class ClockEvent:
    """One scheduled start: when, the parameter defaults of that run, and its labels (None: the flow's)."""

    start_time: datetime = attrs.field(validator=lambda i, a, v: check_aware(v, "ClockEvent start_time"))
    parameter_defaults: dict[str, Any] = _defaults_field()
    labels: list[str] | None = _labels_field()


@attrs.frozen(auto_attribs=False)
class Clock(abc.ABC):
    """Base class of clocks: ``events(after)`` yields :class:`ClockEvent` objects strictly after ``after``.

    Every clock has ``start_date`` and ``end_date`` (inclusive bounds, or None),
    ``parameter_defaults`` (given to each run it starts) and ``labels``. The base is an attrs
    class without fields so one converter can serialize any clock by its ``"type"`` tag.
    """

    if TYPE_CHECKING:
        start_date: datetime | None
        end_date: datetime | None
        parameter_defaults: dict[str, Any]
        labels: list[str] | None

    @abc.abstractmethod
    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Yield this clock's events strictly after ``after`` (default: now), in time order."""

    def _event(self, start_time: datetime) -> ClockEvent:
        labels = list(self.labels) if self.labels is not None else None
        return ClockEvent(start_time, dict(self.parameter_defaults), labels)


# --- interval ---------------------------------------------------------------------------


def _positive_interval(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, timedelta):
        raise TypeError(
            f"IntervalClock interval must be a datetime.timedelta, e.g. timedelta(minutes=5), got {value!r}."
        )
    if value <= timedelta(0):
        raise ValueError(f"IntervalClock interval must be greater than zero, got {value!r}.")


@attrs.frozen
class IntervalClock(Clock):
    """Fires every ``interval`` from ``start_date`` (inclusive) until ``end_date`` (inclusive).

    Without ``start_date`` the intervals count from 2019-01-01 00:00 UTC, so an hourly clock
    fires on the hour. Events are returned in ``start_date``'s time zone. Intervals shorter
    than a day are exact elapsed time (an hourly clock fires every 60 minutes, also across a
    DST change); whole days of longer intervals are added on the wall clock of
    ``start_date``'s zone, so a daily clock starting at 09:00 Europe/Berlin stays at 09:00 local.
    """

    interval: timedelta = attrs.field(validator=_positive_interval)
    start_date: datetime | None = attrs.field(default=None, validator=_aware_or_none)
    end_date: datetime | None = attrs.field(default=None, validator=_end_after_start)
    parameter_defaults: dict[str, Any] = _defaults_field()
    labels: list[str] | None = _labels_field()

    def _nth(self, start: datetime, k: int) -> datetime:
        """The ``k``-th event (k = 0 is ``start``), in ``start``'s zone."""
        offset = self.interval * k
        if self.interval < _ONE_DAY:
            return (_utc(start) + offset).astimezone(start.tzinfo)
        days = timedelta(days=offset.days)
        # Aware + timedelta is wall-clock arithmetic in the same tzinfo: days keep the local time.
        return (_utc(start + days) + (offset - days)).astimezone(start.tzinfo)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Yield events strictly after ``after`` (default: now) and not after ``end_date``."""
        after_utc = resolve_after(after)
        start = self.start_date or DEFAULT_START_DATE
        end = _utc(self.end_date) if self.end_date is not None else None
        k = 0
        if after_utc >= _utc(start):
            # Jump close to ``after``; DST can move wall-clock days by an hour or two, so step from there.
            k = max(0, (after_utc - _utc(start)) // self.interval - 1)
            while k > 0 and _utc(self._nth(start, k)) > after_utc:
                k -= 1
        while _utc(self._nth(start, k)) <= after_utc:
            k += 1
        while True:
            when = self._nth(start, k)
            if end is not None and _utc(when) > end:
                return
            yield self._event(when)
            k += 1


# --- cron -----------------------------------------------------------------------------------


def _zone_name(value: Any) -> str | None:
    """An IANA zone name from a string or tzinfo (ZoneInfo, pendulum, dateutil), or None."""
    if value is None:
        return None
    name: Any
    if isinstance(value, str):
        name = value
    else:
        name = getattr(value, "key", None) or getattr(value, "zone", None) or getattr(value, "name", None)
        if not isinstance(name, str):
            raise TypeError(
                f"CronClock timezone must be an IANA zone name such as 'Europe/Berlin' (or a ZoneInfo), got {value!r}."
            )
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"CronClock timezone {name!r} is not a known IANA time zone; use a name such as 'UTC', "
            "'Europe/Berlin' or 'America/New_York'."
        ) from exc
    return name


def _valid_cron(instance: Any, attribute: attrs.Attribute, value: Any) -> None:
    if not isinstance(value, str):
        raise TypeError(f"CronClock cron must be a string, got {value!r}; {_CRON_FORMAT}.")
    text = value.strip()
    if text.startswith("@"):
        if text.lower() not in _CRON_ALIASES:
            raise ValueError(f"Invalid cron string {value!r}: unknown alias; {_CRON_FORMAT}.")
    elif len(text.split()) != 5:
        raise ValueError(f"Invalid cron string {value!r}: it has {len(text.split())} field(s); {_CRON_FORMAT}.")
    try:
        # Building and stepping the iterator once catches bad fields and dates that never occur.
        croniter(text, datetime(2000, 1, 1), day_or=instance.day_or).get_next(datetime)
    except CroniterBadDateError as exc:
        reason = "it matches no date at all (like February 30)"
        raise ValueError(f"Invalid cron string {value!r}: {reason}; {_CRON_FORMAT}.") from exc
    except (CroniterError, ValueError, KeyError) as exc:
        raise ValueError(f"Invalid cron string {value!r}: {exc}; {_CRON_FORMAT}.") from exc


@attrs.frozen
class CronClock(Clock):
    """Fires at the times a 5-field cron string matches, on the wall clock of ``timezone``.

    ``timezone`` (an IANA name) defaults to the zone of ``start_date`` when that is a named zone
    (a ``ZoneInfo``), else UTC. Cron follows wall-clock time, so ``"0 9 * * *"`` in
    ``"Europe/Berlin"`` fires at 09:00 local all year. Across DST changes every matching
    wall-clock time fires once: a time skipped when clocks go forward fires at the same
    distance after the change (02:30 becomes 03:30 in Berlin), a time repeated when clocks go
    back fires the first time only. ``start_date`` and ``end_date`` are inclusive bounds.
    ``day_or`` is croniter's: when both day fields are set, match either (True) or both (False).
    """

    cron: str = attrs.field(validator=_valid_cron)
    start_date: datetime | None = attrs.field(default=None, validator=_aware_or_none)
    end_date: datetime | None = attrs.field(default=None, validator=_end_after_start)
    parameter_defaults: dict[str, Any] = _defaults_field()
    labels: list[str] | None = _labels_field()
    timezone: str | None = attrs.field(default=None, converter=_zone_name)
    day_or: bool = True

    def __attrs_post_init__(self) -> None:
        if self.timezone is not None:
            return
        name = "UTC"
        start = self.start_date
        if start is not None:
            tz = start.tzinfo
            found = getattr(tz, "key", None) or getattr(tz, "zone", None) or getattr(tz, "name", None)
            if isinstance(found, str) and _is_zone(found):
                name = found
            elif start.utcoffset() != timedelta(0):
                raise ValueError(
                    f"CronClock {self.cron!r}: start_date {start.isoformat()} has a fixed UTC offset, not a named "
                    "time zone, so it is unclear on which wall clock the cron string runs; pass "
                    "timezone='Europe/Berlin' (an IANA name), or a start_date with tzinfo=ZoneInfo(...)."
                )
        object.__setattr__(self, "timezone", name)

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Yield events strictly after ``after`` (default: now), at or after ``start_date``, not after ``end_date``."""
        zone = ZoneInfo(self.timezone or "UTC")
        after_utc = resolve_after(after)
        if self.start_date is not None:
            after_utc = max(after_utc, _utc(self.start_date) - _ONE_MICROSECOND)
        end = _utc(self.end_date) if self.end_date is not None else None
        # croniter walks naive wall-clock times; each is then placed in the zone (fold=0: the first
        # of a repeated time; a skipped time lands after the gap) and checked as an instant.
        wall = after_utc.astimezone(zone).replace(tzinfo=None, fold=0)
        it = croniter(self.cron.strip(), wall, day_or=self.day_or)
        last = after_utc
        while True:
            when = _utc(it.get_next(datetime).replace(tzinfo=zone, fold=0))
            if when <= last:
                continue
            if end is not None and when > end:
                return
            last = when
            yield self._event(when.astimezone(zone))


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


# --- dates ------------------------------------------------------------------------------


def _to_dates(value: Any) -> list[datetime]:
    if isinstance(value, datetime) or not hasattr(value, "__iter__"):
        raise TypeError(f"DatesClock dates must be a list of timezone-aware datetimes, got {value!r}.")
    dates = [check_aware(d, "DatesClock date") for d in value]
    if not dates:
        raise ValueError("DatesClock needs at least one date.")
    return sorted(dates, key=_utc)


@attrs.frozen
class DatesClock(Clock):
    """Fires once at each of ``dates`` (timezone-aware datetimes, any order)."""

    dates: list[datetime] = attrs.field(converter=_to_dates, hash=False)
    parameter_defaults: dict[str, Any] = _defaults_field()
    labels: list[str] | None = _labels_field()

    @property
    def start_date(self) -> datetime:  # type: ignore[override]
        return self.dates[0]

    @property
    def end_date(self) -> datetime:  # type: ignore[override]
        return self.dates[-1]

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Yield the dates strictly after ``after`` (default: now)."""
        after_utc = resolve_after(after)
        last: datetime | None = None
        for when in self.dates:
            when_utc = _utc(when)
            if when_utc > after_utc and when_utc != last:
                last = when_utc
                yield self._event(when)


# --- rrule (Prefect 1's RRuleClock) -------------------------------------------------------


def _to_rrule_text(value: Any) -> str:
    """An RFC 5545 rule as text (what is stored and serialized), from a ``dateutil.rrule.rrule`` or a string."""
    from dateutil.rrule import rrule, rruleset, rrulestr

    if isinstance(value, (rrule, rruleset)):
        if isinstance(value, rruleset):
            raise TypeError("RRuleClock takes one dateutil.rrule.rrule, not an rruleset: give one clock per rule.")
        text = _rrule_text_with_zone(value)
    elif isinstance(value, str):
        text = value
    else:
        raise TypeError(f"RRuleClock needs a dateutil.rrule.rrule or an RRULE string, got {value!r}.")
    try:
        rrulestr(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"RRuleClock: {text!r} is not a valid RFC 5545 rule ({exc}).") from exc
    return text


def _rrule_zone_name(tzinfo: Any) -> str | None:
    """The IANA name of a zone (zoneinfo's ``key``, pendulum's ``name``), if it has one that resolves."""
    from dateutil import tz

    name = getattr(tzinfo, "key", None) or getattr(tzinfo, "name", None)
    return name if isinstance(name, str) and "/" in name and tz.gettz(name) is not None else None


def _rrule_text_with_zone(rule: Any) -> str:
    """``str(rule)``, keeping the zone of an aware ``dtstart`` (``DTSTART;TZID=...``) and ``UNTIL`` in UTC.

    dateutil's ``str()`` writes an aware ``dtstart`` as a bare local time, which would read back as
    UTC and shift every occurrence by the zone's offset.
    """
    start, until = getattr(rule, "_dtstart", None), getattr(rule, "_until", None)
    text = str(rule)
    if start is None or start.tzinfo is None:
        return text
    name = _rrule_zone_name(start.tzinfo)
    if name is None:  # UTC or a fixed offset (no DST): the same instants in UTC, which a bare time is read as
        return str(rule.replace(dtstart=start.astimezone(UTC),
                                until=until.astimezone(UTC) if until is not None and until.tzinfo else until))
    dtstart = f"DTSTART;TZID={name}:{start.strftime('%Y%m%dT%H%M%S')}"
    lines = []
    for line in text.splitlines():
        if line.startswith("DTSTART"):
            line = dtstart
        elif line.startswith("RRULE:") and until is not None and until.tzinfo is not None:
            line = re.sub(r"UNTIL=\d{8}T\d{6}Z?", f"UNTIL={until.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}", line)
        lines.append(line)
    return "\n".join(lines)


@attrs.frozen
class RRuleClock(Clock):
    """Fires on the occurrences of a ``dateutil.rrule.rrule`` (e.g. the last Friday of each month).

    The rule's ``dtstart`` fixes the wall-clock time and zone of the occurrences; a rule without
    a zone is read as UTC. ``start_date``/``end_date`` bound the occurrences as in other clocks.
    """

    rrule: str = attrs.field(converter=_to_rrule_text)
    start_date: datetime | None = attrs.field(default=None, validator=_aware_or_none)
    end_date: datetime | None = attrs.field(default=None, validator=_end_after_start)
    parameter_defaults: dict[str, Any] = _defaults_field()
    labels: list[str] | None = _labels_field()

    def __attrs_post_init__(self) -> None:
        ensure_registered("clock", RRuleClock)

    def _rule(self) -> Any:
        from dateutil.rrule import rrulestr

        rule = rrulestr(self.rrule)
        start = getattr(rule, "_dtstart", None)
        if start is not None and start.tzinfo is None:
            rule = rule.replace(dtstart=start.replace(tzinfo=UTC))
        return rule

    def events(self, after: datetime | None = None) -> Iterator[ClockEvent]:
        """Yield the rule's occurrences strictly after ``after`` (default: now), within the bounds."""
        after_utc = resolve_after(after)
        if self.start_date is not None and _utc(self.start_date) > after_utc:
            after_utc = _utc(self.start_date) - timedelta(microseconds=1)
        rule = self._rule()
        zone = rule._dtstart.tzinfo if getattr(rule, "_dtstart", None) is not None else UTC
        for when in rule.xafter(after_utc.astimezone(zone), inc=False):
            if self.end_date is not None and _utc(when) > _utc(self.end_date):
                return
            yield self._event(when)


def ensure_registered(kind: str, cls: type) -> None:
    """Give ``cls`` its type tag (its class name) in registry ``kind`` unless it has one already.

    Called at import and when an object is made, so a registry that was cleared (tests) or
    filled before the import still knows the class. Cheap: one dict lookup when registered.
    """
    from headwater.plugins._manager import registry
    from headwater.plugins._registry import BUILTIN_PLUGIN

    reg = registry(kind)
    if reg._entries.get(cls.__name__) is None:
        reg.register(f"{cls.__module__}:{cls.__qualname__}", cls.__name__, plugin=BUILTIN_PLUGIN)


ensure_registered("clock", RRuleClock)
