"""``DaskExecutor``: run task bodies on a Dask cluster, keeping headwater's engine in the flow-run process.

The engine decides every state here (triggers, caching, retries, mapping) and submits one
call per task run; this executor ships the call to a worker with cloudpickle and hands back
a future whose result is the task run's state. Logs the task emits on the worker come back
with the state and are re-emitted here, so the API's log handler (or your own) sees them.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs
import cloudpickle

from headwater.plugins import FIRST_COMPLETED, Executor, import_string
from headwater_dask import _scheduler
from headwater_dask._scheduler import drop_topic
from headwater_dask.worker import (
    PUSH_LIMIT,
    UnpicklableArgumentError,
    describe_unpicklable,
    dumps_blob,
    dumps_call,
    loads_outcome,
    replay_records,
    run_payload,
)

__all__ = ["DaskExecutor", "DaskConnectionError", "DaskTaskFuture", "LOOPBACK_CLUSTER_KWARGS"]

logger = logging.getLogger("headwater.DaskExecutor")

LOOPBACK_CLUSTER_KWARGS: dict[str, Any] = {"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
"""What a temporary ``LocalCluster`` gets unless ``cluster_kwargs`` say otherwise: Dask's own defaults bind 0.0.0.0."""

DEFAULT_CLUSTER_CLASS = "distributed.LocalCluster"
SCATTER_THRESHOLD = 100_000
"""A value passed to more than one task run whose pickle is larger than this many bytes is scattered once."""

CLIENT_SEND_INTERVAL = 0.002
"""Seconds the client batches messages to the scheduler for (Dask's default is 10 ms; see ``_tune_client``)."""

_SMALL = (int, float, bool, complex, type(None))

cloudpickle.register_pickle_by_value(_scheduler)  # run_on_scheduler sends drop_topic by value


class DaskConnectionError(ConnectionError):
    """The Dask scheduler could not be reached when the flow run started (names the address and the fix)."""


