"""Task result caching (``cache_for``, ``cache_key``, ``cache_validator``).

Cached states live in this process, keyed by ``cache_key`` (shared across tasks and flows)
or by flow name and task slug. A validator decides whether a cached state may be reused:
``validator(state, inputs, parameters) -> bool``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from headwater.states import Cached, State

__all__ = [
    "never_use",
    "duration_only",
    "all_inputs",
    "all_parameters",
    "partial_inputs_only",
    "partial_parameters_only",
    "TaskCache",
    "task_cache",
]


def never_use(state: Cached, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
    """Never reuse a cached result."""
    return False


def duration_only(state: Cached, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
    """Reuse while the cache has not expired (the default)."""
    return state.cached_until is not None and time.time() < state.cached_until


def all_inputs(state: Cached, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
    """Reuse while unexpired and called with the same inputs."""
    return duration_only(state, inputs, parameters) and _same(state.cached_inputs, inputs)


def all_parameters(state: Cached, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
    """Reuse while unexpired and the flow run has the same parameters."""
    return duration_only(state, inputs, parameters) and _same(state.cached_parameters, parameters)


def partial_inputs_only(validate_on: list[str]) -> Any:
    """Reuse while unexpired and the named inputs are unchanged."""

    def validator(state: Cached, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
        old = state.cached_inputs or {}
        return duration_only(state, inputs, parameters) and all(_same(old.get(k), inputs.get(k)) for k in validate_on)

    return validator


def partial_parameters_only(validate_on: list[str]) -> Any:
    """Reuse while unexpired and the named parameters are unchanged."""

    def validator(state: Cached, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> bool:
        old = state.cached_parameters or {}
        return duration_only(state, inputs, parameters) and all(
            _same(old.get(k), parameters.get(k)) for k in validate_on
        )

    return validator


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


class TaskCache:
    """Cached states by key, newest first, shared by the flow runs of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, list[Cached]] = {}

    def lookup(self, key: str, task: Any, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> Cached | None:
        with self._lock:
            candidates = list(self._states.get(key, ()))
        for state in candidates:
            if task.cache_validator(state, inputs, parameters):
                return state
        return None

    def store(self, key: str, state: State, duration: float, inputs: Mapping[str, Any], parameters: Mapping[str, Any]) -> Cached:
        cached = Cached(
            f"Cached result, valid for {duration:g}s.",
            state.result,
            cached_until=time.time() + duration,
            cached_inputs=dict(inputs),
            cached_parameters=dict(parameters),
        )
        with self._lock:
            self._states.setdefault(key, []).insert(0, cached)
            del self._states[key][16:]
        return cached

    def clear(self) -> None:
        with self._lock:
            self._states.clear()


task_cache = TaskCache()
