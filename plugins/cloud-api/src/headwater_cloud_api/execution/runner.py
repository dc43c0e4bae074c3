"""``headwater execute flow-run --id ID``: run one flow run of the API in this process, reporting as it goes.

Steps: fetch the run and its flow's metadata; restore the storage through the serializer
registry and load the flow (failure: the run becomes Failed with the reason, exit 2); write
Running (version-checked, so a cancelled or reaped run is not revived); run the flow with the
engine; write the final state.

While it runs:

* task-run states (Running from the engine's ``before_task_run`` hook, then every final and
  Retrying state from ``on_task_state``) and log records (the ``headwater`` loggers, which
  include the stdout of ``log_stdout=True`` tasks) go to an :class:`Outbox` that a sender
  thread flushes in batches — one request per flush, not one per transition;
* a :class:`Heartbeat` thread renews the run's lease every third of the server's lease (a
  thread: the GIL switches every few ms, so a CPU-bound pure-Python task cannot starve it) and
  reads the run's state: Cancelling sets the engine's cancel event (no new tasks start); a run
  that is no longer ours (rescheduled by the reaper) stops without writing states.

When the API is unreachable every request is retried with exponential backoff and the outbox
keeps what it has; nothing is dropped unless the API rejects it as invalid (printed on stderr).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from headwater.plugins import hookimpl

__all__ = ["FlowRunExecution", "Outbox", "Heartbeat", "execute_flow_run", "retrying", "EXIT_CANNOT_LOAD"]

EXIT_SUCCESS = 0
EXIT_FAILED = 1
EXIT_CANNOT_LOAD = 2
EXIT_NOT_RUNNABLE = 3

_FINISHED = {"Success", "Cached", "Mapped", "Skipped", "Failed", "TriggerFailed", "TimedOut", "Cancelled", "Finished"}
_RUN_QUERY = (
    "query($id: String!) { flow_run(id: $id) { id version state { type message } parameters context "
    "scheduled_start_time agent_id flow { id name storage } } }"
)
_FLOW_STATE = "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { status version state } }"


def _stderr(message: str) -> None:
    print(f"headwater execute: {message}", file=sys.stderr, flush=True)


def _transient(exc: BaseException) -> bool:
    """Worth retrying: the API is unreachable or answered with a server-side failure."""
    from headwater_cloud_api.client.transport import APIClientError

    if not isinstance(exc, APIClientError):
        return isinstance(exc, (ConnectionError, OSError, TimeoutError))
    return exc.code in ("CONNECTION", "BAD_RESPONSE", "HTTP_ERROR", "INTERNAL")


def retrying(call: Callable[[], Any], what: str, stop: threading.Event | None = None, max_wait: float = 3600.0,
             backoff: tuple[float, float] = (0.2, 5.0)) -> Any:
    """``call()`` until it succeeds, backing off on transient errors (up to ``max_wait`` s); other errors raise."""
    delay, cap = backoff
    deadline = time.monotonic() + max_wait
    warned = False
    while True:
        try:
            result = call()
            if warned:
                _stderr(f"{what}: the API answers again.")
            return result
        except Exception as exc:
            if not _transient(exc) or time.monotonic() > deadline or (stop is not None and stop.is_set()):
                raise
            if not warned:
                _stderr(f"{what}: {exc}; retrying with backoff (nothing is lost meanwhile).")
                warned = True
            time.sleep(delay)
            delay = min(cap, delay * 2)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


class Outbox:
    """Task-run states and logs waiting to be sent; a thread sends them in batches, in order, with retries."""

    def __init__(self, client: Any, flow_run_id: str, flush_interval: float = 0.25, batch_size: int = 1000) -> None:
        self.client = client
        self.flow_run_id = flow_run_id
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self._states: list[dict[str, Any]] = []
        self._logs: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="headwater-outbox", daemon=True)
        self.sent_states = 0
        self.sent_logs = 0
        self.requests = 0

    def start(self) -> Outbox:
        self._thread.start()
        return self

    def task_state(self, task_slug: str, map_index: int | None, state: str, message: str | None) -> None:
        item = {"flow_run_id": self.flow_run_id, "task_slug": task_slug, "map_index": -1 if map_index is None else map_index,
                "state": {"type": state, "message": None if message is None else str(message)[:10000]}}
        with self._lock:
            self._states.append(item)
            if len(self._states) >= self.batch_size:
                self._wake.set()

    def log(self, level: str, name: str, message: str, created: float) -> None:
        with self._lock:
            self._logs.append({"flow_run_id": self.flow_run_id, "level": level, "name": name, "message": message[:100000],
                               "timestamp": _iso(created)})
            if len(self._logs) >= self.batch_size:
                self._wake.set()

    def pending(self) -> int:
        with self._lock:
            return len(self._states) + len(self._logs)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            closing = self._closing.is_set()
            self.flush()
            if closing and not self.pending():
                return

    def flush(self) -> None:
        """Send what is queued now (retrying while the API is unreachable)."""
        from headwater_cloud_api.client.transport import APIClientError

        while True:
            with self._lock:
                states = self._states[: self.batch_size]
                logs = self._logs[: self.batch_size]
            if not states and not logs:
                return
            decl, fields, variables = [], [], {}
            if states:
                decl.append("$t: [TaskRunStateInput!]!")
                fields.append("set_task_run_states(states: $t) { status }")
                variables["t"] = states
            if logs:
                decl.append("$l: [LogInput!]!")
                fields.append("write_logs(logs: $l)")
                variables["l"] = logs
            query = f"mutation({', '.join(decl)}) {{ {' '.join(fields)} }}"
            try:
                retrying(lambda: self.client.graphql(query, variables), "sending task states and logs")
            except APIClientError as exc:  # rejected as invalid: retrying cannot help
                _stderr(f"the API rejected {len(states)} task state(s) and {len(logs)} log record(s): {exc}")
            self.requests += 1
            with self._lock:
                del self._states[: len(states)]
                del self._logs[: len(logs)]
            self.sent_states += len(states)
            self.sent_logs += len(logs)

    def close(self, timeout: float | None = None) -> None:
        """Flush everything and stop the sender (waits while the API is unreachable, up to ``timeout``)."""
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)


class Heartbeat:
    """Renews the run's lease from a daemon thread; ``cancel`` is set when the run is Cancelling (or no longer ours)."""

    def __init__(self, client: Any, flow_run_id: str, cancel: threading.Event, interval: float | None = None) -> None:
        self.client = client
        self.flow_run_id = flow_run_id
        self.cancel = cancel
        self.interval = interval
        self.lost = threading.Event()
        self.running = threading.Event()
        """Set once this process wrote Running: from then on a state other than Running/Cancelling means the run is not ours."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="headwater-heartbeat", daemon=True)
        self.beats = 0

    def beat(self) -> dict[str, Any]:
        data = self.client.graphql(
            "mutation($r: String!) { flow_run_heartbeat(flow_run_id: $r) { state version message lease } }", {"r": self.flow_run_id}
        )["flow_run_heartbeat"]
        self.beats += 1
        if self.interval is None:
            self.interval = max(0.1, float(data["lease"]) / 3)
        state = data["state"]
        if state in ("Cancelling", "Cancelled"):
            self.cancel.set()
        elif self.running.is_set() and state != "Running":  # rescheduled by the reaper, or ended by someone else
            self.lost.set()
            self.cancel.set()
        return data

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval or 1.0):
            try:
                self.beat()
            except Exception as exc:  # the API is down: keep trying at the same pace; the reaper allows one lease
                _stderr(f"heartbeat of flow run {self.flow_run_id} failed: {exc}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class _LogHandler(logging.Handler):
    """Sends records of the ``headwater`` loggers to the outbox (the client's own loggers are left out)."""

    def __init__(self, outbox: Outbox) -> None:
        super().__init__(logging.DEBUG)
        self.outbox = outbox

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("headwater.server", "httpx", "httpcore")):
            return
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            self.outbox.log(record.levelname, record.name, message, record.created)
        except Exception:  # pragma: no cover - logging must never break the run
            self.handleError(record)


