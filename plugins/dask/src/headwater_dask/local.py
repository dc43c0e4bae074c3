"""``LocalDaskExecutor``: task runs on dask's local schedulers (threads, processes, synchronous), no cluster.

Each time the engine waits, the calls submitted since the last wait become one dask graph
(one node per task run) that a background thread computes with ``dask.threaded.get``,
``dask.multiprocessing.get`` or ``dask.local.get_sync``, on a pool that lives for the flow
run. With threads (and synchronously) each task run's future is set as soon as that call
returns; with processes, when its graph has been computed (how dask's multiprocessing
scheduler hands back results).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs

from headwater.plugins import FIRST_COMPLETED, Executor
from headwater_dask.worker import (
    UnpicklableArgumentError,
    describe_unpicklable,
    dumps_call,
    loads_outcome,
    replay_records,
    run_payload,
)

__all__ = ["LocalDaskExecutor", "SCHEDULERS"]

SCHEDULERS = {"threads": "threads", "threading": "threads", "processes": "processes", "multiprocessing": "processes",
              "synchronous": "synchronous", "sync": "synchronous", "single-threaded": "synchronous"}
"""Accepted ``scheduler`` names (Prefect 1's and dask's spellings) and what they mean."""


def _scheduler(value: str) -> str:
    try:
        return SCHEDULERS[value]
    except KeyError:
        raise ValueError(
            f"LocalDaskExecutor: scheduler={value!r} is not one of dask's local schedulers; use 'threads', "
            "'processes' or 'synchronous'."
        ) from None


@attrs.define(slots=False, eq=False)
class LocalDaskExecutor(Executor):
    """Runs task runs with dask's local schedulers (no ``distributed`` cluster).

    ``LocalDaskExecutor(scheduler="threads", num_workers=8)`` (Prefect 1's arguments):
    ``scheduler`` is ``"threads"`` (the default), ``"processes"`` or ``"synchronous"``;
    ``num_workers`` defaults to the number of CPUs. With processes, calls and results travel
    with cloudpickle and task logs come back with the results.
    """

    scheduler: str = attrs.field(default="threads", converter=_scheduler)
    num_workers: int | None = None
    _pool: Any = attrs.field(default=None, init=False, repr=False)
    _state: _LocalRun | None = attrs.field(default=None, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.num_workers is not None and self.num_workers < 1:
            raise ValueError(f"LocalDaskExecutor: num_workers must be at least 1, got {self.num_workers}.")

    def __getstate__(self) -> dict[str, Any]:
        return {"scheduler": self.scheduler, "num_workers": self.num_workers, "_pool": None, "_state": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return (self.scheduler, self.num_workers) == (other.scheduler, other.num_workers)

    __hash__ = object.__hash__

    @contextmanager
    def start(self) -> Iterator[LocalDaskExecutor]:
        """Create the pool for one flow run (threads or spawned processes) and shut it down after it."""
        if self._state is not None:
            raise RuntimeError("LocalDaskExecutor.start(): already running a flow run; use one executor per run.")
        workers = self.num_workers or os.cpu_count() or 1
        if self.scheduler == "threads":
            self._pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="headwater-dask")
        elif self.scheduler == "processes":
            self._pool = cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        self._state = _LocalRun(self)
        try:
            yield self
        finally:
            state, self._state = self._state, None
            state.close()
            pool, self._pool = self._pool, None
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> cf.Future[Any]:
        if self._state is None:
            raise RuntimeError("LocalDaskExecutor.submit() called outside `with executor.start():`.")
        return self._state.submit(fn, args, kwargs)

    def wait(
        self, futures: Iterable[Any], timeout: float | None = None, return_when: str = FIRST_COMPLETED
    ) -> tuple[set[Any], set[Any]]:
        if self._state is None:
            raise RuntimeError("LocalDaskExecutor.wait() called outside `with executor.start():`.")
        futures = list(futures)
        self._state.launch()
        done, not_done = cf.wait(futures, timeout=timeout, return_when=return_when)
        return set(done), set(not_done)

    def cancel(self, futures: Collection[Any] | None = None) -> None:
        """The engine calls this once when the flow run is cancelled: calls not started yet end Cancelled.

        dask's local schedulers cannot stop a call that runs (a thread or a pool process
        finishes it), so those task runs finish with their own state; every call of the run
        that has not started is skipped, whichever graph it is in.
        """
        if self._state is not None:
            self._state.cancel()

    def __repr__(self) -> str:
        return f"<LocalDaskExecutor(scheduler={self.scheduler!r}, num_workers={self.num_workers})>"


class _LocalRun:
    """Calls submitted since the last wait, and the graphs being computed."""

    def __init__(self, executor: LocalDaskExecutor) -> None:
        self.executor = executor
        self.scheduler = executor.scheduler
        self.pool = executor._pool
        self.pending: list[tuple[cf.Future[Any], Any]] = []
        self.lock = threading.Lock()
        self.cancelled = threading.Event()
        self.threads: list[threading.Thread] = []
        self.level = logging.getLogger("headwater").getEffectiveLevel()
        self.names = 0

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        if self.scheduler == "processes":
            try:
                call: Any = dumps_call(fn, args, kwargs, self.level)
            except Exception as exc:
                message = describe_unpicklable(fn, args, kwargs, exc)
                if args and hasattr(args[0], "run"):
                    from headwater.states import Failed

                    future.set_result(Failed(message, UnpicklableArgumentError(message)))
                else:
                    future.set_exception(UnpicklableArgumentError(message))
                return future
        else:
            call = (fn, args, kwargs)
        with self.lock:
            self.pending.append((future, call))
        return future

    def launch(self) -> None:
        """Compute the calls submitted since the last wait as one dask graph (in the background)."""
        with self.lock:
            batch, self.pending = self.pending, []
        if not batch:
            return
        if self.scheduler == "synchronous":
            self._compute(batch)
            return
        thread = threading.Thread(target=self._compute, args=(batch,), name="headwater-dask-graph", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()]
        self.threads.append(thread)
        thread.start()

    def _compute(self, batch: list[tuple[cf.Future[Any], Any]]) -> None:
        prefix = uuid.uuid4().hex[:8]
        dsk: dict[str, Any] = {}
        keys = []
        for i, (future, call) in enumerate(batch):
            key = f"headwater-{prefix}-{i}"
            keys.append(key)
            if self.scheduler == "processes":
                dsk[key] = (run_payload, call)
            else:
                dsk[key] = (_Call(self, future, call),)
        try:
            if self.scheduler == "threads":
                from dask.threaded import get

                results = get(dsk, keys, pool=self.pool)
            elif self.scheduler == "processes":
                from dask.multiprocessing import get as mp_get

                results = mp_get(dsk, keys, pool=self.pool, chunksize=1)
            else:
                from dask.local import get_sync

                results = get_sync(dsk, keys)
        except BaseException as exc:  # noqa: BLE001 - handed to every future of the graph
            for future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        if self.scheduler == "processes":
            for (future, _), data in zip(batch, results, strict=True):
                try:
                    value, records = loads_outcome(data)
                    if records:
                        replay_records(records)
                    future.set_result(value)
                except BaseException as exc:  # noqa: BLE001
                    future.set_exception(exc)

    def cancel(self) -> int:
        self.cancelled.set()
        with self.lock:
            batch, self.pending = self.pending, []
        for future, _ in batch:
            future.set_result(_cancelled())
        return len(batch)

    def close(self) -> None:
        self.cancel()
        for thread in self.threads:
            thread.join()


def _cancelled() -> Any:
    from headwater.states import Cancelled

    return Cancelled("Flow run was cancelled before this task run started on dask's local scheduler.")


class _Call:
    """One call as a dask task: runs it and sets its future right away (threads, synchronous)."""

    __slots__ = ("run", "future", "call")

    def __init__(self, run: _LocalRun, future: cf.Future[Any], call: Any) -> None:
        self.run, self.future, self.call = run, future, call

    def __call__(self) -> None:
        if self.run.cancelled.is_set():
            self.future.set_result(_cancelled())
            return
        fn, args, kwargs = self.call
        try:
            value = fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter
            self.future.set_exception(exc)
        else:
            self.future.set_result(value)
