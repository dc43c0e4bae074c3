"""What runs on a Dask worker (or a dask process-pool worker): unpack one call, run it, pack the outcome.

A call travels as one cloudpickle payload (so tasks defined in ``__main__``, flow files and
closures work, exactly as with headwater's ``ProcessExecutor``). Values shared by many calls
(a large constant of a mapped task) are not in the payload: they are scattered once and
handed to :func:`run_payload` by Dask, and the payload refers to them by key through
pickle's persistent IDs.

While the call runs, records of the ``headwater`` loggers emitted in its context (the
context logger, ``log_stdout`` prints, a timeout thread's logs) are collected and sent back
with the outcome, so the flow-run process re-emits them to its own handlers (the API's log
sink among them). The collecting and the replaying are the core's (``headwater.plugins.collecting_logs``,
``replay_logs``), the same as ``ProcessExecutor``'s. This module is imported on every worker.
"""

from __future__ import annotations

import io
import pickle
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import cloudpickle

from headwater.plugins import collecting_logs, install_log_capture, replay_logs

__all__ = [
    "run_payload",
    "dumps_call",
    "dumps_blob",
    "PUSH_LIMIT",
    "loads_outcome",
    "replay_records",
    "UnpicklableArgumentError",
    "UnpicklableResultError",
    "PROTOCOL",
]

PROTOCOL = 5
PUSH_LIMIT = 16 * 1024
"""Outcomes (a task run's state and logs, pickled) up to this many bytes are pushed from the worker with the
call's completion; larger ones are fetched with ``gather``. 0 turns pushing off."""

class UnpicklableArgumentError(TypeError):
    """A call's argument cannot be pickled to send it to a worker (names the task, the argument and its type)."""


class UnpicklableResultError(TypeError):
    """A worker finished a call but its result cannot be pickled to send it back."""


class _SharedPickler(cloudpickle.Pickler):
    """cloudpickle that writes a reference instead of each shared value (scattered) or blob (pickled once)."""

    def __init__(self, file: io.BytesIO, shared: Mapping[int, str], blobs: Mapping[int, tuple[str, bytes]]) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self._shared = shared
        self._blobs = blobs
        self.used: dict[str, bytes] = {}

    def persistent_id(self, obj: Any) -> Any:
        key = self._shared.get(id(obj))
        if key is not None:
            return key
        blob = self._blobs.get(id(obj))
        if blob is not None:
            self.used[blob[0]] = blob[1]
            return ("blob", blob[0])
        return None


_blob_cache: OrderedDict[str, Any] = OrderedDict()
_blob_lock = threading.Lock()
BLOB_CACHE_SIZE = 256
"""Task objects a worker keeps unpickled (per flow run and task), most recently used first."""


class _SharedUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, shared: Mapping[str, Any] | None, blobs: Mapping[str, bytes] | None) -> None:
        super().__init__(file)
        self._shared = shared or {}
        self._blobs = blobs or {}

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple):
            return _load_blob(pid[1], self._blobs)
        try:
            return self._shared[pid]
        except KeyError:
            raise pickle.UnpicklingError(f"headwater-dask: shared value {pid!r} did not reach the worker.") from None


def _load_blob(key: str, blobs: Mapping[str, bytes]) -> Any:
    with _blob_lock:
        value = _blob_cache.get(key, _MISSING)
        if value is not _MISSING:
            _blob_cache.move_to_end(key)
            return value
    try:
        data = blobs[key]
    except KeyError:
        raise pickle.UnpicklingError(f"headwater-dask: pickled object {key!r} is missing from the payload.") from None
    value = pickle.loads(data)
    with _blob_lock:
        _blob_cache[key] = value
        while len(_blob_cache) > BLOB_CACHE_SIZE:
            _blob_cache.popitem(last=False)
    return value


_MISSING = object()


def dumps_blob(value: Any) -> bytes:
    """``value`` pickled on its own, to be carried by many payloads and unpickled once per worker."""
    return cloudpickle.dumps(value, protocol=PROTOCOL)


