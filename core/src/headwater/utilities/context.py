"""``headwater.context``: what a running task can read about its run.

A dict-like view over a :class:`contextvars.ContextVar`, so every thread and every task run
sees its own values. Inside a task run it holds ``logger``, ``flow_name``, ``flow_run_id``,
``flow_run_name``, ``task_name``, ``task_slug``, ``task_full_name`` (``name[map_index]`` for a
mapped child), ``task_tags``, ``map_index``, ``parameters``, ``task_run_count``,
``scheduled_start_time``, ``date``, ``today``/``today_nodash``, ``yesterday``, ``tomorrow``
(and their ``_nodash`` forms) and anything passed to ``flow.run(context={...})``.

As in Prefect 1 (``prefect.context``, a thread-local ``DotDict``) it is a mutable mapping:
``context.update(a=1)``, ``context["a"] = 1``, ``context.a = 1``, ``del context["a"]``,
``context.pop("a")``, ``setdefault``, ``clear``. A change lasts until the end of the scope it
was made in: the ``with context(...)`` block, the task run (a task's updates are not seen by
the tasks downstream of it), or, outside both, the thread. Every change replaces the mapping
in the context variable (copy on write), so it never leaks into another thread, task run or
enclosing block.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

__all__ = ["Context", "context"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_current: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("headwater_context", default=_EMPTY)
_MISSING: Any = object()


class Context(MutableMapping[str, Any]):
    """Read with ``context.get("key")``, ``context["key"]`` or ``context.key``; scope with ``with context(key=value):``.

    Write with ``context.update(...)`` (or item and attribute assignment) for the rest of the
    current scope, as Prefect 1's ``prefect.context.update(...)`` does.
    """

    __hash__ = object.__hash__  # one shared instance; Mapping's __eq__ would make it unhashable

    # --- reading -------------------------------------------------------------------------

    def get(self, key: str, default: Any = None) -> Any:
        values = _current.get()
        if key in values:
            return values[key]
        if key == "logger":
            return logging.getLogger("headwater")
        return default

    def __getitem__(self, key: str) -> Any:
        values = _current.get()
        if key in values:
            return values[key]
        if key == "logger":
            return logging.getLogger("headwater")
        raise KeyError(key)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        try:
            return self[key]
        except KeyError:
            raise AttributeError(f"headwater.context has no value {key!r}; known now: {sorted(_current.get())}") from None

    def __contains__(self, key: object) -> bool:
        return key in _current.get()

    def __iter__(self) -> Iterator[str]:
        return iter(dict(_current.get()))

    def __len__(self) -> int:
        return len(_current.get())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(_current.get()) == dict(other)
        return NotImplemented

    def keys(self) -> list[str]:  # type: ignore[override]  # a list, as before (Prefect 1's DotDict gives a view)
        return list(_current.get())

    def to_dict(self) -> dict[str, Any]:
        """A copy of the current values, as a plain dict (Prefect 1's ``context.to_dict()``)."""
        return dict(_current.get())

    def copy(self) -> dict[str, Any]:
        """A copy of the current values, as a plain dict."""
        return dict(_current.get())

    # --- writing (copy on write: the scope's mapping is replaced, never mutated) ----------

    def update(self, *args: Mapping[str, Any] | Iterable[tuple[str, Any]], **kwargs: Any) -> None:  # type: ignore[override]
        """Set values for the rest of the current scope: ``context.update({"a": 1}, b=2)``."""
        if len(args) > 1:
            raise TypeError(f"context.update() takes at most one positional mapping, got {len(args)}.")
        merged = dict(_current.get())
        if args:
            merged.update(args[0])
        merged.update(kwargs)
        _check_keys(merged)
        _current.set(merged)

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __delitem__(self, key: str) -> None:
        values = _current.get()
        if key not in values:
            raise KeyError(key)
        _current.set({k: v for k, v in values.items() if k != key})

    def __setattr__(self, key: str, value: Any) -> None:
        if key.startswith("__"):
            raise AttributeError(f"headwater.context cannot set {key!r}: dunder names are not context values.")
        self[key] = value

    def __delattr__(self, key: str) -> None:
        try:
            del self[key]
        except KeyError:
            raise AttributeError(f"headwater.context has no value {key!r} to delete") from None

    def pop(self, key: str, default: Any = _MISSING) -> Any:
        values = _current.get()
        if key not in values:
            if default is _MISSING:
                raise KeyError(key)
            return default
        value = values[key]
        _current.set({k: v for k, v in values.items() if k != key})
        return value

    def setdefault(self, key: str, default: Any = None) -> Any:
        values = _current.get()
        if key in values:
            return values[key]
        self.update({key: default})
        return default

    def clear(self) -> None:
        """Remove every value for the rest of the current scope."""
        _current.set({})

    # --- scoping -------------------------------------------------------------------------

    @contextmanager
    def __call__(self, *args: Mapping[str, Any], **kwargs: Any) -> Iterator[Context]:
        """Add values for the duration of the ``with`` block (nested blocks stack).

        ``with context({"a": 1}, b=2):`` takes mappings and keywords, as Prefect 1's does;
        whatever the block changes (``update``, assignment) is undone when it ends.
        """
        merged = dict(_current.get())
        for values in args:
            merged.update(values or {})
        merged.update(kwargs)
        _check_keys(merged)
        token = _current.set(merged)
        try:
            yield self
        finally:
            _current.reset(token)

    def _replace(self, values: Mapping[str, Any]) -> contextvars.Token[Mapping[str, Any]]:
        """Engine use: swap in a whole mapping without merging (cheap on the hot path)."""
        return _current.set(values)

    def _reset(self, token: contextvars.Token[Mapping[str, Any]]) -> None:
        _current.reset(token)

    def __repr__(self) -> str:
        return f"<headwater.context {sorted(_current.get())}>"


def _check_keys(values: Mapping[Any, Any]) -> None:
    bad = [k for k in values if not isinstance(k, str)]
    if bad:
        raise TypeError(f"headwater.context keys must be strings (they are read as context.<key>), got {bad[0]!r}.")


context = Context()
