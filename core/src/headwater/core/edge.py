"""Edges: a dependency between two tasks, optionally carrying data under a keyword."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.core.task import Task

__all__ = ["Edge", "unmapped", "flatten", "mapped"]


class Edge:
    """``upstream_task`` must finish before ``downstream_task``; with ``key`` its result is passed as that argument.

    ``mapped`` edges are iterated over (one child run per item); ``flattened`` edges
    concatenate a list of lists (or the results of a mapped task) into one list first.
    """

    __slots__ = ("upstream_task", "downstream_task", "key", "mapped", "flattened", "_hash")

    def __init__(
        self,
        upstream_task: Task,
        downstream_task: Task,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
    ) -> None:
        self.upstream_task = upstream_task
        self.downstream_task = downstream_task
        self.key = key
        self.mapped = mapped
        self.flattened = flattened
        self._hash = hash((id(upstream_task), id(downstream_task), key, mapped, flattened))

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild (and so rehash) on unpickle: the hash depends on the tasks' identities.
        return (Edge, (self.upstream_task, self.downstream_task, self.key, self.mapped, self.flattened))

    def _tuple(self) -> tuple[Any, ...]:
        return (self.upstream_task, self.downstream_task, self.key, self.mapped, self.flattened)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Edge):
            return NotImplemented
        return (
            self.upstream_task is other.upstream_task
            and self.downstream_task is other.downstream_task
            and self.key == other.key
            and self.mapped == other.mapped
            and self.flattened == other.flattened
        )

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        key = f"(key={self.key})" if self.key else ""
        marks = "".join([" mapped" if self.mapped else "", " flattened" if self.flattened else ""])
        return f"<Edge{key}{marks}: {self.upstream_task.name} to {self.downstream_task.name}>"


class unmapped:  # noqa: N801 - Prefect-1 spelling
    """Mark an argument of ``task.map(...)`` as passed whole to every child instead of iterated."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class mapped:  # noqa: N801
    """Mark an argument of a plain task call as iterated (the opposite of :class:`unmapped`)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class flatten:  # noqa: N801
    """Mark an argument as a list of lists to concatenate before it is used (or mapped over)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value
