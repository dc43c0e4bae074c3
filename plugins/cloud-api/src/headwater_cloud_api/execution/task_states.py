"""Which task runs a restarted, resumed or rescheduled flow run keeps, and the states the engine is given for them.

Prefect 1 semantics: a task run keeps its identity per ``(flow run, task slug, map index)`` across
the attempts of its flow run, and the flow runner is given ``task_states``: a task whose given
state is finished is not run again and its state (with its result) feeds the tasks downstream.

:func:`plan_task_states` reads the task runs the API holds for the run and decides, per task:

* **kept** — its last state is Success, Cached, Mapped (every child kept) or Skipped, and none
  of its upstream tasks runs again;
* **rerun** — it failed, was cancelled, never ran, or is downstream of a task that runs again;
* **recomputed** — it succeeded but a task that runs again needs its value and the value is not
  retrievable (no checkpointed result: checkpointing was off or ``checkpoint=False``, the value
  could not be pickled, or the file is gone): it runs again too (its own downstream tasks that
  succeeded stay kept); a value recorded as ``None`` (the default checkpoint does not write
  ``None``) is given as ``None``;
* **paused** — still Paused (it is not run; the flow run ends Paused again), or **resumed** —
  ``Resume`` (it runs, its trigger bypassed).

Values are read back from the location checkpointed in the state (``state.location``, sent by
the flow-run process as the state's ``serialized.location``) with the task's Result (``result=``
of the task, else of the flow), so ``LocalResult``, ``PrefectResult``, ``S3Result`` ... all work.
Mapped tasks keep their successful children and rerun only the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from headwater import states as st
from headwater.plugins import NONE_MARK, NOT_PERSISTED_MARK, DefaultResult
from headwater.states import PAUSED_STATE_NAMES, SUCCESS_STATE_NAMES, Pending, Running, Scheduled, Submitted

__all__ = ["TaskRunRecord", "ResumePlan", "plan_task_states", "records_from_api", "fetch_records", "serialized_state",
           "engine_takes_task_states", "TASK_RUNS_QUERY", "RESUME_STATES_QUERY", "KEEP_STATE_NAMES"]

_log = logging.getLogger("headwater.execute")

KEEP_STATE_NAMES: frozenset[str] = SUCCESS_STATE_NAMES
"""Task-run states a new attempt keeps (everything else runs again)."""
_WAITING = PAUSED_STATE_NAMES
TASK_RUNS_QUERY = (
    "query($id: String!, $o: Int!) { task_runs(flow_run_id: $id, limit: 1000, offset: $o) "
    "{ task_slug map_index state { type message } states { type serialized } } }"
)
"""The run's task runs with their state history (a page of 1000 at a time): what a new attempt starts from."""
_NOT_AN_OUTCOME = frozenset(c.__name__ for c in (Pending, Scheduled, Submitted, Running))
"""States that say nothing about how a task run ended (a restart reset it, or it never got further)."""


@attrs.define
class TaskRunRecord:
    """One task run as the API holds it: its last state, and the ``serialized`` of the last history entry that has one."""

    task_slug: str
    map_index: int
    state: str
    message: str | None = None
    serialized: dict[str, Any] | None = None
    outcome: str | None = None
    """The last state in its history that was an outcome (Failed, Cancelled ...): why a task reset to Pending runs again."""


@attrs.define
class ResumePlan:
    """What the new attempt does: ``task_states`` for the engine, and why each task runs again (for the log)."""

    task_states: dict[Any, st.State] = attrs.field(factory=dict)
    kept: list[str] = attrs.field(factory=list)
    rerun: dict[str, str] = attrs.field(factory=dict)
    """slug -> why it runs again (tasks with no record at all are not listed: they simply run)."""
    recomputed: dict[str, str] = attrs.field(factory=dict)
    """slug -> why a task that had succeeded runs again (a value it produced is needed but not retrievable)."""
    paused: list[str] = attrs.field(factory=list)
    resumed: list[str] = attrs.field(factory=list)
    mapped_rerun: dict[str, list[int]] = attrs.field(factory=dict)
    """slug of a mapped task -> the indices of the children that run again (the others are kept)."""

    @property
    def resuming(self) -> bool:
        """True when the engine is given any state (this attempt picks up where an earlier one stopped)."""
        return bool(self.task_states)

    def log(self, logger: logging.Logger = _log) -> None:
        """One INFO line saying what is kept and what runs again, and why."""
        if not (self.kept or self.rerun or self.recomputed or self.paused or self.resumed):
            return
        parts = [f"kept {len(self.kept)} finished task(s)" + (f" ({_names(self.kept)})" if self.kept else "")]
        if self.rerun:
            parts.append("running again: " + _reasons(self.rerun))
        for slug, indices in sorted(self.mapped_rerun.items()):
            parts.append(f"mapped {slug}: {len(indices)} child run(s) again ({_indices(indices)}), the others kept")
        if self.recomputed:
            parts.append("recomputed because their results were not persisted: " + _reasons(self.recomputed))
        if self.resumed:
            parts.append(f"resumed: {_names(self.resumed)}")
        if self.paused:
            parts.append(f"still paused: {_names(self.paused)}")
        logger.info("Picking up the earlier attempt's task states: %s.", "; ".join(parts))


