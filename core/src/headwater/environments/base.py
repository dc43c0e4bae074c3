"""The Environment interface: where and how a flow run executes (PIN "Storage and Execution").

An agent restores the flow's storage and run config, then calls ``setup(storage)`` once and
``execute(storage, flow_location, **run_context)`` per run; the returned handle lets it ask
``status(handle)`` and ``kill(handle)`` (cancellation, lost runs).
"""

from __future__ import annotations

import abc
from typing import Any

import attrs

__all__ = ["Environment", "RunHandle", "labels_converter"]


def labels_converter(value: Any) -> tuple[str, ...]:
    """Labels as a sorted tuple of unique strings (one string is one label)."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    labels = sorted({str(v) for v in value})
    return tuple(labels)


@attrs.define
class RunHandle:
    """What ``execute`` returns: enough to check on and stop the run.

    ``status`` is ``running``, ``success``, ``failed`` or ``cancelled``; ``pid`` is set for
    processes, ``id`` for containers or jobs; ``state`` holds the final State of in-process runs.
    """

    environment: str
    status: str = "running"
    pid: int | None = None
    id: str | None = None
    exit_code: int | None = None
    state: Any = attrs.field(default=None, repr=False)
    process: Any = attrs.field(default=None, repr=False, eq=False)


@attrs.define
class Environment(abc.ABC):
    """Base class of environments (run configs). ``labels`` are what an agent must have to run it."""

    labels: tuple[str, ...] = attrs.field(default=(), converter=labels_converter, kw_only=True)

    def setup(self, storage: Any) -> None:  # noqa: B027 - optional hook
        """Prepare infrastructure for runs from ``storage`` (pull an image, check credentials). Default: nothing."""

    @abc.abstractmethod
    def execute(self, storage: Any, flow_location: str, **run_context: Any) -> RunHandle:
        """Start the flow run stored at ``flow_location`` and return a handle.

        ``run_context`` carries ``parameters``, ``context``, ``env`` (extra variables) and, for
        agents, ``flow_run_id`` and ``command`` (the command line to start instead of the default).
        """

    @abc.abstractmethod
    def status(self, handle: RunHandle) -> str:
        """``running``, ``success``, ``failed`` or ``cancelled`` (refreshing ``handle``)."""

    @abc.abstractmethod
    def kill(self, handle: RunHandle, grace_period: float = 10.0) -> None:
        """Stop the run: ask politely, then force after ``grace_period`` seconds."""

    def wait(self, handle: RunHandle, timeout: float | None = None) -> str:
        """Block until the run is no longer running (or ``timeout``); returns its status."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while (status := self.status(handle)) == "running":
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.05)
        return status

    def serialize(self) -> dict[str, Any]:
        """This environment as JSON-ready data with its ``"type"`` tag."""
        from headwater.serialization.converter import to_dict

        return to_dict(self)