def _class_path(value: Any) -> str | None:
    """``cluster_class`` as a dotted path (what is serialized), from a class or a string."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    raise TypeError(
        f"DaskExecutor(cluster_class=...) takes a cluster class or its dotted path "
        f"(e.g. 'dask.distributed.LocalCluster'), got {value!r}."
    )


def _import_class(path: str) -> Any:
    """Import ``"pkg.mod.Class"`` or ``"pkg.mod:Class"``."""
    if ":" not in path:
        module, _, name = path.rpartition(".")
        if not module:
            raise ValueError(f"DaskExecutor: cluster_class {path!r} is not a dotted path like 'dask.distributed.LocalCluster'.")
        path = f"{module}:{name}"
    try:
        return import_string(path)
    except Exception as exc:
        raise ImportError(
            f"DaskExecutor: cannot import cluster_class {path.replace(':', '.')!r} ({exc}). Install the package that "
            "provides it (e.g. dask-kubernetes, dask-jobqueue) in the flow-run environment, or check the spelling."
        ) from exc


def _security_kwargs(value: Any) -> dict[str, Any] | None:
    """The serializable form of ``security``: a dict of ``distributed.Security`` keyword arguments (file paths)."""
    if value is None or isinstance(value, dict):
        return value
    fields = ("require_encryption", "tls_ca_file", "tls_ciphers", "tls_client_key", "tls_client_cert",
              "tls_scheduler_key", "tls_scheduler_cert", "tls_worker_key", "tls_worker_cert", "tls_min_version",
              "tls_max_version")
    out: dict[str, Any] = {}
    for name in fields:
        item = getattr(value, name, None)
        if item is None:
            continue
        if isinstance(item, str) and "-----BEGIN" in item:  # in-memory key material is never written out
            return None
        if isinstance(item, (str, bool, int)):
            out[name] = item
    return out


@attrs.define(slots=False, eq=False)
class DaskExecutor(Executor):
    """Runs task runs on a Dask cluster: an existing one (``address``) or a temporary one per flow run.

    Prefect 1's arguments work unchanged: ``DaskExecutor(address="tcp://127.0.0.1:8786")``,
    ``DaskExecutor(cluster_class="dask.distributed.LocalCluster", cluster_kwargs={"n_workers": 2},
    adapt_kwargs={"maximum": 4})``, ``client_kwargs``, ``debug``.

    - ``address``: connect to this scheduler; the cluster is not started or closed by headwater;
    - ``cluster_class`` (a class or a dotted path; default ``distributed.LocalCluster``) and
      ``cluster_kwargs``: the temporary cluster started with the flow run and closed after it.
      A temporary ``LocalCluster`` binds 127.0.0.1 unless ``cluster_kwargs`` say otherwise;
    - ``adapt_kwargs``: ``cluster.adapt(**adapt_kwargs)`` (adaptive scaling of a temporary cluster);
    - ``client_kwargs``: extra ``distributed.Client`` arguments;
    - ``security``: a ``distributed.Security`` (TLS) or a dict of its arguments (file paths),
      passed to the client and to a temporary cluster. Only file paths are serialized;
      a ``Security`` holding in-memory keys is used in this process but never written out;
    - ``connect_timeout``: seconds to wait for the scheduler before the run fails;
    - ``scatter_threshold``: bytes above which a value passed to several task runs (the
      unmapped constant of a mapped task) is scattered to the cluster once.

    The engine stays in the flow-run process: only task bodies run on workers.
    """

    address: str | None = None
    cluster_class: str | None = attrs.field(default=None, converter=_class_path)
    cluster_kwargs: dict[str, Any] | None = None
    adapt_kwargs: dict[str, Any] | None = None
    client_kwargs: dict[str, Any] | None = None
    debug: bool = False
    security: dict[str, Any] | None = attrs.field(default=None, converter=_security_kwargs)
    connect_timeout: float = 30.0
    scatter_threshold: int = SCATTER_THRESHOLD
    _security_obj: Any = attrs.field(default=None, init=False, repr=False)
    _run: _DaskRun | None = attrs.field(default=None, init=False, repr=False)

    def __init__(self, address: str | None = None, cluster_class: Any = None, cluster_kwargs: dict[str, Any] | None = None,
                 adapt_kwargs: dict[str, Any] | None = None, client_kwargs: dict[str, Any] | None = None,
                 debug: bool = False, security: Any = None, connect_timeout: float = 30.0,
                 scatter_threshold: int = SCATTER_THRESHOLD) -> None:
        if address is not None and (cluster_class is not None or cluster_kwargs or adapt_kwargs):
            raise ValueError(
                f"DaskExecutor: address={address!r} connects to an existing cluster, so cluster_class, cluster_kwargs "
                "and adapt_kwargs do not apply. Pass either address= or the cluster_* arguments."
            )
        if client_kwargs and "security" in client_kwargs and security is None:  # Prefect 1 style
            client_kwargs = dict(client_kwargs)
            security = client_kwargs.pop("security")
        self.__attrs_init__(  # type: ignore[attr-defined]  # generated by attrs next to our own __init__
            address, cluster_class, cluster_kwargs, adapt_kwargs, client_kwargs, debug, security, connect_timeout,
            scatter_threshold,
        )
        if security is not None and not isinstance(security, dict):
            self._security_obj = security

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_run"] = None  # a live client never travels with a pickled flow
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        names = ("address", "cluster_class", "cluster_kwargs", "adapt_kwargs", "client_kwargs", "debug", "security",
                 "connect_timeout", "scatter_threshold")
        return all(getattr(self, n) == getattr(other, n) for n in names)

    __hash__ = object.__hash__

    # --- lifecycle ------------------------------------------------------------------------------

    def _security(self) -> Any:
        if self._security_obj is not None:
            return self._security_obj
        if self.security is None:
            return None
        from distributed.security import Security

        return Security(**self.security)

    @contextmanager
    def start(self) -> Iterator[DaskExecutor]:
        """Connect to ``address``, or start the temporary cluster; close what was started when the run ends."""
        if self._run is not None:
            raise RuntimeError("DaskExecutor.start(): this executor is already running a flow run; use one per run.")
        from distributed import Client

        security = self._security()
        client_kwargs = dict(self.client_kwargs or {})
        if security is not None:
            client_kwargs["security"] = security
        client_kwargs.setdefault("set_as_default", False)
        cluster: Any = None
        if self.address is not None:
            try:
                client = Client(self.address, timeout=self.connect_timeout, **client_kwargs)
            except (OSError, TimeoutError) as exc:
                raise DaskConnectionError(
                    f"DaskExecutor could not connect to the Dask scheduler at {self.address} within "
                    f"{self.connect_timeout:g} s ({type(exc).__name__}: {exc}). Check that the scheduler runs and is "
                    "reachable from this machine (e.g. `dask scheduler --host 127.0.0.1 --port 8786`) and that the "
                    "address, including its protocol (tcp:// or tls://), is right; or drop address= to start a "
                    "temporary cluster for the run."
                ) from exc
        else:
            cluster = self._start_cluster(security)
            try:
                client = Client(cluster, timeout=self.connect_timeout, **client_kwargs)
            except BaseException:
                cluster.close()
                raise
        run = _DaskRun(self, client)
        self._run = run
        try:
            link = client.dashboard_link
        except Exception:  # pragma: no cover - a cluster without a dashboard
            link = None
        where = self.address or f"a temporary {type(cluster).__name__} at {cluster.scheduler_address}"
        if link:
            logger.info("Dask executor on %s; dashboard: %s", where, link)
        else:
            logger.info("Dask executor on %s (no dashboard)", where)
        try:
            yield self
        finally:
            self._run = None
            run.close()
            try:
                client.close()
            finally:
                if cluster is not None:
                    cluster.close()

    def _start_cluster(self, security: Any) -> Any:
        cls = _import_class(self.cluster_class or DEFAULT_CLUSTER_CLASS)
        kwargs = dict(self.cluster_kwargs or {})
        from distributed import LocalCluster

        if isinstance(cls, type) and issubclass(cls, LocalCluster):
            if kwargs.get("processes", True):
                kwargs.setdefault("host", LOOPBACK_CLUSTER_KWARGS["host"])
            else:
                kwargs.setdefault("worker_dashboard_address", "127.0.0.1:0")
            kwargs.setdefault("dashboard_address", LOOPBACK_CLUSTER_KWARGS["dashboard_address"])
            if not self.debug:
                kwargs.setdefault("silence_logs", logging.ERROR)
        if security is not None:
            kwargs.setdefault("security", security)
        cluster = cls(**kwargs)
        if self.adapt_kwargs:
            try:
                cluster.adapt(**self.adapt_kwargs)
            except BaseException:
                cluster.close()
                raise
        return cluster

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` of the running flow run (``None`` outside ``start()``)."""
        return self._run.client if self._run is not None else None

    # --- the executor interface -------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> DaskTaskFuture:
        if self._run is None:
            raise RuntimeError("DaskExecutor.submit() called outside `with executor.start():`.")
        return self._run.submit(fn, args, kwargs)

    def wait(
        self, futures: Iterable[Any], timeout: float | None = None, return_when: str = FIRST_COMPLETED
    ) -> tuple[set[Any], set[Any]]:
        if self._run is None:
            raise RuntimeError("DaskExecutor.wait() called outside `with executor.start():`.")
        return self._run.wait(futures, timeout, return_when)

    def completed(self, pending: Collection[Any], timeout: float | None = None) -> list[Any]:
        """The futures that finished since the last call, from the run's completion queue.

        Each Dask future reports its completion to the queue (from the client's event loop), so
        this costs what finished, not what is in flight, and returns as soon as one finishes.
        """
        if self._run is None:
            raise RuntimeError("DaskExecutor.completed() called outside `with executor.start():`.")
        return self._run.completed(pending, timeout)

    def cancel(self, futures: Collection[Any] | None = None) -> None:
        """Cancel ``futures`` (default: every call of the run) on the cluster; their task runs end Cancelled.

        The engine calls this once when the flow run is cancelled, with the calls in flight.
        Calls not sent yet are never sent; the others are cancelled with
        ``client.cancel(force=True)`` (a call already running finishes on its worker, since a
        Python thread cannot be killed, and its result is dropped).
        """
        if self._run is not None:
            self._run.cancel(futures)

    def __repr__(self) -> str:
        where = f"address={self.address!r}" if self.address else f"cluster_class={self.cluster_class or DEFAULT_CLUSTER_CLASS!r}"
        return f"<DaskExecutor({where})>"


