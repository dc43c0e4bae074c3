"""States: where a task run or flow run is in its life, with a message, a result and a timestamp.

The hierarchy follows Prefect 1, so ``isinstance`` checks and the ``is_*`` predicates mean
the same thing to people who know it::

    State
    ├── Pending ── Scheduled ── Retrying
    ├── Submitted
    ├── Running ── Cancelling
    └── Finished
        ├── Success ── Cached, Mapped, Skipped
        ├── Failed ── TriggerFailed, TimedOut
        └── Cancelled
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import attrs

_TASK_RUN_SUCCEEDED = "Task run succeeded."
"""The message of a task run's plain Success (the engine makes it; process pools send such states compactly)."""

__all__ = [
    "State",
    "Pending",
    "Scheduled",
    "Retrying",
    "Submitted",
    "Running",
    "Cancelling",
    "Finished",
    "Success",
    "Cached",
    "Mapped",
    "Skipped",
    "Failed",
    "TriggerFailed",
    "TimedOut",
    "Cancelled",
]


@attrs.define(eq=False, repr=False)
class State:
    """Base class of every state. ``result`` holds the value (or the exception of a failure)."""

    message: str | None = None
    result: Any = None
    location: str | None = attrs.field(default=None, kw_only=True)
    """Where the result was checkpointed (a Result location), if it was."""
    ts: float = attrs.field(factory=time.time, kw_only=True)
    """Seconds since the epoch when the state was created; see :attr:`timestamp`."""

    color = "#999999"

    @property
    def timestamp(self) -> datetime:
        """When this state was entered (timezone-aware, UTC)."""
        return datetime.fromtimestamp(self.ts, tz=UTC)

    @property
    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        """``<Success: "All reference tasks succeeded.">``, exactly as Prefect 1 prints a state."""
        if self.message:
            return f'<{self.name}: "{self.message}">'
        return f"<{self.name}>"

    def __eq__(self, other: object) -> bool:
        return (
            type(self) is type(other)
            and self.message == other.message
            and _safe_eq(self.result, other.result)
        )

    __hash__ = object.__hash__

    def is_pending(self) -> bool:
        return isinstance(self, Pending)

    def is_scheduled(self) -> bool:
        return isinstance(self, Scheduled)

    def is_retrying(self) -> bool:
        return isinstance(self, Retrying)

    def is_submitted(self) -> bool:
        return isinstance(self, Submitted)

    def is_running(self) -> bool:
        return isinstance(self, Running)

    def is_cancelling(self) -> bool:
        return isinstance(self, Cancelling)

    def is_finished(self) -> bool:
        return isinstance(self, Finished)

    def is_successful(self) -> bool:
        return isinstance(self, Success)

    def is_cached(self) -> bool:
        return isinstance(self, Cached)

    def is_mapped(self) -> bool:
        return isinstance(self, Mapped)

    def is_skipped(self) -> bool:
        return isinstance(self, Skipped)

    def is_failed(self) -> bool:
        return isinstance(self, Failed)

    def is_timed_out(self) -> bool:
        return isinstance(self, TimedOut)

    def is_cancelled(self) -> bool:
        return isinstance(self, Cancelled)

    def is_paused(self) -> bool:
        return isinstance(self, Paused)

    def is_queued(self) -> bool:
        return isinstance(self, Queued)

    def is_looped(self) -> bool:
        return isinstance(self, Looped)

    @classmethod
    def parents(cls) -> list[type[State]]:
        """The state classes this one derives from, nearest first, up to :class:`State` (Prefect 1).

        ``Retrying.parents()`` is ``[Scheduled, Pending, State]``.
        """
        return [c for c in cls.__mro__[1:] if isinstance(c, type) and issubclass(c, State)]

    @classmethod
    def children(cls) -> list[type[State]]:
        """Every state class derived from this one, direct subclasses first (Prefect 1).

        ``Failed.children()`` holds ``TriggerFailed``, ``TimedOut`` and ``ValidationFailed``.
        """
        found: dict[type[State], None] = {}
        pending = [cls]
        while pending:
            subclasses = pending.pop(0).__subclasses__()
            for sub in subclasses:
                if sub in found or _replaced_by_attrs(sub, subclasses):
                    continue
                found[sub] = None
                pending.append(sub)
        return list(found)

    def is_meta_state(self) -> bool:
        """Prefect 1's meta states (``Submitted``, ``Queued``): a state about a state, not a step of the run."""
        return isinstance(self, Submitted)


