"""Task logs from other processes: collect a call's ``headwater`` log records there, re-emit them here.

A worker process (``ProcessExecutor``'s, a Dask worker) has none of the flow-run process's
handlers: the terminal, the API's log sink. While a call runs, :func:`collecting_logs` gathers the
records of the ``headwater`` loggers emitted in its context (the context logger,
``log_stdout`` prints, a timeout thread's logs) as plain, picklable dicts; they travel back
with the outcome and :func:`replay_logs` hands them to this process's loggers, whose
handlers and levels decide what happens to them, as if the task had run here.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["install_log_capture", "collecting_logs", "portable_record", "replay_logs"]

_sink: contextvars.ContextVar[list[dict[str, Any]] | None] = contextvars.ContextVar("headwater_worker_logs", default=None)
_install_lock = threading.Lock()
_installed: list[logging.Handler] = []
_RECORD_SKIP = frozenset({"args", "exc_info", "msg", "message", "stack_info"})


class _Capture(logging.Handler):
    """Collects records of the current call (the context's sink) as plain, picklable dicts."""

    def emit(self, record: logging.LogRecord) -> None:
        sink = _sink.get()
        if sink is None:
            return
        try:
            sink.append(portable_record(record))
        except Exception:  # pragma: no cover - logging must never break a task
            self.handleError(record)


def portable_record(record: logging.LogRecord) -> dict[str, Any]:
    """``record`` as a dict of plain values (its message formatted, its traceback as text)."""
    message = record.getMessage()
    if record.exc_info:
        message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
    elif record.exc_text:
        message += "\n" + record.exc_text
    out: dict[str, Any] = {"msg": message, "args": None, "exc_info": None, "exc_text": None}
    for key, value in record.__dict__.items():
        if key in _RECORD_SKIP or key in out:
            continue
        if value is None or isinstance(value, (str, int, float, bool)):
            out[key] = value
    return out


def install_log_capture(level: int, propagate: bool | None = None) -> None:
    """Attach the collecting handler to the ``headwater`` logger once per process; make ``level`` reach it.

    ``propagate=False`` keeps the worker's own handlers (a root handler its main script set
    up, say) from printing the records that the flow-run process will print.
    """
    root = logging.getLogger("headwater")
    if root.getEffectiveLevel() > level:
        root.setLevel(level)
    if propagate is not None:
        root.propagate = propagate
    if _installed:
        return
    with _install_lock:
        if not _installed:
            handler = _Capture(logging.DEBUG)
            root.addHandler(handler)
            _installed.append(handler)


@contextmanager
def collecting_logs() -> Iterator[list[dict[str, Any]]]:
    """The records emitted in this context while the block runs (see :func:`install_log_capture`)."""
    records: list[dict[str, Any]] = []
    token = _sink.set(records)
    try:
        yield records
    finally:
        _sink.reset(token)


def replay_logs(records: list[dict[str, Any]]) -> None:
    """Emit records collected in another process to this process's loggers (their handlers, their levels)."""
    for data in records:
        record = logging.makeLogRecord(data)
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
