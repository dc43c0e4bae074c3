"""One task run: call the task, turn the outcome into a state, checkpoint, decide on a retry.

:func:`run_task` is what the flow runner submits to the executor, so it runs wherever the
executor runs it (this thread, a pool thread, a worker process) and returns the final
state of this attempt: Success, Failed, Retrying, Skipped, TimedOut, ...
"""

from __future__ import annotations

import contextvars
import io
import logging
import threading
import time
import traceback
from collections.abc import Mapping
from contextlib import redirect_stdout
from typing import Any

from headwater import signals
from headwater.states import Failed, Pending, Retrying, Running, State, Success, TimedOut
from headwater.utilities.context import context

__all__ = ["run_task", "call_state_handlers"]

_NOT_STARTED = Pending()


def call_state_handlers(obj: Any, handlers: list[Any], old: State, new: State) -> State:
    """Call ``handler(obj, old, new)`` for each handler; a handler may return a replacement state."""
    for handler in handlers:
        returned = handler(obj, old, new)
        if isinstance(returned, State):
            new = returned
    return new


def run_task(
    task: Any,
    inputs: dict[str, Any],
    ctx: Mapping[str, Any],
    run_count: int = 1,
    result: Any = None,
) -> State:
    """Run one attempt of ``task`` with ``inputs`` under ``ctx``; ``result`` set means checkpoint."""
    token = context._replace(ctx)
    handlers = task.state_handlers
    try:
        state: State | None = None  # the Running state is made only for handlers to see (hot path)
        ended = False
        if handlers:
            state = call_state_handlers(task, handlers, _NOT_STARTED, Running())
        try:
            if task.timeout is not None:
                value = _call_with_timeout(task, inputs)
            elif task.log_stdout:
                value = _call_logging_stdout(task, inputs, ctx)
            else:
                value = task.run(**inputs)
        except signals.ENDRUN as sig:
            new: State = sig.state
            ended = True  # exactly this state: no retry
        except signals.RETRY as sig:
            new = Retrying(str(sig) or "Retry signal raised.", start_time=time.time(), run_count=run_count)
        except signals.HeadwaterSignal as sig:
            new = sig.state
            if isinstance(new, Failed) and new.traceback is None:
                new.traceback = traceback.format_exc()
        except _TimeoutExpired as exc:
            new = TimedOut(str(exc), exc)
        except Exception as exc:
            new = Failed(f"Error during execution of task: {exc!r}", exc, traceback=traceback.format_exc())
        else:
            new = Success("Task run succeeded.", value)
            if result is not None:
                new = _checkpoint(task, new, result, ctx)
        if isinstance(new, Failed) and not isinstance(new, Retrying) and run_count <= task.max_retries and not ended:
            new = Retrying(
                f"Retrying after: {new.message} (run {run_count} of {task.max_retries + 1})",
                new.result,
                start_time=time.time() + task.retry_delay,
                run_count=run_count,
            )
        if handlers:
            new = call_state_handlers(task, handlers, state or Running(), new)
        return new
    finally:
        context._reset(token)


def _checkpoint(task: Any, state: Success, result: Any, ctx: Mapping[str, Any]) -> State:
    try:
        written = result.write(state.result, **ctx)
    except Exception as exc:
        return Failed(
            f"Task {task.name!r} succeeded but its result could not be checkpointed: {exc}",
            exc,
            traceback=traceback.format_exc(),
        )
    state.location = getattr(written, "location", None)
    return state


class _TimeoutExpired(Exception):
    pass


def _call_with_timeout(task: Any, inputs: dict[str, Any]) -> Any:
    """Run the task in a daemon thread and stop waiting after ``task.timeout`` seconds.

    Python cannot kill a thread: a timed-out call keeps running in the background until it
    returns, but its result is discarded and the task is TimedOut.
    """
    outcome: dict[str, Any] = {}
    ctx = contextvars.copy_context()

    def target() -> None:
        try:
            if task.log_stdout:
                outcome["value"] = ctx.run(_call_logging_stdout, task, inputs, ctx.get(context_var()))
            else:
                outcome["value"] = ctx.run(task.run, **inputs)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name=f"headwater-timeout-{task.name}", daemon=True)
    thread.start()
    thread.join(task.timeout)
    if thread.is_alive():
        raise _TimeoutExpired(f"Task {task.name!r} timed out after {task.timeout:g} seconds.")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def context_var() -> contextvars.ContextVar[Any]:
    from headwater.utilities.context import _current

    return _current


class _LogWriter(io.TextIOBase):
    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger
        self._buffer = ""

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._logger.info(line)
        return len(text)

    def flush(self) -> None:
        if self._buffer:
            self._logger.info(self._buffer)
            self._buffer = ""


def _call_logging_stdout(task: Any, inputs: dict[str, Any], ctx: Mapping[str, Any]) -> Any:
    writer = _LogWriter(ctx.get("logger") or logging.getLogger("headwater"))
    try:
        with redirect_stdout(writer):
            return task.run(**inputs)
    finally:
        writer.flush()
