"""Thread and process pools from :mod:`concurrent.futures`."""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import pickle
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import cloudpickle

from headwater.executors.base import ALL_COMPLETED, FIRST_COMPLETED, Executor
from headwater.executors.worker_logs import collecting_logs, install_log_capture, replay_logs
from headwater.states import _TASK_RUN_SUCCEEDED

__all__ = ["ThreadExecutor", "ProcessExecutor", "TaskFuture", "UnpicklableResultError"]


class _PoolExecutor(Executor):
    _CHUNKS_PER_WORKER = 4
    _MAX_CHUNK = 4096
    """Default chunks of mapped children: about this many per worker, at most this many children each."""

    def __init__(self, max_workers: int | None = None, chunksize: int | None = None) -> None:
        if max_workers is not None and max_workers < 1:
            raise ValueError(f"{type(self).__name__}: max_workers must be at least 1, got {max_workers}.")
        if chunksize is not None and (isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1):
            raise ValueError(f"{type(self).__name__}: chunksize must be a whole number >= 1, got {chunksize!r}.")
        self.max_workers = max_workers
        self.chunksize = chunksize
        self._pool: cf.Executor | None = None
        self._done: queue.SimpleQueue[cf.Future[Any]] = queue.SimpleQueue()
        """Every future this executor hands out, put here when it finishes (the completion queue)."""

    def _make_pool(self) -> cf.Executor:
        raise NotImplementedError

    def _workers(self) -> int:
        raise NotImplementedError

    def map_chunksize(self, children: int) -> int:
        if self.chunksize is not None:
            return self.chunksize
        return max(1, min(self._MAX_CHUNK, children // (self._workers() * self._CHUNKS_PER_WORKER)))

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
        state.setdefault("chunksize", None)  # pickles made before the option existed
        self.__dict__.update(state)
        self._done = queue.SimpleQueue()

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(max_workers={self.max_workers})>"


_PENDING, _RUNNING, _FINISHED, _CANCELLED = 0, 1, 2, 3
_state_lock = threading.Lock()
"""Guards state changes and callback lists of every :class:`TaskFuture` (held for a few bytecodes)."""


class TaskFuture:
    """The thread pool's future: ``done``, ``result``, ``exception``, ``cancel``, ``add_done_callback``.

    Lighter than ``concurrent.futures.Future`` (no condition variable): a worker finishing a
    call releases one lock and puts the future on its executor's completion queue.
    """

    __slots__ = ("_lock", "_state", "_value", "_error", "_callbacks", "_queue")

    def __init__(self, done_queue: queue.SimpleQueue[Any]) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()  # released when the future is finished or cancelled
        self._state = _PENDING
        self._value: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[TaskFuture], Any]] | None = None
        self._queue = done_queue

    def done(self) -> bool:
        return self._state >= _FINISHED

    def running(self) -> bool:
        return self._state == _RUNNING

    def cancelled(self) -> bool:
        return self._state == _CANCELLED

    def cancel(self) -> bool:
        """Cancel the call if it has not started; True if it is (now) cancelled."""
        with _state_lock:
            if self._state == _CANCELLED:
                return True
            if self._state != _PENDING:
                return False
            self._state = _CANCELLED
        self._settle()
        return True

    def _start(self) -> bool:
        with _state_lock:
            if self._state != _PENDING:
                return False
            self._state = _RUNNING
            return True

    def _finish(self, value: Any, error: BaseException | None) -> None:
        self._value, self._error = value, error
        self._state = _FINISHED
        self._settle()

    def _settle(self) -> None:
        with _state_lock:
            callbacks, self._callbacks = self._callbacks, None
        self._lock.release()
        self._queue.put(self)
        for callback in callbacks or ():
            try:
                callback(self)
            except Exception:  # as concurrent.futures does: a bad callback never breaks the pool
                logging.getLogger("headwater.executors").exception("Exception in a future's done callback")

    def _wait(self, timeout: float | None) -> None:
        if self._state < _FINISHED:
            if not self._lock.acquire(True, -1 if timeout is None else max(0.0, timeout)):
                raise cf.TimeoutError()
            self._lock.release()

    def result(self, timeout: float | None = None) -> Any:
        self._wait(timeout)
        if self._state == _CANCELLED:
            raise cf.CancelledError()
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        if self._state == _CANCELLED:
            raise cf.CancelledError()
        return self._error

    def add_done_callback(self, fn: Callable[[TaskFuture], Any]) -> None:
        with _state_lock:
            if self._state < _FINISHED:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
                return
        fn(self)

    def __repr__(self) -> str:
        state = ("pending", "running", "finished", "cancelled")[self._state]
        return f"<TaskFuture {state}>"


