"""Signals: exceptions a task raises to put itself into a particular state.

``raise SKIP("nothing to do")`` inside a task ends it Skipped; ``FAIL`` ends it Failed;
``RETRY`` asks for a retry now (even without ``max_retries``); ``ENDRUN(state)`` ends the run
with exactly the state given.
"""

from __future__ import annotations

from headwater import states

__all__ = ["HeadwaterSignal", "SKIP", "FAIL", "RETRY", "ENDRUN", "TRIGGERFAIL", "SUCCESS"]


class HeadwaterSignal(Exception):
    """Base class: carries the state the task run should end in."""

    _state_class: type[states.State] = states.State

    def __init__(self, message: str | None = None, *, result: object = None) -> None:
        super().__init__(message)
        self.state = self._state_class(message, result if result is not None else self)


class SUCCESS(HeadwaterSignal):
    """End the task run Successful, with ``result`` as its value."""

    _state_class = states.Success

    def __init__(self, message: str | None = None, *, result: object = None) -> None:
        HeadwaterSignal.__init__(self, message)
        self.state = states.Success(message, result)


class FAIL(HeadwaterSignal):
    """End the task run Failed (retries still apply)."""

    _state_class = states.Failed


class TRIGGERFAIL(FAIL):
    """Raised by a trigger: the task is not run and ends TriggerFailed."""

    _state_class = states.TriggerFailed


class SKIP(HeadwaterSignal):
    """End the task run Skipped; downstream tasks skip too unless they opt out."""

    _state_class = states.Skipped

    def __init__(self, message: str | None = None, *, result: object = None) -> None:
        # A skipped task has no result (None unless given), so a downstream task that runs
        # anyway (e.g. merge) receives None, as in Prefect 1, not this exception.
        HeadwaterSignal.__init__(self, message)
        self.state = states.Skipped(message, result)


class RETRY(HeadwaterSignal):
    """Retry the task run now, whether or not it has retries left."""

    _state_class = states.Retrying


class ENDRUN(HeadwaterSignal):
    """End the task run in exactly ``state``, skipping the rest of the pipeline."""

    def __init__(self, state: states.State) -> None:
        Exception.__init__(self, state.message)
        self.state = state
