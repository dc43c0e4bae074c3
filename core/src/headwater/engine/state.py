"""Prefect 1's ``prefect.engine.state``: every state class, from :mod:`headwater.states`."""

from headwater.states import (
    Cached,
    Cancelled,
    Cancelling,
    ClientFailed,
    Failed,
    Finished,
    Looped,
    Mapped,
    Paused,
    Pending,
    Queued,
    Resume,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    State,
    Submitted,
    Success,
    TimedOut,
    TriggerFailed,
    ValidationFailed,
)

__all__ = [  # noqa: PLE0604 - built from the classes: the state names live in headwater.states only
    cls.__name__
    for cls in (State, Pending, Scheduled, Paused, Resume, Retrying, Submitted, Queued, ClientFailed, Running,
                Cancelling, Finished, Success, Cached, Mapped, Skipped, Looped, Failed, TriggerFailed,
                ValidationFailed, TimedOut, Cancelled)
]
