"""Spec flows: :class:`SpecFlow`, the task class, statuses, and the flow dict (de)serialization.

A :class:`SpecFlow` is a :class:`headwater.Flow` whose tasks are :class:`SpecTask` objects wired
with the flow's own edges (so cycle detection and ``sorted_tasks`` are the core's), with the
spec's fields: ``key``, ``label``, ``cfg``, ``data``, ``depth``, ``parent_key``, ``state`` (a
headwater State) and ``status`` (derived from it). The flow dict holds all of it, so a
half-ticked flow can be dumped, loaded elsewhere and ticked on.
"""

from __future__ import annotations

import copy
import enum
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from headwater import states
from headwater.core.flow import Flow
from headwater.core.task import Task

if TYPE_CHECKING:
    from headwater.spec.engine import TickContext

__all__ = [
    "ROOT_KEY",
    "Status",
    "SpecError",
    "SpecTask",
    "SpecFlow",
    "flow_from_dict",
    "flow_to_dict",
    "is_spec_flow",
    "new_flow_key",
    "set_flow_state",
    "task_status",
    "flow_status",
    "precursors",
    "tickable_tasks",
    "spec_tasks",
]

ROOT_KEY = "ROOT"
"""The implicit first task of every spec flow: always COMPLETED, the precursor of tasks that name none."""


class SpecError(ValueError):
    """A flow spec or flow dict is invalid (names the flow or task, the problem and the fix)."""


class Status(enum.StrEnum):
    """The coarse status of a spec flow or task (``flow.state`` / ``task.state`` hold the rich State)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    """Tasks only: a branch not taken, or (TriggerFailed) not run because an upstream task failed."""


FINISHED = frozenset({Status.COMPLETED, Status.FAILED, Status.SKIPPED})


def task_status(state: states.State) -> Status:
    """The status a task's State shows as."""
    if isinstance(state, (states.Skipped, states.TriggerFailed)):
        return Status.SKIPPED
    if isinstance(state, (states.Failed, states.Cancelled)):
        return Status.FAILED
    if isinstance(state, states.Finished):
        return Status.COMPLETED
    if isinstance(state, (states.Retrying, states.Running, states.Submitted)):
        return Status.RUNNING
    return Status.PENDING


def flow_status(state: states.State) -> Status:
    """The status a flow's State shows as: PENDING, RUNNING, COMPLETED or FAILED."""
    status = task_status(state)
    return Status.COMPLETED if status is Status.SKIPPED else status


def new_flow_key() -> str:
    """A fresh flow key: ``flow:<uuid4>``."""
    return f"flow:{uuid.uuid4()}"


class SpecTask(Task):
    """One task of a spec flow: ``task_type`` names its handler, ``task_params`` its input, ``data`` its output.

    ``state`` is a headwater State and ``status`` the coarse status derived from it. A task
    that waits on a child flow names it in ``waiting_on``; ``children`` holds child flows that
    are ticked inline (when the engine has no store).
    """

    def __init__(
        self,
        key: str,
        task_type: str | None = None,
        task_params: Mapping[str, Any] | None = None,
        *,
        label: str | None = None,
        data: Mapping[str, Any] | None = None,
        state: states.State | None = None,
        max_retries: int = 0,
        retry_delay: float | None = None,
        timeout: float | None = None,
        waiting_on: str | None = None,
        children: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name=key, slug=key, max_retries=max_retries, retry_delay=retry_delay, timeout=timeout)
        self.key = key
        self.task_type = task_type
        self.task_params: dict[str, Any] = dict(task_params or {})
        self.label = label
        self.data: dict[str, Any] = dict(data or {})
        self.state: states.State = state if state is not None else states.Pending()
        self.waiting_on = waiting_on
        self.children: dict[str, Any] = dict(children or {})

    @property
    def status(self) -> Status:
        return task_status(self.state)

    def run(self, ctx: TickContext | None = None) -> Any:
        """Call this task's handler with the tick context (the engine passes it)."""
        if ctx is None:
            raise TypeError(
                f"Spec task {self.key!r} runs inside headwater.spec.FlowEngine (engine.tick_flow(flow) or "
                "engine.run_flow(flow)), not through flow.run(): it needs the tick context."
            )
        return ctx.call_handler()

    def __repr__(self) -> str:
        return f"<SpecTask: {self.key} ({self.task_type}) {self.status}>"


