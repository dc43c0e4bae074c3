"""The flow runner: ticks a flow's graph on an executor until every task has a final state.

Each tick starts every task whose upstream tasks are finished (checking skips, the trigger
and the cache in this process), submits it to the executor, and records the states that
come back. Retries wait in a timer heap, so a task waiting to retry never blocks other ready
tasks. Cancellation is checked between ticks.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from headwater import signals
from headwater.core.collections import flatten_map_states, flatten_result
from headwater.engine.cache import task_cache
from headwater.engine.task_runner import (
    KeyedChunk,
    StateHandlerError,
    call_state_handlers,
    check_upstream,
    handle_or_fail,
    run_task,
    run_task_batch,
)
from headwater.executors.base import Executor
from headwater.executors.local import LocalExecutor
from headwater.states import (
    Cached,
    Cancelled,
    Cancelling,
    Failed,
    Mapped,
    Paused,
    Pending,
    Resume,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TriggerFailed,
)
from headwater.triggers import all_successful
from headwater.utilities.context import context
from headwater.utilities.logging import (
    SecretMaskingFilter,
    configure_logging,
    get_logger,
    iso_timestamp,
    refresh_secrets,
)

if TYPE_CHECKING:
    from headwater.core.edge import Edge
    from headwater.core.flow import Flow
    from headwater.core.task import Task

__all__ = ["FlowRunner", "ParameterError", "RUNNER_ARGUMENTS", "run_flow", "resolve_parameters"]

RUNNER_ARGUMENTS = frozenset({"task_states", "return_tasks"})
"""Keyword arguments of ``flow.run()`` that go to the runner (Prefect 1's ``**kwargs``), not to parameters."""

logger = get_logger("engine")


class ParameterError(ValueError):
    """Parameters given to a flow run do not match the flow's parameters."""


def resolve_parameters(flow: Flow, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``given`` against the flow's parameters; raise before anything runs."""
    params = {p.name: p for p in flow.parameters()}
    unknown = sorted(set(given) - set(params))
    if unknown:
        known = ", ".join(sorted(params)) or "none"
        raise ParameterError(
            f"Flow {flow.name!r} has no parameter {', '.join(map(repr, unknown))}; its parameters are: {known}."
        )
    missing = sorted(name for name, p in params.items() if p.required and name not in given)
    if missing:
        example = ", ".join(f"{m!r}: ..." for m in missing)
        raise ParameterError(
            f"Flow {flow.name!r} is missing required parameter(s) {', '.join(map(repr, missing))}: "
            f"pass them as flow.run(parameters={{{example}}})."
        )
    return dict(given)


def _is_cancel_requested(cancel: Any) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def _date_context(start: datetime) -> dict[str, Any]:
    return {
        "scheduled_start_time": start,
        "date": start,
        "today": start.strftime("%Y-%m-%d"),
        "today_nodash": start.strftime("%Y%m%d"),
        "yesterday": (start - timedelta(days=1)).strftime("%Y-%m-%d"),
        "yesterday_nodash": (start - timedelta(days=1)).strftime("%Y%m%d"),
        "tomorrow": (start + timedelta(days=1)).strftime("%Y-%m-%d"),
        "tomorrow_nodash": (start + timedelta(days=1)).strftime("%Y%m%d"),
    }


def _add_expanded(into: dict[Any, State], edge: Edge, state: State) -> None:
    """Put ``state`` into ``into`` under ``edge``, or each child of a Mapped state under ``(edge, index)``."""
    if isinstance(state, Mapped) and state.map_states:
        for i, child in enumerate(state.map_states):
            into[(edge, i)] = child
    else:
        into[edge] = state


class FlowRunner:
    """Runs one flow run. ``run()`` returns the flow's final state."""

    _inline = False
    """On the plain LocalExecutor, task runs are called directly (set per run by the tick loop)."""

    def __init__(
        self,
        flow: Flow,
        executor: Executor | None = None,
        parameters: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
        cancel: Any = None,
        on_task_state: Callable[[Task, State, int | None], Any] | None = None,
        hooks: Any = None,
        task_states: Mapping[Task, State] | None = None,
        return_tasks: Iterable[Task] | None = None,
    ) -> None:
        self.flow = flow
        self.executor = executor or flow.executor or LocalExecutor()
        self.parameters = dict(parameters or {})
        self.cancel = cancel
        self.on_task_state = on_task_state
        self.hooks = hooks
        self.given_states: dict[Task, State] = dict(task_states or {})
        """States the run starts from (a restart, a resume): finished ones are kept, ``Resume`` runs."""
        self.return_tasks: set[Task] | None = None if return_tasks is None else set(return_tasks)
        self.task_states: dict[Task, State] = {}
        self._given_context = dict(context or {})
        self._set_context(self._given_context)
        self.state: State = Pending()

    def _set_context(self, context: Mapping[str, Any] | None) -> None:
        start = (context or {}).get("scheduled_start_time") or datetime.now(UTC)
        run_id = str(uuid.uuid4())
        self.base_context: dict[str, Any] = {
            "flow_name": self.flow.name,
            "flow_run_id": run_id,
            "flow_run_name": f"{self.flow.name}-{run_id[:8]}",
            "parameters": self.parameters,
            **_date_context(start),
            **(context or {}),
        }

    # --- the run ------------------------------------------------------------------------

    def run(
        self,
        state: State | None = None,
        task_states: Mapping[Task, State] | None = None,
        return_tasks: Iterable[Task] | None = None,
        parameters: Mapping[str, Any] | None = None,
        task_runner_state_handlers: Any = None,
        executor: Executor | None = None,
        context: Mapping[str, Any] | None = None,
        task_contexts: Any = None,
        *,
        validate: bool = True,
    ) -> State:
        """Run to the end and return the flow run's final state (Prefect 1's ``FlowRunner.run``).

        ``task_states`` are the states the run starts from: a task given a finished state is
        not run again, and its state (with its ``result``) feeds its downstream tasks; a
        ``Resume`` state runs the task past its trigger; a ``Paused`` one stays paused. A
        ``Mapped`` state keeps its finished children and reruns the others (give a child as
        ``None`` or ``Pending`` to rerun it). ``return_tasks`` limits which task states the
        final state's ``result`` holds (default: all of them; Prefect 1 kept none). Arguments
        given here win over those given to the constructor. ``validate=False`` when the
        caller has just validated the flow. ``task_runner_state_handlers`` and
        ``task_contexts`` are accepted for Prefect 1 compatibility and not used.
        """
        flow = self.flow
        if state is not None and state.is_finished():
            self.state = state
            return state  # Prefect 1: a finished flow run is not run again
        if executor is not None:
            self.executor = executor
        if parameters is not None:
            self.parameters = dict(parameters)
        if context is not None or parameters is not None:
            self._given_context = {**self._given_context, **(context or {})}
            self._set_context(self._given_context)
        if task_states is not None:
            self.given_states = dict(task_states)
        if return_tasks is not None:
            self.return_tasks = set(return_tasks)
        if validate:
            flow.validate()
        resolve_parameters(flow, self.parameters)
        self._set_flow_state(Running("Running flow."))
        if self.state.is_finished():  # a flow state handler failed or ended the run: start nothing
            return self.state
        log = logging.getLogger("headwater.FlowRunner")
        log.info("Beginning flow run for %r", flow.name)
        try:
            with self.executor.start():
                self._tick_until_done()
        except Exception as exc:  # an engine or executor error, not a task error
            log.exception("Unexpected error while running flow %r", flow.name)
            self._set_flow_state(Failed(f"Unexpected error while running flow: {exc!r}", exc))
            return self.state
        self._wait_behind_paused()
        final = self._final_state()
        self._set_flow_state(final)
        log.info("Flow run %s: %s", final.name.upper(), final.message)
        return self.state

    def _set_flow_state(self, new: State) -> None:
        old = self.state
        if self.flow.state_handlers:
            try:
                new = call_state_handlers(self.flow, self.flow.state_handlers, old, new)
            except StateHandlerError as exc:  # the run fails, keeping the task states it has
                new = Failed(str(exc), new.result if isinstance(new.result, dict) else dict(self.task_states))
        self.state = new

    def _wait_behind_paused(self) -> None:
        """Tasks that never started because an upstream task is paused stay Pending (Prefect 1)."""
        states = self.task_states
        if len(states) == len(self.flow.graph.tasks):
            return
        paused = sorted(t.slug or t.name for t, s in states.items() if isinstance(s, Paused))
        why = f"Waiting for paused task(s) {', '.join(paused)} to be resumed." if paused else "Upstream tasks did not finish."
        for task in self.flow.graph.tasks:
            if task not in states:
                states[task] = Pending(why)

    def _returned(self) -> dict[Task, State]:
        """The task states the final state holds: all of them, or only ``return_tasks``."""
        if self.return_tasks is None:
            return self.task_states
        return {t: s for t, s in self.task_states.items() if t in self.return_tasks}

    def _final_state(self) -> State:
        states = self.task_states
        if self._cancelled:
            return Cancelled("Flow run was cancelled.", self._returned())
        waiting = [t for t, s in states.items() if isinstance(s, Paused)]
        if waiting:
            names = ", ".join(sorted(t.slug or t.name for t in waiting))
            return Paused(f"Flow run is paused: task(s) {names} wait to be resumed.", self._returned())
        reference = self.flow.reference_tasks()
        failed = []
        for t in reference:
            s = states[t]
            if s.is_failed() or (isinstance(s, Mapped) and any(c.is_failed() for c in s.map_states)):
                failed.append(t)
        if failed:
            return Failed(failure_summary(self.flow, states, failed), self._returned())
        return Success("All reference tasks succeeded.", self._returned())

    def _tick_until_done(self) -> None:
        flow = self.flow
        self._cancelled = False
        self._upstream: Mapping[Task, Sequence[Edge]] = flow.graph.upstream
        self._downstream: Mapping[Task, Sequence[Edge]] = flow.graph.downstream
        self._mapped_tasks = {t for t, edges in self._upstream.items() if any(e.mapped for e in edges)}
        self._remaining = {t: len({e.upstream_task for e in edges}) for t, edges in self._upstream.items()}
        self._ready: deque[Task] = deque(t for t in flow.graph.tasks if self._remaining[t] == 0)
        self._running: dict[Any, tuple[Task, int | None, Any, int]] = {}
        """future -> (task, map index or _BATCH, inputs (a chunk's [(index, inputs)] for _BATCH), run count)."""
        self._delayed: list[tuple[float, int, Task, int | None, dict[str, Any], int, State]] = []
        self._seq = itertools.count()
        self._map_pending: dict[Task, int] = {}
        self._map_states: dict[Task, list[State | None]] = {}
        self._loggers: dict[str, logging.Logger] = {}
        self._resumed: set[Task] = set()
        self._clean_mapped: set[Task] = set()
        """Mapped tasks whose children are all plain Success (see :meth:`_all_clean`)."""
        self._chunk_args: dict[Task, tuple[Any, dict[str, Any]]] = {}
        """Mapped task -> (result, shared context) its chunks were submitted with (to submit the rest of one)."""
        executor = self.executor
        local = isinstance(executor, LocalExecutor)
        self._inline = type(executor) is LocalExecutor  # run_task called here, without a future in between
        while self._ready or self._running or self._delayed:
            if _is_cancel_requested(self.cancel) and not self._cancelled:
                self._set_flow_state(Cancelling("Cancel requested: running tasks finish, pending ones are cancelled."))
                self._cancel_pending()
            ready = self._ready
            if self._inline:
                # Inline runs finish as they start: the tasks they make ready wait for the next tick
                # (after the cancel check), as they would if the runs had finished on an executor.
                for _ in range(len(ready)):
                    if self._cancelled or not ready:
                        break
                    self._start(ready.popleft())
            while ready and not self._cancelled and not self._inline:
                self._start(ready.popleft())
            if self._running:
                if local:
                    done = list(self._running)
                else:
                    timeout = None
                    if self._delayed:
                        timeout = max(0.0, self._delayed[0][0] - time.time())
                    if self.cancel is not None:
                        timeout = 0.2 if timeout is None else min(timeout, 0.2)
                    done = executor.completed(self._running, timeout=timeout)
                for future in done:
                    self._complete(future)
            elif self._delayed and not self._ready:
                wait = self._delayed[0][0] - time.time()
                if wait > 0:
                    time.sleep(min(wait, 0.2) if self.cancel is not None else wait)
            now = time.time()
            while self._delayed and self._delayed[0][0] <= now and not self._cancelled:
                _, _, task, map_index, inputs, run_count, previous = heapq.heappop(self._delayed)
                self._submit(task, map_index, inputs, run_count, previous)
            if self._cancelled and not self._running:
                break

    def _cancel_pending(self) -> None:
        """Stop starting tasks: everything not running now ends Cancelled; running work finishes."""
        self._cancelled = True
        message = _CANCELLED_BEFORE_START
        running: set[tuple[Task, int | None]] = set()
        for t, mi, inputs, _ in self._running.values():
            if mi is _BATCH:  # a chunk: each of its children is running (or will be cancelled with it)
                running.update((t, i) for i, _ in inputs)
            else:
                running.add((t, mi))
        delayed, self._delayed = self._delayed, []
        self._ready.clear()
        for _, _, task, map_index, *_ in delayed:
            if map_index is None:
                self._record(task, None, Cancelled(message))
            else:
                self._child_done(task, map_index, Cancelled(message))
        for task, children in list(self._map_states.items()):
            for i, child in enumerate(children):
                if child is None and (task, i) not in running:
                    self._child_done(task, i, Cancelled(message))
        for task in self.flow.graph.tasks:
            state = self.task_states.get(task)
            if (state is None or not state.is_finished()) and task not in self._map_states and (task, None) not in running:
                self._record(task, None, Cancelled(message))
        if self._running:
            self.executor.cancel(list(self._running))

    # --- one task -------------------------------------------------------------------------

    def _record(self, task: Task, map_index: int | None, state: State) -> None:
        if map_index is None:
            self.task_states[task] = state
        if self.on_task_state is not None:
            self.on_task_state(task, state, map_index)

    def _upstream_states(self, task: Task) -> dict[Any, State]:
        """Upstream states for triggers, with a mapped upstream expanded into its children."""
        states = self.task_states
        result: dict[Any, State] = {}
        for edge in self._upstream[task]:
            _add_expanded(result, edge, states[edge.upstream_task])
        return result

    def _all_clean(self, task: Task) -> bool:
        """Whether ``task`` has the default trigger and every upstream state (a Mapped one's every child)
        is a Success that is not Skipped: then its check passes without building the upstream map."""
        if task.trigger is not all_successful or task in self._resumed:
            return False
        states = self.task_states
        clean = self._clean_mapped
        for edge in self._upstream[task]:
            s = states[edge.upstream_task]
            if isinstance(s, Mapped):
                if edge.upstream_task not in clean:
                    return False
            elif not isinstance(s, Success) or isinstance(s, Skipped):
                return False
        return True

    def _decided(self, task: Task, state: State) -> State:
        """Let the task's state handlers see (and replace) a state decided without running it."""
        if task.state_handlers:
            return handle_or_fail(task, task.state_handlers, Pending(), state)
        return state

    def _check(self, task: Task, upstream_states: Mapping[Any, State]) -> State | None:
        """A final state if the task must not run (skip or trigger), else None."""
        default = task.trigger is all_successful
        if default and not upstream_states:
            return None
        if default:
            return check_upstream(task, upstream_states, resumed=task in self._resumed)
        token = context._replace(self.base_context)  # triggers may read the run's context (manual_only: resume)
        try:
            return check_upstream(task, upstream_states, resumed=task in self._resumed)
        finally:
            context._reset(token)

    def _value(self, edge: Edge, state: State) -> Any:
        value = state.result
        if edge.flattened:
            if isinstance(state, Mapped):
                value = flatten_map_states(state.map_states)[0]
            else:
                value = flatten_result(value)
        return value

    def _inputs(self, task: Task) -> dict[str, Any]:
        inputs = dict(self.flow.constants.get(task, ()))
        states = self.task_states
        for edge in self._upstream[task]:
            if edge.key is not None:
                inputs[edge.key] = self._value(edge, states[edge.upstream_task])
        return inputs

    def _start(self, task: Task) -> None:
        previous = None
        if self.given_states and getattr(task, "_rerun_on_restart", False):
            given = self.given_states.get(task)  # resource setup/cleanup rerun on a restart, as in Prefect 1
            if given is not None and given.is_finished() and not isinstance(given, Cached):
                del self.given_states[task]
        if self.given_states:
            previous = self.given_states.get(task)
            if previous is not None and not (isinstance(previous, Mapped) and task in self._mapped_tasks):
                if previous.is_finished() or isinstance(previous, Paused):
                    self._keep(task, previous)
                    return
                if isinstance(previous, Resume):
                    self._resumed.add(task)
        if task in self._mapped_tasks:
            self._start_mapped(task)
            return
        if self._all_clean(task):  # the default trigger passes on these upstream states, and nothing is skipped
            final = None
        else:
            final = self._check(task, self._upstream_states(task) if self._upstream[task] else {})
        if final is not None:
            self._finish(task, self._decided(task, final))
            return
        inputs = self._inputs(task)
        if task.cache_for is not None:
            key = task.cache_key or f"{self.flow.name}:{task.slug}"
            cached = task_cache.lookup(key, task, inputs, self.parameters)
            if cached is not None:
                self._finish(task, self._decided(task, cached))
                return
        self._submit(task, None, inputs, 1, previous)

    def _start_mapped(self, task: Task) -> None:
        states = self.task_states
        mapped_items: dict[str, tuple[list[Any], list[State] | None]] = {}
        plain_upstream: dict[Any, State] = {}
        lengths: dict[str, int] = {}
        # As Prefect 1 checks a mapped parent: a skipped upstream of a non-mapped edge (or a skipped
        # child of a Mapped one) skips the whole task before it expands (a branch not taken).
        if task.skip_on_upstream_skip:
            for edge in self._upstream[task]:
                s = states[edge.upstream_task]
                if edge.mapped and isinstance(s, Mapped):
                    continue
                if any(isinstance(c, Skipped) for c in (s.map_states if isinstance(s, Mapped) else (s,))):
                    self._finish(task, self._decided(task, Skipped(
                        "Upstream task was skipped; if this task should run anyway, set skip_on_upstream_skip=False.")))
                    return
        # A mapped task cannot map over a failed (non-list) upstream: check those first.
        for edge in self._upstream[task]:
            s = states[edge.upstream_task]
            if edge.mapped and not isinstance(s, Mapped):
                plain_upstream[edge] = s
        if plain_upstream:
            final = self._check(task, plain_upstream)
            if final is not None:
                self._finish(task, self._decided(task, final))
                return
        for edge in self._upstream[task]:
            if not edge.mapped:
                continue
            s = states[edge.upstream_task]
            if isinstance(s, Mapped):
                if edge.flattened:
                    items, item_states = flatten_map_states(s.map_states)
                else:
                    items = [c.result for c in s.map_states]
                    item_states = list(s.map_states)
                mapped_items[edge.key or f"<edge {edge.upstream_task.slug}>"] = (items, item_states)
            else:
                try:
                    items = list(self._value(edge, s))
                except TypeError:
                    self._finish(task, Failed(
                        f"Task {task.name!r} is mapped over {edge.upstream_task.slug!r}, whose result "
                        f"{type(s.result).__name__} is not a list or other iterable. Map over a list, or wrap the "
                        "argument in unmapped(...) to pass it whole."
                    ))
                    return
                mapped_items[edge.key or f"<edge {edge.upstream_task.slug}>"] = (items, None)
            lengths[edge.key or edge.upstream_task.slug or "?"] = len(items)
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"{k}={n}" for k, n in lengths.items())
            self._finish(task, Failed(
                f"Task {task.name!r} is mapped over inputs of different lengths ({detail}); "
                "mapped inputs must have the same length."
            ))
            return
        n = next(iter(lengths.values()), 0)
        constant_inputs = dict(self.flow.constants.get(task, ()))
        shared_states: dict[Any, State] = {}
        for edge in self._upstream[task]:
            if edge.mapped:
                continue
            s = states[edge.upstream_task]
            _add_expanded(shared_states, edge, s)
            if edge.key is not None:
                constant_inputs[edge.key] = self._value(edge, s)
        children: list[State | None] = [None] * n
        self._map_states[task] = children
        self._map_pending[task] = n
        if n == 0:
            self._finish_mapped(task)
            return
        mapped_edges = [e for e in self._upstream[task] if e.mapped]
        passes = self._every_child_passes(task, shared_states, mapped_edges, mapped_items)
        keyed_items = [
            (e.key, mapped_items[e.key or f"<edge {e.upstream_task.slug}>"][0]) for e in mapped_edges if e.key is not None
        ]
        to_submit: list[tuple[int, dict[str, Any]]] = []
        given = self.given_states.get(task) if self.given_states else None
        kept = given.map_states if isinstance(given, Mapped) and len(given.map_states) == n else None
        if passes and kept is None and len(keyed_items) == 1 and not constant_inputs:
            key, values = keyed_items[0]  # the common map: one mapped argument, every child runs
            self._submit_children(task, KeyedChunk(key, 0, values))
            return
        for i in range(n):
            if kept is not None:
                child = kept[i]
                if child is not None and child.is_finished():  # kept from the run this one restarts
                    children[i] = child
                    self._map_pending[task] -= 1
                    continue
            if passes:  # the default trigger passes for every child: only the inputs are needed
                inputs = dict(constant_inputs)
                for key, values in keyed_items:
                    inputs[key] = values[i]
                to_submit.append((i, inputs))
                continue
            child_upstream = dict(shared_states)
            inputs = dict(constant_inputs)
            for edge in mapped_edges:
                name = edge.key or f"<edge {edge.upstream_task.slug}>"
                values, value_states = mapped_items[name]
                child_upstream[(edge, i)] = value_states[i] if value_states is not None else states[edge.upstream_task]
                if edge.key is not None:
                    inputs[edge.key] = values[i]
            final = self._check(task, child_upstream)
            if final is not None:
                self._child_done(task, i, self._decided(task, final))
                continue
            to_submit.append((i, inputs))
        if task not in self._map_pending:  # every child was decided without running (e.g. all Skipped): finished
            return
        if self._map_pending[task] == 0:
            self._finish_mapped(task)
            return
        self._submit_children(task, to_submit)

    def _every_child_passes(
        self, task: Task, shared: Mapping[Any, State], mapped_edges: Sequence[Edge],
        mapped_items: Mapping[str, tuple[list[Any], list[State] | None]],
    ) -> bool:
        """Whether skips and the trigger let every child of a mapped task run, without checking each child.

        True only for the default trigger (``all_successful``) when every state a child would
        see is successful (and none is Skipped, for tasks that skip on an upstream skip): then
        each child's own check would pass too, so the per-child upstream maps need not be built.
        """
        if task.trigger is not all_successful or task in self._resumed:
            return False
        skip = task.skip_on_upstream_skip

        def ok(state: State) -> bool:
            return state.is_successful() and not (skip and isinstance(state, Skipped))

        if not all(ok(s) for s in shared.values()):
            return False
        states = self.task_states
        for edge in mapped_edges:
            item_states = mapped_items[edge.key or f"<edge {edge.upstream_task.slug}>"][1]
            if item_states is None:
                if not ok(states[edge.upstream_task]):
                    return False
            elif not all(ok(s) for s in item_states):
                return False
        return True

    def _submit_children(self, task: Task, children: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Submit mapped children, in chunks when the executor asks for them (process and thread pools).

        On the plain LocalExecutor the children run here, in chunks, without futures.
        """
        per_child_hooks = self.hooks is not None and getattr(self.hooks, "calls_before_task_run", True)
        if self._inline:
            chunksize = 1 if per_child_hooks else _INLINE_CHUNK
        else:
            chunksize = self.executor.map_chunksize(len(children)) if children else 1
        if chunksize <= 1:
            for i, inputs in children:
                self._submit(task, i, inputs, 1)
            return
        if not per_child_hooks:
            # No plugin looks at each child's context before it runs: every chunk shares the
            # task's context, and the executor's side gives each child its map_index.
            ctx, result = self._task_context(task, None, 1, call_hooks=False)
            self._chunk_args[task] = (result, ctx)
            for start in range(0, len(children), chunksize):
                chunk = children[start:start + chunksize]
                if self._inline:
                    try:
                        states = run_task_batch(task, chunk, result, ctx)
                    except Exception as exc:  # the executor's safety net, as for one inline run
                        states = [Failed(f"Executor error while running task {task.name!r}: {exc!r}", exc)] * len(chunk)
                    self._complete_chunk(task, chunk, 1, states)
                    continue
                future = self.executor.submit(run_task_batch, task, chunk, result, ctx)
                self._running[future] = (task, _BATCH, chunk, 1)
            return
        for start in range(0, len(children), chunksize):
            chunk = children[start:start + chunksize]
            runs = []
            result = None
            for i, inputs in chunk:
                ctx, result = self._task_context(task, i, 1)
                runs.append((inputs, ctx))
            future = self.executor.submit(run_task_batch, task, runs, result)
            self._running[future] = (task, _BATCH, chunk, 1)

    def _submit(
        self, task: Task, map_index: int | None, inputs: dict[str, Any], run_count: int, previous: State | None = None
    ) -> None:
        ctx, result = self._task_context(task, map_index, run_count)
        if self._inline:  # what LocalExecutor.submit and _complete do, without the DoneFuture
            try:
                state = run_task(task, inputs, ctx, run_count, result, previous)
            except Exception as exc:  # the task runner catches task errors; this is the executor's safety net
                state = Failed(f"Executor error while running task {task.name!r}: {exc!r}", exc)
            self._completed(task, map_index, inputs, run_count, state)
            return
        future = self.executor.submit(run_task, task, inputs, ctx, run_count, result, previous)
        self._running[future] = (task, map_index, inputs, run_count)

    def _task_context(
        self, task: Task, map_index: int | None, run_count: int, call_hooks: bool = True,
    ) -> tuple[dict[str, Any], Any]:
        """The task run's context and the Result to checkpoint to (None: no checkpoint); calls before_task_run."""
        ctx = self.base_context.copy()
        ctx["task_name"] = task.name
        ctx["task_slug"] = task.slug
        ctx["task_tags"] = task.tags
        ctx["map_index"] = map_index
        ctx["task_full_name"] = task.name if map_index is None else f"{task.name}[{map_index}]"
        ctx["task_run_count"] = run_count
        ctx["logger"] = self._logger(task.name)
        if self._resumed and task in self._resumed:
            ctx["resume"] = True
        result = task.result if task.result is not None else self.flow.result
        if getattr(task, "target", None) is not None and result is None:
            result = _default_target_result()
        checkpoint = task.checkpoint if task.checkpoint is not None else result is not None
        if self.hooks is not None and call_hooks:
            self.hooks.before_task_run(task=task, map_index=map_index, context=ctx)
        return ctx, (result if checkpoint else None)

    def _logger(self, name: str) -> logging.Logger:
        log = self._loggers.get(name)
        if log is None:
            log = self._loggers[name] = logging.getLogger(f"headwater.{name}")
            if not any(isinstance(f, SecretMaskingFilter) for f in log.filters):
                log.addFilter(SecretMaskingFilter())  # before any handler: the terminal, the API's logs
        return log

    def _complete(self, future: Any) -> None:
        task, map_index, inputs, run_count = self._running.pop(future)
        if map_index is _BATCH:
            try:
                states: list[State] = future.result()
            except BaseException as exc:  # the executor failed (or cancelled) the whole chunk
                if _is_cancellation(exc):
                    states = [Cancelled("Flow run was cancelled while this task was running.")] * len(inputs)
                elif isinstance(exc, Exception):
                    states = [Failed(f"Executor error while running task {task.name!r}: {exc!r}", exc)] * len(inputs)
                else:
                    raise
            self._complete_chunk(task, inputs, run_count, states)
            return
        try:
            state: State = future.result()
        except BaseException as exc:  # the executor itself failed (a lost worker, an unpicklable result)
            if _is_cancellation(exc):
                state = Cancelled("Flow run was cancelled while this task was running.")
            elif isinstance(exc, Exception):
                state = Failed(f"Executor error while running task {task.name!r}: {exc!r}", exc)
            else:
                raise
        self._completed(task, map_index, inputs, run_count, state)

    def _complete_chunk(self, task: Task, chunk: Sequence[tuple[int, Any]], run_count: int, states: list[State]) -> None:
        """Record a chunk of mapped children's states: one pass, unless a plugin sees each state.

        An executor may return the states of the chunk's first children only (a process pool's
        worker does once a chunk has run for a while, so slow children report as they finish):
        the rest of the chunk is submitted again, or ends Cancelled when the run is cancelled.
        """
        if len(states) != len(chunk):
            args = self._chunk_args.get(task)
            if not 0 < len(states) < len(chunk) or args is None:
                raise RuntimeError(f"Executor returned {len(states)} states for a chunk of {len(chunk)} children of "
                                   f"task {task.name!r}.")
            rest = chunk[len(states):]
            chunk = chunk[:len(states)]
            if self._cancelled:
                states = [*states, *(Cancelled(_CANCELLED_BEFORE_START) for _ in rest)]
                chunk = [*chunk, *rest]
            else:
                future = self.executor.submit(run_task_batch, task, rest, *args)
                self._running[future] = (task, _BATCH, rest, run_count)
        hooks = self.hooks
        if hooks is not None and getattr(hooks, "calls_after_task_run", True):
            for (i, child_inputs), child_state in zip(chunk, states, strict=True):
                self._completed(task, i, child_inputs, run_count, child_state)
            return
        children = self._map_states[task]
        notify = self.on_task_state
        if notify is None and isinstance(chunk, KeyedChunk) \
                and not any(issubclass(kind, Retrying) for kind in set(map(type, states))):
            children[chunk.start:chunk.start + len(states)] = states  # contiguous children: one slice assignment
            self._map_pending[task] -= len(states)
            if self._map_pending[task] == 0:
                self._finish_mapped(task)
            return
        indices = chunk.indices() if isinstance(chunk, KeyedChunk) else [i for i, _ in chunk]
        retrying = []
        for k, state in enumerate(states):
            i = indices[k]
            if isinstance(state, Retrying):
                retrying.append((i, chunk[k][1], state))
                continue
            children[i] = state
            if notify is not None:
                notify(task, state, i)
        self._map_pending[task] -= len(chunk) - len(retrying)
        if self._map_pending[task] == 0:
            self._finish_mapped(task)
        for i, child_inputs, state in retrying:
            self._completed(task, i, child_inputs, run_count, state)

    def _completed(self, task: Task, map_index: int | None, inputs: Any, run_count: int, state: State) -> None:
        if self.hooks is not None:
            self.hooks.after_task_run(task=task, map_index=map_index, state=state)
        if isinstance(state, Retrying):
            if self._cancelled:
                state = Cancelled("Flow run was cancelled before this task could retry.")
            else:
                self._log_retry(task, map_index, state)
                self._record(task, map_index, state) if map_index is None else self._notify(task, state, map_index)
                heapq.heappush(
                    self._delayed,
                    (state.start_time or 0.0, next(self._seq), task, map_index, inputs, run_count + 1, state),
                )
                return
        if map_index is None:
            if task.cache_for is not None and state.is_successful() and not state.is_cached():
                key = task.cache_key or f"{self.flow.name}:{task.slug}"
                task_cache.store(key, state, task.cache_for, inputs, self.parameters)
            self._finish(task, state)
        else:
            self._child_done(task, map_index, state)

    def _log_retry(self, task: Task, map_index: int | None, state: Retrying) -> None:
        """``Task 'x': attempt 1 of 3 failed (...); retrying at <time> (in 2 s).``"""
        name = task.name if map_index is None else f"{task.name}[{map_index}]"
        start = state.start_time or time.time()
        cause = state.result
        why = _short(cause) if isinstance(cause, BaseException) else (state.message or "RETRY signal")
        self._logger(task.name).warning(
            "Task %r: attempt %d of %d failed (%s); retrying at %s (in %.1f s).",
            name, state.run_count, task.max_retries + 1, why, iso_timestamp(start), max(0.0, start - time.time()),
        )

    def _notify(self, task: Task, state: State, map_index: int | None) -> None:
        if self.on_task_state is not None:
            self.on_task_state(task, state, map_index)

    def _child_done(self, task: Task, index: int, state: State) -> None:
        self._map_states[task][index] = state
        self._notify(task, state, index)
        self._map_pending[task] -= 1
        if self._map_pending[task] == 0:
            self._finish_mapped(task)

    def _finish_mapped(self, task: Task) -> None:
        recorded = self._map_states.pop(task)
        del self._map_pending[task]
        children: list[State]
        if not recorded or set(map(type, recorded)) == {Success}:  # one pass in C: the common case, every child a plain Success
            children, failed = recorded, 0  # type: ignore[assignment]  # no None among them
            self._clean_mapped.add(task)
        else:
            children = [c if c is not None else Cancelled("Not run.") for c in recorded]
            failed = sum(1 for c in children if isinstance(c, Failed))
        message = f"Mapped {len(children)} item(s)" + (f", {failed} failed." if failed else ".")
        self._finish(task, Mapped(message, [c.result for c in children], map_states=children))

    def _keep(self, task: Task, state: State) -> None:
        """A state the run started from (``task_states``): kept as it is, not written again."""
        self.task_states[task] = state
        self._release(task, state)

    def _finish(self, task: Task, state: State) -> None:
        self._record(task, None, state)
        self._release(task, state)

    def _release(self, task: Task, state: State) -> None:
        """Count ``task`` as done for its downstream tasks; a paused task holds them back."""
        if not state.is_finished():
            return
        remaining = self._remaining
        edges = self._downstream[task]
        if len(edges) == 1:  # a chain's link: no duplicates to skip
            d = edges[0].downstream_task
            remaining[d] -= 1
            if remaining[d] == 0 and not self._cancelled:
                self._ready.append(d)
            return
        seen: set[Task] = set()
        for edge in edges:
            d = edge.downstream_task
            if d in seen:
                continue
            seen.add(d)
            remaining[d] -= 1
            if remaining[d] == 0 and not self._cancelled:
                self._ready.append(d)


def _is_cancellation(exc: BaseException) -> bool:
    """A future cancelled by :meth:`Executor.cancel` (concurrent.futures, asyncio or dask's CancelledError)."""
    return any(cls.__name__ in ("CancelledError", "FutureCancelledError") for cls in type(exc).__mro__)


def _short(exc: Any) -> str:
    from headwater.utilities.logging import mask_secrets

    text = mask_secrets(repr(exc), fresh=True)
    return text if len(text) <= 200 else text[:197] + "..."


def failure_summary(flow: Flow, states: Mapping[Task, State], failed_reference: list[Task] | None = None) -> str:
    """The root cause first: ``boom-1 raised ValueError('x'); 2 downstream tasks did not run``.

    Tasks that raised (or timed out, or signalled FAIL) are named with what they raised; tasks
    that did not run because of them (TriggerFailed) are counted.
    """
    causes: list[str] = []
    downstream = 0
    for task in flow.sorted_tasks():
        state = states.get(task)
        if state is None:
            continue
        label = task.slug or task.name
        if isinstance(state, TriggerFailed):
            downstream += 1
        elif isinstance(state, Failed):
            causes.append(_cause(label, state))
        elif isinstance(state, Mapped):
            bad = [c for c in state.map_states if c.is_failed() and not isinstance(c, TriggerFailed)]
            if bad:
                first = state.map_states.index(bad[0])
                more = f" (and {len(bad) - 1} more of {len(state.map_states)} mapped runs)" if len(bad) > 1 else ""
                causes.append(_cause(f"{label}[{first}]", bad[0]) + more)
            elif any(isinstance(c, TriggerFailed) for c in state.map_states):
                downstream += 1
    if not causes:  # e.g. only a reference task's trigger failed on purpose
        names = ", ".join(sorted(t.slug or t.name for t in failed_reference or []))
        return f"Some reference tasks failed: {names}"
    text = "; ".join(causes)
    if downstream:
        text += f"; {downstream} downstream task{'s' if downstream != 1 else ''} did not run"
    return text


def _cause(label: str, state: State) -> str:
    from headwater.states import TimedOut

    if isinstance(state, TimedOut):
        return f"{label} timed out" + (f" ({state.message})" if state.message else "")
    if isinstance(state.result, BaseException) and not isinstance(state.result, signals.HeadwaterSignal):
        return f"{label} raised {_short(state.result)}"
    return f"{label} failed" + (f": {state.message}" if state.message else "")


def _run_on_schedule_default() -> bool:
    """``flows.run_on_schedule`` of the effective configuration (config.toml, HEADWATER__FLOWS__RUN_ON_SCHEDULE)."""
    from headwater.config import get_config

    return bool(get_config().flows.run_on_schedule)


def run_flow(
    flow: Flow,
    parameters: Mapping[str, Any] | None = None,
    run_on_schedule: bool | None = None,
    executor: Executor | None = None,
    context: Mapping[str, Any] | None = None,
    cancel: Any = None,
    on_task_state: Callable[..., Any] | None = None,
    task_states: Mapping[Task, State] | None = None,
    return_tasks: Iterable[Task] | None = None,
) -> State:
    """What ``flow.run()`` does: validate, check parameters, then run once or on the flow's schedule.

    ``task_states`` and ``return_tasks`` are :meth:`FlowRunner.run`'s (a restart or resume).
    """
    configure_logging(only_if_unconfigured=True)  # the application's own logging set-up wins
    refresh_secrets()  # values to mask in logs and tracebacks, as they are now
    flow.validate()
    parameters = dict(parameters or {})
    if run_on_schedule is None:
        run_on_schedule = _run_on_schedule_default()
    if flow.schedule is None or not run_on_schedule:
        resolve_parameters(flow, parameters)
    else:  # a clock's parameter_defaults may supply required parameters: check names now, the rest per run
        resolve_parameters(flow, {**{p.name: None for p in flow.parameters() if p.required}, **parameters})
    hooks = _lifecycle_hooks()

    def once(params: Mapping[str, Any], ctx: Mapping[str, Any] | None) -> State:
        runner = FlowRunner(
            flow, executor=executor, parameters=params, context=ctx, cancel=cancel,
            on_task_state=on_task_state, hooks=hooks, task_states=task_states, return_tasks=return_tasks,
        )
        if hooks is not None:
            hooks.before_flow_run(flow=flow, parameters=runner.parameters, context=runner.base_context)
        state = runner.run(validate=False)  # validated above
        if hooks is not None:
            hooks.after_flow_run(flow=flow, state=state)
        return state

    if flow.schedule is None or not run_on_schedule:
        return once(parameters, context)
    state: State = Pending("The schedule had no upcoming runs.")
    log = logging.getLogger("headwater.FlowRunner")
    while True:
        events = flow.schedule.next(1, return_events=True)
        if not events:
            return state
        event = events[0]
        start = event.start_time
        delay = (start - datetime.now(UTC)).total_seconds()
        if delay > 0:
            log.info("Waiting for scheduled start time %s (%.1f s)", start.isoformat(), delay)
            deadline = time.time() + delay
            while time.time() < deadline:
                if _is_cancel_requested(cancel):
                    return Cancelled("Scheduled flow runs were cancelled.")
                time.sleep(min(0.2, max(0.0, deadline - time.time())))
        params = {**(event.parameter_defaults or {}), **parameters}
        state = once(params, {**(context or {}), "scheduled_start_time": start})
        if _is_cancel_requested(cancel):
            return state


def _lifecycle_hooks() -> Any:
    """The plugin manager's lifecycle hooks, when any plugin implements them (None otherwise)."""
    try:
        from headwater.plugins._manager import lifecycle_hooks
    except ImportError:
        return None
    return lifecycle_hooks()


_INLINE_CHUNK = 1024
"""Mapped children run per call of ``run_task_batch`` on the plain LocalExecutor."""
_CANCELLED_BEFORE_START = "Flow run was cancelled before this task started."
"""The message of a task run (or mapped child) the cancel step, or a partly answered chunk, never started."""
_BATCH = -2
"""``map_index`` of a running entry that is a chunk of mapped children (its inputs are ``[(index, inputs)]``)."""


def _default_target_result() -> Any:
    """The Result a task with a ``target`` but no ``result`` uses: files under the working directory."""
    from headwater.results import Result

    return Result()
