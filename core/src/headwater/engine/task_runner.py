"""One task run: call the task, turn the outcome into a state, checkpoint, decide on a retry.

:func:`run_task` is what the flow runner submits to the executor, so it runs wherever the
executor runs it (this thread, a pool thread, a worker process) and returns the final
state of this attempt: Success, Failed, Retrying, Skipped, TimedOut, ...

While a task runs no flow is active, so calling another task inside ``run()`` runs that
task's function instead of wiring it into the flow being run.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, overload

import attrs

from headwater import signals
from headwater.core.flow import _active_flows
from headwater.core.task import Task
from headwater.states import _TASK_RUN_SUCCEEDED as _SUCCEEDED
from headwater.states import (
    Cached,
    Failed,
    Pending,
    Resume,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)
from headwater.utilities import debug as _debug
from headwater.utilities.context import context
from headwater.utilities.context import context as _context
from headwater.utilities.logging import mask_secrets

__all__ = [
    "TaskRunner",
    "run_task",
    "check_upstream",
    "call_state_handlers",
    "StateHandlerError",
    "TaskRunNameError",
    "format_task_traceback",
    "KeyedChunk",
]

_NOT_STARTED = Pending()


class StateHandlerError(Exception):
    """A state handler raised: names the handler, the object and the transition."""


def call_state_handlers(obj: Any, handlers: list[Any], old: State, new: State) -> State:
    """Call ``handler(obj, old, new)`` for each handler; a handler may return a replacement state.

    A handler that raises is a :class:`StateHandlerError` naming it and the transition.
    """
    for handler in handlers:
        try:
            returned = handler(obj, old, new)
        except Exception as exc:
            name = getattr(handler, "__qualname__", None) or repr(handler)
            raise StateHandlerError(
                f"State handler {name} of {obj!r} raised {exc!r} on the transition {old.name} -> {new.name}. "
                "State handlers must not raise: catch errors inside the handler."
            ) from exc
        if isinstance(returned, State):
            new = returned
    return new


def check_upstream(task: Any, upstream_states: Mapping[Any, State], resumed: bool = False) -> State | None:
    """A final state if ``task`` must not run given its upstream states (a skip or its trigger), else None.

    ``resumed``: the task was given ``Resume``, so its trigger already passed when it paused.
    """
    if task.skip_on_upstream_skip:
        for s in upstream_states.values():
            if isinstance(s, Skipped):
                return Skipped("Upstream task was skipped; if this task should run anyway, set skip_on_upstream_skip=False.")
    if resumed:
        return None
    try:
        task.trigger(upstream_states)
    except signals.TRIGGERFAIL as sig:
        return TriggerFailed(str(sig), sig)
    except signals.SKIP as sig:
        return Skipped(str(sig))  # no result: downstream tasks that run anyway get None
    except signals.HeadwaterSignal as sig:  # signals are BaseExceptions: a trigger's FAIL, PAUSE, ...
        return sig.state
    except Exception as exc:
        return Failed(f"Error in the trigger of task {task.name!r}: {exc!r}", exc)
    return None


class TaskRunner:
    """Prefect 1's ``TaskRunner``: one attempt of one task, given its upstream states.

    ``run()`` checks the upstream states (skips, the trigger; ``Resume`` passes it), builds
    the inputs from the upstream results by edge key, and returns the attempt's state
    (``Retrying`` is returned, not waited for). Flows run through :class:`FlowRunner`; this
    is for running or testing a single task the way Prefect 1 code does.
    """

    def __init__(self, task: Task, state_handlers: Any = None, flow_result: Any = None) -> None:
        self.task = task
        self.state_handlers = list(state_handlers or [])
        self.result = task.result if task.result is not None else flow_result

    def run(
        self,
        state: State | None = None,
        upstream_states: Mapping[Any, State] | None = None,
        context: Mapping[str, Any] | None = None,
        is_mapped_parent: bool = False,
    ) -> State:
        """One attempt: the task's new state (a finished ``state`` is returned as it is)."""
        task = self.task
        state = state or Pending()
        if state.is_finished():
            return state
        upstream_states = dict(upstream_states or {})
        token = _context._replace({**_context.to_dict(), **(context or {})})
        try:
            decided = check_upstream(task, upstream_states, resumed=isinstance(state, Resume))
        finally:
            _context._reset(token)
        if decided is not None:
            return decided
        inputs: dict[str, Any] = {}
        for edge, upstream in upstream_states.items():
            key = getattr(edge, "key", None)
            if key is not None:
                value = upstream.result
                if getattr(edge, "flattened", False):
                    value = [item for sub in (value or ()) for item in sub]
                inputs[key] = value
        run_count = state.run_count + 1 if isinstance(state, Retrying) else 1
        ctx = {
            **(context or {}),
            "task_name": task.name,
            "task_slug": task.slug,
            "task_tags": task.tags,
            "map_index": (context or {}).get("map_index"),
            "task_full_name": task.name,
            "task_run_count": run_count,
            "logger": logging.getLogger(f"headwater.{task.name}"),
        }
        if isinstance(state, Resume):
            ctx["resume"] = True
        checkpoint = task.checkpoint if task.checkpoint is not None else self.result is not None
        new = run_task(task, inputs, ctx, run_count, self.result if checkpoint else None, state)
        if self.state_handlers:
            new = handle_or_fail(self, self.state_handlers, state, new)
        return new


