"""Prefect 1's ``prefect.tasks.core.operators``: Python operators as tasks.

``a + b``, ``a > 5``, ``a[0]``, ``a.is_equal(b)`` on tasks inside a flow build these tasks, so
the operation runs at flow run time on the results. Each can also be used directly:
``Add()(a, b)``.
"""

from __future__ import annotations

import operator as _op
from collections.abc import Callable
from typing import Any

from headwater.core.collections import GetItem
from headwater.core.task import Task

__all__ = [
    "GetItem",
    "GetAttr",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "FloorDiv",
    "Pow",
    "Mod",
    "And",
    "Or",
    "Not",
    "Equal",
    "NotEqual",
    "GreaterThan",
    "GreaterThanOrEqual",
    "LessThan",
    "LessThanOrEqual",
]


class _Binary(Task):
    """A task computing ``fn(x, y)``; subclasses set ``fn``."""

    fn: Callable[[Any, Any], Any] = staticmethod(_op.add)

    def run(self, x: Any, y: Any) -> Any:
        return type(self).fn(x, y)


def _binary(name: str, fn: Callable[[Any, Any], Any], doc: str) -> type[_Binary]:
    cls = type(name, (_Binary,), {"fn": staticmethod(fn), "__doc__": doc, "__module__": __name__})
    return cls


Add = _binary("Add", _op.add, "``x + y``")
Sub = _binary("Sub", _op.sub, "``x - y``")
Mul = _binary("Mul", _op.mul, "``x * y``")
Div = _binary("Div", _op.truediv, "``x / y``")
FloorDiv = _binary("FloorDiv", _op.floordiv, "``x // y``")
Pow = _binary("Pow", _op.pow, "``x ** y``")
Mod = _binary("Mod", _op.mod, "``x % y``")
And = _binary("And", lambda x, y: bool(x and y), "``bool(x and y)``")
Or = _binary("Or", lambda x, y: bool(x or y), "``bool(x or y)``")
Equal = _binary("Equal", _op.eq, "``x == y``")
NotEqual = _binary("NotEqual", _op.ne, "``x != y``")
GreaterThan = _binary("GreaterThan", _op.gt, "``x > y``")
GreaterThanOrEqual = _binary("GreaterThanOrEqual", _op.ge, "``x >= y``")
LessThan = _binary("LessThan", _op.lt, "``x < y``")
LessThanOrEqual = _binary("LessThanOrEqual", _op.le, "``x <= y``")


class Not(Task):
    """``not x``."""

    def run(self, x: Any) -> bool:
        return not x


class GetAttr(Task):
    """``getattr(task_result, attr)`` (dotted names follow the chain)."""

    def run(self, task_result: Any, attr: str) -> Any:
        value = task_result
        for part in attr.split("."):
            value = getattr(value, part)
        return value