# --- the flow --------------------------------------------------------------------------------------------


class SpecFlow(Flow):
    """A flow built from a declarative spec, with the spec's fields and its run state.

    ``state`` is a headwater State and ``status`` the coarse :class:`Status` derived from it;
    set both with :func:`set_flow_state`. ``key`` identifies the flow in a :class:`FlowStore`.
    """

    def __init__(
        self,
        name: str,
        *,
        key: str | None = None,
        label: str | None = None,
        cfg: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        depth: int = 0,
        parent_key: str | None = None,
    ) -> None:
        super().__init__(name)
        self.key: str | None = key
        self.label: str | None = label
        self.cfg: dict[str, Any] = copy.deepcopy(dict(cfg or {"fail_fast": True}))
        self.data: dict[str, Any] = copy.deepcopy(dict(data or {}))
        self.depth = depth
        self.parent_key: str | None = parent_key
        self.state: states.State = states.Pending()
        self.status: Status = Status.PENDING
        self._new_children: list[SpecFlow] = []
        """Child flows created during this tick, for the store to save."""
        self._store_version: int | None = None
        self._claimed_by: str | None = None


def is_spec_flow(flow: Any) -> bool:
    return isinstance(flow, SpecFlow)


def set_flow_state(flow: SpecFlow, state: states.State) -> None:
    """Set ``flow.state`` and the ``flow.status`` derived from it (always together)."""
    flow.state = state
    flow.status = flow_status(state)


def spec_tasks(flow: SpecFlow) -> list[SpecTask]:
    """The flow's spec tasks in topological order (ties in insertion order)."""
    tasks: list[SpecTask] = []
    for t in flow.sorted_tasks():
        if not isinstance(t, SpecTask):
            raise SpecError(
                f"Flow {flow.name!r} has a task that is not a spec task ({t!r}); flow dicts and the spec engine "
                "handle flows built from specs (Flow.from_flow_spec). Run Python flows with flow.run()."
            )
        tasks.append(t)
    return tasks


def precursors(flow: SpecFlow, task: Task) -> list[SpecTask]:
    """The tasks ``task`` waits for, in edge order, without repeats."""
    return [t for t in dict.fromkeys(e.upstream_task for e in flow.graph.upstream[task]) if isinstance(t, SpecTask)]


def tickable_tasks(flow: SpecFlow, tasks: list[SpecTask] | None = None) -> list[SpecTask]:
    """Tasks a tick would tick now: RUNNING ones, and PENDING ones whose precursors all finished well.

    A PENDING task is tickable when every precursor is COMPLETED or SKIPPED and at least one is
    COMPLETED (so the join after a switch runs, while a branch not taken stays skipped).
    """
    if flow.status in FINISHED:
        return []
    result = []
    for task in spec_tasks(flow) if tasks is None else tasks:
        status = task.status
        if status is Status.RUNNING:
            result.append(task)
        elif status is Status.PENDING and task.key != ROOT_KEY:
            ups = [p.status for p in precursors(flow, task)]
            if all(s in (Status.COMPLETED, Status.SKIPPED) for s in ups) and Status.COMPLETED in ups:
                result.append(task)
    return result


# --- states in the flow dict ----------------------------------------------------------------------------


def _state_to_dict(state: states.State) -> dict[str, Any]:
    d: dict[str, Any] = {"type": type(state).__name__, "ts": state.ts}
    if state.message:
        d["message"] = state.message
    if isinstance(state, states.Failed) and state.traceback:
        d["traceback"] = state.traceback
    if isinstance(state, states.Scheduled) and state.start_time is not None:
        d["start_time"] = state.start_time
    if isinstance(state, states.Retrying):
        d["run_count"] = state.run_count
    return d


