"""Triggers: whether a task runs, decided from the states of its upstream tasks.

A trigger takes ``{edge: state}`` for the task's upstream edges and returns ``True`` to run,
or raises :class:`~headwater.signals.TRIGGERFAIL` (the task ends TriggerFailed) or
:class:`~headwater.signals.SKIP`. ``all_successful`` is the default. Skipped counts as success.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from headwater import signals
from headwater.states import State

__all__ = [
    "Trigger",
    "all_successful",
    "all_finished",
    "always_run",
    "manual_only",
    "all_failed",
    "any_successful",
    "any_failed",
    "none_failed",
    "not_all_skipped",
    "some_successful",
    "some_failed",
]

Trigger = Callable[[Mapping[Any, State]], bool]


def _names(upstream_states: Mapping[Any, State], pick: Callable[[State], bool]) -> str:
    names = []
    for key, state in upstream_states.items():
        if pick(state):
            edge, index = (key if isinstance(key, tuple) else (key, None))
            upstream = getattr(edge, "upstream_task", None)
            name = getattr(upstream, "slug", None) or getattr(upstream, "name", None) or str(edge)
            names.append(name if index is None else f"{name}[{index}]")
    return ", ".join(sorted(set(names)))


def all_successful(upstream_states: Mapping[Any, State]) -> bool:
    """Run when every upstream task succeeded (Skipped, Cached and Mapped count)."""
    for state in upstream_states.values():
        if not state.is_successful():
            raise signals.TRIGGERFAIL(
                "Trigger was 'all_successful' but some of the upstream tasks failed: "
                + _names(upstream_states, lambda s: not s.is_successful())
            )
    return True


def all_finished(upstream_states: Mapping[Any, State]) -> bool:
    """Run once every upstream task is finished, whatever its outcome."""
    for state in upstream_states.values():
        if not state.is_finished():
            raise signals.TRIGGERFAIL("Trigger was 'all_finished' but some upstream tasks are not finished.")
    return True


always_run = all_finished
"""Alias of :func:`all_finished`: run whatever happened upstream (cleanup tasks)."""


def manual_only(upstream_states: Mapping[Any, State]) -> bool:
    """Pause the task until someone resumes it (Prefect 1): runs when the run's context has ``resume``."""
    from headwater.utilities.context import context

    if context.get("resume"):
        return True
    raise signals.PAUSE('Trigger function is "manual_only": the task waits to be resumed.')


def all_failed(upstream_states: Mapping[Any, State]) -> bool:
    """Run only when every upstream task failed (error handlers)."""
    for state in upstream_states.values():
        if not state.is_failed():
            raise signals.TRIGGERFAIL(
                "Trigger was 'all_failed' but some upstream tasks did not fail: "
                + _names(upstream_states, lambda s: not s.is_failed())
            )
    return True


def any_successful(upstream_states: Mapping[Any, State]) -> bool:
    """Run when at least one upstream task succeeded (or there are none)."""
    if upstream_states and not any(s.is_successful() for s in upstream_states.values()):
        raise signals.TRIGGERFAIL("Trigger was 'any_successful' but none of the upstream tasks succeeded.")
    return True


def any_failed(upstream_states: Mapping[Any, State]) -> bool:
    """Run when at least one upstream task failed (or there are none)."""
    if upstream_states and not any(s.is_failed() for s in upstream_states.values()):
        raise signals.TRIGGERFAIL("Trigger was 'any_failed' but none of the upstream tasks failed.")
    return True


def none_failed(upstream_states: Mapping[Any, State]) -> bool:
    """Run when no upstream task failed; unlike ``all_successful`` other outcomes are fine."""
    for state in upstream_states.values():
        if state.is_failed():
            raise signals.TRIGGERFAIL(
                "Trigger was 'none_failed' but some upstream tasks failed: "
                + _names(upstream_states, lambda s: s.is_failed())
            )
    return True


def not_all_skipped(upstream_states: Mapping[Any, State]) -> bool:
    """Run unless every upstream task was skipped; skip if they all were (used by ``merge``)."""
    if upstream_states and all(s.is_skipped() for s in upstream_states.values()):
        raise signals.SKIP("All upstream tasks were skipped.")
    if any(s.is_failed() for s in upstream_states.values()):
        raise signals.TRIGGERFAIL("Trigger was 'not_all_skipped' but some upstream tasks failed.")
    return True


class _Some:
    """A trigger counting upstream states of one kind; bounds are counts, or fractions in (0, 1).

    A module-level class (not a closure) so flows that use it pickle with any pickler.
    """

    def __init__(self, what: str, at_least: int | float | None, at_most: int | float | None) -> None:
        for bound, label in ((at_least, "at_least"), (at_most, "at_most")):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, (int, float)) or bound < 0):
                raise ValueError(
                    f"{what}({label}=...) must be a count >= 0 or a fraction between 0 and 1, got {bound!r}."
                )
        self.__name__ = self.__qualname__ = what
        self.at_least = at_least
        self.at_most = at_most

    def __call__(self, upstream_states: Mapping[Any, State]) -> bool:
        total = len(upstream_states)
        failed = self.__name__ == "some_failed"
        count = sum(1 for s in upstream_states.values() if (s.is_failed() if failed else s.is_successful()))
        # as in Prefect 1: a float strictly between 0 and 1 is a fraction of the upstream tasks
        low, high = (b * total if isinstance(b, float) and 0 < b < 1 else b for b in (self.at_least, self.at_most))
        if (low is not None and count < low) or (high is not None and count > high):
            raise signals.TRIGGERFAIL(
                f"Trigger was '{self.__name__}' (at_least={self.at_least!r}, at_most={self.at_most!r}) but {count} "
                f"of {total} upstream tasks {'failed' if failed else 'succeeded'}."
            )
        return True

    def __repr__(self) -> str:
        return f"{self.__name__}(at_least={self.at_least!r}, at_most={self.at_most!r})"


def some_successful(at_least: int | float | None = None, at_most: int | float | None = None) -> Trigger:
    """A trigger: run when the number of successful upstream tasks is within ``[at_least, at_most]``.

    Either bound may be a count or a fraction (``0.5`` = half of the upstream tasks), as in Prefect 1.
    """
    return _Some("some_successful", at_least, at_most)


def some_failed(at_least: int | float | None = None, at_most: int | float | None = None) -> Trigger:
    """A trigger: run when the number of failed upstream tasks is within ``[at_least, at_most]``."""
    return _Some("some_failed", at_least, at_most)
