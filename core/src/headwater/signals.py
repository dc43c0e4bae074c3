"""Signals: exceptions a task raises to put itself into a particular state.

``raise SKIP("nothing to do")`` inside a task ends it Skipped; ``FAIL`` ends it Failed;
``RETRY`` asks for a retry now (even without ``max_retries``); ``ENDRUN(state)`` ends the run
with exactly the state given.

As in Prefect 1 (1.0 and later), signals derive from ``BaseException``, not ``Exception``: a
``try: ... except Exception:`` in a task does not swallow a ``SKIP`` or ``FAIL`` raised inside it.
"""

from __future__ import annotations

from headwater import states

__all__ = [
    "HeadwaterSignal",
    "PrefectStateSignal",
    "SKIP",
    "FAIL",
    "RETRY",
    "ENDRUN",
    "TRIGGERFAIL",
    "VALIDATIONFAIL",
    "SUCCESS",
    "LOOP",
    "PAUSE",
    "signal_from_state",
]


class HeadwaterSignal(BaseException):
    """Base class: carries the state the task run should end in.

    A ``BaseException`` (as Prefect 1's ``PrefectSignal``), so ``except Exception`` in user code
    lets it through to the engine. Extra keyword arguments go to the state (``RETRY(start_time=...)``).
    """

    _state_class: type[states.State] = states.State

    def __init__(self, message: str | None = None, *, result: object = None, **state_kwargs: object) -> None:
        super().__init__(message)
        self.state = self._state_class(message, result if result is not None else self, **state_kwargs)  # type: ignore[arg-type]


PrefectStateSignal = HeadwaterSignal
"""Prefect 1's name of the base class."""


class SUCCESS(HeadwaterSignal):
    """End the task run Successful, with ``result`` as its value."""

    _state_class = states.Success

    def __init__(self, message: str | None = None, *, result: object = None, **state_kwargs: object) -> None:
        HeadwaterSignal.__init__(self, message)
        self.state = states.Success(message, result, **state_kwargs)  # type: ignore[arg-type]


class FAIL(HeadwaterSignal):
    """End the task run Failed (retries still apply)."""

    _state_class = states.Failed


class TRIGGERFAIL(FAIL):
    """Raised by a trigger: the task is not run and ends TriggerFailed."""

    _state_class = states.TriggerFailed


class VALIDATIONFAIL(FAIL):
    """The task's result failed validation: the task run ends ValidationFailed."""

    _state_class = states.ValidationFailed


class SKIP(HeadwaterSignal):
    """End the task run Skipped; downstream tasks skip too unless they opt out."""

    _state_class = states.Skipped

    def __init__(self, message: str | None = None, *, result: object = None, **state_kwargs: object) -> None:
        # A skipped task has no result (None unless given), so a downstream task that runs
        # anyway (e.g. merge) receives None, as in Prefect 1, not this exception.
        HeadwaterSignal.__init__(self, message)
        self.state = states.Skipped(message, result, **state_kwargs)  # type: ignore[arg-type]


class RETRY(HeadwaterSignal):
    """Retry the task run now, whether or not it has retries left."""

    _state_class = states.Retrying


class ENDRUN(HeadwaterSignal):
    """End the task run in exactly ``state``, skipping the rest of the pipeline."""

    def __init__(self, state: states.State) -> None:
        BaseException.__init__(self, state.message)
        self.state = state


class LOOP(HeadwaterSignal):
    """Run the task again with ``headwater.context.task_loop_result`` set to ``result`` (a loop).

    ``raise LOOP(message="iteration 3", result=partial)``; the final iteration returns normally.
    """

    _state_class = states.Looped

    def __init__(self, message: str | None = None, *, result: object = None, **state_kwargs: object) -> None:
        HeadwaterSignal.__init__(self, message)
        self.state = states.Looped(message, result, **state_kwargs)  # type: ignore[arg-type]


class PAUSE(HeadwaterSignal):
    """Pause the task run: it ends Paused until it is resumed (through the API)."""

    _state_class = states.Paused


_SIGNALS_BY_STATE: list[tuple[type[states.State], type[HeadwaterSignal]]] = [
    (states.ValidationFailed, VALIDATIONFAIL),
    (states.TriggerFailed, TRIGGERFAIL),
    (states.Failed, FAIL),
    (states.Looped, LOOP),
    (states.Paused, PAUSE),
    (states.Retrying, RETRY),
    (states.Skipped, SKIP),
    (states.Success, SUCCESS),
]


def signal_from_state(state: states.State) -> type[HeadwaterSignal]:
    """The signal class that ends a task in ``state``'s class (``Failed()`` -> ``FAIL``), as in Prefect 1.

    Raises ``ValueError`` when no signal leads to that state (e.g. ``Running``).
    """
    for state_class, signal in _SIGNALS_BY_STATE:
        if type(state) is state_class:
            return signal
    for state_class, signal in _SIGNALS_BY_STATE:
        if isinstance(state, state_class):
            return signal
    raise ValueError(f"No signal matches the state {state!r}: signals exist for {', '.join(c.__name__ for c, _ in _SIGNALS_BY_STATE)}.")
