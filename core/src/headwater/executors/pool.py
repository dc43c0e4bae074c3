"""Thread and process pools from :mod:`concurrent.futures`."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import queue
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import cloudpickle

from headwater.executors.base import FIRST_COMPLETED, Executor

__all__ = ["ThreadExecutor", "ProcessExecutor", "UnpicklableResultError"]


class _PoolExecutor(Executor):
    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"{type(self).__name__}: max_workers must be at least 1, got {max_workers}.")
        self.max_workers = max_workers
        self._pool: cf.Executor | None = None
        self._done: queue.SimpleQueue[cf.Future[Any]] = queue.SimpleQueue()
        """Every future this executor hands out, put here when it finishes (the completion queue)."""

    def _make_pool(self) -> cf.Executor:
        raise NotImplementedError

    @contextmanager
    def start(self) -> Iterator[Executor]:
        self._pool = self._make_pool()
        try:
            yield self
        finally:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)

    def _require_pool(self) -> cf.Executor:
        if self._pool is None:
            raise RuntimeError(f"{type(self).__name__}.submit() called outside `with executor.start():`.")
        return self._pool

    def wait(
        self, futures: Iterable[Any], timeout: float | None = None, return_when: str = FIRST_COMPLETED
    ) -> tuple[set[Any], set[Any]]:
        done, not_done = cf.wait(list(futures), timeout=timeout, return_when=return_when)
        return set(done), set(not_done)

    def completed(self, pending: Collection[Any], timeout: float | None = None) -> list[Any]:
        """Done futures from the completion queue: O(finished), however many are in flight."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                first = self._done.get(timeout=wait) if wait is None or wait > 0 else self._done.get_nowait()
            except queue.Empty:
                return []
            found = [first] if first in pending else []
            while True:
                try:
                    future = self._done.get_nowait()
                except queue.Empty:
                    break
                if future in pending:
                    found.append(future)
            if found or not pending:
                return found  # else: only futures someone else waited for; keep waiting for ours

    def _track(self, future: cf.Future[Any]) -> cf.Future[Any]:
        future.add_done_callback(self._done.put)
        return future

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_pool"] = None
        state["_done"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._done = queue.SimpleQueue()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(max_workers={self.max_workers})>"


class ThreadExecutor(_PoolExecutor):
    """Runs task runs on a pool of threads: good for I/O-bound tasks."""

    def _make_pool(self) -> cf.Executor:
        return cf.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="headwater-task")

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> cf.Future[Any]:
        return self._track(self._require_pool().submit(fn, *args, **kwargs))


class UnpicklableResultError(TypeError):
    """A worker process finished a call but could not send its result back."""


def _run_pickled(payload: bytes) -> bytes:
    fn, args, kwargs = cloudpickle.loads(payload)
    value = fn(*args, **kwargs)
    try:
        return cloudpickle.dumps(value)
    except Exception as exc:
        result = getattr(value, "result", value)  # a task run returns a State holding the value
        raise UnpicklableResultError(
            f"ProcessExecutor could not send a {type(result).__name__} result back from the worker process "
            f"({exc}). Return a picklable value, or run this flow on a ThreadExecutor or LocalExecutor."
        ) from None


class ProcessExecutor(_PoolExecutor):
    """Runs task runs in worker processes (spawned, so safe with threads): good for CPU-bound tasks.

    Calls and results travel with cloudpickle, so tasks defined in ``__main__`` or as
    closures work. Mapped children travel in chunks of ``chunksize`` (default: about four
    chunks per worker, at most 256 children each), so a map over many small items does not
    pay a round trip per item; ``chunksize=1`` sends each child on its own.
    """

    def __init__(self, max_workers: int | None = None, chunksize: int | None = None) -> None:
        super().__init__(max_workers)
        if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
            raise ValueError(f"ProcessExecutor: chunksize must be a whole number >= 1, got {chunksize!r}.")
        self.chunksize = chunksize

    def _workers(self) -> int:
        return self.max_workers or min(os.cpu_count() or 1, 8)

    def map_chunksize(self, children: int) -> int:
        if self.chunksize is not None:
            return self.chunksize
        return max(1, min(256, children // (self._workers() * 4)))

    def _make_pool(self) -> cf.Executor:
        return cf.ProcessPoolExecutor(max_workers=self._workers(), mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> cf.Future[Any]:
        inner = self._require_pool().submit(_run_pickled, cloudpickle.dumps((fn, args, kwargs)))
        outer: cf.Future[Any] = cf.Future()

        def _unpickle(f: cf.Future[bytes]) -> None:
            try:
                outer.set_result(cloudpickle.loads(f.result()))
            except BaseException as exc:  # noqa: BLE001 - passed to the waiter
                outer.set_exception(exc)

        inner.add_done_callback(_unpickle)
        return self._track(outer)
