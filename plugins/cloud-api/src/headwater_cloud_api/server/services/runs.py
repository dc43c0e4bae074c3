"""Flow runs and task runs: creation, version-checked batched state writes, cancel, logs, queue, agents, heartbeats.

Every state write is ``UPDATE ... WHERE id = :id AND version = :expected`` plus one row in the
append-only history, so a stale writer (one that read an older version) cannot overwrite a newer
state — in one process or across server processes, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from headwater_cloud_api.server.db.models import Agent, Flow, FlowRun, FlowRunState, Log, TaskRun, TaskRunState, new_id, utcnow
from headwater_cloud_api.server.errors import MAX_BATCH, BadInput, NotFound
from headwater_cloud_api.server.services.flows import get_flow

__all__ = [
    "STATE_NAMES",
    "FINISHED_STATES",
    "StateWrite",
    "TaskStateWrite",
    "WriteResult",
    "create_flow_run",
    "get_flow_run",
    "set_flow_run_states",
    "set_task_run_states",
    "cancel_flow_run",
    "write_logs",
    "runs_in_queue",
    "register_agent",
    "heartbeat",
]


def _state_classes() -> dict[str, type]:
    from headwater import states

    return {name: cls for name, cls in vars(states).items() if inspect.isclass(cls) and issubclass(cls, states.State)}


_CLASSES = _state_classes()
STATE_NAMES: frozenset[str] = frozenset(_CLASSES)
"""Every state name a run may be set to (the classes of ``headwater.states``)."""
FINISHED_STATES: frozenset[str] = frozenset(n for n, c in _CLASSES.items() if c.__dict__.get("is_finished") is None and issubclass(c, _CLASSES["Finished"]))
RUNNING_STATES: frozenset[str] = frozenset(n for n, c in _CLASSES.items() if issubclass(c, _CLASSES["Running"]))
SCHEDULED_STATES: frozenset[str] = frozenset(n for n, c in _CLASSES.items() if issubclass(c, _CLASSES["Pending"]))
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def check_state(name: str) -> str:
    if name not in STATE_NAMES:
        raise BadInput(f"Unknown state {name!r}; states are: {', '.join(sorted(STATE_NAMES))}.")
    return name


@attrs.define
class StateWrite:
    """One flow-run state write: ``version`` is the version the writer last saw (None: no check)."""

    flow_run_id: str
    state: str
    message: str | None = None
    version: int | None = None
    serialized: dict[str, Any] | None = None


@attrs.define
class TaskStateWrite:
    """One task-run state write, naming the task run by id or by ``(flow_run_id, task_slug, map_index)``."""

    flow_run_id: str
    state: str
    task_slug: str | None = None
    map_index: int = -1
    task_run_id: str | None = None
    message: str | None = None
    version: int | None = None
    serialized: dict[str, Any] | None = None


@attrs.define
class WriteResult:
    """``status``: ``SUCCESS`` (written; ``version`` is the new one) or ``STALE`` (not written; ``version``/``state`` are the current ones)."""

    id: str
    status: str
    version: int
    state: str


def get_flow_run(session: Session, id: str) -> FlowRun:
    row = session.get(FlowRun, id)
    if row is None:
        raise NotFound(f"Flow run with id {id!r} does not exist. List runs with `headwater get flow-runs`.")
    return row


def _check_parameters(flow: Flow, parameters: dict[str, Any]) -> None:
    declared = {p["name"]: p for p in flow.serialized.get("parameters") or [] if isinstance(p, dict) and "name" in p}
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise BadInput(
            f"Flow {flow.name!r} (version {flow.version}) has no parameter(s) {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(sorted(declared)) or 'none'}."
        )
    missing = sorted(n for n, p in declared.items() if p.get("required") and n not in parameters)
    if missing:
        raise BadInput(f"Flow {flow.name!r} requires parameter(s) {', '.join(map(repr, missing))}; pass them in 'parameters'.")


def create_flow_run(
    session: Session,
    *,
    flow_id: str | None = None,
    flow_name: str | None = None,
    project_name: str | None = None,
    parameters: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    labels: Sequence[str] | None = None,
    run_name: str | None = None,
    scheduled_start_time: datetime | None = None,
    idempotency_key: str | None = None,
    auto_scheduled: bool = False,
) -> FlowRun:
    """A new Scheduled flow run; with an ``idempotency_key`` the existing run with that key is returned."""
    flow = get_flow(session, id=flow_id, name=flow_name, project=project_name)
    if flow.archived:
        raise BadInput(f"Flow {flow.name!r} version {flow.version} is archived; create runs of its latest version (by name and project).")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadInput("'parameters' must be a JSON object of parameter name -> value.")
    if context is not None and not isinstance(context, dict):
        raise BadInput("'context' must be a JSON object.")
    if idempotency_key is not None:
        existing = session.scalar(select(FlowRun).where(FlowRun.flow_id == flow.id, FlowRun.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    defaults = {p["name"]: p.get("default") for p in flow.serialized.get("parameters") or [] if not p.get("required")}
    params = dict(parameters or {})
    _check_parameters(flow, params)
    now = utcnow()
    row = FlowRun(
        id=new_id(), flow_id=flow.id, flow_group_id=flow.flow_group_id, name=run_name,
        parameters={**defaults, **params}, context=dict(context or {}),
        labels=sorted(set(flow.labels if labels is None else labels)),
        run_config=flow.serialized.get("run_config"), idempotency_key=idempotency_key, auto_scheduled=auto_scheduled,
        scheduled_start_time=scheduled_start_time or now, state="Scheduled", state_timestamp=now, version=1,
        created=now, updated=now,
    )
    session.add(row)
    session.add(FlowRunState(flow_run_id=row.id, version=1, state="Scheduled", message=None, timestamp=now))
    session.flush()
    return row


def _times(state: str, start: datetime | None, end: datetime | None, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if state in RUNNING_STATES and start is None:
        values["start_time"] = now
    if state in FINISHED_STATES:
        values["end_time"] = now
    return values


def set_flow_run_states(session: Session, writes: Sequence[StateWrite]) -> list[WriteResult]:
    """Write many flow-run states in one transaction; unknown ids or states fail the whole batch (nothing written)."""
    if len(writes) > MAX_BATCH:
        raise BadInput(f"{len(writes)} state writes in one request; the limit is {MAX_BATCH}. Split the batch.")
    for w in writes:
        check_state(w.state)
    ids = {w.flow_run_id for w in writes}
    rows = {r.id: (r.version, r.start_time) for r in session.execute(select(FlowRun.id, FlowRun.version, FlowRun.start_time).where(FlowRun.id.in_(ids)))} if ids else {}
    missing = sorted(ids - set(rows))
    if missing:
        raise NotFound(f"Flow run(s) {', '.join(map(repr, missing))} do not exist; nothing was written.")
    results: list[WriteResult] = []
    now = utcnow()
    for w in writes:
        run_id = w.flow_run_id
        known_version, start_time = rows[run_id]
        expected = known_version if w.version is None else w.version
        values = {"state": w.state, "state_message": w.message, "state_timestamp": now, "version": expected + 1, "updated": now}
        values.update(_times(w.state, start_time, None, now))
        done = session.execute(
            update(FlowRun).where(FlowRun.id == run_id, FlowRun.version == expected).values(**values)
        ).rowcount
        if done:
            session.execute(
                insert(FlowRunState).values(
                    flow_run_id=run_id, version=expected + 1, state=w.state, message=w.message, serialized=w.serialized, timestamp=now
                )
            )
            rows[run_id] = (expected + 1, values.get("start_time", start_time))
            results.append(WriteResult(run_id, "SUCCESS", expected + 1, w.state))
        else:
            current = session.execute(select(FlowRun.version, FlowRun.state).where(FlowRun.id == run_id)).one()
            results.append(WriteResult(run_id, "STALE", current.version, current.state))
    return results


def set_task_run_states(session: Session, writes: Sequence[TaskStateWrite]) -> list[WriteResult]:
    """Write many task-run states; a task run is created on its first write (by flow run, task slug and map index)."""
    if len(writes) > MAX_BATCH:
        raise BadInput(f"{len(writes)} state writes in one request; the limit is {MAX_BATCH}. Split the batch.")
    for w in writes:
        check_state(w.state)
        if w.task_run_id is None and not w.task_slug:
            raise BadInput("A task-run state write names its task run by 'task_run_id' or by 'task_slug' (+ 'map_index').")
    run_ids = {w.flow_run_id for w in writes}
    found = set(session.scalars(select(FlowRun.id).where(FlowRun.id.in_(run_ids)))) if run_ids else set()
    missing = sorted(run_ids - found)
    if missing:
        raise NotFound(f"Flow run(s) {', '.join(map(repr, missing))} do not exist; nothing was written.")
    existing = {
        (r.flow_run_id, r.task_slug, r.map_index): r
        for r in session.scalars(select(TaskRun).where(TaskRun.flow_run_id.in_(run_ids)))
    } if run_ids else {}
    by_id = {r.id: r for r in existing.values()}
    known: dict[str, tuple[int, datetime | None]] = {r.id: (r.version, r.start_time) for r in existing.values()}
    now = utcnow()
    results: list[WriteResult] = []
    ids: dict[tuple[str, str, int], str] = {key: r.id for key, r in existing.items()}
    new_rows: list[dict[str, Any]] = []
    for w in writes:  # one INSERT for every task run written for the first time
        if w.task_run_id is not None:
            if w.task_run_id not in by_id:
                raise NotFound(f"Task run {w.task_run_id!r} does not exist in flow run {w.flow_run_id!r}; nothing was written.")
            continue
        key = (w.flow_run_id, w.task_slug or "", w.map_index)
        if key not in ids:
            ids[key] = new_id()
            known[ids[key]] = (0, None)
            new_rows.append({"id": ids[key], "flow_run_id": w.flow_run_id, "task_slug": w.task_slug, "map_index": w.map_index,
                             "state": "Pending", "version": 0, "state_timestamp": now, "created": now})
    if new_rows:
        session.execute(insert(TaskRun), new_rows)
    for w in writes:
        run_id = w.task_run_id if w.task_run_id is not None else ids[(w.flow_run_id, w.task_slug or "", w.map_index)]
        known_version, start_time = known[run_id]
        expected = known_version if w.version is None else w.version
        values = {"state": w.state, "state_message": w.message, "state_timestamp": now, "version": expected + 1}
        values.update(_times(w.state, start_time, None, now))
        done = session.execute(update(TaskRun).where(TaskRun.id == run_id, TaskRun.version == expected).values(**values)).rowcount
        if done:
            session.execute(
                insert(TaskRunState).values(
                    task_run_id=run_id, version=expected + 1, state=w.state, message=w.message, serialized=w.serialized, timestamp=now
                )
            )
            known[run_id] = (expected + 1, values.get("start_time", start_time))
            results.append(WriteResult(run_id, "SUCCESS", expected + 1, w.state))
        else:
            current = session.execute(select(TaskRun.version, TaskRun.state).where(TaskRun.id == run_id)).one()
            results.append(WriteResult(run_id, "STALE", current.version, current.state))
    return results


def cancel_flow_run(session: Session, id: str) -> WriteResult:
    """Scheduled/pending runs become Cancelled at once; running ones Cancelling (the runner finishes the job); finished ones stay."""
    for _ in range(5):
        row = get_flow_run(session, id)
        session.refresh(row)  # another write in this transaction may have changed it
        if row.state in FINISHED_STATES:
            return WriteResult(row.id, "FINISHED", row.version, row.state)
        if row.state == "Cancelling":
            return WriteResult(row.id, "SUCCESS", row.version, row.state)
        target = "Cancelled" if row.state in SCHEDULED_STATES else "Cancelling"
        [result] = set_flow_run_states(
            session, [StateWrite(row.id, target, message="Cancelled by request" if target == "Cancelled" else "Cancel requested", version=row.version)]
        )
        if result.status == "SUCCESS":
            return result
    raise BadInput(f"Flow run {id!r} changed state while being cancelled five times; try again.", "CONFLICT")


def write_logs(session: Session, logs: Sequence[dict[str, Any]]) -> int:
    """Insert many log records in one statement; unknown flow runs or levels fail the whole batch."""
    if len(logs) > MAX_BATCH:
        raise BadInput(f"{len(logs)} log records in one request; the limit is {MAX_BATCH}. Split the batch.")
    if not logs:
        return 0
    run_ids = {log["flow_run_id"] for log in logs}
    found = set(session.scalars(select(FlowRun.id).where(FlowRun.id.in_(run_ids))))
    missing = sorted(run_ids - found)
    if missing:
        raise NotFound(f"Flow run(s) {', '.join(map(repr, missing))} do not exist; no log was written.")
    rows = []
    now = utcnow()
    for log in logs:
        level = str(log.get("level") or "INFO").upper()
        if level not in LEVELS:
            raise BadInput(f"Unknown log level {log.get('level')!r}; use one of {', '.join(LEVELS)}.")
        rows.append({
            "flow_run_id": log["flow_run_id"], "task_run_id": log.get("task_run_id"), "level": level,
            "name": log.get("name"), "message": str(log.get("message") or ""), "timestamp": log.get("timestamp") or now,
        })
    session.execute(insert(Log), rows)
    return len(rows)


def runs_in_queue(session: Session, labels: Sequence[str], before: datetime | None = None, limit: int = 100,
                  accepts_unlabeled: bool = True) -> list[FlowRun]:
    """Scheduled runs due by ``before`` whose labels are a subset of ``labels`` (unlabeled runs only if accepted)."""
    before = before or utcnow()
    rows = session.scalars(
        select(FlowRun)
        .where(FlowRun.state == "Scheduled", FlowRun.scheduled_start_time <= before)
        .order_by(FlowRun.scheduled_start_time)
        .limit(max(1, min(limit, 1000)) * 5)
    ).all()
    have = set(labels)
    out = [r for r in rows if set(r.labels) <= have and (r.labels or accepts_unlabeled)]
    return out[:limit]


def register_agent(session: Session, name: str, labels: Sequence[str], type: str | None = None, accepts_unlabeled: bool = True) -> Agent:
    row = Agent(name=name, labels=sorted(set(labels)), type=type, accepts_unlabeled=accepts_unlabeled, last_seen=utcnow())
    session.add(row)
    session.flush()
    return row


def heartbeat(session: Session, *, agent_id: str | None = None, flow_run_id: str | None = None) -> str | None:
    """Record that an agent or a flow-run process is alive; returns the flow run's current state (so a runner sees Cancelling)."""
    now = utcnow()
    if agent_id is not None:
        if not session.execute(update(Agent).where(Agent.id == agent_id).values(last_seen=now)).rowcount:
            raise NotFound(f"Agent {agent_id!r} is not registered; register it again (restart the agent).")
    if flow_run_id is not None:
        if not session.execute(update(FlowRun).where(FlowRun.id == flow_run_id).values(heartbeat=now)).rowcount:
            raise NotFound(f"Flow run {flow_run_id!r} does not exist.")
        return session.scalar(select(FlowRun.state).where(FlowRun.id == flow_run_id))
    return None


