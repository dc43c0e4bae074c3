"""What the pages show, read in-process from the API's database models and services (the GraphQL API reads the same).

Each function takes a read session and returns plain data for a template. Hot paths (a run page
with 10 000 task runs) use column queries and aggregate in Python once: no ORM objects per row.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.orm import Session

from headwater.states import FAILED_STATE_NAMES
from headwater_cloud_api.server.db.models import (
    Agent,
    Flow,
    FlowGroup,
    FlowRun,
    FlowRunState,
    KeyValue,
    Project,
    TaskRun,
    TaskRunState,
    utcnow,
)
from headwater_cloud_api.server.errors import NotFound
from headwater_cloud_api.server.services import agents as agent_service
from headwater_cloud_api.server.services import runs as run_service
from headwater_cloud_api.ui.gantt import TaskRunRow, aggregate

__all__ = [
    "ALIVE_WITHIN", "LATE_AFTER", "dashboard", "flows_page", "flow_page", "flow_run_page", "run_token", "task_run_page",
    "task_group_page", "agents_page", "runs_page", "projects_page", "kv_page", "parameter_fields",
]

ALIVE_WITHIN = 60.0
"""An agent seen within this many seconds is healthy."""
LATE_AFTER = 30.0
"""A Scheduled run still waiting this many seconds after its start time is late."""
FINISHED = run_service.FINISHED_STATES
ACTIVE = agent_service.ACTIVE_STATES

_NOT_SUCCESSFUL = tuple(sorted(FAILED_STATE_NAMES | {"Cancelled"}))
"""States that count as a task run gone wrong."""


def _project_names(s: Session) -> dict[str, str]:
    return {str(i): str(n) for i, n in s.execute(select(Project.id, Project.name)).all()}


def _run_dict(r: Any, flow_names: dict[str, str] | None = None) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "state": r.state, "message": r.state_message, "scheduled": r.scheduled_start_time,
            "start": r.start_time, "end": r.end_time, "flow_id": r.flow_id, "labels": list(r.labels or []),
            "flow_name": (flow_names or {}).get(r.flow_id), "agent_id": r.agent_id}


def _flow_names(s: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    return dict(s.execute(select(Flow.id, Flow.name).where(Flow.id.in_(sorted(ids)))).all())


def _runs_in_flight(s: Session) -> dict[str, int]:
    rows = s.execute(select(FlowRun.agent_id, func.count()).where(FlowRun.state.in_(ACTIVE), FlowRun.agent_id.is_not(None))
                     .group_by(FlowRun.agent_id)).all()
    return {str(a): int(n) for a, n in rows}


def _agents(s: Session, now: datetime) -> list[dict[str, Any]]:
    in_flight = _runs_in_flight(s)
    out = []
    for a in s.scalars(select(Agent).order_by(Agent.name, Agent.id)):
        age = (now - a.last_seen).total_seconds()
        out.append({"id": a.id, "name": a.name, "labels": sorted(a.labels or []), "type": a.type, "last_seen": a.last_seen,
                    "age": age, "alive": age <= ALIVE_WITHIN, "in_flight": in_flight.get(a.id, 0),
                    "accepts_unlabeled": a.accepts_unlabeled})
    return out


def dashboard(s: Session, now: datetime | None = None) -> dict[str, Any]:
    """Runs of the last 24 h by state, failing flows, upcoming and late runs, agents and their health."""
    now = now or utcnow()
    since = now - timedelta(hours=24)
    by_state = dict(s.execute(select(FlowRun.state, func.count()).where(FlowRun.scheduled_start_time >= since,
                                                                      FlowRun.scheduled_start_time <= now)
                              .group_by(FlowRun.state)).all())
    failing = s.execute(
        select(Flow.flow_group_id, Flow.name, Flow.project_id, func.count(), func.max(FlowRun.state_timestamp))
        .join(Flow, Flow.id == FlowRun.flow_id)
        .where(FlowRun.state.in_(tuple(sorted(FAILED_STATE_NAMES))), FlowRun.state_timestamp >= since)
        .group_by(Flow.flow_group_id, Flow.name, Flow.project_id).order_by(func.count().desc()).limit(10)
    ).all()
    projects = _project_names(s)
    latest = _latest_flow_ids(s, [g for g, *_ in failing])
    failing_flows = [{"name": name, "project": projects.get(pid), "failures": n, "last": last, "flow_id": latest.get(g)}
                     for g, name, pid, n, last in failing]
    upcoming_rows = s.scalars(select(FlowRun).where(FlowRun.state == "Scheduled", FlowRun.scheduled_start_time > now)
                              .order_by(FlowRun.scheduled_start_time).limit(10)).all()
    late_rows = s.scalars(select(FlowRun).where(FlowRun.state == "Scheduled",
                                                FlowRun.scheduled_start_time < now - timedelta(seconds=LATE_AFTER))
                          .order_by(FlowRun.scheduled_start_time).limit(10)).all()
    recent_rows = s.scalars(select(FlowRun).where(FlowRun.state != "Scheduled").order_by(FlowRun.state_timestamp.desc())
                            .limit(10)).all()
    names = _flow_names(s, {r.flow_id for r in (*upcoming_rows, *late_rows, *recent_rows)})
    return {
        "by_state": sorted(by_state.items(), key=lambda kv: -kv[1]), "total": sum(by_state.values()),
        "failing": failing_flows, "upcoming": [_run_dict(r, names) for r in upcoming_rows],
        "late": [_run_dict(r, names) for r in late_rows], "recent": [_run_dict(r, names) for r in recent_rows],
        "agents": _agents(s, now), "flows": s.scalar(select(func.count()).select_from(FlowGroup)) or 0, "now": now,
    }


def _latest_flow_ids(s: Session, group_ids: list[str]) -> dict[str, str]:
    if not group_ids:
        return {}
    rows = s.execute(select(Flow.flow_group_id, Flow.id, Flow.version).where(Flow.flow_group_id.in_(sorted(set(group_ids))))).all()
    best: dict[str, tuple[int, str]] = {}
    for g, fid, v in rows:
        if g not in best or v > best[g][0]:
            best[g] = (v, fid)
    return {g: fid for g, (_, fid) in best.items()}


def _recent_states(s: Session, group_ids: list[str], per_group: int = 12) -> dict[str, list[dict[str, Any]]]:
    """The last ``per_group`` finished-or-running runs of each flow group (newest last), in one query."""
    if not group_ids:
        return {}
    ranked = (select(FlowRun.id, FlowRun.flow_group_id, FlowRun.state, FlowRun.scheduled_start_time,
                     func.row_number().over(partition_by=FlowRun.flow_group_id,
                                            order_by=FlowRun.scheduled_start_time.desc()).label("rn"))
              .where(FlowRun.flow_group_id.in_(group_ids), FlowRun.scheduled_start_time <= utcnow()).subquery())
    rows = s.execute(select(ranked).where(ranked.c.rn <= per_group)).all()
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r.flow_group_id].append({"id": r.id, "state": r.state, "scheduled": r.scheduled_start_time})
    for runs in out.values():
        runs.sort(key=lambda r: r["scheduled"])
    return out


def flows_page(s: Session, project: str | None = None, search: str | None = None) -> dict[str, Any]:
    """The latest version of every flow (per project, optionally filtered), its schedule and its last runs' states."""
    projects = _project_names(s)
    # The task count and the schedule are read in SQL: a flow's serialized graph is several MB at 10 000 tasks.
    q = (select(Flow, FlowGroup.schedule_active, Flow.serialized["schedule"], _task_count(s))
         .join(FlowGroup, FlowGroup.id == Flow.flow_group_id).where(Flow.archived.is_(False)))
    if project:
        q = q.join(Project, Project.id == Flow.project_id).where(Project.name == project)
    if search:
        q = q.where(Flow.name.ilike(f"%{search}%"))
    rows = s.execute(q.order_by(Flow.name)).all()
    strips = _recent_states(s, [f.flow_group_id for f, *_ in rows])
    flows = [{"id": f.id, "name": f.name, "version": f.version, "project": projects.get(f.project_id), "labels": f.labels,
              "schedule": schedule, "schedule_active": bool(active), "tasks": int(tasks or 0),
              "runs": strips.get(f.flow_group_id, []), "created": f.created}
             for f, active, schedule, tasks in rows]
    return {"flows": flows, "projects": sorted(projects.values()), "project": project, "search": search or ""}


