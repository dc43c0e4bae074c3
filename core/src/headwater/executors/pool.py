"""Thread and process pools from :mod:`concurrent.futures`."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
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

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(max_workers={self.max_workers})>"


class ThreadExecutor(_PoolExecutor):
    """Runs task runs on a pool of threads: good for I/O-bound tasks."""

    def _make_pool(self) -> cf.Executor:
        return cf.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="headwater-task")

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> cf.Future[Any]:
        return self._require_pool().submit(fn, *args, **kwargs)


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
    closures work.
    """

    def _make_pool(self) -> cf.Executor:
        workers = self.max_workers or min(os.cpu_count() or 1, 8)
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> cf.Future[Any]:
        inner = self._require_pool().submit(_run_pickled, cloudpickle.dumps((fn, args, kwargs)))
        outer: cf.Future[Any] = cf.Future()

        def _unpickle(f: cf.Future[bytes]) -> None:
            try:
                outer.set_result(cloudpickle.loads(f.result()))
            except BaseException as exc:  # noqa: BLE001 - passed to the waiter
                outer.set_exception(exc)

        inner.add_done_callback(_unpickle)
        return outer