def _replaced_by_attrs(cls: type, siblings: list[type]) -> bool:
    """The class body ``@attrs.define`` replaced by a slotted class: still a subclass until collected, no state class."""
    return "__attrs_attrs__" not in cls.__dict__ and any(
        c is not cls and "__attrs_attrs__" in c.__dict__ and (c.__module__, c.__qualname__) == (cls.__module__, cls.__qualname__)
        for c in siblings
    )


def _safe_eq(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # e.g. numpy arrays, whose == is elementwise
        return a is b


@attrs.define(eq=False, repr=False)
class Pending(State):
    """Not yet started."""

    color = "#d3d3d3"


@attrs.define(eq=False, repr=False)
class Scheduled(Pending):
    """Waiting for ``start_time`` (seconds since the epoch); ``None`` means now."""

    start_time: float | None = attrs.field(default=None, kw_only=True)
    color = "#ffab00"


def _epoch_or_now(value: Any) -> float:
    """A start time as seconds since the epoch: None is now; a (timezone-aware) datetime is converted."""
    if value is None:
        return time.time()
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"Retrying(start_time={value!r}): the datetime is naive; give it a timezone, e.g. "
                "datetime.now(timezone.utc) + timedelta(minutes=5)."
            )
        return value.timestamp()
    return float(value)


def _context_run_count() -> int:
    """Prefect 1's default: the ``task_run_count`` of the task run in progress, else 1."""
    from headwater.utilities.context import context

    count = context.get("task_run_count")
    return int(count) if isinstance(count, int) and not isinstance(count, bool) and count > 0 else 1


@attrs.define(eq=False, repr=False)
class Retrying(Scheduled):
    """Failed, and scheduled to run again at ``start_time``; ``run_count`` runs so far.

    Prefect 1's defaults: ``start_time`` None means now (it is stored as seconds since the
    epoch; a timezone-aware datetime is converted), and ``run_count`` is the running task's
    ``task_run_count`` (1 outside a task run).
    """

    start_time: float | None = attrs.field(default=None, kw_only=True, converter=_epoch_or_now)
    run_count: int = attrs.field(factory=_context_run_count, kw_only=True)
    color = "#ffff00"


def _pack_state(value: Any) -> dict[str, Any] | None:
    """A wrapped state as a tagged mapping (what ``Submitted(state=...)`` stores and serializes)."""
    if value is None:
        return None
    if isinstance(value, State):
        return {"type": type(value).__name__, **{f.alias: getattr(value, f.name) for f in attrs.fields(type(value))}}
    if isinstance(value, dict) and value.get("type") in STATE_CLASSES:
        return value
    raise TypeError(f"state= must be a State (the state this one wraps), got {value!r}.")


def _unpack_state(data: dict[str, Any] | None) -> State | None:
    if data is None:
        return None
    fields = {k: v for k, v in data.items() if k != "type"}
    cls = STATE_CLASSES[data["type"]]
    if isinstance(fields.get("map_states"), list):
        fields["map_states"] = [_unpack_state(m) if isinstance(m, dict) else m for m in fields["map_states"]]
    return cls(**fields)


