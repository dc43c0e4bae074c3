"""In-process, sequential execution: the default, and the fastest for small tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from headwater.executors.base import FIRST_COMPLETED, Executor

__all__ = ["LocalExecutor", "DoneFuture"]


class DoneFuture:
    """A future that is already finished (``submit`` ran the call)."""

    __slots__ = ("_value", "_error")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value = value
        self._error = error

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class LocalExecutor(Executor):
    """Runs each task run immediately, in this thread."""

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> DoneFuture:
        try:
            return DoneFuture(fn(*args, **kwargs))
        except Exception as exc:  # the engine's task runner catches task errors; this is a safety net
            return DoneFuture(error=exc)

    def wait(
        self, futures: Iterable[Any], timeout: float | None = None, return_when: str = FIRST_COMPLETED
    ) -> tuple[set[Any], set[Any]]:
        return set(futures), set()