def _task_count(s: Session) -> Any:
    """``len(serialized["tasks"])`` as SQL, so the graph itself is never loaded."""
    if s.get_bind().dialect.name == "postgresql":  # JSONB there
        return func.jsonb_array_length(Flow.serialized["tasks"])
    return func.json_array_length(Flow.serialized, "$.tasks")


def parameter_fields(serialized: dict[str, Any]) -> list[dict[str, Any]]:
    """The Run form's fields: per parameter its input kind (from the default's type), default text and required flag."""
    import json

    fields = []
    for p in serialized.get("parameters") or []:
        default = p.get("default")
        required = bool(p.get("required"))
        if isinstance(default, bool):
            kind = "bool"
        elif isinstance(default, int):
            kind = "int"
        elif isinstance(default, float):
            kind = "float"
        elif isinstance(default, str):
            kind = "str"
        elif required and default is None:
            kind = "any"
        else:
            kind = "json"
        text = "" if (required and default is None) else (default if kind == "str" else json.dumps(default))
        fields.append({"name": p["name"], "kind": kind, "default": default, "text": text, "required": required})
    return fields


def schedule_text(schedule: dict[str, Any] | None) -> str:
    """A short description of a serialized schedule (its clocks)."""
    if not schedule:
        return "no schedule"
    parts = []
    for clock in schedule.get("clocks") or []:
        if not isinstance(clock, dict):
            continue
        if clock.get("cron"):
            parts.append(f"cron {clock['cron']}")
        elif clock.get("interval") is not None:
            parts.append(f"every {clock['interval']} s" if not isinstance(clock["interval"], dict) else "interval")
        else:
            parts.append(str(clock.get("type") or "clock"))
    return ", ".join(parts) or str(schedule.get("type") or "schedule")


