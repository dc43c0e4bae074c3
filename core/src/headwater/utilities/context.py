"""``headwater.context``: what a running task can read about its run.

A dict-like view over a :class:`contextvars.ContextVar`, so every thread and every task run
sees its own values. Inside a task run it holds ``logger``, ``flow_name``, ``flow_run_id``,
``flow_run_name``, ``task_name``, ``task_slug``, ``task_full_name`` (``name[map_index]`` for a
mapped child), ``task_tags``, ``map_index``, ``parameters``, ``task_run_count``,
``scheduled_start_time``, ``date``, ``today``/``today_nodash``, ``yesterday``, ``tomorrow``
(and their ``_nodash`` forms) and anything passed to ``flow.run(context={...})``.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

__all__ = ["Context", "context"]

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_current: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar("headwater_context", default=_EMPTY)


class Context:
    """Read with ``context.get("key")``, ``context["key"]`` or ``context.key``; scope with ``with context(key=value):``."""

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

    def keys(self) -> list[str]:
        return list(_current.get())

    def to_dict(self) -> dict[str, Any]:
        """A copy of the current values."""
        return dict(_current.get())

    @contextmanager
    def __call__(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> Iterator[Context]:
        """Add ``values`` for the duration of the ``with`` block (nested blocks stack)."""
        merged = {**_current.get(), **(values or {}), **kwargs}
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


context = Context()