def handle_or_fail(obj: Any, handlers: list[Any], old: State, new: State) -> State:
    """:func:`call_state_handlers`, but a raising handler turns ``new`` into a Failed state saying so."""
    try:
        return call_state_handlers(obj, handlers, old, new)
    except StateHandlerError as exc:
        return Failed(str(exc), exc.__cause__, traceback=traceback.format_exc())


def run_task(
    task: Any,
    inputs: dict[str, Any],
    ctx: Mapping[str, Any],
    run_count: int = 1,
    result: Any = None,
    previous: State | None = None,
) -> State:
    """Run one attempt of ``task`` with ``inputs`` under ``ctx``; ``result`` set means checkpoint.

    ``previous`` is the state the task is in before this attempt (the Retrying state of
    the attempt before, for a retry); state handlers see ``previous -> Running``.
    """
    token = context._replace(ctx)
    # no flow is being built while a task runs (usually none is active: nothing to set then)
    flows_token = _active_flows.set(()) if _active_flows.get() else None
    handlers = task.state_handlers
    try:
        state: State | None = None  # the Running state is made only for handlers to see (hot path)
        if handlers:
            state = handle_or_fail(task, handlers, previous or _NOT_STARTED, Running())
            if state.is_failed():
                return state
        target = getattr(task, "target", None)
        if target is not None and result is not None:
            result, found = _target_result(task, target, result, ctx)
            if found is not None:
                return handle_or_fail(task, handlers, state or Running(), found) if handlers else found
        run_name = getattr(task, "task_run_name", None)
        try:
            if run_name is not None:  # Prefect 1's task_run_name: a template or a callable, given inputs and context
                ctx = _with_run_name(task, run_name, inputs, ctx)
                context._replace(ctx)
            while True:
                try:
                    if task.timeout is not None:
                        value = _call_with_timeout(task, inputs)
                    elif task.log_stdout:
                        value = _call_logging_stdout(task, inputs, ctx)
                    else:
                        value = task.run(**inputs)
                    break
                except signals.LOOP as sig:  # run again with the loop's result in the context (Prefect 1's LOOP)
                    ctx = {**ctx, "task_loop_count": int(ctx.get("task_loop_count") or 1) + 1,
                           "task_loop_result": sig.state.result}
                    context._replace(ctx)
        except BaseException as exc:
            outcome = _error_state(task, exc, ctx, run_count)
            if outcome is None:
                raise
            new, ended = outcome
        else:
            new, ended = _value_state(task, value)
            if result is not None and not ended:
                new = _checkpoint(task, new, result, ctx)  # type: ignore[arg-type]
        new = _retry_or(task, new, run_count, ended)
        if handlers:
            new = handle_or_fail(task, handlers, state or Running(), new)
        return new
    finally:
        if flows_token is not None:
            _active_flows.reset(flows_token)
        context._reset(token)


