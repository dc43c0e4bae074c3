"""A flow-run container's own output in the flow run's logs (what ``kubectl logs`` would show, in the API).

Two pieces, both free of the docker SDK so they are tested on their own:

* :class:`OutputFilter` turns the frames of one stream (``stdout`` or ``stderr``) of
  ``logs(stream=True, follow=True, timestamps=True)`` into lines: it strips the engine's
  timestamp, joins partial lines (podman sends ``print``'s text and its newline as two frames)
  and drops the lines of headwater's own log records (``<time> INFO    headwater.x | ...``):
  the runner inside the container already sends those records to the API itself. Lines that
  follow a record and look like its continuation (indented lines, its traceback) are held
  back; they are dropped when the record is over, but forwarded when the container ends
  non-zero right after them, because then they are most likely the crash's own traceback.
* :class:`LogForwarder` sends those lines to the API (``write_logs``) in batches from its own
  daemon thread, so a slow or unreachable API never blocks the agent's loop and heartbeats. It
  keeps at most ``max_pending`` lines (the newest: a crash's last lines matter most), retries
  with backoff, truncates huge lines with a marker, passes the attempt the agent claimed when
  the server's ``LogInput`` has an ``attempt`` field, and stops sending once the server says the
  attempt was superseded.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["OutputFilter", "LogForwarder", "RECORD_LINE", "MAX_LINE"]

RECORD_LINE = re.compile(r"^\S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+headwater\S* \| ")
"""A line of one of headwater's own log records (``[logging] format``'s default): not forwarded."""

MAX_LINE = 16 * 1024
"""Characters of one output line sent to the API; longer lines are cut with a marker."""

_TIMESTAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) ")
_CHAINED = ("During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:")
_MAX_HELD = 200
_log = logging.getLogger("headwater.docker")


def _iso(stamp: str) -> str:
    """The engine's RFC 3339 timestamp (nanoseconds with Docker) as ISO 8601 with at most microseconds."""
    match = re.match(r"^(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:?\d\d)$", stamp)
    if not match:
        return datetime.now(UTC).isoformat()
    head, fraction, zone = match.groups()
    return f"{head}{(fraction or '')[:7]}{'+00:00' if zone == 'Z' else zone}"


class OutputFilter:
    """The forwardable lines of one container stream, fed frame by frame (see the module docstring)."""

    def __init__(self) -> None:
        self.partial = ""
        self.partial_stamp = ""
        self.in_record = False
        self.in_traceback = False
        self.held: list[tuple[str, str]] = []

    def feed(self, frame: bytes) -> list[tuple[str, str]]:
        """``[(timestamp, line), ...]`` to forward after this frame (complete lines only)."""
        match = _TIMESTAMP.match(frame)
        stamp = _iso(match.group(1).decode()) if match else datetime.now(UTC).isoformat()
        text = frame[match.end():] if match else frame
        self.partial_stamp = self.partial_stamp or stamp
        self.partial += text.decode("utf-8", errors="replace")
        out: list[tuple[str, str]] = []
        while "\n" in self.partial:
            line, self.partial = self.partial.split("\n", 1)
            out += self._line(self.partial_stamp, line.rstrip("\r"))
            self.partial_stamp = stamp if self.partial else ""
        return out

    def close(self, crashed: bool) -> list[tuple[str, str]]:
        """The rest at the end of the stream: a partial last line, and held lines when the container ``crashed``."""
        out: list[tuple[str, str]] = []
        if self.partial:
            out += self._line(self.partial_stamp or datetime.now(UTC).isoformat(), self.partial)
            self.partial = ""
        if crashed:
            out += self.held
        self.held = []
        return out

    def _line(self, stamp: str, line: str) -> list[tuple[str, str]]:
        if RECORD_LINE.match(line):  # the runner's own record: the API has it already
            self.in_record, self.in_traceback, self.held = True, False, []
            return []
        if self.in_record and self._continues(line):
            self.held.append((stamp, line))
            if len(self.held) <= _MAX_HELD:
                return []
            released, self.held = self.held, []  # not a record's continuation after all
            self.in_record = self.in_traceback = False
            return released
        self.in_record = self.in_traceback = False
        self.held = []
        return [(stamp, line)]

    def _continues(self, line: str) -> bool:
        """Does ``line`` continue the record before it (its indented lines, its traceback)?"""
        if not line.strip() or line[:1] in (" ", "\t"):
            return True
        if line.startswith("Traceback (most recent call last):") or line in _CHAINED:
            self.in_traceback = True
            return True
        if self.in_traceback:  # the exception line that ends a traceback ("ValueError: ...")
            self.in_traceback = False
            return True
        return False


