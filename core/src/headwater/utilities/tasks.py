"""Prefect 1's ``prefect.utilities.tasks``: helpers for writing and wiring tasks."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from headwater import signals
from headwater.core.apply_map import apply_map
from headwater.core.edge import unmapped
from headwater.core.task import as_task, tags, task
from headwater.utilities.context import context

__all__ = ["task", "as_task", "tags", "unmapped", "defaults_from_attrs", "pause_task", "apply_map"]

_F = TypeVar("_F", bound=Callable[..., Any])


def defaults_from_attrs(*attr_args: str) -> Callable[[_F], _F]:
    """Decorate a Task's ``run``: each named argument left ``None`` takes the task's attribute of that name.

    So ``MyTask(query="select 1")`` sets a default that ``run(query=...)`` can override::

        class Query(Task):
            def __init__(self, query=None, **kwargs):
                self.query = query
                super().__init__(**kwargs)

            @defaults_from_attrs("query")
            def run(self, query=None):
                ...
    """

    def decorator(method: _F) -> _F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            for name in attr_args:
                if kwargs.get(name) is None:
                    kwargs[name] = getattr(self, name, None)
            return method(self, *args, **kwargs)

        return wrapper  # type: ignore[return-value]

    for name in attr_args:
        if not isinstance(name, str):
            raise TypeError(f"defaults_from_attrs() takes attribute names (strings), got {name!r}.")
    return decorator


def pause_task(message: str | None = None, duration: timedelta | None = None) -> None:
    """Pause the running task (it ends Paused) unless this run is a resume (``context.resume``).

    With ``duration``, the pause ends by itself: run through the API, the scheduler resumes the
    task when ``duration`` has passed (the Paused state's ``start_time``), as Prefect 1 did.
    """
    if context.get("resume", False):
        return
    message = message or "pause_task signal raised during task execution."
    if duration is None:
        raise signals.PAUSE(message)
    raise signals.PAUSE(message, start_time=time.time() + duration.total_seconds())