def _reasons(why: Mapping[str, str], limit: int = 20) -> str:
    shown = "; ".join(f"{slug} ({reason})" for slug, reason in sorted(why.items())[:limit])
    return shown + (f"; and {len(why) - limit} more" if len(why) > limit else "")


def _names(slugs: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(sorted(slugs)[:limit])
    return shown + (f" and {len(slugs) - limit} more" if len(slugs) > limit else "")


def _indices(indices: Sequence[int], limit: int = 20) -> str:
    shown = ", ".join(map(str, indices[:limit]))
    return shown + (f" and {len(indices) - limit} more" if len(indices) > limit else "")


def records_from_api(task_runs: Iterable[Mapping[str, Any]]) -> list[TaskRunRecord]:
    """:class:`TaskRunRecord` s from the API's ``task_runs { task_slug map_index state { type message } states { type serialized } }``."""
    out = []
    for t in task_runs:
        serialized = None
        if "serialized" in t["state"]:  # the current state's own (resume_records / a field that has it)
            serialized = t["state"]["serialized"]
        for entry in reversed(t.get("states") or []):  # else the last history entry of the current state's type
            if serialized is not None:
                break
            if entry.get("serialized") and entry.get("type") == t["state"]["type"]:
                serialized = entry["serialized"]
        outcome = None
        if t["state"]["type"] in _NOT_AN_OUTCOME:  # not finished now: what it was before (a restart reset it)
            outcome = next((e["type"] for e in reversed(t.get("states") or []) if e.get("type") not in _NOT_AN_OUTCOME), None)
            if isinstance(serialized, dict) and serialized.get("restarted_from"):
                outcome, serialized = str(serialized["restarted_from"]), None
        out.append(TaskRunRecord(t["task_slug"], int(t.get("map_index", -1) if t.get("map_index") is not None else -1),
                                 t["state"]["type"], t["state"].get("message"), serialized, outcome))
    return out


class _Unreadable(Exception):
    """The value of a kept task cannot be read back (the reason is the message)."""


def _result_for(flow: Any, task: Any) -> Any:
    result = getattr(task, "result", None) or getattr(flow, "result", None)
    if result is None and getattr(task, "target", None) is not None:
        from headwater.plugins import Result

        result = Result()
    return result


def _read_value(flow: Any, task: Any, record: TaskRunRecord) -> Any:
    serialized = record.serialized or {}
    location = serialized.get("location")
    if not location:
        if serialized.get(NONE_MARK):  # the default checkpoint does not write None: the value is known
            return None
        if serialized.get(NOT_PERSISTED_MARK):
            raise _Unreadable(f"its result was not persisted: {serialized[NOT_PERSISTED_MARK]}")
        raise _Unreadable("no result was persisted: give the task or the flow a result=, e.g. LocalResult(dir=...), "
                          "or leave [flows] checkpointing on")
    result = _result_for(flow, task)
    if result is None:  # written by the default checkpoint of an earlier attempt (checkpointing is off now): a pickle
        result = DefaultResult()
    try:
        return result.read(location).value
    except Exception as exc:
        raise _Unreadable(f"its result at {location} could not be read ({type(exc).__name__}: {exc})") from None


def _kept_value(flow: Any, task: Any, record: TaskRunRecord) -> Any:
    """The value of a kept task run: None for Skipped (as the engine gives downstream tasks), else read back."""
    return None if record.state == "Skipped" else _read_value(flow, task, record)


def _state(record: TaskRunRecord, value: Any = None) -> st.State:
    cls = st.STATE_CLASSES.get(record.state, st.Success)
    location = (record.serialized or {}).get("location")
    if issubclass(cls, st.Scheduled):  # Paused (with its resume time) or Resume
        start = (record.serialized or {}).get("start_time")
        return cls(record.message, start_time=float(start) if isinstance(start, (int, float)) else None)
    return cls(record.message, value, location=location)


def _uses_value(edge: Any) -> bool:
    """Whether the downstream task of ``edge`` reads the upstream's value (a keyword argument or a mapped input)."""
    return edge.key is not None or bool(getattr(edge, "mapped", False))


def plan_task_states(flow: Any, records: Iterable[TaskRunRecord]) -> ResumePlan:
    """The states a new attempt of a flow run passes to the engine (see the module docstring)."""
    graph = flow.graph
    by_slug = {t.slug: t for t in graph.tasks}
    parents: dict[Any, TaskRunRecord] = {}
    children: dict[Any, dict[int, TaskRunRecord]] = {}
    for record in records:
        task = by_slug.get(record.task_slug)
        if task is None:
            continue  # a task of another flow version: nothing to give the engine
        if record.map_index is None or record.map_index < 0:
            parents[task] = record
        else:
            children.setdefault(task, {})[record.map_index] = record
    plan = ResumePlan()
    if not parents and not children:
        return plan
    upstream, downstream = graph.upstream, graph.downstream

    # 1. What each task's own record says: kept, waiting (Paused/Resume), partly kept (mapped), or not kept.
    kept: set[Any] = set()
    partial: dict[Any, list[TaskRunRecord | None]] = {}
    why: dict[Any, str] = {}
    for task in graph.tasks:
        r = parents.get(task)
        if r is None:
            # children written, the parent's Mapped never was (the run stopped mid-map); or never written at all
            why[task] = "its mapped runs did not all finish" if task in children else "it did not run"
            continue
        if r.state in _WAITING:
            (plan.resumed if r.state == "Resume" else plan.paused).append(task.slug)
            plan.task_states[task] = _state(r)
            continue
        if r.state not in KEEP_STATE_NAMES:
            why[task] = f"it was {r.outcome or r.state}" if r.state in _NOT_AN_OUTCOME else f"it was {r.state}"
            continue
        if r.state == "Mapped":
            n = _map_count(r, children.get(task, {}))
            kids: list[TaskRunRecord | None] = [children.get(task, {}).get(i) for i in range(n)]
            if any(k is None or k.state not in KEEP_STATE_NAMES for k in kids):
                partial[task] = kids
                continue
        kept.add(task)

    # 2. Downstream of anything that runs again runs again (a task that ran "anyway" after a failure, e.g. always_run).
    paused = {t for t in plan.task_states if t.slug in plan.paused}
    frontier = [t for t in graph.tasks if t not in kept and t not in paused]
    seen = set(frontier)
    while frontier:
        task = frontier.pop()
        for edge in downstream.get(task, ()):
            d = edge.downstream_task
            if d in kept:
                kept.discard(d)
                why[d] = f"it is downstream of {task.slug}, which runs again"
            if d not in seen and d not in paused:
                seen.add(d)
                frontier.append(d)

    # 3. Values: a kept task whose value a running task needs is read back, or recomputed when it cannot be.
    # A kept mapped task is expanded again by the engine (to keep its children), so it needs its mapped inputs too.
    values: dict[Any, Any] = {}
    needed: list[tuple[Any, bool]] = [(t, False) for t in graph.tasks if t not in kept and t not in paused]
    needed += [(t, True) for t in kept if parents[t].state == "Mapped"]
    checked: set[tuple[Any, bool]] = set()
    while needed:
        task, only_mapped = needed.pop()
        if (task, only_mapped) in checked:
            continue
        checked.add((task, only_mapped))
        for edge in upstream.get(task, ()):
            u = edge.upstream_task
            if u not in kept or u in values or not _uses_value(edge) or (only_mapped and not edge.mapped):
                continue
            r = parents[u]
            try:
                if r.state == "Skipped":
                    values[u] = None
                elif r.state == "Mapped":
                    values[u] = [_kept_value(flow, u, children[u][i]) for i in sorted(children[u])]  # all kept (step 1)
                else:
                    values[u] = _read_value(flow, u, r)
            except _Unreadable as exc:
                kept.discard(u)
                if not _is_parameter(u):
                    plan.recomputed[u.slug] = f"{task.slug} needs its value; {exc}"
                needed.append((u, False))
        if task in partial:  # a mapped task's kept children feed its downstream tasks, which run again
            for i, k in enumerate(partial[task]):
                if k is not None and k.state in KEEP_STATE_NAMES and any(_uses_value(e) for e in downstream.get(task, ())):
                    try:
                        values[(task, i)] = _kept_value(flow, task, k)
                    except _Unreadable:
                        partial[task][i] = None  # runs again

    # 4. The states for the engine.
    for task in graph.tasks:
        if task in kept:
            parent = parents[task]
            if parent.state == "Mapped":
                kept_kids = [children[task][i] for i in sorted(children.get(task, {}))]
                value = values.get(task)
                map_states = [_state(k, value[i] if value is not None else None) for i, k in enumerate(kept_kids)]
                plan.task_states[task] = st.Mapped(parent.message, [s.result for s in map_states], map_states=map_states)
            else:
                plan.task_states[task] = _state(parent, values.get(task))
            plan.kept.append(task.slug)
        elif task in partial:
            map_states, again = [], []
            for i, k in enumerate(partial[task]):
                if k is not None and k.state in KEEP_STATE_NAMES:
                    map_states.append(_state(k, values.get((task, i))))
                elif k is not None and k.state in _WAITING:
                    map_states.append(_state(k))
                    again.append(i)
                else:
                    map_states.append(st.Pending("Runs again."))
                    again.append(i)
            plan.task_states[task] = st.Mapped(parents[task].message, [s.result for s in map_states], map_states=map_states)
            plan.mapped_rerun[task.slug] = again
        elif task in why and task.slug not in plan.recomputed and not _is_parameter(task):
            plan.rerun[task.slug] = why[task]
    return plan


def _map_count(parent: TaskRunRecord, kids: Mapping[int, TaskRunRecord]) -> int:
    """How many children the Mapped parent had: from its message (``Mapped 3 item(s)``) or the highest child index written."""
    import re

    match = re.match(r"Mapped (\d+) item", parent.message or "")
    if match:
        return int(match.group(1))
    return max(kids) + 1 if kids else 0


def _is_parameter(task: Any) -> bool:
    """Parameters and the tasks headwater adds for literal arguments (constants, collections, ``x[0]``): cheap to
    recompute, and not worth a line in the log."""
    from headwater import Parameter

    return isinstance(task, Parameter) or type(task).__module__ == "headwater.core.collections"


RESUME_STATES_QUERY = "query($id: String!, $o: Int!) { resume_states(flow_run_id: $id, offset: $o, limit: 1000) }"
"""One query per 1000 task runs (``server.services.runs.resume_records``), where the server has the field."""


def fetch_records(client: Any, flow_run_id: str) -> list[TaskRunRecord]:
    """The run's task runs with their current state's ``serialized``, read from the API a page of 1000 at a time.

    Asks ``resume_states`` (one SQL query a page); a server without that field is asked for
    ``task_runs`` with each task run's state history instead (one more query per task run).
    """
    from headwater_cloud_api.client.transport import APIClientError
    from headwater_cloud_api.execution.runner import retrying

    records: list[TaskRunRecord] = []
    offset = 0
    try:
        while True:
            variables = {"id": flow_run_id, "o": offset}
            rows = retrying(lambda: client.graphql(RESUME_STATES_QUERY, variables),  # noqa: B023 - called at once
                            "reading the task runs of the earlier attempt")["resume_states"]
            records.extend(records_from_api(
                {"task_slug": r["task_slug"], "map_index": r["map_index"],
                 "state": {"type": r["state"], "message": r.get("message"), "serialized": r.get("serialized")}} for r in rows))
            if len(rows) < 1000:
                return records
            offset += len(rows)
    except APIClientError as exc:
        if exc.code != "GRAPHQL_VALIDATION":
            raise
    records, offset = [], 0
    while True:
        variables = {"id": flow_run_id, "o": offset}
        page = retrying(lambda: client.graphql(TASK_RUNS_QUERY, variables),  # noqa: B023 - called at once
                        "reading the task runs of the earlier attempt")["task_runs"]
        records.extend(records_from_api(page))
        if len(page) < 1000:
            return records
        offset += len(page)


def serialized_state(state: st.State) -> dict[str, Any] | None:
    """What a new attempt needs of a task-run state: a result's checkpointed ``location``, a pause's ``start_time``."""
    if isinstance(state, st.Scheduled) and state.start_time is not None and isinstance(state, st.Paused):
        return {"start_time": float(state.start_time)}
    location = getattr(state, "location", None)
    if location and isinstance(state, st.Success):
        return {"location": str(location)}
    return None


def engine_takes_task_states(flow: Any) -> bool:
    """Whether ``flow.run(task_states=...)`` reaches the engine: not when the flow has a parameter of that name."""
    try:
        return all(p.name != "task_states" for p in flow.parameters())
    except Exception:  # pragma: no cover - a flow object without parameters()
        return False