def _state_from_dict(d: Mapping[str, Any], where: str) -> states.State:
    name = d.get("type")
    cls = getattr(states, str(name), None)
    if not (isinstance(cls, type) and issubclass(cls, states.State)):
        raise SpecError(
            f"{where}: unknown state type {name!r}; expected one of headwater.states ({', '.join(states.__all__)})."
        )
    kwargs: dict[str, Any] = {"ts": d.get("ts", time.time())}
    if "traceback" in d and issubclass(cls, states.Failed):
        kwargs["traceback"] = d["traceback"]
    if "start_time" in d and issubclass(cls, states.Scheduled):
        kwargs["start_time"] = d["start_time"]
    if "run_count" in d and issubclass(cls, states.Retrying):
        kwargs["run_count"] = d["run_count"]
    return cls(d.get("message"), **kwargs)


def _is_plain_pending(state: states.State) -> bool:
    return type(state) is states.Pending and not state.message


def _status_state(status: Any, where: str) -> states.State:
    """A State for a dict that gives only a status (hand-written or minimal dicts)."""
    try:
        status = Status(status)
    except ValueError:
        raise SpecError(f"{where}: unknown status {status!r}; use one of {', '.join(Status)}.") from None
    return {
        Status.PENDING: states.Pending,
        Status.RUNNING: states.Running,
        Status.COMPLETED: states.Success,
        Status.FAILED: states.Failed,
        Status.SKIPPED: states.Skipped,
    }[status]()


# --- the flow dict ----------------------------------------------------------------------------------------


def flow_to_dict(flow: SpecFlow) -> dict[str, Any]:
    """The flow dict: everything needed to continue ticking the flow elsewhere (JSON-friendly)."""
    if not is_spec_flow(flow):
        raise SpecError(
            f"Flow {flow.name!r} is not a spec flow: to_flow_dict() serializes flows built from declarative specs "
            "(Flow.from_flow_spec / Flow.from_flow_dict). Python flows travel with their storage instead."
        )
    tasks = spec_tasks(flow)
    task_dicts: dict[str, Any] = {}
    for task in flow.ordered_tasks():
        assert isinstance(task, SpecTask)
        d: dict[str, Any] = {"key": task.key, "status": task.status.value}
        if task.key != ROOT_KEY:
            d["precursors"] = [p.key for p in precursors(flow, task)]
            d["task_type"] = task.task_type
            d["task_params"] = copy.deepcopy(task.task_params)
            if not _is_plain_pending(task.state):
                d["state"] = _state_to_dict(task.state)
        if task.label is not None:
            d["label"] = task.label
        if task.data:
            d["data"] = copy.deepcopy(task.data)
        if task.max_retries:
            d["max_retries"] = task.max_retries
        if task.retry_delay:
            d["retry_delay"] = task.retry_delay
        if task.timeout is not None:
            d["timeout"] = task.timeout
        if task.waiting_on is not None:
            d["waiting_on"] = task.waiting_on
        if task.children:
            d["children"] = copy.deepcopy(task.children)
        task_dicts[task.key] = d
    edges = [
        {"dest_key": e.downstream_task.slug, "src_key": e.upstream_task.slug}  # a spec task's slug is its key
        for e in flow.sorted_edges()
    ]
    result: dict[str, Any] = {
        "cfg": copy.deepcopy(flow.cfg),
        "data": copy.deepcopy(flow.data),
        "depth": flow.depth,
        "graph": {"edges": edges, "tasks": task_dicts},
        "label": flow.label,
        "num_tickable_tasks": len(tickable_tasks(flow, tasks)),
        "parent_key": flow.parent_key,
        "status": flow.status.value,
    }
    if flow.key is not None:
        result["key"] = flow.key
    if not _is_plain_pending(flow.state):
        result["state"] = _state_to_dict(flow.state)
    return result


_FLOW_DICT_KEYS = {"cfg", "data", "depth", "graph", "label", "num_tickable_tasks", "parent_key", "status", "key", "state"}
_TASK_DICT_KEYS = {
    "key", "status", "precursors", "task_type", "task_params", "state", "label", "data",
    "max_retries", "retry_delay", "timeout", "waiting_on", "children",
}