def flow_page(s: Session, flow_id: str) -> dict[str, Any]:
    """A flow version: its versions, parameters, schedule, DAG and runs history (all versions of its group)."""
    from headwater.plugins import DagLayout

    flow = s.get(Flow, flow_id)
    if flow is None:
        raise NotFound(f"Flow {flow_id!r} does not exist (deleted?). See the flows list.")
    group = s.get(FlowGroup, flow.flow_group_id)
    versions = s.execute(select(Flow.id, Flow.version, Flow.archived, Flow.created).where(Flow.flow_group_id == flow.flow_group_id)
                         .order_by(Flow.version.desc())).all()
    runs = s.scalars(select(FlowRun).where(FlowRun.flow_group_id == flow.flow_group_id)
                     .order_by(FlowRun.scheduled_start_time.desc()).limit(50)).all()
    version_of = {v.id: v.version for v in versions}
    run_list = []
    for r in runs:
        d = _run_dict(r)
        d["version"] = version_of.get(r.flow_id)
        run_list.append(d)
    counts = Counter(r.state for r in runs)
    layout = DagLayout.from_metadata(flow.serialized)
    return {
        "flow": flow, "project": s.scalar(select(Project.name).where(Project.id == flow.project_id)),
        "schedule_active": bool(group.schedule_active) if group else False,
        "schedule": schedule_text(flow.serialized.get("schedule")), "has_schedule": bool(flow.serialized.get("schedule")),
        "versions": versions, "runs": run_list, "counts": sorted(counts.items(), key=lambda kv: -kv[1]),
        "fields": parameter_fields(flow.serialized), "run_config": flow.serialized.get("run_config") or {},
        "storage": (flow.serialized.get("storage") or {}).get("type"), "dag_svg": layout.svg(standalone=False, title=flow.name), "dag_fit": layout.width <= 1800,
        "task_count": len(flow.serialized.get("tasks") or []),
    }


def run_token(s: Session, run_id: str) -> str:
    """Changes whenever the run or any of its task runs is written: the live view fetches parts only when it does."""
    run = s.execute(select(FlowRun.version, FlowRun.state).where(FlowRun.id == run_id)).first()
    if run is None:
        raise NotFound(f"Flow run {run_id!r} does not exist (deleted?). List runs with `headwater get flow-runs`.")
    tasks = s.execute(select(func.count(), func.coalesce(func.sum(TaskRun.version), 0)).where(TaskRun.flow_run_id == run_id)).first()
    n, versions = tasks if tasks is not None else (0, 0)
    return f"{run.version}.{n}.{versions}"


