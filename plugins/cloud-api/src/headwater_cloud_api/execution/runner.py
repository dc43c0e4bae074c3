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

Fencing (issue 10): every write carries the run's ``attempt`` (the server bumps it on each claim,
reschedule and restart) and a ``write_id`` (so a retried request is not applied twice). A
write refused as SUPERSEDED, a heartbeat answering another attempt, or a lease that could not be
renewed for longer than the lease itself all mean the run is no longer ours: no new task starts,
nothing more is written, and the process exits with status 1.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from headwater.plugins import hookimpl
from headwater.states import CANCEL_STATE_NAMES, FINISHED_STATE_NAMES, SCHEDULED_STATE_NAMES, SUCCESS_STATE_NAMES
from headwater_cloud_api.execution.checkpointing import apply_default_result, checkpoint_note
from headwater_cloud_api.execution.task_states import serialized_state

__all__ = ["FlowRunExecution", "Outbox", "Heartbeat", "RunSuperseded", "execute_flow_run", "retrying", "classify",
           "truncate_log", "EXIT_CANNOT_LOAD"]

EXIT_SUCCESS = 0
EXIT_FAILED = 1
EXIT_CANNOT_LOAD = 2
EXIT_NOT_RUNNABLE = 3

_FINISHED = FINISHED_STATE_NAMES | {"Finished"}
_NOT_YET_RUNNING = SCHEDULED_STATE_NAMES | {"Submitted"}
"""Where a run is before its process takes it (Scheduled, Submitted ...)."""
_CANCELLING_OR_CANCELLED = CANCEL_STATE_NAMES
_RUN_QUERY = (
    "query($id: String!) { flow_run(id: $id) { id version state { type message } parameters context "
    "scheduled_start_time agent_id attempt flow { id name storage } } }"
)
_FLOW_STATE = "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { status version state } }"


def _stderr(message: str) -> None:
    print(f"headwater execute: {message}", file=sys.stderr, flush=True)


MAX_SERVER_ERROR_RETRIES = 3
"""How often a request answered with a server-side error (INTERNAL, HTTP 5xx) is retried: such errors are often deterministic."""


def classify(exc: BaseException) -> str:
    """``"unreachable"`` (retry while it lasts), ``"server"`` (retry a few times), or ``"rejected"`` (never retry).

    Connection errors, timeouts, HTTP 502/503/504/429 and non-JSON answers (a proxy, a restarting
    server) are ``unreachable``; INTERNAL and other 5xx are ``server``; every other API error
    (BAD_INPUT, PAYLOAD_TOO_LARGE, SUPERSEDED, INVALID_TRANSITION, ...) is the payload's fault.
    """
    from headwater_cloud_api.client.transport import APIClientError

    if not isinstance(exc, APIClientError):
        return "unreachable" if isinstance(exc, (ConnectionError, OSError, TimeoutError)) else "rejected"
    if exc.code in ("CONNECTION", "BAD_RESPONSE"):
        return "unreachable"
    if exc.code == "HTTP_ERROR":
        match = re.search(r"HTTP (\d{3})", str(exc))
        status = int(match.group(1)) if match else 500
        if status in (429, 502, 503, 504):
            return "unreachable"
        return "server" if status >= 500 else "rejected"
    if exc.code == "INTERNAL":
        return "server"
    return "rejected"


def _transient(exc: BaseException) -> bool:
    """Worth retrying: the API is unreachable or answered with a server-side failure."""
    return classify(exc) != "rejected"


def retrying(call: Callable[[], Any], what: str, stop: threading.Event | None = None, max_wait: float = 3600.0,
             backoff: tuple[float, float] = (0.2, 5.0), max_server_errors: int = MAX_SERVER_ERROR_RETRIES) -> Any:
    """``call()`` until it succeeds, backing off while the API is unreachable (up to ``max_wait`` s).

    A server-side error is retried ``max_server_errors`` times, then raised; a rejected payload raises at once.
    """
    delay, cap = backoff
    deadline = time.monotonic() + max_wait
    warned = False
    server_errors = 0
    while True:
        try:
            result = call()
            if warned:
                _stderr(f"{what}: the API answers again.")
            return result
        except Exception as exc:
            kind = classify(exc)
            if kind == "server":
                server_errors += 1
            if (kind == "rejected" or (kind == "server" and server_errors > max_server_errors)
                    or time.monotonic() > deadline or (stop is not None and stop.is_set())):
                raise
            if not warned:
                _stderr(f"{what}: {exc}; retrying with backoff (nothing is lost meanwhile).")
                warned = True
            time.sleep(delay)
            delay = min(cap, delay * 2)


