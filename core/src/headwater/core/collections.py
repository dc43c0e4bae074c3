"""Small tasks the wiring creates for you: constants, ``result[key]`` and collections of results.

Also the two functions that give ``flatten(...)`` its Prefect 1 meaning, which the flow runner
applies to a flattened edge: :func:`flatten_result` (one upstream result) and
:func:`flatten_map_states` (the children of a mapped upstream task).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from headwater.core.task import Task

if TYPE_CHECKING:
    from headwater.states import State

__all__ = ["Constant", "GetItem", "List", "Tuple", "Set", "Dict", "flatten_result", "flatten_map_states"]

_logger = logging.getLogger("headwater.FlowRunner")


class Constant(Task):
    """Returns a fixed value (used when a plain value is mapped over or wired as a task)."""

    def __init__(self, value: Any, name: str | None = None, **kwargs: Any) -> None:
        self.value = value
        kwargs.setdefault("checkpoint", False)  # the value is in the flow already
        super().__init__(name=name or f"Constant[{type(value).__name__}]", **kwargs)

    def run(self) -> Any:
        return self.value


class GetItem(Task):
    """Returns ``task_result[key]``."""

    def run(self, task_result: Any, key: Any) -> Any:
        return task_result[key]


class _VarArgs(Task):
    """Collects its keyword inputs ``arg_0 .. arg_n`` in order."""

    def __call__(self, *args: Any, **kwargs: Any) -> Task:
        keyed = {f"arg_{i}": a for i, a in enumerate(args)}
        return super().__call__(**keyed, **kwargs)

    def _ordered(self, values: dict[str, Any]) -> list[Any]:
        return [values[k] for k in sorted(values, key=lambda k: int(k.split("_", 1)[1]))]


class List(_VarArgs):
    """Collects upstream results into a list."""

    def run(self, **task_results: Any) -> list[Any]:
        return self._ordered(task_results)


class Tuple(_VarArgs):
    """Collects upstream results into a tuple."""

    def run(self, **task_results: Any) -> tuple[Any, ...]:
        return tuple(self._ordered(task_results))


class Set(_VarArgs):
    """Collects upstream results into a set."""

    def run(self, **task_results: Any) -> set[Any]:
        return set(self._ordered(task_results))


class Dict(Task):
    """Builds a dict from upstream keys and values."""

    def run(self, keys: list[Any], values: list[Any]) -> dict[Any, Any]:
        return dict(zip(keys, values, strict=True))


def flatten_result(value: Any) -> Any:
    """``flatten(task)`` of a task that was not mapped: its list of lists un-nested by one level.

    As in Prefect 1: only one level (``[[1, [2]], [3]]`` gives ``[1, [2], 3]``), strings are
    iterables too (``["ab", "c"]`` gives ``["a", "b", "c"]``), and a result that is not a list of
    iterables (``None``, ``[[1, 2], 3]``, ``5``) is passed on unchanged instead of failing the run.
    """
    try:
        return [item for sub in value for item in sub]
    except TypeError:
        return value


def _can_flatten(result: Any) -> bool:
    return hasattr(result, "__len__") and hasattr(result, "__getitem__") and not isinstance(result, Mapping)


def flatten_map_states(map_states: Sequence[State]) -> tuple[list[Any], list[State]]:
    """``flatten(mapped_task)``: every child's list un-nested into one list of items, each with its child's state.

    Returns ``(items, item_states)``. As in Prefect 1, a child that did not succeed (Skipped,
    Failed, TriggerFailed ...) stays one item -- its result (None for a skipped child) with its
    own state -- so a task mapped over the flattened list gets one Skipped (or TriggerFailed)
    child for it and a reducing task sees it as one item; a successful child whose result is not
    a sequence (None, a number, a dict) also stays one item, with a warning.
    """
    from headwater.states import Skipped, Success

    items: list[Any] = []
    item_states: list[State] = []
    for child in map_states:
        result = child.result
        if isinstance(child, Success) and not isinstance(child, Skipped):
            if _can_flatten(result):
                items.extend(result[i] for i in range(len(result)))
                item_states.extend([child] * len(result))
                continue
            _logger.warning(
                "flatten() was used on a mapped task whose child returned %s, not a list: the value is passed "
                "downstream unmodified, as one item.", type(result).__name__,
            )
        items.append(result)
        item_states.append(child)
    return items, item_states
