"""The executor interface the engine talks to (and that executor plugins implement)."""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Executor", "FIRST_COMPLETED", "ALL_COMPLETED"]

FIRST_COMPLETED = "FIRST_COMPLETED"
ALL_COMPLETED = "ALL_COMPLETED"


class Executor(abc.ABC):
    """Runs callables and hands back futures.

    The engine enters :meth:`start` once per flow run, calls :meth:`submit` for every task
    run that is ready, and :meth:`wait` for the next ones to finish. Futures need
    ``done()`` and ``result()`` (``concurrent.futures`` and ``dask.distributed`` ones fit).
    """

    @contextmanager
    def start(self) -> Iterator[Executor]:
        """Set up workers for one flow run and tear them down after it."""
        yield self

    @abc.abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Start ``fn(*args, **kwargs)`` and return a future for its result."""

    @abc.abstractmethod
    def wait(
        self, futures: Iterable[Any], timeout: float | None = None, return_when: str = FIRST_COMPLETED
    ) -> tuple[set[Any], set[Any]]:
        """Block until some (``FIRST_COMPLETED``) or all futures are done or ``timeout`` passes; ``(done, not_done)``."""

    def map_chunksize(self, children: int) -> int:
        """How many mapped children to send per call (1: each on its own).

        Process pools answer more than 1, so a mapped task's children travel in chunks, as
        ``ProcessPoolExecutor.map(chunksize=...)`` does.
        """
        return 1

    def completed(self, pending: Collection[Any], timeout: float | None = None) -> list[Any]:
        """Futures of ``pending`` that are done: at least one, unless ``timeout`` seconds pass first.

        The engine calls this once per scheduling step. The default asks :meth:`wait`, which
        looks at every pending future; executors with a completion queue (the thread and
        process pools) answer from the queue, so a step costs what finished, not what is in
        flight. ``pending`` supports ``in``.
        """
        done, _ = self.wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    def cancel(self, futures: Collection[Any]) -> None:
        """Cancel in-flight ``futures``: the engine calls this once when the flow run is cancelled.

        A future that then raises ``CancelledError`` ends its task run Cancelled. The default
        cancels what has not started yet (``future.cancel()``, as ``concurrent.futures``
        allows), so running task bodies finish; executors that can stop running work (Dask's
        ``client.cancel``) override it.
        """
        for future in futures:
            cancel = getattr(future, "cancel", None)
            if cancel is not None:
                cancel()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}>"
