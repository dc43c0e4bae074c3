"""``DaskExecutor``: run task bodies on a Dask cluster, keeping headwater's engine in the flow-run process.

The engine decides every state here (triggers, caching, retries, mapping) and submits one
call per task run; this executor ships the call to a worker with cloudpickle and hands back
a future whose result is the task run's state. Logs the task emits on the worker come back
with the state and are re-emitted here, so the API's log handler (or your own) sees them.
"""

from __future__ import annotations

import itertools
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import attrs

from headwater.plugins import FIRST_COMPLETED, Executor, import_string
from headwater_dask._cancel import cancelling_cancels
from headwater_dask.worker import (
    UnpicklableArgumentError,
    describe_unpicklable,
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

_SMALL = (int, float, bool, complex, type(None))


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
            with cancelling_cancels(run.cancel):
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

    def cancel(self) -> int:
        """Cancel every call still running on the cluster; their task runs end Cancelled. Returns how many."""
        return self._run.cancel() if self._run is not None else 0

    def __repr__(self) -> str:
        where = f"address={self.address!r}" if self.address else f"cluster_class={self.cluster_class or DEFAULT_CLUSTER_CLASS!r}"
        return f"<DaskExecutor({where})>"


class DaskTaskFuture:
    """A submitted call: ``done()``, and ``result()`` (the task run's state, its worker logs re-emitted once).

    Calls reach the cluster in batches (when the engine next waits), and the results of the
    futures that are done are fetched in one ``gather`` per wait, not one round trip each.
    """

    __slots__ = ("_future", "_run", "_value", "_error", "_resolved", "_raw", "key", "name", "__weakref__")

    def __init__(self, run: _DaskRun | None, key: str, name: str) -> None:
        self._future: Any = None
        self._run = run
        self._resolved = False
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
        if self._resolved or self._raw is not None:
            return True
        run = self._run
        if run is not None and self.key in run.cancelled_keys:
            return True
        future = self._future
        return future is not None and future.done()

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


class _DaskRun:
    """The state of one flow run on Dask: the client, the calls in flight, the values scattered."""

    def __init__(self, executor: DaskExecutor, client: Any) -> None:
        self.executor = executor
        self.client = client
        self.run_id = uuid.uuid4().hex[:8]
        self.counter = itertools.count()
        self.level = logging.getLogger("headwater").getEffectiveLevel()
        self.cond = threading.Condition()
        self.queue: list[tuple[DaskTaskFuture, bytes, dict[str, Any] | None]] = []
        self.in_flight: dict[str, DaskTaskFuture] = {}
        self.cancelled_keys: set[str] = set()
        self.closed = False
        # id(value) -> [value, times seen, shared key or "" (small) or None (undecided)]
        self.seen: dict[int, list[Any]] = {}
        self.shared: dict[str, Any] = {}  # key -> distributed.Future of a scattered value

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

    def submit(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> DaskTaskFuture:
        name = _call_name(fn, args)
        values: list[Any] = list(kwargs.values())
        for arg in args:
            if isinstance(arg, dict):
                values.extend(arg.values())
            else:
                values.append(arg)
        shared_ids = self._shared_for(values)
        try:
            payload = dumps_call(fn, args, kwargs, self.level, shared_ids)
        except Exception as exc:
            message = describe_unpicklable(fn, args, kwargs, exc)
            if args and hasattr(args[0], "run"):
                from headwater.states import Failed

                return DaskTaskFuture.finished(Failed(message, UnpicklableArgumentError(message)), name)
            return DaskTaskFuture.failed(UnpicklableArgumentError(message), name)
        shared = {key: self.shared[key] for key in set(shared_ids.values())} if shared_ids else None
        wrapped = DaskTaskFuture(self, f"{name}-{self.run_id}-{next(self.counter)}", name)
        self.queue.append((wrapped, payload, shared))
        return wrapped

    def flush(self) -> None:
        """Send the calls queued since the last wait, one graph update per group of calls."""
        if not self.queue:
            return
        queue, self.queue = self.queue, []
        groups: dict[tuple[str, ...], list[tuple[DaskTaskFuture, bytes, dict[str, Any] | None]]] = {}
        for item in queue:
            groups.setdefault(tuple(sorted(item[2])) if item[2] else (), []).append(item)
        sent: list[Any] = []
        for group_key, items in groups.items():
            keys = [w.key for w, _, _ in items]
            payloads = [p for _, p, _ in items]
            if group_key:
                shared = items[0][2]
                futures = self.client.map(run_payload, payloads, [shared] * len(items), key=keys, pure=False)
            else:
                futures = self.client.map(run_payload, payloads, key=keys, pure=False)
            with self.cond:
                for (wrapped, _, _), future in zip(items, futures, strict=True):
                    wrapped._future = future
                    self.in_flight[wrapped.key] = wrapped
            sent.extend(futures)
        self._watch(sent)

    def _watch(self, futures: list[Any]) -> None:
        """Wake ``wait()`` as each future finishes: one hop to the client's event loop per batch."""
        try:
            states = [f._state for f in futures]
            states[0].wait  # noqa: B018 - the attribute this relies on
        except (AttributeError, IndexError):  # another distributed: one callback per future
            for f in futures:
                f.add_done_callback(self._on_done)
            return
        import asyncio

        def watch() -> None:
            for state in states:
                asyncio.ensure_future(state.wait()).add_done_callback(self._on_done)

        self.client.loop.add_callback(watch)

    def _on_done(self, _: Any) -> None:
        with self.cond:
            self.cond.notify_all()

    # --- wait ---------------------------------------------------------------------------------------

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
            fetch = []
            for f in done:
                if isinstance(f, DaskTaskFuture):
                    self.in_flight.pop(f.key, None)
                    if f._future is not None and f._raw is None and f._future.status == "finished":
                        fetch.append(f)
        if fetch:
            self._fetch(fetch)
        return done, not_done

    def _fetch(self, finished: list[DaskTaskFuture]) -> None:
        """The results of finished futures in one round trip (``gather``); errors are left to ``result()``."""
        try:
            datas = self.client.gather([f._future for f in finished], errors="raise")
        except Exception:  # e.g. a result lost with its worker: each future resolves (or reports) on its own
            return
        for f, data in zip(finished, datas, strict=True):
            f._raw = data
            f._future = None

    # --- cancel and close -------------------------------------------------------------------------

    def cancel(self) -> int:
        """Cancel the calls in flight and the queued ones; their task runs end Cancelled."""
        with self.cond:
            queued, self.queue = self.queue, []
            pending = [w for w in self.in_flight.values() if w._future is not None and not w._future.done()]
            self.cancelled_keys.update(w.key for w in pending)
            self.cancelled_keys.update(w.key for w, _, _ in queued)
        if pending:
            self.client.cancel([w._future for w in pending if w._future is not None], force=True)
        if pending or queued:
            logger.info("Cancelled %d task run(s) on Dask.", len(pending) + len(queued))
        with self.cond:
            self.cond.notify_all()
        return len(pending) + len(queued)

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
        self.queue.clear()
        self.in_flight.clear()
        self.seen.clear()
        self.shared.clear()
