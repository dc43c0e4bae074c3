"""``$ctx.`` interpolation: string values that start with ``$ctx.`` are looked up in the tick context.

``$ctx.flow.tasks.task_1.data.out`` is the ``out`` value in task_1's data; the lookup walks
mappings by key and lists by index, and a whole-string reference keeps the value's type (a
list stays a list). A string that starts with ``\\$`` is taken literally without the
backslash, which also defers a reference one level (a spread skeleton's ``\\$ctx.`` is
interpolated when the generated task runs).

The context is ``{"flow": <the flow>, "task": <the task being ticked>}``; a flow offers
``key``, ``label``, ``cfg``, ``data``, ``depth``, ``parent_key``, ``status`` and ``tasks``
(by key), a task offers ``key``, ``label``, ``task_type``, ``task_params``, ``data`` and
``status``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from headwater.spec.model import SpecError

if TYPE_CHECKING:
    from headwater.core.flow import Flow
    from headwater.spec.model import SpecTask

__all__ = ["PREFIX", "InterpolationError", "interpolate", "resolve_path", "set_path", "context_root", "FlowView", "TaskView"]

PREFIX = "$ctx."


class InterpolationError(SpecError):
    """A ``$ctx.`` path does not lead to a value (names the path, where it stopped and what was there)."""


class TaskView(Mapping[str, Any]):
    """A task as the context shows it; ``data`` and ``task_params`` are the live dicts."""

    _KEYS = ("key", "label", "task_type", "task_params", "data", "status")

    def __init__(self, task: SpecTask) -> None:
        self._task = task

    def __getitem__(self, name: str) -> Any:
        if name not in self._KEYS:
            raise KeyError(name)
        value = getattr(self._task, name)
        return value.value if name == "status" else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)


class _TasksView(Mapping[str, Any]):
    def __init__(self, flow: Flow) -> None:
        self._flow = flow

    def __getitem__(self, key: str) -> TaskView:
        task = self._flow._slugs.get(key)
        if task is None:
            raise KeyError(key)
        return TaskView(task)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._flow._slugs)

    def __len__(self) -> int:
        return len(self._flow._slugs)


class FlowView(Mapping[str, Any]):
    """A flow as the context shows it; ``data`` and ``cfg`` are the live dicts."""

    _KEYS = ("key", "label", "cfg", "data", "depth", "parent_key", "status", "tasks")

    def __init__(self, flow: Flow) -> None:
        self._flow = flow

    def __getitem__(self, name: str) -> Any:
        if name == "tasks":
            return _TasksView(self._flow)
        if name not in self._KEYS:
            raise KeyError(name)
        value = getattr(self._flow, name)
        return value.value if name == "status" else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._KEYS)

    def __len__(self) -> int:
        return len(self._KEYS)


def context_root(flow: Flow, task: SpecTask) -> dict[str, Any]:
    """The namespace ``$ctx.`` paths start from."""
    return {"flow": FlowView(flow), "task": TaskView(task)}


def _step(current: Any, part: str, path: str, walked: list[str]) -> Any:
    where = ".".join(walked) or "ctx"
    if isinstance(current, Mapping):
        if part in current:
            return current[part]
        available = ", ".join(map(str, list(current)[:20])) or "nothing"
        raise InterpolationError(f"$ctx.{path}: {where} has no {part!r} (it has: {available}).")
    if isinstance(current, (list, tuple)):
        try:
            return current[int(part)]
        except (ValueError, IndexError):
            raise InterpolationError(
                f"$ctx.{path}: {where} is a list of {len(current)} item(s); {part!r} is not an index into it."
            ) from None
    raise InterpolationError(f"$ctx.{path}: {where} is {type(current).__name__} {current!r}, which has no {part!r}.")


def _parts(path: str) -> list[str]:
    path = path[len(PREFIX):] if path.startswith(PREFIX) else path
    parts = path.split(".")
    if not all(parts):
        raise InterpolationError(f"$ctx.{path}: empty part in the path; write names separated by single dots.")
    return parts


def resolve_path(root: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` (``flow.tasks.t1.data.out``, with or without ``$ctx.``) in ``root``."""
    parts = _parts(path)
    current: Any = root
    walked: list[str] = []
    for part in parts:
        current = _step(current, part, ".".join(parts), walked)
        walked.append(part)
    return current


def set_path(root: Mapping[str, Any], path: str, value: Any) -> None:
    """Write ``value`` at ``path``, creating missing dicts on the way; the parent must be a writable mapping."""
    parts = _parts(path)
    current: Any = root
    walked: list[str] = []
    for part in parts[:-1]:
        if isinstance(current, MutableMapping) and part not in current:
            current[part] = {}
        current = _step(current, part, ".".join(parts), walked)
        walked.append(part)
    if not isinstance(current, MutableMapping):
        raise InterpolationError(
            f"Cannot write to $ctx.{'.'.join(parts)}: {'.'.join(walked)} is not writable. Write into "
            "flow.data, task.data, or flow.tasks.<key>.data / .task_params."
        )
    current[parts[-1]] = value


def interpolate(value: Any, root: Mapping[str, Any], skip_keys: tuple[str, ...] = ()) -> Any:
    """``value`` with every ``$ctx.`` string replaced by a copy of what it names (``\\$`` escapes).

    ``skip_keys`` names top-level keys of a mapping ``value`` that are passed through untouched.
    """
    if isinstance(value, str):
        if value.startswith(PREFIX):
            return copy.deepcopy(resolve_path(root, value))
        if value.startswith("\\$"):
            return value[1:]
        return value
    if isinstance(value, Mapping):
        return {k: (v if k in skip_keys else interpolate(v, root)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [interpolate(v, root) for v in value]
    return value