@attrs.define(eq=False, repr=False)
class Submitted(State):
    """Handed to an executor or an agent, not yet running.

    A meta state, as in Prefect 1: ``state`` is the state it wraps (usually the ``Scheduled``
    or ``Retrying`` state that was handled), kept so that information is not lost.
    """

    _state: dict[str, Any] | None = attrs.field(default=None, kw_only=True, alias="state", converter=_pack_state)
    """The wrapped state as ``{"type": class name, field: value ...}``, so it serializes with its own class."""

    @property
    def state(self) -> State | None:
        """The state this meta state wraps (Prefect 1's ``Submitted(state=...)``), or None."""
        return _unpack_state(self._state)

    color = "#fff9c4"


@attrs.define(eq=False, repr=False)
class Running(State):
    """Running now."""

    color = "#00ff00"


@attrs.define(eq=False, repr=False)
class Cancelling(Running):
    """A cancellation was requested; running work is finishing."""

    color = "#ffb74d"


@attrs.define(eq=False, repr=False)
class Finished(State):
    """Base class of the terminal states."""

    color = "#bababa"


@attrs.define(eq=False, repr=False)
class Success(Finished):
    """Finished without error; ``result`` is the return value."""

    color = "#28a745"


@attrs.define(eq=False, repr=False)
class Cached(Success):
    """A successful result taken from the cache instead of running; valid until ``cached_until``."""

    cached_until: float | None = attrs.field(default=None, kw_only=True)
    cached_inputs: dict[str, Any] | None = attrs.field(default=None, kw_only=True)
    cached_parameters: dict[str, Any] | None = attrs.field(default=None, kw_only=True)
    cached_result_expiration: datetime | None = attrs.field(default=None, kw_only=True, eq=False)
    """Prefect 1's name for the expiry, as a timezone-aware datetime; given alone it sets ``cached_until``."""
    color = "#ffa500"

    def __attrs_post_init__(self) -> None:
        if self.cached_result_expiration is not None and self.cached_until is None:
            self.cached_until = self.cached_result_expiration.timestamp()
        elif self.cached_until is not None and self.cached_result_expiration is None:
            self.cached_result_expiration = datetime.fromtimestamp(self.cached_until, tz=UTC)


@attrs.define(eq=False, repr=False)
class Mapped(Success):
    """A mapped task: one child state per item in ``map_states``; ``result`` is their results."""

    map_states: list[State] = attrs.field(factory=list, kw_only=True)
    color = "#97fff9"

    @property
    def n_map_states(self) -> int:
        return len(self.map_states)


@attrs.define(eq=False, repr=False)
class Skipped(Success):
    """Not run on purpose (a branch not taken, a SKIP signal); counts as successful downstream."""

    color = "#62757f"


@attrs.define(eq=False, repr=False)
class Failed(Finished):
    """Finished with an error; ``result`` holds the exception and ``traceback`` its formatted traceback."""

    traceback: str | None = attrs.field(default=None, kw_only=True)
    color = "#eb0000"

    @property
    def exception(self) -> BaseException | None:
        """The exception the task raised (``result``), or None when it failed without one."""
        return self.result if isinstance(self.result, BaseException) else None


@attrs.define(eq=False, repr=False)
class TriggerFailed(Failed):
    """Not run because the task's trigger did not pass (e.g. an upstream task failed)."""

    color = "#c42800"


@attrs.define(eq=False, repr=False)
class TimedOut(Failed):
    """Stopped waiting for the task after its ``timeout``."""

    color = "#cdbe38"


@attrs.define(eq=False, repr=False)
class Cancelled(Finished):
    """Stopped by a cancellation request before it finished."""

    color = "#bdbdbd"


# --- state names: the one place other modules (agents, runners, the API) take them from ------------

# --- Prefect-1 states the engine does not enter on its own (a task raises the signal, or the API sets them) ---


@attrs.define(eq=False, repr=False)
class Paused(Scheduled):
    """Waiting for someone to resume the run (``raise PAUSE``, or a ``manual_only`` trigger in Prefect 1)."""

    color = "#cfd8dc"


@attrs.define(eq=False, repr=False)
class Resume(Scheduled):
    """A paused task that was approved to run: it runs on its next chance, triggers already passed."""

    color = "#ffab00"