class _TaskRunningHook:
    """Lifecycle plugin registered in the flow-run process only: a task run submitted is Running."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    @hookimpl
    def before_task_run(self, task: Any, map_index: int | None, context: dict[str, Any]) -> None:
        run_count = context.get("task_run_count", 1)
        self.outbox.task_state(task.slug, map_index, "Running", f"Running (attempt {run_count})." if run_count > 1 else "Running.")


class FlowRunExecution:
    """One flow run executed against the API (see the module docstring)."""

    def __init__(self, flow_run_id: str, client_factory: Callable[[], Any] | None = None, flush_interval: float = 0.25) -> None:
        self.flow_run_id = flow_run_id
        self.client_factory = client_factory or _default_client
        self.client = self.client_factory()
        self.flush_interval = flush_interval
        self.version: int | None = None
        self.cancel = threading.Event()

    # --- flow-run states -------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        return retrying(lambda: self.client.graphql(_RUN_QUERY, {"id": self.flow_run_id}), "reading the flow run")["flow_run"]

    def _write(self, state: str, message: str | None, version: int | None) -> dict[str, Any]:
        variables = {"s": [{"flow_run_id": self.flow_run_id, "version": version, "state": {"type": state, "message": message}}]}
        result = retrying(lambda: self.client.graphql(_FLOW_STATE, variables), f"writing state {state}")["set_flow_run_states"][0]
        if result["status"] == "SUCCESS":
            self.version = result["version"]
        return result

    def _write_final(self, state: str, message: str | None, lost: bool = False) -> str:
        """The final state, unless the run meanwhile finished, was rescheduled, or is no longer ours."""
        for _ in range(10):
            result = self._write(state, message, self.version)
            if result["status"] == "SUCCESS":
                return state
            current = result["state"]
            if current in _FINISHED or current in ("Scheduled", "Submitted") or lost:
                _stderr(f"flow run {self.flow_run_id} is {current} in the API; not writing {state}.")
                return current
            self.version = result["version"]  # e.g. Running -> Cancelling meanwhile: finish it
        return state

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> int:
        from headwater import states as st
        from headwater.plugins.manager import register_plugin, unregister_plugin
        from headwater.serialization.converter import from_dict

        info = self._read()
        self.version = info["version"]
        current = info["state"]["type"]
        if current == "Cancelling":
            self._write_final("Cancelled", "Cancelled before the flow started.")
            return EXIT_SUCCESS
        if current not in ("Scheduled", "Submitted"):
            _stderr(f"flow run {self.flow_run_id} is {current}, not Scheduled or Submitted: not running it again.")
            return EXIT_NOT_RUNNABLE
        flow_meta = info["flow"]
        try:
            storage_data = flow_meta.get("storage")
            if not storage_data:
                raise ValueError("the flow was registered without storage metadata; register it again with `headwater register`.")
            storage = from_dict(storage_data, "storage")
            location = storage.flows.get(flow_meta["name"])
            if location is None:
                raise KeyError(f"{type(storage).__name__} storage holds no flow named {flow_meta['name']!r} "
                               f"(it holds {', '.join(sorted(storage.flows)) or 'none'}).")
            flow = storage.get_flow(location)
        except Exception as exc:
            message = (f"Flow run {self.flow_run_id}: cannot load flow {flow_meta['name']!r} from its storage: "
                       f"{type(exc).__name__}: {exc}")
            _stderr(message)
            self._log("ERROR", message)
            self._write_final("Failed", message)
            return EXIT_CANNOT_LOAD

        heartbeat = Heartbeat(self.client_factory(), self.flow_run_id, self.cancel)
        heartbeat.beat()
        result = self._write("Running", f"Running flow {flow.name!r}.", self.version)
        if result["status"] != "SUCCESS":
            if result["state"] == "Cancelling":
                self._write_final("Cancelled", "Cancelled before the flow started.")
                return EXIT_SUCCESS
            _stderr(f"flow run {self.flow_run_id} became {result['state']} before it started: not running it.")
            return EXIT_NOT_RUNNABLE
        heartbeat.running.set()
        heartbeat.start()
        outbox = Outbox(self.client_factory(), self.flow_run_id, self.flush_interval).start()
        handler = _LogHandler(outbox)
        root = logging.getLogger("headwater")
        root.addHandler(handler)
        if root.level == logging.NOTSET or root.level > logging.INFO:
            root.setLevel(logging.INFO)
        plugin_name = register_plugin(_TaskRunningHook(outbox), name=f"headwater-cloud-api-runner-{self.flow_run_id}")

        def on_task_state(task: Any, state: Any, map_index: int | None) -> None:
            outbox.task_state(task.slug, map_index, type(state).__name__, state.message)

        context = dict(info.get("context") or {})
        context["flow_run_id"] = self.flow_run_id
        if info.get("scheduled_start_time"):
            context["scheduled_start_time"] = datetime.fromisoformat(info["scheduled_start_time"])
        try:
            final = flow.run(parameters=dict(info.get("parameters") or {}), run_on_schedule=False, context=context,
                             cancel=self.cancel, on_task_state=on_task_state)
        except Exception as exc:
            logging.getLogger("headwater.execute").exception("Flow run %s raised", self.flow_run_id)
            final = st.Failed(f"The flow run raised before finishing: {type(exc).__name__}: {exc}")
        finally:
            root.removeHandler(handler)
            unregister_plugin(plugin_name)
        outbox.close()
        heartbeat.stop()
        name = type(final).__name__
        if heartbeat.lost.is_set():
            _stderr(f"flow run {self.flow_run_id} was taken from this process (no longer Running in the API): "
                    f"its result {name} is not written.")
            return EXIT_FAILED
        if isinstance(final, st.Cancelled) or (self.cancel.is_set() and not final.is_finished()):
            name = "Cancelled"
        written = self._write_final(name, final.message if isinstance(final.message, str) else str(final.message))
        ok = written in ("Success", "Cached", "Mapped", "Skipped") or (written == "Cancelled" and self.cancel.is_set())
        return EXIT_SUCCESS if ok else EXIT_FAILED

    def _log(self, level: str, message: str) -> None:
        try:
            retrying(lambda: self.client.graphql(
                "mutation($l: [LogInput!]!) { write_logs(logs: $l) }",
                {"l": [{"flow_run_id": self.flow_run_id, "level": level, "name": "headwater.execute", "message": message,
                        "timestamp": _iso(time.time())}]},
            ), "writing a log record", max_wait=60)
        except Exception as exc:
            _stderr(f"could not write a log record: {exc}")


def _default_client() -> Any:
    from headwater.client import Client

    return Client()


def execute_flow_run(flow_run_id: str, client_factory: Callable[[], Any] | None = None) -> int:
    """Run flow run ``flow_run_id`` here; returns the exit status (0 success or cancelled, 1 failed, 2 cannot load, 3 not runnable)."""
    return FlowRunExecution(flow_run_id, client_factory).run()