def _task_rows(s: Session, run_id: str) -> list[TaskRunRow]:
    retries = dict(s.execute(
        select(TaskRunState.task_run_id, func.count()).join(TaskRun, TaskRun.id == TaskRunState.task_run_id)
        .where(TaskRun.flow_run_id == run_id, TaskRunState.state == "Retrying").group_by(TaskRunState.task_run_id)
    ).all())
    # the times come back raw (text on SQLite) and are parsed with the C ``fromisoformat``: 10x faster than the ORM type
    rows = s.execute(select(TaskRun.id, TaskRun.task_slug, TaskRun.map_index, TaskRun.state, type_coerce(TaskRun.start_time, String),
                            type_coerce(TaskRun.end_time, String)).where(TaskRun.flow_run_id == run_id)).all()
    return [TaskRunRow(i, slug, index, state, _when(start), _when(end), retries.get(i, 0)) for i, slug, index, state, start, end in rows]


def _when(value: Any) -> datetime | None:
    """A timestamp column read raw: SQLite text (naive UTC) or a driver's datetime, as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_RUN_CACHE: OrderedDict[str, tuple[str, dict[str, Any]]] = OrderedDict()
"""The task-run part of finished runs' pages by run id, with the token it was built at (a finished run of
10 000 task runs is rendered from here until something writes to it, e.g. a restart)."""
_RUN_CACHE_SIZE = 32


def _task_parts(s: Session, run: FlowRun, flow: Flow, now: datetime) -> dict[str, Any]:
    """The parts built from every task run: DAG states, Gantt, task table, totals (the costly half of a run page)."""
    from headwater.plugins import DagLayout

    rows = _task_rows(s, run.id)
    tasks_meta = {t["slug"]: t for t in flow.serialized.get("tasks") or []}
    names = {slug: t.get("name") or slug for slug, t in tasks_meta.items()}
    groups: dict[str, list[TaskRunRow]] = defaultdict(list)
    for r in rows:
        groups[r.task_slug].append(r)
    per_slug: dict[str, dict[str, Any]] = {}
    for slug, group in groups.items():  # builtins over each group (C loops), not a Python loop of dict updates per row
        starts = [r.start_time for r in group if r.start_time is not None]
        ends = [r.end_time for r in group if r.end_time is not None]
        parent = next((r for r in group if r.map_index < 0), None)
        per_slug[slug] = {"slug": slug, "name": names.get(slug, slug), "parent": parent,
                          "counts": Counter(r.state for r in group if r.map_index >= 0), "retries": sum(r.retries for r in group),
                          "start": min(starts, default=None), "end": max(ends, default=None)}
    dag_states: dict[str, Any] = {}
    for slug, entry in per_slug.items():
        dag_states[slug] = dict(entry["counts"]) if entry["counts"] else (entry["parent"].state if entry["parent"] else None)
    order = list(tasks_meta)
    try:
        layout = DagLayout.from_metadata(flow.serialized, dag_states)
        order = [n.slug for n in layout.nodes]
        dag_svg = layout.svg(standalone=False, title=flow.name, link=lambda n: f"#task-{n.slug}")
        dag_fit = layout.width <= 1800
    except ValueError as exc:  # a malformed registration must not hide the rest of the page
        dag_svg, dag_fit = f"<p class='muted'>The DAG cannot be drawn: {exc}</p>", True
    rank = {slug: i for i, slug in enumerate(order)}
    gantt = aggregate(rows, now, names, order, run.start_time, run.end_time if run.state in FINISHED else None)
    task_table = sorted(per_slug.values(), key=lambda e: (rank.get(e["slug"], len(rank)), e["slug"]))
    for e in task_table:
        e["state"] = e["parent"].state if e["parent"] else (max(e["counts"], key=lambda k: e["counts"][k]) if e["counts"] else None)
        e["id"] = e["parent"].id if e["parent"] else None
        e["children"] = sum(e["counts"].values())
        e["counts"] = sorted(e["counts"].items(), key=lambda kv: -kv[1])
    totals = Counter(r.state for r in rows if not (r.map_index < 0 and per_slug[r.task_slug]["counts"]))
    return {"dag_svg": dag_svg, "dag_fit": dag_fit, "gantt": gantt, "tasks": task_table, "task_total": len(rows),
            "not_run": [t for slug, t in tasks_meta.items() if slug not in per_slug],
            "totals": sorted(totals.items(), key=lambda kv: -kv[1]),
            "failed_tasks": sum(n for st, n in totals.items() if st in _NOT_SUCCESSFUL)}


def flow_run_page(s: Session, run_id: str, now: datetime | None = None) -> dict[str, Any]:
    """A run: its state history, parameters, DAG colored by task states (maps collapsed), Gantt, task table, explain."""
    from headwater_cloud_api.server.services import artifacts as artifact_service  # run records: children, artifacts

    now = now or utcnow()
    run = run_service.get_flow_run(s, run_id)
    flow = s.get(Flow, run.flow_id)
    assert flow is not None
    token = run_token(s, run_id)
    states = s.execute(select(FlowRunState.version, FlowRunState.state, FlowRunState.message, FlowRunState.timestamp)
                       .where(FlowRunState.flow_run_id == run_id).order_by(FlowRunState.version)).all()
    finished = run.state in FINISHED
    cached = _RUN_CACHE.get(run_id)
    if finished and cached is not None and cached[0] == token:
        parts = cached[1]
        _RUN_CACHE.move_to_end(run_id)
    else:
        parts = _task_parts(s, run, flow, now)
        if finished:
            _RUN_CACHE[run_id] = (token, parts)
            while len(_RUN_CACHE) > _RUN_CACHE_SIZE:
                _RUN_CACHE.popitem(last=False)
    explanation = None
    if run.state == "Scheduled":
        explanation = agent_service.explain_flow_run(s, run_id, alive_within=ALIVE_WITHIN, now=now)
    agent = s.get(Agent, run.agent_id) if run.agent_id else None
    return {
        **parts, "run": run, "flow": flow, "project": s.scalar(select(Project.name).where(Project.id == flow.project_id)),
        "states": states, "explanation": explanation, "agent": agent, "finished": finished,
        "can_cancel": not finished and run.state != "Cancelling",
        "can_restart": run.state in _NOT_SUCCESSFUL or (finished and parts["failed_tasks"] > 0),
        "can_restart_all": finished,
        "can_resume": not finished and run.state != "Cancelling" and (run.state == "Paused" or s.scalar(
            select(TaskRun.id).where(TaskRun.flow_run_id == run_id, TaskRun.state == "Paused").limit(1)) is not None),
        "children": artifact_service.child_flow_runs(s, run_id), "artifacts": artifact_service.list_artifacts(s, run_id),
        "token": token, "now": now,
    }


def task_group_page(s: Session, run_id: str, slug: str, offset: int = 0, limit: int = 200) -> dict[str, Any]:
    """The children of a mapped task (paged by map index) with their states."""
    run = run_service.get_flow_run(s, run_id)
    flow = s.get(Flow, run.flow_id)
    q = select(TaskRun).where(TaskRun.flow_run_id == run_id, TaskRun.task_slug == slug)
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = s.scalars(q.order_by(TaskRun.map_index).offset(offset).limit(limit)).all()
    if total == 0:
        raise NotFound(f"Flow run {run_id!r} has no task runs of task {slug!r}.")
    counts = dict(s.execute(select(TaskRun.state, func.count()).where(TaskRun.flow_run_id == run_id, TaskRun.task_slug == slug)
                            .group_by(TaskRun.state)).all())
    children = s.scalar(select(func.count()).where(TaskRun.flow_run_id == run_id, TaskRun.task_slug == slug, TaskRun.map_index >= 0)) or 0
    meta: dict[str, Any] = next((t for t in (flow.serialized.get("tasks") or []) if t.get("slug") == slug), {}) if flow else {}
    return {"run": run, "flow": flow, "slug": slug, "name": meta.get("name") or slug, "rows": rows, "total": total,
            "children": children, "offset": offset, "limit": limit, "counts": sorted(counts.items(), key=lambda kv: -kv[1])}


def task_run_page(s: Session, task_run_id: str) -> dict[str, Any]:
    """One task run: its state history and where it belongs."""
    tr = s.get(TaskRun, task_run_id)
    if tr is None:
        raise NotFound(f"Task run {task_run_id!r} does not exist (its flow run may have been deleted).")
    run = s.get(FlowRun, tr.flow_run_id)
    assert run is not None
    flow = s.get(Flow, run.flow_id)
    history = s.execute(select(TaskRunState.version, TaskRunState.state, TaskRunState.message, TaskRunState.timestamp)
                        .where(TaskRunState.task_run_id == task_run_id).order_by(TaskRunState.version)).all()
    meta: dict[str, Any] = next((t for t in (flow.serialized.get("tasks") or []) if t.get("slug") == tr.task_slug), {}) if flow else {}
    return {"task_run": tr, "run": run, "flow": flow, "history": history, "meta": meta}


def agents_page(s: Session, now: datetime | None = None) -> dict[str, Any]:
    """Agents (labels, health, runs in flight) and, for each run waiting in the queue, why no agent takes it."""
    now = now or utcnow()
    waiting = s.scalars(select(FlowRun).where(FlowRun.state == "Scheduled", FlowRun.scheduled_start_time <= now)
                        .order_by(FlowRun.scheduled_start_time).limit(20)).all()
    names = _flow_names(s, {r.flow_id for r in waiting})
    explained = []
    for r in waiting:
        e = agent_service.explain_flow_run(s, r.id, alive_within=ALIVE_WITHIN, now=now)
        explained.append({"run": _run_dict(r, names), "reasons": e.reasons, "agents": e.agents})
    in_flight = s.scalars(select(FlowRun).where(FlowRun.state.in_(ACTIVE)).order_by(FlowRun.state_timestamp.desc()).limit(50)).all()
    names.update(_flow_names(s, {r.flow_id for r in in_flight}))
    return {"agents": _agents(s, now), "waiting": explained, "in_flight": [_run_dict(r, names) for r in in_flight], "now": now}


def runs_page(s: Session, state: str | None = None, agent: str | None = None, flow: str | None = None, offset: int = 0,
              limit: int = 50) -> dict[str, Any]:
    """Flow runs, newest first, filtered by state, agent id or flow (a version's id: its whole version group)."""
    q = select(FlowRun)
    agent_row = s.get(Agent, agent) if agent else None
    flow_row = s.get(Flow, flow) if flow else None
    if state:
        run_service.check_state(state)
        q = q.where(FlowRun.state == state)
    if agent:
        q = q.where(FlowRun.agent_id == agent)
    if flow:
        q = q.where(FlowRun.flow_group_id == (flow_row.flow_group_id if flow_row else flow))
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = s.scalars(q.order_by(FlowRun.scheduled_start_time.desc(), FlowRun.id).offset(offset).limit(limit)).all()
    names = _flow_names(s, {r.flow_id for r in rows})
    states = [st for st, in s.execute(select(FlowRun.state).distinct().order_by(FlowRun.state)).all()]
    return {"runs": [_run_dict(r, names) for r in rows], "total": total, "offset": offset, "limit": limit, "state": state or "",
            "agent": agent_row, "agent_id": agent or "", "flow": flow_row, "flow_id": flow or "", "states": states}


def projects_page(s: Session) -> dict[str, Any]:
    flows = dict(s.execute(select(FlowGroup.project_id, func.count()).group_by(FlowGroup.project_id)).all())
    runs = dict(s.execute(select(Flow.project_id, func.count()).join(FlowRun, FlowRun.flow_id == Flow.id).group_by(Flow.project_id)).all())
    projects = [{"id": p.id, "name": p.name, "description": p.description, "created": p.created,
                 "flows": flows.get(p.id, 0), "runs": runs.get(p.id, 0)} for p in s.scalars(select(Project).order_by(Project.name))]
    return {"projects": projects}


def kv_page(s: Session) -> dict[str, Any]:
    import json

    items = [{"key": kv.key, "value": json.dumps(kv.value, indent=None, sort_keys=True), "updated": kv.updated}
             for kv in s.scalars(select(KeyValue).order_by(KeyValue.key))]
    return {"entries": items}