MAX_REQUEST_BYTES = 4 * 1024 * 1024
"""Largest request the outbox sends (the server refuses bodies over 5 MiB with HTTP 413)."""
MAX_LOG_CHARS = 256 * 1024
"""Longest log message sent; a longer one keeps its start and end around a marker saying how much was cut."""


def truncate_log(message: str, limit: int = MAX_LOG_CHARS) -> str:
    """``message`` cut to ``limit`` characters with a visible marker (head and tail kept); NUL becomes U+FFFD."""
    if "\x00" in message:
        message = message.replace("\x00", "\ufffd")
    if len(message) <= limit:
        return message
    cut = len(message) - limit
    marker = f"\n... [headwater: {cut} characters of this log message were truncated] ...\n"
    head = (limit - len(marker)) * 3 // 4
    tail = limit - len(marker) - head
    return message[:head] + marker + message[len(message) - tail:]


class SecretRedactor:
    """Remembers every secret value resolved in this process (``Secret.get``) and hides it in text sent to the API.

    An exception message that quotes a connection string or a token would otherwise carry the
    secret into task states and logs, where anyone who reads the API sees it.
    """

    MIN_LENGTH = 4

    def __init__(self) -> None:
        self.values: set[str] = set()
        self._original: Any = None

    def install(self) -> SecretRedactor:
        from headwater.plugins import Secret

        original = self._original = Secret.get
        redactor = self

        def get(secret: Any) -> Any:
            value = original(secret)
            redactor.remember(value)
            return value

        Secret.get = get  # type: ignore[method-assign,assignment]
        return self

    def uninstall(self) -> None:
        if self._original is not None:
            from headwater.plugins import Secret

            Secret.get = self._original  # type: ignore[method-assign]
            self._original = None

    def remember(self, value: Any) -> None:
        if isinstance(value, str):
            if len(value) >= self.MIN_LENGTH:
                self.values.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                self.remember(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                self.remember(item)

    def __call__(self, text: str | None) -> str | None:
        if not text or not self.values:
            return text
        for value in sorted(self.values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, "***")
        return text


_NO_REDACTION = SecretRedactor()


_SMALL = 1024
"""Messages up to this many characters are sized by a bound (6 bytes a character: the longest JSON escape), longer ones exactly."""


def _size(item: dict[str, Any]) -> int:
    """Bytes ``item`` takes in the request body, or a bound on it (never less): no JSON encoding per small item."""
    message = item.get("message") or ""
    if len(message) <= _SMALL:
        return 6 * (len(message) + len(item.get("task_slug") or item.get("name") or "")) + 200
    import json

    return len(json.dumps(item, ensure_ascii=False).encode()) + 2


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


WRITE_RUN_BATCH = "mutation($b: JSON!) { write_run_batch(batch: $b) { written logs stale { id state } } }"
"""The outbox's one request: a run's task-run states and logs as one JSON variable, checked by the server in one pass."""


WAKE_AT_STATES = 500
"""States queued before the outbox sends without waiting for its flush interval (a batch still takes up to ``batch_size``)."""


class Outbox:
    """Task-run states and logs waiting to be sent; a thread sends them in batches, in order, with retries.

    Each flush sends ``write_run_batch`` requests: ``{flow_run_id, attempt, states, logs}`` as one
    JSON variable (the server checks it in one pass and writes it in one transaction), up to
    ``batch_size`` states and logs each (2 500: fewer round trips; at 5 000 the server's lookups of a
    batch's task runs and write ids cost more than the requests saved). Every
    state carries a ``write_id`` (this process's random prefix and a counter), so a request
    retried after a lost answer is not applied twice.
    """

    def __init__(self, client: Any, flow_run_id: str, flush_interval: float = 0.25, batch_size: int = 2500,
                 attempt: int | None = None, lost: threading.Event | None = None, redact: SecretRedactor | None = None) -> None:
        self.client = client
        self.redact = redact or _NO_REDACTION
        self.flow_run_id = flow_run_id
        self.attempt = attempt
        self.lost = lost if lost is not None else threading.Event()
        """Set when the API refused a write as SUPERSEDED (the run is no longer ours): nothing more is sent."""
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self._wake_at = min(batch_size, WAKE_AT_STATES)
        """The sender is woken early once this many states wait: sends overlap the engine instead of following it."""
        self._states: list[dict[str, Any]] = []
        self._logs: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="headwater-outbox", daemon=True)
        self._write_prefix = uuid.uuid4().hex[:20]
        self._write_seq = itertools.count(1)
        self.sent_states = 0
        self.sent_logs = 0
        self.requests = 0
        self.rejected = 0
        self.superseded_logs = 0
        """Log records the API refused because this attempt was superseded (they were printed on stderr instead)."""

    def start(self) -> Outbox:
        self._thread.start()
        return self

    def task_state(self, task_slug: str, map_index: int | None, state: str, message: str | None,
                   serialized: dict[str, Any] | None = None) -> None:
        """Queue a task-run state; ``serialized`` holds what a later attempt needs (a result's location, a pause's end)."""
        if self.lost.is_set():  # a superseded attempt's states must not land (the API would refuse them)
            return
        if message is not None:
            message = self.redact(str(message)[:10000])
        item = {"task_slug": task_slug, "map_index": -1 if map_index is None else map_index, "type": state,
                "message": message, "write_id": f"{self._write_prefix}-{next(self._write_seq)}"}
        if serialized is not None:
            item["serialized"] = serialized
        # no lock on this hot path: list.append and next(count) are atomic, and the sender only removes from the front
        queue = self._states
        queue.append(item)
        if len(queue) >= self._wake_at and not self._wake.is_set():
            self._wake.set()

    def log(self, level: str, name: str, message: str, created: float) -> None:
        item = {"level": level, "name": name, "message": truncate_log(self.redact(message) or ""), "timestamp": _iso(created)}
        if self.lost.is_set():  # the API refuses this attempt's logs: they go to stderr (the agent's per-run file)
            self._print_superseded(item)
            return
        queue = self._logs
        queue.append(item)
        if len(queue) >= self.batch_size and not self._wake.is_set():
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

    def _batch(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The next states and logs to send: at most ``batch_size`` of each and :data:`MAX_REQUEST_BYTES` in all."""
        budget = MAX_REQUEST_BYTES - 1024
        with self._lock:
            states: list[dict[str, Any]] = []
            logs: list[dict[str, Any]] = []
            for queue, out in ((self._states, states), (self._logs, logs)):
                for item in queue[: self.batch_size]:
                    size = _size(item)
                    if out and size > budget:
                        break
                    budget -= size
                    out.append(item)
                    if budget <= 0:
                        break
        return states, logs

    def _superseded(self, exc: BaseException, logs: list[dict[str, Any]]) -> None:
        """The API refused this attempt's writes: stop sending, and keep its log records on stderr (the agent's per-run file)."""
        _stderr(f"flow run {self.flow_run_id}: {exc}")
        self.lost.set()
        with self._lock:
            queued = list(self._logs)
        sent = {id(item) for item in logs}
        for item in logs + [item for item in queued if id(item) not in sent]:
            self._print_superseded(item)

    def _print_superseded(self, item: dict[str, Any]) -> None:
        _stderr(f"[attempt {self.attempt}, superseded] {item['timestamp']} {item['level']} {item['name']}: {item['message']}")
        self.superseded_logs += 1

    def _send(self, states: list[dict[str, Any]], logs: list[dict[str, Any]]) -> bool:
        """Send one batch; a rejected batch is split until the offending item is alone (and only it is dropped).

        Returns False when the API stayed unreachable (nothing was dropped: the items stay queued).
        """
        from headwater_cloud_api.client.transport import APIClientError

        if self.lost.is_set() or (not states and not logs):
            return True
        batch = {"flow_run_id": self.flow_run_id, "attempt": self.attempt, "states": states, "logs": logs}
        try:
            self.requests += 1
            retrying(lambda: self.client.graphql(WRITE_RUN_BATCH, {"b": batch}), "sending task states and logs")
            self.sent_states += len(states)
            self.sent_logs += len(logs)
            return True
        except APIClientError as exc:
            if exc.code == "SUPERSEDED":  # the run was rescheduled: this process's writes must not land
                self._superseded(exc, logs)
                return True
            if classify(exc) == "unreachable":
                return False
            if len(states) + len(logs) <= 1:  # the one item the API refuses (the reason is printed; nothing else is lost)
                self.rejected += 1
                what = f"task state {states[0]['type']} of {states[0]['task_slug']}" if states else "a log record"
                _stderr(f"the API rejected {what}: {exc}")
                return True
            if len(states) > 1 or len(logs) > 1:
                hs, hl = (len(states) + 1) // 2, (len(logs) + 1) // 2
                return self._send(states[:hs], logs[:hl]) and self._send(states[hs:], logs[hl:])
            return self._send(states, []) and self._send([], logs)

    def flush(self) -> None:
        """Send what is queued now: batches that fit the server's request limit, retried while the API is unreachable."""
        while not self.lost.is_set():
            states, logs = self._batch()
            if not states and not logs:
                return
            if not self._send(states, logs):
                return  # still unreachable: keep everything queued and try again on the next flush
            with self._lock:
                del self._states[: len(states)]
                del self._logs[: len(logs)]
        with self._lock:  # superseded: what is queued belongs to an attempt that no longer counts
            self._states.clear()
            self._logs.clear()

    def close(self, timeout: float | None = None) -> None:
        """Flush everything and stop the sender (waits while the API is unreachable, up to ``timeout``)."""
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)