def _error_state(task: Any, exc: BaseException, ctx: Mapping[str, Any], run_count: int) -> tuple[State, bool] | None:
    """The state an exception out of ``task.run`` becomes, and whether it ends the run (no retry).

    None for what the engine does not catch (KeyboardInterrupt, SystemExit): the caller re-raises.
    Called from inside the ``except`` block, so ``traceback.format_exc()`` is this exception's.
    """
    if isinstance(exc, signals.ENDRUN):
        return exc.state, True  # exactly this state: no retry
    if isinstance(exc, signals.RETRY):
        return Retrying(str(exc) or "Retry signal raised.", start_time=time.time(), run_count=run_count), False
    if isinstance(exc, signals.HeadwaterSignal):
        new = exc.state
        if isinstance(new, Failed) and new.traceback is None:
            new.traceback = traceback.format_exc()
        return new, False
    if isinstance(exc, _TimeoutExpired):
        _task_logger(ctx).error("Task %r: %s", task.name, exc)
        return TimedOut(str(exc), exc), False
    if not isinstance(exc, Exception):
        return None
    if _debug.RAISE_ON_EXCEPTION[0]:  # ``with raise_on_exception():`` -- out of flow.run() as it is
        raise _debug.RaisedInTask(exc) from exc
    formatted = mask_secrets(format_task_traceback(exc), fresh=True)
    # The traceback goes in the message (not exc_info) so every handler (terminal, API) gets it, masked.
    _task_logger(ctx).error("Task %r: exception encountered during task execution\n%s", task.name,
                            formatted.rstrip("\n"))
    return Failed(mask_secrets(f"Error during execution of task: {exc!r}"), exc, traceback=formatted), False


def _value_state(task: Any, value: Any) -> tuple[State, bool]:
    """The state a value returned by ``task.run`` becomes (a returned Task is a programming error)."""
    if isinstance(value, Task):
        return Failed(
            f"Task {task.name!r} returned the task {value!r} instead of a value. Tasks are wired "
            f"inside `with Flow(...)`, not returned from run(); to use {value.name}'s result here, "
            f"return {value.name}.run(...).",
            TypeError(f"task {task.name!r} returned a Task"),
        ), True  # retrying cannot help
    return Success(_SUCCEEDED, value), False


def _retry_or(task: Any, new: State, run_count: int, ended: bool) -> State:
    """``new``, or Retrying when it is a failure the task's retries cover."""
    if (isinstance(new, Failed) and not isinstance(new, Retrying) and run_count <= task.max_retries and not ended
            and _retries_on(task, new)):
        return Retrying(
            f"Retrying after: {new.message} (run {run_count} of {task.max_retries + 1})",
            new.result,
            start_time=time.time() + task.retry_delay,
            run_count=run_count,
        )
    return new


def _retries_on(task: Any, state: Failed) -> bool:
    """Whether ``state`` may be retried under the task's ``retry_on`` (None: every failure)."""
    retry_on = getattr(task, "retry_on", None)
    return retry_on is None or isinstance(state.result, retry_on)


def _with_run_name(task: Any, run_name: Any, inputs: Mapping[str, Any], ctx: Mapping[str, Any]) -> dict[str, Any]:
    """``ctx`` with ``task_run_name`` formatted from the context and the task's inputs (inputs win)."""
    values = {**ctx, **inputs}
    try:
        name = run_name(**values) if callable(run_name) else str(run_name).format(**values)
    except (KeyError, IndexError, AttributeError, TypeError, ValueError) as exc:
        raise TaskRunNameError(
            f"Task {task.name!r}: task_run_name {run_name!r} could not be formatted ({exc!r}); it may use the "
            f"task's inputs ({', '.join(sorted(inputs)) or 'none'}) and context keys such as map_index and flow_name."
        ) from exc
    return {**ctx, "task_run_name": str(name)}