class DaskTaskFuture:
    """A submitted call: ``done()``, and ``result()`` (the task run's state, its worker logs re-emitted once).

    Calls reach the cluster in batches (when the engine next waits). A finished call's outcome
    comes back with its completion when it is small (the worker pushes it to this flow run's
    event topic), or with one ``gather`` per step for all the large ones.
    """

    __slots__ = ("_future", "_run", "_value", "_error", "_resolved", "_raw", "_queued", "key", "name", "__weakref__")

    def __init__(self, run: _DaskRun | None, key: str, name: str) -> None:
        self._future: Any = None
        self._run = run
        self._resolved = False
        self._queued = False
        self._raw: bytes | None = None
        self._value: Any = None
        self._error: BaseException | None = None
        self.key = key
        self.name = name

    @classmethod
    def failed(cls, error: BaseException, name: str) -> DaskTaskFuture:
        f = cls(None, "", name)
        f._resolved, f._error = True, error
        return f

    @classmethod
    def finished(cls, value: Any, name: str) -> DaskTaskFuture:
        f = cls(None, "", name)
        f._resolved, f._value = True, value
        return f

    @property
    def dask_future(self) -> Any:
        """The underlying ``distributed.Future`` while it is in flight (``None`` before it is sent and once fetched)."""
        return self._future

    def done(self) -> bool:
        if self._resolved or self._raw is not None or self._queued:
            return True
        run = self._run
        if run is not None and self.key in run.cancelled_keys:
            return True
        future = self._future
        return future is not None and future.done()

    def cancel(self) -> bool:
        """Cancel this call on the cluster (its task run ends Cancelled); ``False`` once it finished."""
        run = self._run
        if run is None or self._resolved or self._raw is not None:
            return False
        run.cancel([self])
        return True

    def result(self, timeout: float | None = None) -> Any:
        if not self._resolved:
            self._resolve(timeout)
        if self._error is not None:
            raise self._error
        return self._value

    def _resolve(self, timeout: float | None) -> None:
        run = self._run
        assert run is not None
        if self._raw is None:
            if self.key in run.cancelled_keys:
                self._set(_cancelled_state(self.name), None)
                return
            if self._future is None:
                run.flush()
            try:
                self._raw = self._future.result(timeout=timeout)
            except Exception as exc:  # a lost worker (KilledWorker), a cancelled future, a scheduler gone
                if self.key in run.cancelled_keys:
                    self._set(_cancelled_state(self.name), None)
                else:
                    self._set(None, exc)
                return
        raw, self._raw = self._raw, None
        value, records = loads_outcome(raw)
        if records:
            replay_records(records)
        self._set(value, None)

    def _set(self, value: Any, error: BaseException | None) -> None:
        self._value, self._error, self._resolved = value, error, True
        self._future = None  # releases the result on the cluster
        self._run = None

    def __repr__(self) -> str:
        return f"<DaskTaskFuture {self.name} {'done' if self.done() else 'pending'}>"