class _ThreadPool:
    """Worker threads taking ``(future, fn, args, kwargs)`` from one queue: no lock per submitted call.

    Threads start on demand, up to ``max_workers``, and live until :meth:`shutdown`.
    """

    def __init__(self, max_workers: int, done_queue: queue.SimpleQueue[Any]) -> None:
        self._max = max_workers
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._done = done_queue
        self._threads: list[threading.Thread] = []
        self._idle = 0
        """Threads waiting for work that no submitted call has counted on yet."""
        self._idle_lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskFuture:
        if self._closed:
            raise RuntimeError("ThreadExecutor: submit() after the flow run's pool was shut down.")
        future = TaskFuture(self._done)
        self._work.put((future, fn, args, kwargs))
        with self._idle_lock:  # as concurrent.futures: take an idle thread's token, or start a thread
            if self._idle > 0:
                self._idle -= 1
                return future
        if len(self._threads) < self._max:
            thread = threading.Thread(target=self._worker, name=f"headwater-task_{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return future

    def _worker(self) -> None:
        work = self._work
        while True:
            item = work.get()
            if item is None:
                return
            future, fn, args, kwargs = item
            del item
            if future._start():
                try:
                    value = fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the future
                    future._finish(None, exc)
                else:
                    future._finish(value, None)
            del future, fn, args, kwargs
            with self._idle_lock:
                self._idle += 1

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        self._closed = True
        if cancel_futures:
            while True:
                try:
                    item = self._work.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in self._threads:
            self._work.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


class ThreadExecutor(_PoolExecutor):
    """Runs task runs on a pool of threads: good for I/O-bound tasks.

    Its own small pool (threads named ``headwater-task_N``, started on demand, at most
    ``max_workers``, by default ``min(32, cpu_count + 4)`` as in ``concurrent.futures``):
    submitting is one queue put and finishing one lock release plus a put on the completion
    queue, so trivial tasks cost little more than on the local executor. Mapped children go to
    the threads in chunks of ``chunksize`` (default: about four chunks per thread, at most 4 096
    children each; 1 when there are fewer children than threads), each child still its own task
    run with its own state. As on the process pool, a thread hands a chunk's states back once it
    has run for :data:`CHUNK_SECONDS` and the engine sends the rest again, so slow children
    spread over every thread whatever the chunk size.
    """

    def _workers(self) -> int:
        return self.max_workers or min(32, (os.cpu_count() or 1) + 4)

    def _make_pool(self) -> Any:
        return _ThreadPool(self._workers(), self._done)

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if _shares_context(fn, args, kwargs):
            kwargs = {"seconds": CHUNK_SECONDS}  # a time-boxed chunk
        return self._require_pool().submit(fn, args, kwargs)

    def wait(
        self, futures: Iterable[Any], timeout: float | None = None, return_when: str = FIRST_COMPLETED
    ) -> tuple[set[Any], set[Any]]:
        futures = list(futures)
        if not all(isinstance(f, TaskFuture) for f in futures):
            return super().wait(futures, timeout, return_when)
        deadline = None if timeout is None else time.monotonic() + timeout
        if return_when == ALL_COMPLETED:
            for future in futures:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    future._wait(remaining)
                except cf.TimeoutError:
                    break
        else:  # FIRST_COMPLETED: poll (the engine itself uses the completion queue, never this)
            pause = 0.0005
            while not any(f.done() for f in futures):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
        done = {f for f in futures if f.done()}
        return done, set(futures) - done


class _ReplayingFuture(cf.Future[Any]):
    """A process pool call's future: ``result()`` first re-emits the call's worker logs here, once.

    Called by the engine in the flow-run thread, so the records reach this process's handlers
    (the terminal, the API's log sink) just before the state they belong with. The worker's
    reply is decoded there too, on the first ``result()``: the pool's manager thread, which
    hands the workers their next calls, only passes the bytes on.
    """

    records: list[dict[str, Any]] | None = None
    _decode: Callable[[_ReplayingFuture, bytes], Any] | None = None
    """Set with a worker's raw reply as the result: turns it into the value (and sets ``records``)."""

    def result(self, timeout: float | None = None) -> Any:
        try:
            value = super().result(timeout)
            if self._decode is None:
                return value
            with self._condition:
                decode, self._decode = self._decode, None
                if decode is None:  # another thread decoded it meanwhile
                    return super().result(0)
                try:
                    self._result = decode(self, value)
                except BaseException as exc:
                    self._result, self._exception = None, exc
                    raise
                return self._result
        finally:
            records, self.records = self.records, None
            if records:
                replay_logs(records)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        error = super().exception(timeout)
        if error is None and self._decode is not None:
            try:
                self.result(0)
            except BaseException as exc:  # noqa: BLE001 - what a decoded reply raises is the call's exception
                return exc
        return error


class UnpicklableResultError(TypeError):
    """A worker process finished a call but could not send its result back."""


_SUCCESS_MESSAGE = _TASK_RUN_SUCCEEDED
"""The message ``run_task`` gives a plain Success: such states travel back as ``(value, ts)``."""


def _unpicklable(value: Any, exc: BaseException) -> UnpicklableResultError:
    result = getattr(value, "result", value)  # a task run returns a State holding the value
    return UnpicklableResultError(
        f"ProcessExecutor could not send a {type(result).__name__} result back from the worker process "
        f"({exc}). Return a picklable value, or run this flow on a ThreadExecutor or LocalExecutor."
    )


_success_class: list[Any] = []


def _success() -> Any:
    """``headwater.states.Success``, imported once (an import statement per child costs a microsecond)."""
    if not _success_class:
        from headwater.states import Success

        _success_class.append(Success)
    return _success_class[0]


def _compact(state: Any) -> Any:
    """A plain Success as ``(value, ts)``; every other state (failures with their tracebacks) as it is.

    Only for lists of task-run states (which are never tuples); see :func:`_expand`.
    """
    if type(state) is (_success_class[0] if _success_class else _success()) and state.message == _SUCCESS_MESSAGE \
            and state.location is None:
        return (state.result, state.ts)
    return state


def _expand(item: Any) -> Any:
    """The state :func:`_compact` made compact, exactly as it was (its timestamp included)."""
    if type(item) is tuple:
        return (_success_class[0] if _success_class else _success())(_SUCCESS_MESSAGE, item[0], ts=item[1])
    return item


def _columns(states: list[Any]) -> Any:
    """A chunk's compact states as ``(values, timestamps)`` when every one is a plain Success, else as they are."""
    if all(type(s) is tuple for s in states):
        return ([s[0] for s in states], [s[1] for s in states])
    return states


def _expand_all(items: Any) -> list[Any]:
    """:func:`_expand` of each item (or of ``(values, timestamps)`` columns), building each Success
    without its ``__init__`` (a chunk's hot loop).

    Sets exactly the fields ``Success(message, value, ts=ts)`` sets (a test compares every field).
    """
    success = _success_class[0] if _success_class else _success()
    new = object.__new__
    out: list[Any] = []
    append = out.append
    for item in (zip(*items, strict=True) if type(items) is tuple else items):
        if type(item) is tuple:
            state = new(success)
            state.message, state.result, state.location, state.ts = _SUCCESS_MESSAGE, item[0], None, item[1]
            append(state)
        else:
            append(item)
    return out


def _decode_chunk(future: _ReplayingFuture, raw: bytes) -> list[Any]:
    """A chunk's reply: its task-run states (the worker's logs go to ``future.records``)."""
    states, future.records = pickle.loads(raw)
    return _expand_all(states)


def _decode_call(future: _ReplayingFuture, raw: bytes) -> Any:
    """A single call's reply: its value, or the exception it sends (the worker's logs go to ``future.records``)."""
    kind, value, future.records = pickle.loads(raw)
    if kind == 2:
        raise value
    return _expand(value) if kind == 1 else value


def _dumps(obj: Any) -> bytes:
    """``obj`` pickled: by the C pickler when that is what cloudpickle would produce, else by cloudpickle.

    Plain data (a chunk's inputs, its results) pickles several times faster without
    cloudpickle's per-object hook. Whatever cloudpickle would send by value -- objects of
    ``__main__``, of modules registered for pickling by value, lambdas, closures -- goes
    through cloudpickle, as before.
    """
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # local functions and classes, lambdas, ...: cloudpickle's job
        return cloudpickle.dumps(obj)
    if b"__main__" in data or any(name.encode() in data for name in cloudpickle.list_registry_pickle_by_value()):
        return cloudpickle.dumps(obj)
    return data


def _run_pickled(payload: bytes) -> bytes:
    """One call in a worker: ``(kind, value, log records)``.

    ``kind`` 1: a task run's plain Success, compact; 0: any other value as it is; 2: an
    exception to raise (the result could not be pickled). The records are the call's
    ``headwater`` logs, which the flow-run process re-emits.
    """
    fn, args, kwargs = cloudpickle.loads(payload)
    with collecting_logs() as records:
        value = fn(*args, **kwargs)
    compact = _compact(value)
    try:
        return _dumps((1 if compact is not value else 0, compact, records))
    except Exception as exc:
        return cloudpickle.dumps((2, _unpicklable(value, exc), records))


def _started() -> None:
    """A no-op call: submitted once per worker as the pool starts, so every worker starts then."""


_WORKER_SPECS: dict[str, tuple[Any, dict[str, Any], Any]] = {}
"""In a worker process: ``key -> (task, base context, result)`` of each mapped task, loaded once per worker."""


def _init_worker(environ: dict[str, str] | None, log_level: int | None = None) -> None:
    """Worker start: a forkserver child gets the parent's environment as it is now (as a spawned one does).

    With ``log_level`` (the flow-run process's ``headwater`` level), task logs are collected
    per call and sent back instead of going to this process's handlers.
    """
    if log_level is not None:
        install_log_capture(log_level, propagate=False)
    if environ is not None:  # only what differs: each putenv/unsetenv scans the whole C environment
        for key in [k for k in os.environ if k not in environ]:
            del os.environ[key]
        for key, value in environ.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
    _WORKER_SPECS.clear()


def _run_batch(key: str, path: str, payload: bytes) -> bytes:
    """Run a chunk of mapped children in a worker: the task comes from the per-worker cache, the items from ``payload``.

    Each item is ``(index, inputs)`` (context: the task's base context with this ``map_index``),
    ``(index, inputs, changes, False)`` (the base context updated with ``changes``) or
    ``(index, inputs, context, True)`` (a whole context). Returns the compact states, in order.
    """
    from headwater.engine.task_runner import run_task

    spec = _WORKER_SPECS.get(key)
    if spec is None:
        with open(path, "rb") as fh:
            spec = _WORKER_SPECS[key] = cloudpickle.loads(fh.read())
    task, base, result = spec
    items, own_result = cloudpickle.loads(payload)
    if own_result is not None:
        result = own_result[0]
    name = base.get("task_name")
    states = []
    logs: list[dict[str, Any]] = []
    for item in items:
        index = item[0]
        if len(item) == 2:
            ctx = base.copy()
            ctx["map_index"] = index
            ctx["task_full_name"] = f"{name}[{index}]"
        elif item[3]:
            ctx = item[2]
        else:
            ctx = base.copy()
            ctx["map_index"] = index
            ctx["task_full_name"] = f"{name}[{index}]"
            ctx.update(item[2])
        with collecting_logs() as records:
            state = run_task(task, item[1], ctx, 1, result)
        logs.extend(records)
        states.append(_compact(state))
    return _dump_states(task, states, logs)


CHUNK_SECONDS = 0.2
"""A worker returns a chunk's states once it has run this long (the engine sends the rest again):
slow children report as they finish, and spread over every worker, whatever the chunk size."""


def _run_chunk(key: str, path: str, payload: bytes, seconds: float | None = None) -> bytes:
    """Run children that share their task's context (shipped once per worker); ``payload``: ``[(index, inputs)]``.

    Returns the states of the children that ran within ``seconds`` (at least one; see :data:`CHUNK_SECONDS`).
    """
    from headwater.engine.task_runner import _is_plain, _run_plain_children, run_task_batch

    spec = _WORKER_SPECS.get(key)
    if spec is None:
        with open(path, "rb") as fh:
            spec = _WORKER_SPECS[key] = cloudpickle.loads(fh.read())
    task, ctx, result = spec
    runs = pickle.loads(payload)
    with collecting_logs() as records:
        if _is_plain(task, result):  # plain successes come back as (value, ts) without becoming states first
            states = _run_plain_children(task, runs, ctx, compact=True, seconds=seconds)
        else:
            states = [_compact(s) for s in run_task_batch(task, runs, result, ctx, seconds=seconds)]
    return _dump_states(task, states, records)


def _dump_states(task: Any, states: list[Any], records: list[dict[str, Any]]) -> bytes:
    """``(compact states, log records)`` as bytes; a child whose result cannot be pickled becomes a Failed state naming why."""
    try:
        return _dumps((_columns(states), records))
    except Exception:  # fail only the children whose results cannot travel
        pass
    for i, state in enumerate(states):
        try:
            cloudpickle.dumps(state)
        except Exception as exc:
            from headwater.states import Failed

            error = _unpicklable(_expand(state), exc)
            states[i] = Failed(f"Executor error while running task {task.name!r}: {error}", error)
    return cloudpickle.dumps((states, records))


_PER_CHILD = frozenset({"map_index", "task_full_name"})
_MISSING = object()


class _Spec:
    """A mapped task shipped to the workers once per flow run: its file and the context it was shipped with."""

    __slots__ = ("task", "key", "path", "base", "result")

    def __init__(self, task: Any, key: str, path: str, base: dict[str, Any], result: Any) -> None:
        self.task, self.key, self.path, self.base, self.result = task, key, path, base, result


_PRELOAD = ["headwater.engine.task_runner", "headwater.executors.pool", "cloudpickle", "concurrent.futures.process",
            "multiprocessing.synchronize", "multiprocessing.popen_forkserver", "headwater.executors._forkserver_preload"]
"""Imported once by the forkserver, not by each worker (the two ``multiprocessing`` modules: a worker's unpickling
of its queues and locks imports them)."""

FORKSERVER_IDLE_SECONDS = 2.0
"""How long the forkserver outlives the last ProcessExecutor flow run of this process (it is restarted when needed)."""

_server_lock = threading.Lock()
_server_users = 0
_server_timer: threading.Timer | None = None


def _mp_context(start_method: str | None) -> Any:
    if start_method is None:
        start_method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        # Workers fork from one server process that imported the engine once, instead of each
        # importing it anew; modules someone else asked the server to preload are kept.
        from multiprocessing import forkserver

        current = list(getattr(forkserver._forkserver, "_preload_modules", []) or [])
        context.set_forkserver_preload(current + [m for m in _PRELOAD if m not in current])
    return context


def _server_in_use() -> None:
    """A flow run starts on forkserver workers: keep the server (start it, with the main script preloaded)."""
    global _server_users, _server_timer
    with _server_lock:
        _server_users += 1
        if _server_timer is not None:
            _server_timer.cancel()
            _server_timer = None
        _start_server()


def _start_server() -> None:
    """Start the forkserver now (no-op when it runs), telling the preload which main script to import once."""
    from multiprocessing import forkserver, spawn

    data = spawn.get_preparation_data("headwater")
    if data.get("init_main_from_path"):
        import json

        os.environ["_HEADWATER_FORKSERVER_MAIN"] = json.dumps({
            "main_path": data["init_main_from_path"], "sys_argv": data.get("sys_argv", []),
            "sys_path": data.get("sys_path", []), "dir": data.get("dir", os.getcwd()),
        })
    try:
        forkserver.ensure_running()
    finally:
        os.environ.pop("_HEADWATER_FORKSERVER_MAIN", None)


def _server_released() -> None:
    """A flow run ended: stop the server once no run used it for :data:`FORKSERVER_IDLE_SECONDS`.

    Runs in quick succession share one server; a process that is done with process pools is
    left with no helper process behind it.
    """
    global _server_users, _server_timer
    with _server_lock:
        _server_users -= 1
        if _server_users > 0:
            return
        timer = threading.Timer(FORKSERVER_IDLE_SECONDS, _stop_idle_server)
        timer.daemon = True
        _server_timer = timer
        timer.start()


def _stop_idle_server() -> None:
    global _server_timer
    with _server_lock:
        if _server_users > 0 or _server_timer is None:
            return
        _server_timer = None
        from multiprocessing import forkserver

        stop = getattr(forkserver._forkserver, "_stop", None)
        if stop is not None:
            try:
                stop()
            except OSError:  # already gone
                pass


class ProcessExecutor(_PoolExecutor):
    """Runs task runs in worker processes: good for CPU-bound tasks.

    Workers are started from a fresh process, never forked from this one, so the executor is
    safe in a process with threads: with ``start_method="forkserver"`` (the default where the
    platform has it) they fork from a server process that imported the engine once, with
    ``"spawn"`` each starts a new interpreter. Either way a worker gets this process's
    environment, working directory and ``sys.path`` as they are when the flow run starts.

    Calls and results travel with cloudpickle, so tasks defined in ``__main__`` or as
    closures work. Mapped children travel in chunks of ``chunksize`` (default: about four
    chunks per worker, at most 4 096 children each), so a map over many small items does not
    pay a round trip per item; ``chunksize=1`` sends each child on its own. A worker sends a
    chunk's states back once it has run for :data:`CHUNK_SECONDS` (0.2 s) and the engine sends
    the rest again, so slow children report as they finish and spread over every worker. A mapped task
    (with its context) is shipped to each worker once per flow run; a chunk carries only each
    child's inputs and map index, and a successful child comes back as its value and timestamp.
    """

    def __init__(self, max_workers: int | None = None, chunksize: int | None = None,
                 start_method: str | None = None) -> None:
        super().__init__(max_workers, chunksize)
        methods = multiprocessing.get_all_start_methods()
        if start_method is not None and (start_method == "fork" or start_method not in methods):
            allowed = ", ".join(repr(m) for m in methods if m != "fork")
            raise ValueError(
                f"ProcessExecutor: start_method {start_method!r} is not available; use one of {allowed} "
                "('fork' is refused: forking a process with threads can deadlock)."
            )
        self.start_method = start_method
        self._spec_dir: str | None = None
        self._specs: dict[int, _Spec] = {}
        self._serial = 0

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_spec_dir"], state["_specs"], state["_serial"] = None, {}, 0  # per flow run, never shipped
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("start_method", None)  # pickles made before this option existed
        super().__setstate__({**state, "_spec_dir": None, "_specs": {}, "_serial": 0})

    def _workers(self) -> int:
        return self.max_workers or min(os.cpu_count() or 1, 8)

    def _make_pool(self) -> cf.Executor:
        context = _mp_context(self.start_method)
        environ = dict(os.environ) if context.get_start_method() == "forkserver" else None
        level = logging.getLogger("headwater").getEffectiveLevel()
        pool = cf.ProcessPoolExecutor(
            max_workers=self._workers(), mp_context=context, initializer=_init_worker, initargs=(environ, level),
        )
        for _ in range(self._workers()):  # every worker starts now, side by side, not when the flow's work first
            pool.submit(_started)         # waits for it (each submit with no idle worker starts one)
        return pool

    @contextmanager
    def start(self) -> Iterator[Executor]:
        import tempfile  # here, not at import: `import headwater` stays light

        self._spec_dir = tempfile.mkdtemp(prefix="headwater-pool-")
        self._specs = {}
        self._serial = 0
        uses_server = _mp_context(self.start_method).get_start_method() == "forkserver"
        if uses_server:
            _server_in_use()
        try:
            with super().start():
                yield self
        finally:
            spec_dir, self._spec_dir = self._spec_dir, None
            self._specs = {}
            import shutil

            shutil.rmtree(spec_dir, ignore_errors=True)
            if uses_server:
                _server_released()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> cf.Future[Any]:
        pool = self._require_pool()
        batch = fn is _run_task_batch() and not kwargs and self._spec_dir is not None and len(args) >= 2 and args[1]
        if batch and _shares_context(fn, args, kwargs):
            inner = self._submit_chunk(pool, *args)
            expand = True
        elif batch and len(args) <= 3:
            inner = self._submit_batch(pool, *args)
            expand = True
        else:
            inner = pool.submit(_run_pickled, cloudpickle.dumps((fn, args, kwargs)))
            expand = False
        outer = _ReplayingFuture()
        decode = _decode_chunk if expand else _decode_call

        def _unpickle(f: cf.Future[bytes]) -> None:
            if outer.cancelled():
                return
            try:
                raw = f.result()
            except BaseException as exc:  # noqa: BLE001 - passed to the waiter
                outer.set_exception(exc)
                return
            outer._decode = decode  # decoded by the waiter, not here in the pool's manager thread
            outer.set_result(raw)

        inner.add_done_callback(_unpickle)
        outer.add_done_callback(lambda f: inner.cancel() if f.cancelled() else None)
        return self._track(outer)

    def _spec(self, task: Any, ctx: dict[str, Any], result: Any, whole: bool = False) -> _Spec:
        """The shipped form of ``task`` for this flow run, written once to the run's spec directory."""
        spec = self._specs.get(id(task))
        if whole or spec is None or spec.task is not task:
            assert self._spec_dir is not None
            key = str(self._serial)
            self._serial += 1
            path = os.path.join(self._spec_dir, f"{key}.pkl")
            base = ctx if whole else {k: v for k, v in ctx.items() if k not in _PER_CHILD}
            with open(path, "wb") as fh:
                fh.write(cloudpickle.dumps((task, base, result)))
            spec = self._specs[id(task)] = _Spec(task, key, path, base, result)
        return spec

    def _submit_chunk(self, pool: cf.Executor, task: Any, items: list[tuple[int, dict[str, Any]]], result: Any,
                      ctx: dict[str, Any]) -> cf.Future[bytes]:
        """Children sharing one context (``run_task_batch(task, [(index, inputs)], result, context)``)."""
        spec = self._specs.get(id(task))
        if spec is None or spec.task is not task or spec.base is not ctx or spec.result is not result:
            spec = self._spec(task, ctx, result, whole=True)
        return pool.submit(_run_chunk, spec.key, spec.path, _dumps(items), CHUNK_SECONDS)

    def _submit_batch(self, pool: cf.Executor, task: Any, runs: list[tuple[dict[str, Any], Any]],
                      result: Any = None) -> cf.Future[bytes]:
        spec = self._spec(task, dict(runs[0][1]), result)
        base, name = spec.base, spec.base.get("task_name")
        items: list[tuple[Any, ...]] = []
        for inputs, ctx in runs:
            index = ctx.get("map_index")
            changes = {k: v for k, v in ctx.items() if k not in _PER_CHILD and base.get(k, _MISSING) is not v}
            if "map_index" not in ctx or ctx.get("task_full_name") != f"{name}[{index}]" or not base.keys() <= ctx.keys():
                items.append((index, inputs, ctx, True))  # not base + changes (a key removed, say): send it whole
            elif changes:
                items.append((index, inputs, changes, False))
            else:
                items.append((index, inputs))
        own = None if result is spec.result else (result,)
        return pool.submit(_run_batch, spec.key, spec.path, cloudpickle.dumps((items, own)))


_batch_fn: list[Callable[..., Any]] = []


def _shares_context(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether a call is ``run_task_batch(task, chunk, result, context)``: children sharing their task's context."""
    return fn is _run_task_batch() and not kwargs and len(args) == 4 and args[3] is not None


def _run_task_batch() -> Callable[..., Any]:
    """The engine's ``run_task_batch`` (imported on first use: the engine imports this module)."""
    if not _batch_fn:
        from headwater.engine.task_runner import run_task_batch

        _batch_fn.append(run_task_batch)
    return _batch_fn[0]