class Heartbeat:
    """Renews the run's lease from a daemon thread; ``cancel`` is set when the run is Cancelling (or no longer ours)."""

    def __init__(self, client: Any, flow_run_id: str, cancel: threading.Event, interval: float | None = None,
                 attempt: int | None = None, lost: threading.Event | None = None) -> None:
        self.client = client
        self.flow_run_id = flow_run_id
        self.cancel = cancel
        self.interval = interval
        self.attempt = attempt
        self.lease: float | None = None
        self.last_renewed = time.monotonic()
        self.lost = lost if lost is not None else threading.Event()
        self.running = threading.Event()
        """Set once this process wrote Running: from then on a state other than Running/Cancelling means the run is not ours."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="headwater-heartbeat", daemon=True)
        self.beats = 0

    def beat(self) -> dict[str, Any]:
        data = self.client.graphql(
            "mutation($r: String!, $a: Int) { flow_run_heartbeat(flow_run_id: $r, attempt: $a) { state version message lease attempt } }",
            {"r": self.flow_run_id, "a": self.attempt},
        )["flow_run_heartbeat"]
        self.beats += 1
        self.lease = float(data["lease"])
        if self.interval is None:
            self.interval = max(0.1, self.lease / 3)
        state = data["state"]
        if self.attempt is not None and data.get("attempt") not in (None, self.attempt):  # rescheduled: another process owns it
            self.lost.set()
            self.cancel.set()
            return data
        self.last_renewed = time.monotonic()
        if state in _CANCELLING_OR_CANCELLED:
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
            if self.lost.is_set():
                return

    def lease_expired(self) -> bool:
        """True while the lease has not been renewed for longer than the lease: the API may have given the run to another process."""
        return self.lease is not None and time.monotonic() - self.last_renewed > self.lease

    def wait_for_lease(self, max_wait: float = 3600.0) -> None:
        """Block (before a task starts) while the lease is expired; raise :class:`RunSuperseded` once the run is not ours.

        A server restart is waited out (the server grants one lease of grace after it starts, so the
        renewal succeeds); a partition during which the run was rescheduled ends here: the heartbeat
        then answers another attempt, and no further task starts.
        """
        started = time.monotonic()
        announced = False
        while self.lease_expired() and not self.lost.is_set():
            if not announced:
                _stderr(f"flow run {self.flow_run_id}: lease not renewed for {self.lease:.0f} s; no new task starts until the API "
                        "confirms this process still owns the run.")
                announced = True
            if time.monotonic() - started > max_wait:
                self.lost.set()
                self.cancel.set()
                break
            self._stop.wait(0.1)
        if self.lost.is_set():
            raise RunSuperseded(f"Flow run {self.flow_run_id}: this process's attempt {self.attempt} was superseded (or its lease "
                                "could not be renewed): it starts no more tasks and exits without writing states.")
        if announced:
            _stderr(f"flow run {self.flow_run_id}: lease renewed; tasks start again.")

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


class RunSuperseded(RuntimeError):
    """Raised before a task would start in a process whose flow-run attempt is no longer the current one."""


class _TaskRunningHook:
    """Lifecycle plugin registered in the flow-run process only: a task run submitted is Running (if the run is still ours)."""

    def __init__(self, outbox: Outbox, heartbeat: Heartbeat | None = None) -> None:
        self.outbox = outbox
        self.heartbeat = heartbeat

    @hookimpl
    def before_task_run(self, task: Any, map_index: int | None, context: dict[str, Any]) -> None:
        if self.heartbeat is not None:
            self.heartbeat.wait_for_lease()  # fencing: no task starts while the lease is expired or after the run was taken
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
        self.redact = SecretRedactor()
        self.lost = threading.Event()
        """Set once the API says this process's attempt was superseded (or the lease could not be renewed)."""
        env_attempt = os.environ.get("HEADWATER_FLOW_RUN_ATTEMPT")
        self.attempt: int | None = int(env_attempt) if env_attempt and env_attempt.isdigit() else None

    # --- flow-run states -------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        info = retrying(lambda: self.client.graphql(_RUN_QUERY, {"id": self.flow_run_id}), "reading the flow run")["flow_run"]
        if self.attempt is None:  # the agent may pass the attempt it claimed (HEADWATER_FLOW_RUN_ATTEMPT); else the current one
            self.attempt = int(info.get("attempt") or 0)
        return info  # type: ignore[no-any-return,unused-ignore]

    def _write(self, state: str, message: str | None, version: int | None) -> dict[str, Any]:
        from headwater_cloud_api.client.transport import APIClientError

        if message is not None and "\x00" in message:
            message = message.replace("\x00", "\ufffd")
        message = self.redact(message)
        variables = {"s": [{"flow_run_id": self.flow_run_id, "version": version, "attempt": self.attempt,
                            "write_id": uuid.uuid4().hex, "state": {"type": state, "message": message and message[:100000]}}]}
        try:
            result = retrying(lambda: self.client.graphql(_FLOW_STATE, variables), f"writing state {state}")["set_flow_run_states"][0]
        except APIClientError as exc:
            if exc.code != "SUPERSEDED":
                raise
            _stderr(f"flow run {self.flow_run_id}: {exc}")
            self.lost.set()
            self.cancel.set()
            return {"status": "SUPERSEDED", "state": "Superseded", "version": version}
        if result["status"] == "SUCCESS":
            self.version = result["version"]
        return result  # type: ignore[no-any-return,unused-ignore]

    def _write_final(self, state: str, message: str | None, lost: bool = False) -> str:
        """The final state, unless the run meanwhile finished, was rescheduled, or is no longer ours."""
        for _ in range(10):
            if self.lost.is_set():
                return "Superseded"
            result = self._write(state, message, self.version)
            if result["status"] == "SUCCESS":
                return state
            current = result["state"]
            if current in _FINISHED or current in _NOT_YET_RUNNING or lost:
                _stderr(f"flow run {self.flow_run_id} is {current} in the API; not writing {state}.")
                return current
            self.version = result["version"]  # e.g. Running -> Cancelling meanwhile: finish it
        return state

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> int:
        from headwater import states as st
        from headwater.plugins import from_dict, register_plugin, unregister_plugin

        info = self._read()
        self.version = info["version"]
        current = info["state"]["type"]
        if current == "Cancelling":
            self._write_final("Cancelled", "Cancelled before the flow started.")
            return EXIT_SUCCESS
        if current not in _NOT_YET_RUNNING:
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

        heartbeat = Heartbeat(self.client_factory(), self.flow_run_id, self.cancel, attempt=self.attempt, lost=self.lost)
        retrying(heartbeat.beat, "the first heartbeat")  # the API may be restarting right now: same backoff as every send
        if self.lost.is_set():
            _stderr(f"flow run {self.flow_run_id} belongs to a newer attempt than {self.attempt}: not running it.")
            return EXIT_NOT_RUNNABLE
        result = self._write("Running", f"Running flow {flow.name!r}.", self.version)
        if result["status"] != "SUCCESS":
            if result["state"] == "Cancelling":
                self._write_final("Cancelled", "Cancelled before the flow started.")
                return EXIT_SUCCESS
            _stderr(f"flow run {self.flow_run_id} became {result['state']} before it started: not running it.")
            return EXIT_NOT_RUNNABLE
        heartbeat.running.set()
        heartbeat.start()
        outbox = Outbox(self.client_factory(), self.flow_run_id, self.flush_interval, attempt=self.attempt, lost=self.lost,
                        redact=self.redact).start()
        self.redact.install()  # secrets the flow resolves from now on are hidden in what is sent to the API
        handler = _LogHandler(outbox)
        root = logging.getLogger("headwater")
        root.addHandler(handler)
        if root.level == logging.NOTSET or root.level > logging.INFO:
            root.setLevel(logging.INFO)
        plugin_name = register_plugin(_TaskRunningHook(outbox, heartbeat), name=f"headwater-cloud-api-runner-{self.flow_run_id}")

        default = apply_default_result(flow)  # [flows] checkpointing: on here unless configured off (Prefect 1)
        task_states = self._task_states(flow)  # a restarted, resumed or rescheduled run picks up its task runs' states
        given = {id(state) for state in task_states.values()}
        given |= {id(child) for state in task_states.values() for child in getattr(state, "map_states", ())}

        def on_task_state(task: Any, state: Any, map_index: int | None) -> None:
            if id(state) in given:  # a state this attempt was given (kept from an earlier one): already in the API
                return
            serialized = serialized_state(state)
            if serialized is None and default is not None:  # a default checkpoint that wrote nothing: say why
                serialized = checkpoint_note(task, state, default)
            outbox.task_state(task.slug, map_index, type(state).__name__, state.message, serialized)

        context = dict(info.get("context") or {})
        context["flow_run_id"] = self.flow_run_id
        if info.get("scheduled_start_time"):
            context["scheduled_start_time"] = datetime.fromisoformat(info["scheduled_start_time"])
        # Run records: what the storage resolved (GitHub/Git: repo, ref, commit SHA) goes on the flow run's record, and
        # tasks see that they run under the API (Prefect 1's running_with_backend: artifacts, flow-of-flows parent links).
        context["running_with_backend"] = True
        context["flow_run_attempt"] = self.attempt  # what the run's own API writes (artifacts) are fenced by
        details = storage.run_details()
        if details:
            try:
                retrying(lambda: self.client.flow_run(id=self.flow_run_id).set_details(details, attempt=self.attempt),
                         "recording the run details", stop=self.lost, max_wait=60)
            except Exception as exc:  # the run goes on: its logs still name the commit
                _stderr(f"could not record the run details of flow run {self.flow_run_id}: {exc}")
        try:
            final = flow.run(parameters=dict(info.get("parameters") or {}), run_on_schedule=False, context=context,
                             cancel=self.cancel, on_task_state=on_task_state, **({"task_states": task_states} if task_states else {}))
        except Exception as exc:
            logging.getLogger("headwater.execute").exception("Flow run %s raised", self.flow_run_id)
            final = st.Failed(f"The flow run raised before finishing: {type(exc).__name__}: {exc}")
        finally:
            if default is not None:
                default.close()  # the run's checkpoint pack files
            root.removeHandler(handler)
            unregister_plugin(plugin_name)
            self.redact.uninstall()
        outbox.close(timeout=10 if self.lost.is_set() else None)
        heartbeat.stop()
        name = type(final).__name__
        if self.lost.is_set():
            _stderr(f"flow run {self.flow_run_id} was taken from this process (no longer Running in the API): "
                    f"its result {name} is not written.")
            return EXIT_FAILED
        if isinstance(final, st.Paused) and not self.cancel.is_set():
            return self._paused(final)
        if isinstance(final, st.Cancelled) or (self.cancel.is_set() and not final.is_finished()):
            name = "Cancelled"
        written = self._write_final(name, final.message if isinstance(final.message, str) else str(final.message))
        ok = written in SUCCESS_STATE_NAMES or (written == "Cancelled" and self.cancel.is_set())
        return EXIT_SUCCESS if ok else EXIT_FAILED

    # --- restart, resume, pause (the task runs of earlier attempts) -------------------------------------

    def _task_states(self, flow: Any) -> dict[Any, Any]:
        """The states of task runs that earlier attempts finished (kept) or paused, for the engine; logs what runs again."""
        from headwater_cloud_api.execution.task_states import engine_takes_task_states, fetch_records, plan_task_states

        log = logging.getLogger("headwater.execute")
        try:
            plan = plan_task_states(flow, fetch_records(self.client, self.flow_run_id))
        except Exception as exc:  # never blocks the run: it runs every task, as a first attempt does
            log.warning("Could not read the task states of the earlier attempt (%s: %s); every task runs again.",
                        type(exc).__name__, exc)
            return {}
        if plan.resuming and not engine_takes_task_states(flow):
            log.warning("Flow %r has a parameter named 'task_states', so the earlier attempt's task states cannot be given to "
                        "the engine; every task runs again (rename the parameter to restart from failed).", flow.name)
            return {}
        plan.log(log)
        return plan.task_states

    def _paused(self, final: Any) -> int:
        """The flow run stopped with paused tasks: it becomes Paused (resume it through the API); exit 0.

        A paused task resumed while this process still ran (its task run is Resume now) is not
        lost: the run is scheduled again instead, and the next attempt runs it.
        """
        try:
            resumed = retrying(lambda: self.client.graphql(
                "query($id: String!) { task_runs(flow_run_id: $id, states: [\"Resume\"], limit: 1) { id } }",
                {"id": self.flow_run_id}), "reading resumed task runs", max_wait=60)["task_runs"]
        except Exception as exc:
            _stderr(f"could not check flow run {self.flow_run_id} for resumed task runs: {exc}")
            resumed = []
        if resumed:
            written = self._write_final("Scheduled", "A paused task was resumed while the flow run was running: scheduled again.")
        else:
            message = final.message if isinstance(final.message, str) else "Paused: waiting for a paused task to be resumed."
            written = self._write_final("Paused", f"{message} Resume it with `headwater flow-run resume {self.flow_run_id}`.")
        return EXIT_SUCCESS if written in SCHEDULED_STATE_NAMES else EXIT_FAILED  # Paused, or Scheduled again

    def _log(self, level: str, message: str) -> None:
        try:
            retrying(lambda: self.client.graphql(
                "mutation($l: [LogInput!]!) { write_logs(logs: $l) }",
                {"l": [{"flow_run_id": self.flow_run_id, "level": level, "name": "headwater.execute", "message": message,
                        "timestamp": _iso(time.time()), "attempt": self.attempt}]},
            ), "writing a log record", max_wait=60)
        except Exception as exc:  # kept here (the agent's per-run file) when the API refuses it or stays unreachable
            _stderr(f"could not write a log record ({exc}): {level} {message}")


def _default_client() -> Any:
    from headwater import Client

    return Client()


def execute_flow_run(flow_run_id: str, client_factory: Callable[[], Any] | None = None) -> int:
    """Run flow run ``flow_run_id`` here; returns the exit status (0 success or cancelled, 1 failed, 2 cannot load, 3 not runnable)."""
    return FlowRunExecution(flow_run_id, client_factory).run()