class TaskRunNameError(ValueError):
    """A ``task_run_name`` template or callable failed (names the task, the template and the keys)."""


def run_task_batch(
    task: Any, runs: Sequence[Any], result: Any = None, context: Mapping[str, Any] | None = None,
    seconds: float | None = None,
) -> list[State]:
    """First attempts of several mapped children of ``task`` in one call: one payload, one trip to a worker.

    ``runs`` is ``[(inputs, context)]``; or, when ``context`` is given (the task's context
    shared by every child), ``[(map_index, inputs)]``, and each child runs under ``context``
    with its own ``map_index`` and ``task_full_name``, built here (in the worker) instead of
    travelling once per child. The states come back in the same order.

    With ``seconds`` (shared context only), children stop starting once that long has passed:
    the states of the children that ran come back (at least one), and the caller sends the rest again.
    """
    if context is None:
        return [run_task(task, inputs, ctx, 1, result) for inputs, ctx in runs]
    if _is_plain(task, result):
        return _run_plain_children(task, runs, context, seconds=seconds)
    name = context.get("task_name", task.name)
    states = []
    for index, inputs in runs if seconds is None else _until(runs, time.monotonic() + seconds):
        ctx = dict(context)
        ctx["map_index"] = index
        ctx["task_full_name"] = f"{name}[{index}]"
        states.append(run_task(task, inputs, ctx, 1, result))
    return states


class KeyedChunk(Sequence[tuple[int, dict[str, Any]]]):
    """Mapped children ``start, start + 1, ...`` whose inputs are one keyword each, ``{key: values[k]}``.

    What a map over one argument sends to :func:`run_task_batch` instead of a list of
    ``(map_index, inputs)`` pairs: it reads as that list (indexing, slicing, iteration), but the
    inputs are made only when a child runs, and it pickles as the key, the start and the values.
    """

    __slots__ = ("key", "start", "values")

    def __init__(self, key: str, start: int, values: Sequence[Any]) -> None:
        self.key, self.start, self.values = key, start, values

    def __len__(self) -> int:
        return len(self.values)

    @overload
    def __getitem__(self, k: int) -> tuple[int, dict[str, Any]]: ...

    @overload
    def __getitem__(self, k: slice) -> KeyedChunk: ...

    def __getitem__(self, k: int | slice) -> Any:
        if isinstance(k, slice):
            first, stop, step = k.indices(len(self.values))
            if step != 1:
                return [self[i] for i in range(first, stop, step)]
            return KeyedChunk(self.key, self.start + first, self.values[first:stop])
        if k < 0:
            k += len(self.values)
        return (self.start + k, {self.key: self.values[k]})

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any]]]:
        key = self.key
        return ((i, {key: v}) for i, v in enumerate(self.values, self.start))

    def indices(self) -> range:
        return range(self.start, self.start + len(self.values))

    def __reduce__(self) -> tuple[Any, ...]:
        return (KeyedChunk, (self.key, self.start, list(self.values)))

    def __repr__(self) -> str:
        return f"<KeyedChunk {self.key}=... [{self.start}:{self.start + len(self.values)}]>"


def _is_plain(task: Any, result: Any) -> bool:
    """Whether a run of ``task`` is only the call and its outcome: no handlers, checkpoint, run name, timeout or stdout."""
    return (result is None and not task.state_handlers and task.timeout is None and not task.log_stdout
            and getattr(task, "task_run_name", None) is None and not _active_flows.get())