@attrs.define(eq=False, repr=False)
class Queued(Submitted):
    """Submitted, but waiting for a slot (a concurrency limit); starts again at ``start_time``.

    ``state`` (from :class:`Submitted`) is the state it wraps, as in Prefect 1.
    """

    start_time: float | None = attrs.field(default=None, kw_only=True)
    color = "#fff9c4"


@attrs.define(eq=False, repr=False)
class ClientFailed(State):
    """The run's process could not report its state to the API (a network or API error)."""

    color = "#ff9800"


@attrs.define(eq=False, repr=False)
class Looped(Finished):
    """One iteration of a looping task finished (``raise LOOP(result=...)``); ``loop_count`` so far."""

    loop_count: int | None = attrs.field(default=None, kw_only=True)
    color = "#9ccc65"


@attrs.define(eq=False, repr=False)
class ValidationFailed(Failed):
    """The task's result did not pass validation (``raise VALIDATIONFAIL``)."""

    color = "#b71c1c"


__all__ += ["Paused", "Resume", "Queued", "ClientFailed", "Looped", "ValidationFailed"]


STATE_CLASSES: dict[str, type[State]] = {
    cls.__name__: cls
    for cls in (State, Pending, Scheduled, Retrying, Submitted, Running, Cancelling, Finished, Success, Cached,
                Mapped, Skipped, Failed, TriggerFailed, TimedOut, Cancelled, Paused, Resume, Queued, ClientFailed,
                Looped, ValidationFailed)
}
"""Every state class by name (what the API stores and sends)."""

ABSTRACT_STATE_NAMES: frozenset[str] = frozenset({"State", "Finished"})
"""Names that classify states but are never a run's state."""


def _names(base: type[State]) -> frozenset[str]:
    return frozenset(n for n, c in STATE_CLASSES.items() if issubclass(c, base) and n not in ABSTRACT_STATE_NAMES)


SCHEDULED_STATE_NAMES: frozenset[str] = _names(Pending)
"""Waiting to start: Pending, Scheduled, Retrying."""
RUNNING_STATE_NAMES: frozenset[str] = _names(Running)
"""Running, Cancelling."""
ACTIVE_STATE_NAMES: frozenset[str] = _names(Running) | _names(Submitted)
"""Given to an agent and not finished: Submitted, Queued, Running, Cancelling."""
FINISHED_STATE_NAMES: frozenset[str] = _names(Finished)
"""Terminal: Success, Cached, Mapped, Skipped, Failed, TriggerFailed, TimedOut, Cancelled."""
FAILED_STATE_NAMES: frozenset[str] = _names(Failed)
"""Failed, TriggerFailed, TimedOut."""
SUCCESS_STATE_NAMES: frozenset[str] = _names(Success)
"""Success, Cached, Mapped, Skipped."""
CANCEL_STATE_NAMES: frozenset[str] = _names(Cancelling) | _names(Cancelled)
"""Cancelling, Cancelled: a cancellation was asked for."""
ENDED_FROM_OUTSIDE_STATE_NAMES: frozenset[str] = frozenset({Failed.__name__, Cancelled.__name__})
"""What an agent or the reaper may end a run as without its process: Failed, Cancelled."""
PAUSED_STATE_NAMES: frozenset[str] = _names(Paused) | _names(Resume)
"""Waiting for a person: Paused, and Resume (approved, not yet run again)."""

__all__ += [
    "PAUSED_STATE_NAMES",
    "STATE_CLASSES",
    "ABSTRACT_STATE_NAMES",
    "SCHEDULED_STATE_NAMES",
    "RUNNING_STATE_NAMES",
    "ACTIVE_STATE_NAMES",
    "FINISHED_STATE_NAMES",
    "FAILED_STATE_NAMES",
    "SUCCESS_STATE_NAMES",
    "CANCEL_STATE_NAMES",
    "ENDED_FROM_OUTSIDE_STATE_NAMES",
]
