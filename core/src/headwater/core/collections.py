"""Small tasks the wiring creates for you: constants, ``result[key]`` and collections of results."""

from __future__ import annotations

from typing import Any

from headwater.core.task import Task

__all__ = ["Constant", "GetItem", "List", "Tuple", "Set", "Dict"]


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