def _run_plain_children(task: Any, runs: Sequence[tuple[int, dict[str, Any]]], context: Mapping[str, Any],
                        compact: bool = False, seconds: float | None = None) -> list[Any]:
    """:func:`run_task` for each child of a plain task (see :func:`_is_plain`), with its steps inlined.

    The same states as ``run_task``: a raised exception goes through the same conversion and
    retry decision, and a LOOP signal continues in ``run_task`` with the loop's context. Each
    child's context is a :class:`_ChildContext` over the task's, not a copy of it. ``compact``
    (a process pool's worker): a plain Success is returned as ``(value, timestamp)`` instead.
    ``seconds``: as :func:`run_task_batch`'s (the states of the children that ran, at least one).
    """
    prefix = f"{context.get('task_name', task.name)}["
    call = task.run
    var = context_var()
    new = object.__new__
    success = Success
    now = time.time
    states: list[Any] = []
    append = states.append
    # The clock is read once per child anyway (its timestamp), so the time box costs one comparison.
    # Wall-clock time: a clock step only makes a chunk come back early (the rest is sent again) or late.
    until = float("inf") if seconds is None else now() + seconds
    positional, keyed, key = False, False, ""
    pairs: Iterable[tuple[int, Any]] = runs
    if type(runs) is KeyedChunk:  # one input each: iterate the values, no dict per child
        binding = task._simple_binding() if isinstance(task, Task) else None
        positional = binding is not None and binding[0][:1] == (runs.key,)
        pairs, keyed, key = enumerate(runs.values, runs.start), True, runs.key
    first = None
    try:
        for index, item in pairs:
            ctx = new(_ChildContext)
            ctx._base, ctx._index, ctx._prefix = context, index, prefix
            token = var.set(ctx)  # each child replaces the previous one's; the first token restores it all
            if first is None:
                first = token
            try:
                value = call(item) if positional else call(**({key: item} if keyed else item))
            except signals.LOOP as sig:
                loop_ctx = {**ctx, "task_loop_count": int(ctx.get("task_loop_count") or 1) + 1,
                            "task_loop_result": sig.state.result}
                append(run_task(task, {key: item} if keyed else item, loop_ctx, 1))
                done = now()
            except BaseException as exc:
                outcome = _error_state(task, exc, ctx, 1)
                if outcome is None:
                    raise
                append(_retry_or(task, outcome[0], 1, outcome[1]))
                done = now()
            else:
                done = now()
                if isinstance(value, Task):
                    append(_value_state(task, value)[0])
                elif compact:
                    append((value, done))
                else:
                    state = new(success)  # Success(_SUCCEEDED, value), without its __init__ (a test compares every field)
                    state.message, state.result, state.location, state.ts = _SUCCEEDED, value, None, done
                    append(state)
            if done >= until:
                break
    finally:
        if first is not None:
            var.reset(first)
    return states


def _until(runs: Iterable[Any], until: float) -> Iterator[Any]:
    """``runs``, stopping before the next one once ``time.monotonic()`` reaches ``until`` (the first always runs)."""
    clock = time.monotonic
    for k, run in enumerate(runs):
        if k and clock() >= until:
            return
        yield run


class _ChildContext(Mapping[str, Any]):
    """A mapped child's context: its task's context with the child's ``map_index`` and ``task_full_name``.

    A read-only view (``headwater.context`` replaces the mapping on every change, never
    mutates it), so the task's context is shared by its children instead of copied per child.
    """

    __slots__ = ("_base", "_index", "_prefix")
    _base: Mapping[str, Any]
    _index: int
    _prefix: str

    def __getitem__(self, key: str) -> Any:
        if key == "map_index":
            return self._index
        if key == "task_full_name":
            return f"{self._prefix}{self._index}]"
        return self._base[key]

    def __contains__(self, key: object) -> bool:
        return key == "map_index" or key == "task_full_name" or key in self._base

    def __iter__(self) -> Iterator[str]:
        base = self._base
        yield from base
        for key in ("map_index", "task_full_name"):
            if key not in base:
                yield key

    def __len__(self) -> int:
        base = self._base
        return len(base) + ("map_index" not in base) + ("task_full_name" not in base)

    def __repr__(self) -> str:
        return repr(dict(self))