class LogForwarder:
    """Batches lines to ``write_logs`` of one flow run from a daemon thread (see the module docstring).

    ``client_factory`` returns a headwater ``Client`` (it is called in the sending thread).
    """

    def __init__(self, client_factory: Callable[[], Any], flow_run_id: str, attempt: int | None = None,
                 name: str = "headwater.docker.container", flush_interval: float = 0.5, max_batch: int = 200,
                 max_pending: int = 5000) -> None:
        self.client_factory = client_factory
        self.flow_run_id = flow_run_id
        self.attempt = attempt
        self.name = name
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.pending: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_pending)
        self.dropped = 0
        self.sent = 0
        self.superseded = False
        self._send_attempt = attempt is not None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._client: Any = None
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._loop, name=f"docker-log-forwarder-{flow_run_id[:8]}", daemon=True)
        self._thread.start()

    def put(self, stamp: str, line: str, level: str = "INFO", stream: str = "stdout") -> None:
        """Queue one line (never blocks; the oldest pending line makes room when the queue is full)."""
        if len(line) > MAX_LINE:
            line = line[:MAX_LINE] + f" ... [truncated: the line had {len(line)} characters]"
        record = {"flow_run_id": self.flow_run_id, "message": line, "level": level, "name": f"{self.name}.{stream}",
                  "timestamp": stamp}
        with self._lock:
            if len(self.pending) == self.pending.maxlen:
                self.dropped += 1
            self.pending.append(record)
            if len(self.pending) >= self.max_batch:
                self._wake.set()

    def close(self, timeout: float = 10.0) -> None:
        """Send what is pending (retrying for up to ``timeout`` seconds while the API is down) and stop the thread."""
        self._deadline = time.monotonic() + max(0.0, timeout - 0.5)
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)

    # --- the sending thread ---------------------------------------------------------------------------

    def _batch(self) -> list[dict[str, Any]]:
        with self._lock:
            count = min(self.max_batch, len(self.pending))
            batch = [self.pending.popleft() for _ in range(count)]
            if self.dropped and not self.pending:
                batch.append({"flow_run_id": self.flow_run_id, "level": "WARNING", "name": self.name,
                              "timestamp": datetime.now(UTC).isoformat(),
                              "message": f"[headwater] {self.dropped} older line(s) of the container's output were not "
                                         "sent (the API was slow or unreachable); the agent's per-run log file has them."})
                self.dropped = 0
        return batch

    def _loop(self) -> None:
        try:
            while True:
                self._wake.wait(self.flush_interval)
                self._wake.clear()
                closing = self._closing.is_set()
                while not self.superseded:
                    batch = self._batch()
                    if not batch:
                        break
                    if not self._send(batch, closing):
                        with self._lock:  # keep it for the next round (the deque drops the oldest if it must)
                            self.pending.extendleft(reversed(batch))
                        break
                if closing:
                    return
        finally:
            client, self._client = self._client, None
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing a client must not raise
                    pass

    def _send(self, batch: list[dict[str, Any]], closing: bool) -> bool:
        """One batch with a few retries; False leaves it pending (the API is down)."""
        delay = 0.25
        attempt = -1
        while True:
            attempt += 1
            if attempt >= 4 and not (closing and time.monotonic() + delay < self._deadline):
                return False
            logs = [{**r, "attempt": self.attempt} for r in batch] if self._send_attempt else batch
            try:
                if self._client is None:
                    self._client = self.client_factory()
                self._client.graphql("mutation($l: [LogInput!]!) { write_logs(logs: $l) }", {"l": logs})
                self.sent += len(batch)
                return True
            except Exception as exc:  # noqa: BLE001 - classified below; never raised into the agent
                text = str(exc)
                code = getattr(exc, "code", None)
                if self._send_attempt and "attempt" in text and code not in ("SUPERSEDED",):
                    self._send_attempt = False  # the server's LogInput has no attempt field (yet)
                    continue
                if code == "SUPERSEDED" or "SUPERSEDED" in text:
                    self.superseded = True
                    _log.info("Flow run %s: its attempt %s was superseded; its container's output is no longer sent.",
                              self.flow_run_id, self.attempt)
                    return True
                if code in ("BAD_INPUT", "NOT_FOUND"):  # a rejected payload: retrying sends the same thing
                    _log.warning("The API refused %d line(s) of flow run %s's container output: %s", len(batch),
                                 self.flow_run_id, exc)
                    return True
                if attempt == 0:
                    _log.debug("Sending container output of flow run %s failed (retrying): %s", self.flow_run_id, exc)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