def _cancelled_state(name: str) -> Any:
    from headwater.states import Cancelled

    return Cancelled(f"Flow run was cancelled while task run {name} ran on Dask; its Dask future was cancelled.")


def _call_name(fn: Any, args: tuple[Any, ...]) -> str:
    if args and hasattr(args[0], "run") and hasattr(args[0], "name"):
        ctx = args[2] if len(args) > 2 and isinstance(args[2], Mapping) else {}
        return str(ctx.get("task_full_name") or args[0].name)
    return getattr(fn, "__name__", "call")


def _key_prefix(fn: Any, args: tuple[Any, ...]) -> str:
    """The Dask key prefix of a call: the task's name, the same for all its runs (mapped children included).

    Dask groups keys by this prefix (``key_split``) and the scheduler's occupancy estimate walks
    every prefix on each transition, so a prefix per mapped child (``inc[17]``) made each
    transition cost O(N): 10 000 children took minutes. The dashboard shows one row per task.
    """
    name = args[0].name if args and _is_task(args[0]) else getattr(fn, "__name__", "call")
    return re.sub(r"[^\w.]+", "_", str(name)).strip("_") or "task"


def _is_task(value: Any) -> bool:
    return hasattr(value, "run") and hasattr(value, "name") and hasattr(value, "slug")