_ENGINE_DIR = os.path.dirname(os.path.abspath(__file__))


def format_task_traceback(exc: BaseException) -> str:
    """The exception's traceback without the engine's own leading frames: it starts in the user's code."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code.co_filename.startswith(_ENGINE_DIR):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _task_logger(ctx: Mapping[str, Any]) -> logging.Logger:
    """The context logger of the task run (``headwater.<task name>``)."""
    return ctx.get("logger") or logging.getLogger("headwater.TaskRunner")


def _target_result(task: Any, target: Any, result: Any, ctx: Mapping[str, Any]) -> tuple[Any, State | None]:
    """``(result at the target, Cached state if a result is already there)`` (Prefect 1's target caching)."""
    template = target(**ctx) if callable(target) else target
    at_target = result.at(template) if hasattr(result, "at") else attrs.evolve(result, location=template)
    location = at_target.format(**ctx)
    try:
        if not at_target.exists(location):
            return at_target, None
        value = at_target.read(location).value
    except Exception as exc:  # an unreadable target is not a cache hit: run the task and write it again
        _task_logger(ctx).warning("Task %r: target %s could not be read (%s); running the task.", task.name,
                                  location, exc)
        return at_target, None
    _task_logger(ctx).info("Task %r: result found at target %s; not running it.", task.name, location)
    return at_target, Cached(f"Result found at task target {location}", value, location=location)


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
                outcome["value"] = ctx.run(_call_logging_stdout, task, inputs, ctx.get(context_var()) or {})
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


class _LogWriter:
    """Sends whole lines written to it to ``logger`` at INFO."""

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


# ``log_stdout``: ``sys.stdout`` is one object for the whole process, so swapping it per task
# (contextlib.redirect_stdout) mixes up tasks running in parallel threads and can leave it
# swapped. Instead one router replaces it while any log_stdout task runs and sends each
# write to the writer of the task whose context is current (the real stdout otherwise).
_stdout_target: contextvars.ContextVar[_LogWriter | None] = contextvars.ContextVar(
    "headwater_stdout_target", default=None
)
_router_lock = threading.Lock()
_router_users = 0
_router: _StdoutRouter | None = None


class _StdoutRouter:
    """Stands in for ``sys.stdout``: writes go to the current task's log writer, or to ``original``."""

    def __init__(self, original: Any) -> None:
        self.original = original

    def write(self, text: str) -> int:
        target = _stdout_target.get()
        if target is None:
            return self.original.write(text)
        return target.write(text)

    def flush(self) -> None:
        target = _stdout_target.get()
        if target is None:
            self.original.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno, ... of the real stream
        return getattr(self.original, name)


@contextmanager
def _stdout_to(writer: _LogWriter) -> Iterator[None]:
    """Route this context's prints to ``writer`` (thread-safe, nestable)."""
    global _router_users, _router
    with _router_lock:
        if _router is None or sys.stdout is not _router:  # first user, or stdout was replaced meanwhile
            _router = _StdoutRouter(sys.stdout)
            sys.stdout = _router
        _router_users += 1
    token = _stdout_target.set(writer)
    try:
        yield
    finally:
        _stdout_target.reset(token)
        with _router_lock:
            _router_users -= 1
            if _router_users == 0 and _router is not None:
                if sys.stdout is _router:
                    sys.stdout = _router.original
                _router = None


def _call_logging_stdout(task: Any, inputs: dict[str, Any], ctx: Mapping[str, Any]) -> Any:
    writer = _LogWriter(ctx.get("logger") or logging.getLogger("headwater"))
    try:
        with _stdout_to(writer):
            return task.run(**inputs)
    finally:
        writer.flush()