def flow_from_dict(d: Mapping[str, Any], flow_class: type[Flow] | None = None) -> SpecFlow:
    """A flow from a flow dict (the inverse of :func:`flow_to_dict`; lossless).

    Tasks are added in the order they first appear in ``graph.edges``, which is the order
    :func:`flow_to_dict` writes, so a loaded flow ticks its tasks in the same order.
    """
    cls = flow_class if isinstance(flow_class, type) and issubclass(flow_class, SpecFlow) else SpecFlow
    if not isinstance(d, Mapping):
        raise SpecError(f"A flow dict must be a mapping, got {type(d).__name__}.")
    where = f"Flow dict {d.get('key') or d.get('label') or ''!r}".replace(" ''", "")
    unknown = sorted(set(d) - _FLOW_DICT_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)}; a flow dict has {', '.join(sorted(_FLOW_DICT_KEYS))}.")
    graph = d.get("graph")
    if not isinstance(graph, Mapping) or not isinstance(graph.get("tasks"), Mapping):
        raise SpecError(f"{where}: 'graph' must be a mapping with 'tasks' (a mapping) and 'edges' (a list).")
    task_dicts: Mapping[str, Any] = graph["tasks"]
    edges = graph.get("edges") or []
    if ROOT_KEY not in task_dicts:
        raise SpecError(f"{where}: graph.tasks has no {ROOT_KEY!r} task; every flow dict has one.")

    label = d.get("label")
    flow = cls(
        name=str(label or d.get("key") or "flow"),
        key=d.get("key"),
        label=label,
        cfg=d.get("cfg") or {"fail_fast": True},
        data=d.get("data") or {},
        depth=int(d.get("depth") or 0),
        parent_key=d.get("parent_key"),
    )
    if "state" in d:
        flow_state = _state_from_dict(d["state"], where)
    else:
        flow_state = _status_state(d.get("status", Status.PENDING), where)
    set_flow_state(flow, flow_state)

    order = [ROOT_KEY]
    for e in edges:
        if not isinstance(e, Mapping) or "src_key" not in e or "dest_key" not in e:
            raise SpecError(f"{where}: every edge needs 'src_key' and 'dest_key', got {e!r}.")
        order.extend((e["src_key"], e["dest_key"]))
    order.extend(task_dicts)
    built: dict[str, SpecTask] = {}
    for key in dict.fromkeys(order):
        td = task_dicts.get(key)
        if td is None:
            raise SpecError(f"{where}: an edge names task {key!r}, which is not in graph.tasks.")
        task = _task_from_dict(key, td, where)
        flow.add_task(task)
        built[key] = task
    for e in edges:
        flow.add_edge(built[e["src_key"]], built[e["dest_key"]])
    return flow


def _task_from_dict(key: str, td: Mapping[str, Any], where: str) -> SpecTask:
    where = f"{where}, task {key!r}"
    if not isinstance(td, Mapping):
        raise SpecError(f"{where}: a task must be a mapping, got {type(td).__name__}.")
    unknown = sorted(set(td) - _TASK_DICT_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(unknown)}; a task has {', '.join(sorted(_TASK_DICT_KEYS))}.")
    if key == ROOT_KEY:
        state: states.State = states.Success("Root of the flow.")
    elif "state" in td:
        state = _state_from_dict(td["state"], where)
    else:
        state = _status_state(td.get("status", Status.PENDING), where)
    return SpecTask(
        key,
        td.get("task_type"),
        copy.deepcopy(td.get("task_params") or {}),
        label=td.get("label"),
        data=copy.deepcopy(td.get("data") or {}),
        state=state,
        max_retries=td.get("max_retries", 0),
        retry_delay=td.get("retry_delay"),
        timeout=td.get("timeout"),
        waiting_on=td.get("waiting_on"),
        children=copy.deepcopy(td.get("children") or {}),
    )