class _DaskRun:
    """The state of one flow run on Dask: the client, the calls in flight, the completion queue, shared values.

    Threads: the engine's thread submits, flushes and takes completions; the client's event
    loop thread reports completions (``_on_done``) and pushed outcomes (``_on_event``). Both
    meet under ``cond``.
    """

    def __init__(self, executor: DaskExecutor, client: Any) -> None:
        self.executor = executor
        self.client = client
        self.run_id = uuid.uuid4().hex[:8]
        self.counter = itertools.count()
        self.level = logging.getLogger("headwater").getEffectiveLevel()
        self.cond = threading.Condition()
        self.queue: list[tuple[DaskTaskFuture, bytes, dict[str, Any] | None]] = []
        self.in_flight: dict[str, DaskTaskFuture] = {}
        self.finished: deque[DaskTaskFuture] = deque()
        """Futures done since the engine last took them (completion order)."""
        self.release: list[Any] = []
        """Dask futures whose outcome is here: dropped with the next graph update (one message for both)."""
        self.cancelled_keys: set[str] = set()
        self.closed = False
        # id(value) -> [value, times seen, shared key or "" (small) or None (undecided)]
        self.seen: dict[int, list[Any]] = {}
        self.shared: dict[str, Any] = {}  # key -> distributed.Future of a scattered value
        self.blobs: dict[int, tuple[Any, str, bytes]] = {}
        """id(task) -> (task, blob key, its pickle): each task object is pickled once per flow run."""
        self.topic: str | None = None
        if PUSH_LIMIT > 0:
            topic = f"headwater-dask-{self.run_id}"
            try:
                client.subscribe_topic(topic, self._on_event)
                self.topic = topic
            except Exception:  # pragma: no cover - a client without events: outcomes are gathered
                logger.debug("Dask client cannot subscribe to events; outcomes are gathered", exc_info=True)
        _tune_client(client)

    # --- submit -----------------------------------------------------------------------------------

    def _shared_for(self, values: Iterable[Any]) -> dict[int, str]:
        """Keys of values seen in an earlier call too and large enough to scatter (scattered on first reuse)."""
        found: dict[int, str] = {}
        seen = self.seen
        for value in values:
            if isinstance(value, _SMALL) or (isinstance(value, (str, bytes)) and len(value) < 1024):
                continue
            entry = seen.get(id(value))
            if entry is None:
                seen[id(value)] = [value, 1, None]
                continue
            if entry[2] is None:
                entry[2] = self._maybe_scatter(value)
            if entry[2]:
                found[id(value)] = entry[2]
        return found

    def _maybe_scatter(self, value: Any) -> str:
        import cloudpickle

        try:
            size = len(cloudpickle.dumps(value, protocol=5))
        except Exception:
            return ""  # the payload's own pickling reports it, naming the task
        if size < self.executor.scatter_threshold:
            return ""
        key = f"headwater-shared-{self.run_id}-{len(self.shared)}"
        [future] = self.client.scatter([value], hash=False, broadcast=False)
        self.shared[key] = future
        logger.debug("Scattered a %s of %d bytes once as %s (shared by several task runs).", type(value).__name__, size, key)
        return key

    def _blob_for(self, task: Any) -> dict[int, tuple[str, bytes]]:
        """The task object pickled once per flow run (payloads carry these bytes, workers unpickle them once)."""
        entry = self.blobs.get(id(task))
        if entry is None:
            data = dumps_blob(task)
            entry = self.blobs[id(task)] = (task, f"{self.run_id}-{len(self.blobs)}", data)
        return {id(task): (entry[1], entry[2])}

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> DaskTaskFuture:
        name = _call_name(fn, args)
        values: list[Any] = list(kwargs.values())
        for arg in args[1:] if args and _is_task(args[0]) else args:
            if isinstance(arg, dict):
                values.extend(arg.values())
            elif isinstance(arg, list):  # run_task_batch: [(inputs, context), ...]
                for item in arg:
                    if isinstance(item, tuple):
                        for part in item:
                            values.extend(part.values() if isinstance(part, dict) else (part,))
            else:
                values.append(arg)
        shared_ids = self._shared_for(values)
        try:
            blobs = self._blob_for(args[0]) if args and _is_task(args[0]) else None
            payload = dumps_call(fn, args, kwargs, self.level, shared_ids, blobs)
        except Exception as exc:
            self.blobs.pop(id(args[0]), None) if args else None
            message = describe_unpicklable(fn, args, kwargs, exc)
            if args and hasattr(args[0], "run"):
                from headwater.states import Failed

                future = DaskTaskFuture.finished(Failed(message, UnpicklableArgumentError(message)), name)
            else:
                future = DaskTaskFuture.failed(UnpicklableArgumentError(message), name)
            with self.cond:
                self._mark(future)
            return future
        shared = {key: self.shared[key] for key in set(shared_ids.values())} if shared_ids else None
        wrapped = DaskTaskFuture(self, f"{_key_prefix(fn, args)}-{self.run_id}-{next(self.counter)}", name)
        self.queue.append((wrapped, payload, shared))
        return wrapped

    def flush(self) -> None:
        """Send the calls queued since the last step, one graph update per group of calls.

        Finished futures are released just before, so their release travels in the same
        message batch as the graph update (the client batches what it sends the scheduler).
        """
        release, self.release = self.release, []
        del release
        if not self.queue:
            return
        queue, self.queue = self.queue, []
        groups: dict[tuple[str, ...], list[tuple[DaskTaskFuture, bytes, dict[str, Any] | None]]] = {}
        for item in queue:
            groups.setdefault(tuple(sorted(item[2])) if item[2] else (), []).append(item)
        extra: dict[str, Any] = {"topic": self.topic} if self.topic else {}
        for group_key, items in groups.items():
            keys = [w.key for w, _, _ in items]
            payloads = [p for _, p, _ in items]
            with self.cond:
                cancelled = [w for w, _, _ in items if w.key in self.cancelled_keys]
            if cancelled:  # cancelled before they were sent: never sent
                items = [it for it in items if it[0].key not in self.cancelled_keys]
                if not items:
                    continue
                keys = [w.key for w, _, _ in items]
                payloads = [p for _, p, _ in items]
            with self.cond:  # known before the first completion can arrive
                for wrapped, _, _ in items:
                    self.in_flight[wrapped.key] = wrapped
            if group_key:
                futures = self.client.map(run_payload, payloads, shared=items[0][2], key=keys, pure=False, **extra)
            else:
                futures = self.client.map(run_payload, payloads, key=keys, pure=False, **extra)
            with self.cond:
                for (wrapped, _, _), future in zip(items, futures, strict=True):
                    if wrapped._raw is not None and wrapped._queued and wrapped.key not in self.in_flight:
                        self.release.append(future)  # its outcome was pushed and taken already
                    else:
                        wrapped._future = future
            self._watch(keys, futures)

    def _watch(self, keys: list[str], futures: list[Any]) -> None:
        """Queue each future as it finishes: one hop to the client's event loop per batch."""
        try:
            states = [f._state for f in futures]
            states[0].wait  # noqa: B018 - the attribute this relies on
        except (AttributeError, IndexError):  # another distributed: one callback per future
            for key, f in zip(keys, futures, strict=True):
                f.add_done_callback(lambda _, key=key: self._on_done(key))
            return
        import asyncio

        def watch() -> None:
            for key, state in zip(keys, states, strict=True):
                asyncio.ensure_future(state.wait()).add_done_callback(lambda _, key=key: self._on_done(key))

        self.client.loop.add_callback(watch)

    def _mark(self, wrapped: DaskTaskFuture) -> None:
        """Put ``wrapped`` on the completion queue once (call under ``cond``)."""
        if not wrapped._queued:
            wrapped._queued = True
            self.finished.append(wrapped)
            self.cond.notify_all()

    def _on_done(self, key: str) -> None:
        with self.cond:
            wrapped = self.in_flight.get(key)
            if wrapped is not None:
                self._mark(wrapped)

    def _on_event(self, event: Any) -> None:
        """An outcome pushed by a worker (small outcomes): the call is done, no gather needed."""
        try:
            _, msg = event
            key, data = msg["k"], msg["d"]
        except (TypeError, ValueError, KeyError):
            return
        with self.cond:
            wrapped = self.in_flight.get(key)
            if wrapped is not None and wrapped._raw is None and not wrapped._resolved and key not in self.cancelled_keys:
                wrapped._raw = bytes(data)
                self._mark(wrapped)

    # --- completed and wait ---------------------------------------------------------------------------

    def completed(self, pending: Collection[Any], timeout: float | None) -> list[Any]:
        import time

        self.flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while not self.finished and not self.closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self.cond.wait(remaining)
            taken = list(self.finished)
            self.finished.clear()
            for f in taken:
                self.in_flight.pop(f.key, None)
        done = [f for f in taken if f in pending]
        self._take(done)
        return done

    def _take(self, done: Iterable[Any]) -> None:
        """Fetch the outcomes not pushed (one ``gather``), and queue the finished Dask futures for release."""
        fetch: list[DaskTaskFuture] = []
        for f in done:
            if not isinstance(f, DaskTaskFuture) or f._future is None:
                continue
            if f._raw is not None:
                self.release.append(f._future)
                f._future = None
            elif f._future.status == "finished":
                fetch.append(f)
        if fetch:
            try:
                datas = self.client.gather([f._future for f in fetch], errors="raise")
            except Exception:  # e.g. a result lost with its worker: each future resolves (or reports) on its own
                return
            for f, data in zip(fetch, datas, strict=True):
                f._raw = data
                self.release.append(f._future)
                f._future = None

    def wait(self, futures: Iterable[Any], timeout: float | None, return_when: str) -> tuple[set[Any], set[Any]]:
        futures = list(futures)
        import time

        self.flush()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.cond:
            while True:
                done: set[Any] = set()
                not_done: set[Any] = set()
                for f in futures:
                    (done if f.done() else not_done).add(f)
                if not not_done or (done and return_when == FIRST_COMPLETED) or self.closed:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self.cond.wait(remaining)
            for f in done:
                if isinstance(f, DaskTaskFuture):
                    self.in_flight.pop(f.key, None)
        self._take(done)
        return done, not_done

    # --- cancel and close -------------------------------------------------------------------------

    def cancel(self, futures: Collection[Any] | None = None) -> int:
        """Cancel ``futures`` (or every call of the run): queued ones are never sent, sent ones are cancelled."""
        with self.cond:
            if futures is None:
                targets = [w for w, _, _ in self.queue] + list(self.in_flight.values())
            else:
                targets = [f for f in futures if isinstance(f, DaskTaskFuture)]
            targets = [w for w in targets if w._run is self and not w._resolved and w._raw is None
                       and not (w._future is not None and w._future.done() and w._future.status == "finished")]
            self.cancelled_keys.update(w.key for w in targets)
            queued = {w.key for w, _, _ in self.queue}
            self.queue = [item for item in self.queue if item[0].key not in self.cancelled_keys]
            sent = [w._future for w in targets if w._future is not None]
            for w in targets:
                self._mark(w)
        if sent:
            try:
                self.client.cancel(sent, force=True)
            except Exception:  # pragma: no cover - the scheduler is gone: the run ends anyway
                logger.debug("Could not cancel Dask futures", exc_info=True)
        if targets:
            logger.info("Cancelled %d task run(s) on Dask (%d not sent yet).", len(targets),
                        sum(1 for w in targets if w.key in queued))
        return len(targets)

    def close(self) -> None:
        with self.cond:
            self.closed = True
            leftover = [w._future for w in self.in_flight.values() if w._future is not None and not w._future.done()]
            self.cond.notify_all()
        try:
            if leftover:
                self.client.cancel(leftover, force=True)
            if self.shared:
                self.client.cancel(list(self.shared.values()), force=True)
        except Exception:  # pragma: no cover - the client is being closed anyway
            logger.debug("Could not cancel leftover Dask futures", exc_info=True)
        if self.topic is not None:
            _forget_topic(self.client, self.topic)
        self.queue.clear()
        self.in_flight.clear()
        self.finished.clear()
        self.release.clear()
        self.seen.clear()
        self.shared.clear()
        self.blobs.clear()


def _tune_client(client: Any) -> None:
    """Let the client send the scheduler what it batched every CLIENT_SEND_INTERVAL instead of Dask's 10 ms.

    The engine submits the next calls as soon as earlier ones finish, so with 10 ms every step of
    a chain waited for the client's batch timer (``Client.scheduler_comm`` is a ``BatchedSend``).
    """
    comm = getattr(client, "scheduler_comm", None)
    if comm is not None and isinstance(getattr(comm, "interval", None), (int, float)):
        comm.interval = min(comm.interval, CLIENT_SEND_INTERVAL)


def _forget_topic(client: Any, topic: str) -> None:
    """Unsubscribe from the run's event topic and drop the events the scheduler keeps for it."""
    try:
        client.unsubscribe_topic(topic)
    except Exception:  # pragma: no cover - already gone
        pass
    try:
        client.run_on_scheduler(drop_topic, topic=topic)
    except Exception:  # the scheduler keeps at most distributed.admin.low-level-log-length small events
        logger.debug("Could not drop Dask event topic %s", topic, exc_info=True)
