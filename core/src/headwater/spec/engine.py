"""The tick engine: advance a spec flow one tick at a time.

A tick ticks every task that is tickable when it starts (RUNNING tasks, and PENDING tasks
whose precursors all finished well), each through the core's
:func:`~headwater.engine.task_runner.run_task` (so state handlers, timeouts, retries and
signals behave as in ``flow.run()``), then settles the flow: skips what can no longer run
and decides the flow's status. Tasks that become ready during a tick run in the next one.

Failure semantics: with ``cfg.fail_fast`` (the default) the first failed task fails the
flow; without it, tasks downstream of a failure are SKIPPED (TriggerFailed: upstream
failed), every other branch runs to the end, and the flow ends FAILED. Either way every
error (task, message, traceback) is recorded in ``flow.data["errors"]``, and one task's
failure never keeps the other tasks of its tick from being ticked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from headwater import signals
from headwater.engine.task_runner import run_task
from headwater.spec.interpolation import context_root, interpolate, resolve_path, set_path
from headwater.spec.model import (
    FINISHED,
    ROOT_KEY,
    SpecError,
    SpecTask,
    Status,
    flow_from_dict,
    flow_to_dict,
    is_spec_flow,
    new_flow_key,
    precursors,
    set_flow_state,
    spec_tasks,
    tickable_tasks,
)
from headwater.states import Failed, Retrying, Running, Skipped, State, Success, TriggerFailed

if TYPE_CHECKING:
    from headwater.spec.model import SpecFlow
    from headwater.spec.store import FlowStore

__all__ = ["FlowEngine", "TickContext", "FlowFailedError", "TickLimitError"]

logger = logging.getLogger("headwater.spec")


class FlowFailedError(RuntimeError):
    """``run_flow`` ended with the flow FAILED; ``flow`` is the failed flow, its errors are in the message."""

    def __init__(self, flow: SpecFlow) -> None:
        errors = flow.data.get("errors") or []
        detail = "".join(f"\n  task {e.get('task')!r}: {e.get('message')}" for e in errors)
        super().__init__(f"Flow {_flow_name(flow)} FAILED: {flow.state.message}{detail}")
        self.flow = flow


class TickLimitError(RuntimeError):
    """The flow did not finish within ``max_ticks`` ticks."""


def _flow_name(flow: SpecFlow) -> str:
    return repr(getattr(flow, "label", None) or getattr(flow, "key", None) or flow.name)


class TickContext:
    """What a task handler sees: the flow, the task, its interpolated ``params``, and helpers.

    ``ctx.params`` are the task's params with ``$ctx.`` references resolved; ``ctx.resolve(path)``
    and ``ctx.set_value(path, value)`` read and write the same namespace; ``ctx.keep_running()``
    leaves the task RUNNING for the next tick; ``ctx.spawn_child(spec)``,
    ``ctx.wait_for_child(key)`` and ``ctx.finished_child(key)`` run child flows.
    """

    def __init__(self, engine: FlowEngine, flow: SpecFlow, task: SpecTask) -> None:
        self.engine = engine
        self.flow = flow
        self.task = task
        self.params: dict[str, Any] = {}
        self.logger = logger
        self._root = context_root(flow, task)

    def call_handler(self) -> Any:
        """Resolve the handler and the params, call it, store a returned value as ``data["result"]``."""
        from headwater.spec.task_types import get_handler

        task = self.task
        handler = get_handler(str(task.task_type), task_key=task.key)
        self.params = interpolate(task.task_params, self._root, skip_keys=tuple(getattr(handler, "raw_params", ())))
        value = handler(task, self)
        if value is not None:
            task.data["result"] = value
        return value

    # --- the namespace ----------------------------------------------------------------------------

    def resolve(self, path: str) -> Any:
        """The value at ``path`` (``flow.tasks.t1.data.out``; ``$ctx.`` optional)."""
        return resolve_path(self._root, path)

    def interpolate(self, value: Any) -> Any:
        """``value`` with ``$ctx.`` references resolved."""
        return interpolate(value, self._root)

    def set_value(self, path: str, value: Any) -> None:
        """Write ``value`` at ``path`` (into flow.data, a task's data or a task's task_params)."""
        set_path(self._root, path, value)

    # --- the graph --------------------------------------------------------------------------------

    def successors(self) -> list[str]:
        """Keys of the tasks that come right after this one, in edge order."""
        return [k for k in dict.fromkeys(e.downstream_task.slug for e in self.flow.graph.downstream[self.task]) if k]

    def skip_task(self, key: str, message: str) -> None:
        """Mark task ``key`` SKIPPED if it has not started (a branch not taken)."""
        task = self.flow.task_by_slug(key)
        if isinstance(task, SpecTask) and task.status is Status.PENDING:
            task.state = Skipped(message)

    def keep_running(self, message: str | None = None) -> NoReturn:
        """Leave this task RUNNING: the engine ticks it again in the next tick."""
        raise signals.ENDRUN(Running(message or f"Task {self.task.key!r} is still running."))

    # --- child flows ------------------------------------------------------------------------------

    def spawn_child(self, spec: Mapping[str, Any]) -> str:
        """Create a child flow from ``spec`` (depth + 1, parent_key = this flow's key); returns its new key.

        With a store, the child is saved with the parent (``store.save``/``release``) and
        workers tick it; without one, it lives inside this task and is ticked with it.
        """
        from headwater.spec.spec import flow_from_spec

        flow = self.flow
        if flow.key is None:
            flow.key = new_flow_key()
        child_spec = {k: v for k, v in spec.items() if k != "key"}
        child_spec.update(depth=flow.depth + 1, parent_key=flow.key)
        child = flow_from_spec(child_spec)
        child.key = new_flow_key()
        if self.engine.store is not None:
            flow._new_children.append(child)
        else:
            self.task.children[child.key] = flow_to_dict(child)
        return child.key

    def wait_for_child(self, key: str) -> NoReturn:
        """Stay RUNNING, waiting on child flow ``key`` (a stored parent is not claimed until it finishes)."""
        self.task.waiting_on = key
        self.keep_running(f"Waiting for child flow {key}.")

    def finished_child(self, key: str | None) -> SpecFlow | None:
        """The child flow ``key`` once it has finished (COMPLETED or FAILED), else None.

        A child kept inside this task is ticked once by this call.
        """
        if key is None:
            raise SpecError(f"Task {self.task.key!r} waits on no child flow.")
        inline = self.task.children.get(key)
        if inline is not None:
            child = flow_from_dict(inline)
            if child.status not in FINISHED:
                self.engine.tick_flow(child)
                self.task.children[key] = flow_to_dict(child)
            return child if child.status in FINISHED else None
        store = self.engine.store
        if store is None:
            raise SpecError(
                f"Task {self.task.key!r} waits on child flow {key!r}, which is neither inside the task nor in a store: "
                "tick this flow with FlowEngine(store=FlowStore(url)) where the child was saved."
            )
        status = store.status(key)
        if status is None:
            unsaved = any(c.key == key for c in getattr(self.flow, "_new_children", ()))
            raise SpecError(
                f"Child flow {key!r} of task {self.task.key!r} is not in the store"
                + (": save the parent (store.save(flow) or store.release(flow)) after each tick so workers can tick "
                   "its children." if unsaved else f" {store.url!r}; was it deleted?")
            )
        return store.load(key) if status in FINISHED else None


class _TickReport:
    __slots__ = ("ticked", "finished", "next_due")

    def __init__(self) -> None:
        self.ticked = 0
        self.finished = 0
        self.next_due: float | None = None


class FlowEngine:
    """Ticks spec flows. ``FlowEngine(store=FlowStore(...))`` keeps child flows in the store for workers."""

    def __init__(self, store: FlowStore | None = None) -> None:
        self.store = store

    def flow_spec_to_flow(self, spec: Mapping[str, Any] | str) -> SpecFlow:
        """A PENDING flow from a spec dict or a YAML/JSON file path (same as ``Flow.from_flow_spec``)."""
        from headwater.spec.spec import flow_from_spec

        return flow_from_spec(spec)

    def tick_flow(self, flow: SpecFlow) -> None:
        """One tick: tick every tickable task once, then settle the flow's status."""
        self._tick(flow)

    def tick_flow_until_has_no_pending(self, flow: SpecFlow, max_ticks: int | None = None, interval: float = 0.0) -> None:
        """Tick until the flow is COMPLETED or FAILED (at most ``max_ticks`` ticks; no limit by default).

        ``interval`` seconds are slept after a tick in which no task finished (tasks waiting on
        something outside), so such waits do not spin.
        """
        ticks = 0
        while flow.status not in FINISHED:
            if max_ticks is not None and ticks >= max_ticks:
                unfinished = [t.key for t in spec_tasks(flow) if t.status not in FINISHED]
                raise TickLimitError(
                    f"Flow {_flow_name(flow)} is still {flow.status} after {max_ticks} tick(s); unfinished tasks: "
                    f"{', '.join(unfinished)}. Give more ticks (max_ticks=...) or check for a task that stays RUNNING."
                )
            report = self._tick(flow)
            ticks += 1
            if report.ticked == 0 and report.next_due is not None:  # only retries waiting for their time
                time.sleep(min(max(0.0, report.next_due - time.time()), 1.0))
            elif interval and not report.finished and flow.status not in FINISHED:
                time.sleep(interval)

    def run_flow(self, flow: SpecFlow, max_ticks: int = 1000, interval: float = 0.0) -> State:
        """Tick until the flow finishes; return its final state, raise :class:`FlowFailedError` if it FAILED."""
        self.tick_flow_until_has_no_pending(flow, max_ticks=max_ticks, interval=interval)
        if flow.status is Status.FAILED:
            raise FlowFailedError(flow)
        return flow.state

    # --- one tick -------------------------------------------------------------------------------------

    def _tick(self, flow: SpecFlow) -> _TickReport:
        if not is_spec_flow(flow):
            raise SpecError(
                f"Flow {flow.name!r} is not a spec flow; build it with Flow.from_flow_spec(...) or Flow.from_flow_dict(...)."
            )
        report = _TickReport()
        if flow.status in FINISHED:
            return report
        if flow.status is Status.PENDING:
            set_flow_state(flow, Running("Running flow."))
        tasks = spec_tasks(flow)
        now = time.time()
        for task in tickable_tasks(flow, tasks):
            if task.status not in (Status.PENDING, Status.RUNNING):  # finished earlier in this tick (a switch)
                continue
            state = task.state
            run_count = 1
            if isinstance(state, Retrying):
                if state.start_time is not None and state.start_time > now:
                    report.next_due = min(report.next_due or state.start_time, state.start_time)
                    continue
                run_count = state.run_count + 1
            self._tick_task(flow, task, run_count)
            report.ticked += 1
            report.finished += task.status in FINISHED
        self._settle(flow, tasks)
        return report

    def _tick_task(self, flow: SpecFlow, task: SpecTask, run_count: int) -> None:
        ctx = TickContext(self, flow, task)
        run_context: dict[str, Any] = {
            "flow_name": flow.name,
            "flow_key": flow.key,
            "task_name": task.key,
            "task_slug": task.key,
            "task_tags": task.tags,
            "task_run_count": run_count,
            "map_index": None,
            "parameters": {},
            "logger": logger,
        }
        try:
            new = run_task(task, {"ctx": ctx}, run_context, run_count=run_count, previous=task.state)
        except Exception as exc:  # a state handler failed: the task fails, the tick goes on
            import traceback

            new = Failed(f"Error while running task {task.key!r}: {exc!r}", exc, traceback=traceback.format_exc())
        task.state = new
        if not isinstance(new, Running):
            task.waiting_on = None
        if isinstance(new, Failed) and not isinstance(new, TriggerFailed):
            flow.data.setdefault("errors", []).append(
                {"task": task.key, "message": new.message, "traceback": new.traceback}
            )
        logger.debug("flow %s: task %s -> %s", _flow_name(flow), task.key, task.status)

    def _settle(self, flow: SpecFlow, tasks: list[SpecTask]) -> None:
        """Skip tasks that can no longer run, then finish the flow if it is done (or failed fast)."""
        failed = [t for t in tasks if t.status is Status.FAILED]
        if failed and flow.cfg.get("fail_fast", True):
            set_flow_state(flow, Failed(f"Task {failed[0].key!r} failed: {failed[0].state.message}"))
            return
        for task in tasks:  # topological order: skips propagate in one pass
            if task.status is not Status.PENDING or task.key == ROOT_KEY:
                continue
            ups = precursors(flow, task)
            bad = next((p for p in ups if p.status is Status.FAILED or isinstance(p.state, TriggerFailed)), None)
            if bad is not None:
                task.state = TriggerFailed(f"Not run: upstream task {bad.key!r} failed.")
            elif ups and all(p.status is Status.SKIPPED for p in ups):
                task.state = Skipped("Not run: every upstream task was skipped.")
        if all(t.status in FINISHED for t in tasks):
            if failed:
                set_flow_state(flow, Failed(f"{len(failed)} task(s) failed: {', '.join(t.key for t in failed)}."))
            else:
                set_flow_state(flow, Success("All tasks finished."))