def dumps_call(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], level: int,
               shared: Mapping[int, str] | None = None, blobs: Mapping[int, tuple[str, bytes]] | None = None) -> bytes:
    """The payload of one call.

    ``shared`` maps ``id(value)`` to the key of a value scattered beforehand (Dask hands it to
    :func:`run_payload`); ``blobs`` maps ``id(value)`` to ``(key, its pickle)`` for values pickled
    once per flow run (the task object): the payload carries those bytes, and a worker
    unpickles each key once.
    """
    obj = (fn, args, kwargs, level)
    if not shared and not blobs:
        return pickle.dumps((None, cloudpickle.dumps(obj, protocol=PROTOCOL)), protocol=PROTOCOL)
    buffer = io.BytesIO()
    pickler = _SharedPickler(buffer, shared or {}, blobs or {})
    pickler.dump(obj)
    return pickle.dumps((pickler.used or None, buffer.getvalue()), protocol=PROTOCOL)


def describe_unpicklable(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], exc: BaseException) -> str:
    """Which argument of the call cannot be pickled, by task and argument name and the value's type."""
    task = args[0] if args and hasattr(args[0], "name") and hasattr(args[0], "run") else None
    culprit = ""
    if task is not None and len(args) > 1 and isinstance(args[1], dict):
        for key, value in args[1].items():
            try:
                cloudpickle.dumps(value, protocol=PROTOCOL)
            except Exception as inner:
                culprit = f"its argument {key!r} (a {type(value).__module__}.{type(value).__qualname__}: {inner})"
                break
        if not culprit:
            culprit = f"the task object or its context ({exc})"
        return (f"Task {task.name!r} cannot be sent to the Dask workers: {culprit} cannot be pickled. Pass a "
                "picklable value (e.g. a path or a URL instead of an open file, connection or lock), or create "
                "the value inside the task.")
    name = getattr(fn, "__qualname__", repr(fn))
    return f"The call {name}(...) cannot be sent to the Dask workers: {exc}. Pass picklable arguments."


def run_payload(payload: bytes, shared: Mapping[str, Any] | None = None, topic: str | None = None) -> bytes:
    """Run the call in ``payload`` (with ``shared`` values); return ``(value, log records)`` pickled.

    With ``topic`` (on a Dask worker), an outcome of at most :data:`PUSH_LIMIT` bytes is also
    published to that event topic, so the flow-run process has it with the call's completion
    instead of fetching it afterwards.
    """
    blobs, body = pickle.loads(payload)
    if shared or blobs:
        fn, args, kwargs, level = _SharedUnpickler(io.BytesIO(body), shared, blobs).load()
    else:
        fn, args, kwargs, level = pickle.loads(body)
    install_log_capture(level)
    with collecting_logs() as records:
        value = fn(*args, **kwargs)
    try:
        data = cloudpickle.dumps((value, records), protocol=PROTOCOL)
    except Exception as exc:
        data = cloudpickle.dumps((_unpicklable_result(fn, args, value, exc), records), protocol=PROTOCOL)
    if topic is not None and len(data) <= PUSH_LIMIT:
        _push(topic, data)
    return data


def _push(topic: str, data: bytes) -> None:
    try:
        from distributed import get_worker

        worker = get_worker()
        key = worker.get_current_task()
        task = worker.state.tasks.get(key)
        if task is None or task.state not in ("executing", "long-running"):
            return  # cancelled or released while it ran (its flow run may be over): nobody waits for it
        worker.log_event(topic, {"k": key, "d": data})
    except Exception:  # not on a worker, or an older distributed: the outcome is fetched instead
        pass


def _unpicklable_result(fn: Any, args: tuple[Any, ...], value: Any, exc: BaseException) -> Any:
    """A Failed state naming the task and the result's type (a task run), else raise UnpicklableResultError."""
    from headwater.states import Failed, State

    if isinstance(value, State):
        task = args[0] if args else None
        name = getattr(task, "name", "?")
        result = value.result
        message = (f"Task {name!r} returned a {type(result).__module__}.{type(result).__qualname__}, which cannot be "
                   f"pickled to send it back from the Dask worker ({exc}). Return a picklable value (data, a path, "
                   "a URL), or run this flow on a LocalExecutor or ThreadExecutor.")
        return Failed(message, UnpicklableResultError(message))
    name = getattr(fn, "__qualname__", repr(fn))
    raise UnpicklableResultError(
        f"{name}(...) returned a {type(value).__module__}.{type(value).__qualname__}, which cannot be pickled to send it "
        f"back from the Dask worker ({exc}). Return a picklable value."
    ) from None


def loads_outcome(data: bytes) -> tuple[Any, list[dict[str, Any]]]:
    """``(value, log records)`` from :func:`run_payload`'s bytes."""
    value, records = pickle.loads(data)
    return value, records


replay_records = replay_logs
"""Emit records collected on a worker to this process's loggers (their handlers, their levels)."""
