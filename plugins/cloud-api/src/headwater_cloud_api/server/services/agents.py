"""Agents and the runs they own: atomic claims, heartbeats, deploy failures, cancellation, explain.

A claim is one conditional ``UPDATE flow_run SET state='Submitted', agent_id=... WHERE id=:id AND
state='Scheduled' AND version=:v`` per candidate, inside one write transaction; on PostgreSQL the
candidates are read ``FOR UPDATE SKIP LOCKED`` so concurrent agents (and server processes) take
disjoint rows instead of waiting. Two agents can never both move a run out of Scheduled.

Label semantics: a run goes to an agent when the run's labels are a subset of the agent's; an
unlabeled run only to an agent that accepts unlabeled runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
from sqlalchemy import and_, bindparam, delete, func, insert, not_, select, text, type_coerce, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from headwater.states import ACTIVE_STATE_NAMES, FINISHED_STATE_NAMES
from headwater_cloud_api.server.db.models import Agent, Flow, FlowRun, FlowRunState, Log, TaskRun, TaskRunState, utcnow
from headwater_cloud_api.server.errors import BadInput, NotFound

__all__ = [
    "DEFAULT_HEARTBEAT_LEASE",
    "DEFAULT_MAX_RESURRECTIONS",
    "ACTIVE_STATES",
    "RunStatus",
    "Explanation",
    "get_agent",
    "claim_flow_runs",
    "answer_claim",
    "agent_heartbeat",
    "unregister_agent",
    "flow_run_heartbeat",
    "end_flow_run",
    "explain_flow_run",
    "labels_match",
]

DEFAULT_HEARTBEAT_LEASE = 30.0
"""Seconds without a heartbeat after which the reaper treats a claimed run as lost."""
DEFAULT_MAX_RESURRECTIONS = 3
"""How many times the reaper reschedules a lost run before failing it."""
ACTIVE_STATES = tuple(sorted(ACTIVE_STATE_NAMES))
"""States of a claimed run whose process should be heartbeating."""
_FINISHED = tuple(sorted(FINISHED_STATE_NAMES | {"Finished"}))


@attrs.define
class RunStatus:
    """A claimed run's state as an agent or a runner sees it (``lease``: the server's heartbeat lease in seconds)."""

    id: str
    state: str
    version: int
    message: str | None = None
    lease: float = DEFAULT_HEARTBEAT_LEASE
    attempt: int = 0


@attrs.define
class Explanation:
    """Why a run is (not) picked up: the run's facts and, per agent, what it lacks."""

    flow_run_id: str
    state: str
    labels: list[str]
    scheduled_start_time: datetime
    due: bool
    agents: list[dict[str, Any]]
    reasons: list[str]


def labels_match(run_labels: Sequence[str], agent_labels: Sequence[str], accepts_unlabeled: bool) -> bool:
    """True if an agent with ``agent_labels`` may run a run labelled ``run_labels``."""
    if not run_labels:
        return accepts_unlabeled
    return set(run_labels) <= set(agent_labels)


def get_agent(session: Session, agent_id: str) -> Agent:
    row = session.get(Agent, agent_id)
    if row is None:
        raise NotFound(f"Agent {agent_id!r} is not registered (it unregistered or was never registered); restart the agent to register again.")
    return row


def _label_filter(dialect: str, labels: Sequence[str], accepts_unlabeled: bool) -> Any:
    """SQL: the run's labels are a subset of ``labels`` (and unlabeled runs only when accepted)."""
    have = sorted(set(labels))
    if dialect == "postgresql":
        labels_col = type_coerce(FlowRun.labels, JSONB)
        subset = labels_col.contained_by(bindparam("have_labels", value=have, type_=JSONB))
        empty = func.jsonb_array_length(labels_col) == 0
    else:
        subset = text(
            "NOT EXISTS (SELECT 1 FROM json_each(flow_run.labels) AS l WHERE l.value NOT IN :have_labels)"
        ).bindparams(bindparam("have_labels", value=have or [""], expanding=True))
        empty = func.json_array_length(FlowRun.labels) == 0
    return subset if accepts_unlabeled else and_(subset, not_(empty))


def _history(session: Session, run_id: str, version: int, state: str, message: str | None, now: datetime) -> None:
    session.execute(insert(FlowRunState).values(flow_run_id=run_id, version=version, state=state, message=message, timestamp=now))


def claim_flow_runs(session: Session, agent_id: str, limit: int, now: datetime | None = None) -> list[FlowRun]:
    """Claim up to ``limit`` due Scheduled runs for the agent: each moves to Submitted with ``agent_id`` set."""
    if limit < 0:
        raise BadInput("'limit' must not be negative.")
    now = now or utcnow()
    agent = get_agent(session, agent_id)
    agent.last_seen = now
    if limit == 0:
        return []
    dialect = session.get_bind().dialect.name
    q = (
        select(FlowRun.id, FlowRun.version)
        .where(FlowRun.state == "Scheduled", FlowRun.scheduled_start_time <= now,
               _label_filter(dialect, agent.labels or [], agent.accepts_unlabeled))
        .order_by(FlowRun.scheduled_start_time, FlowRun.id)
        .limit(min(limit, 1000))
    )
    if dialect == "postgresql":
        q = q.with_for_update(of=FlowRun, skip_locked=True)
    candidates = session.execute(q).all()
    message = f"Submitted for execution by agent {agent.name!r} ({agent.id})"
    claimed: list[str] = []
    for run_id, version in candidates:
        done = session.execute(
            update(FlowRun)
            .where(FlowRun.id == run_id, FlowRun.state == "Scheduled", FlowRun.version == version)
            .values(state="Submitted", state_message=message, state_timestamp=now, version=version + 1,
                    agent_id=agent_id, heartbeat=now, updated=now, attempt=FlowRun.attempt + 1)
        ).rowcount
        if done:
            _history(session, run_id, version + 1, "Submitted", message, now)
            claimed.append(run_id)
    if not claimed:
        return []
    rows = {r.id: r for r in session.scalars(select(FlowRun).where(FlowRun.id.in_(claimed)).execution_options(populate_existing=True))}
    return [rows[i] for i in claimed]


def answer_claim(session: Session, rows: Sequence[FlowRun], build: Any) -> list[Any]:
    """``build(row)`` for each claimed run, inside the claim's transaction; a run whose data cannot be sent as JSON is Failed.

    The claim commits only after every answer is known to render (an answer that failed after the
    commit would strand every run of the batch in Submitted). A run stored with NaN/Infinity
    (before the API refused them) is ended Failed with the reason instead of being handed out.
    """
    import json

    answers = []
    for row in rows:
        try:
            json.dumps([row.parameters, row.context, row.run_config, row.labels], allow_nan=False, default=str)
        except (TypeError, ValueError) as exc:
            end_flow_run(session, row.id, "Failed", f"Flow run {row.id} cannot be sent to an agent: its parameters, context "
                         f"or run config hold a value JSON cannot carry ({exc}); create the run again with finite values.",
                         log_level="ERROR")
            continue
        answers.append(build(row))
    return answers


def agent_heartbeat(session: Session, agent_id: str, flow_run_ids: Sequence[str] = (), lease: float = DEFAULT_HEARTBEAT_LEASE,
                    renew: Sequence[str] = ()) -> list[RunStatus]:
    """The agent is alive; returns the current state of each of ``flow_run_ids`` (unknown ids are left out).

    ``renew``: runs of this agent whose process it sees alive; their lease is renewed too (a
    flow-run process that is still starting up has not sent its own first heartbeat yet).
    """
    now = utcnow()
    if not session.execute(update(Agent).where(Agent.id == agent_id).values(last_seen=now)).rowcount:
        get_agent(session, agent_id)
    if renew:
        session.execute(update(FlowRun).where(FlowRun.id.in_(list(renew)), FlowRun.agent_id == agent_id,
                                              FlowRun.state.in_(ACTIVE_STATES)).values(heartbeat=now))
    if not flow_run_ids:
        return []
    rows = session.execute(
        select(FlowRun.id, FlowRun.state, FlowRun.version, FlowRun.state_message).where(FlowRun.id.in_(list(flow_run_ids)))
    ).all()
    return [RunStatus(r.id, r.state, r.version, r.state_message, lease) for r in rows]


def unregister_agent(session: Session, agent_id: str) -> bool:
    """Remove the agent (clean shutdown); its running flow runs keep heartbeating on their own."""
    return bool(session.execute(delete(Agent).where(Agent.id == agent_id)).rowcount)


def flow_run_heartbeat(session: Session, flow_run_id: str, lease: float = DEFAULT_HEARTBEAT_LEASE,
                       attempt: int | None = None) -> RunStatus:
    """The flow-run process is alive: renews the lease while the run is active; returns its state (Cancelling: stop).

    With ``attempt`` the lease is renewed only for that attempt: a superseded process (the returned
    ``attempt`` differs from its own) renews nothing and must stop.
    """
    now = utcnow()
    renew = update(FlowRun).where(FlowRun.id == flow_run_id, FlowRun.state.in_(ACTIVE_STATES))
    if attempt is not None:
        renew = renew.where(FlowRun.attempt == attempt)
    session.execute(renew.values(heartbeat=now))
    row = session.execute(select(FlowRun.id, FlowRun.state, FlowRun.version, FlowRun.state_message, FlowRun.attempt)
                          .where(FlowRun.id == flow_run_id)).first()
    if row is None:
        raise NotFound(f"Flow run {flow_run_id!r} does not exist (deleted?); the flow-run process should stop.")
    return RunStatus(row.id, row.state, row.version, row.state_message, lease, row.attempt)


def end_flow_run(session: Session, flow_run_id: str, state: str, message: str, task_state: str | None = None,
                 task_message: str | None = None, only_if: Sequence[str] | None = None, log_level: str = "INFO",
                 log_name: str = "headwater.agent", attempt: int | None = None) -> RunStatus:
    """Move an unfinished run to ``state`` (Failed, Cancelled, Scheduled...), its unfinished task runs to ``task_state``, and log why.

    A finished run is left alone (its status is returned). ``only_if`` restricts the states it may leave.
    ``attempt`` (fencing): the attempt the caller claimed; if the run has moved on to another attempt
    (rescheduled and claimed again) nothing is written and :class:`~.runs.Superseded` is raised, so a
    stale agent cannot end a run that another process now owns.
    """
    now = utcnow()
    row = session.execute(
        select(FlowRun.id, FlowRun.state, FlowRun.version, FlowRun.state_message, FlowRun.attempt).where(FlowRun.id == flow_run_id)
    ).first()
    if row is None:
        raise NotFound(f"Flow run {flow_run_id!r} does not exist.")
    if attempt is not None and attempt != row.attempt:
        from headwater_cloud_api.server.services.runs import Superseded

        raise Superseded(f"Flow run {flow_run_id} is at attempt {row.attempt}; this caller claimed attempt {attempt}, which was "
                         f"superseded (the run was rescheduled or restarted). The run was not ended {state}.")
    if row.state in _FINISHED or (only_if is not None and row.state not in only_if):
        return RunStatus(row.id, row.state, row.version, row.state_message)
    values: dict[str, Any] = {"state": state, "state_message": message, "state_timestamp": now, "version": row.version + 1, "updated": now}
    if state in _FINISHED:
        values["end_time"] = now
    if state == "Scheduled":
        values.update(agent_id=None, heartbeat=None, scheduled_start_time=now, times_resurrected=FlowRun.times_resurrected + 1,
                      attempt=FlowRun.attempt + 1)  # fences off the lost process: its writes are refused from now on
    done = session.execute(update(FlowRun).where(FlowRun.id == flow_run_id, FlowRun.version == row.version).values(**values)).rowcount
    if not done:  # pragma: no cover - a concurrent writer; the caller retries on its next pass
        return RunStatus(row.id, row.state, row.version, row.state_message)
    _history(session, flow_run_id, row.version + 1, state, message, now)
    if task_state is not None:
        tasks = session.execute(
            select(TaskRun.id, TaskRun.version).where(TaskRun.flow_run_id == flow_run_id, TaskRun.state.not_in(_FINISHED))
        ).all()
        for task_id, version in tasks:
            tvalues: dict[str, Any] = {"state": task_state, "state_message": task_message or message, "state_timestamp": now, "version": version + 1}
            if task_state in _FINISHED:
                tvalues["end_time"] = now
            if session.execute(update(TaskRun).where(TaskRun.id == task_id, TaskRun.version == version).values(**tvalues)).rowcount:
                session.execute(insert(TaskRunState).values(task_run_id=task_id, version=version + 1, state=task_state,
                                                            message=task_message or message, timestamp=now))
    session.execute(insert(Log).values(flow_run_id=flow_run_id, level=log_level, name=log_name, message=message, timestamp=now))
    return RunStatus(flow_run_id, state, row.version + 1, message)


def explain_flow_run(session: Session, flow_run_id: str, alive_within: float = 60.0, now: datetime | None = None) -> Explanation:
    """Why the run is or is not picked up: its state and start time, and which live agent lacks which labels."""
    now = now or utcnow()
    run = session.get(FlowRun, flow_run_id)
    if run is None:
        raise NotFound(f"Flow run {flow_run_id!r} does not exist. List runs with `headwater get flow-runs`.")
    labels = sorted(run.labels or [])
    due = run.scheduled_start_time <= now
    reasons: list[str] = []
    agents_info: list[dict[str, Any]] = []
    cutoff = now - timedelta(seconds=alive_within)
    alive = 0
    matching = 0
    for agent in session.scalars(select(Agent).order_by(Agent.name, Agent.id)):
        is_alive = agent.last_seen >= cutoff
        missing = sorted(set(labels) - set(agent.labels or []))
        unlabeled_refused = not labels and not agent.accepts_unlabeled
        ok = not missing and not unlabeled_refused
        alive += is_alive
        matching += is_alive and ok
        if ok:
            why = "can run it"
        elif unlabeled_refused:
            why = "does not accept unlabeled runs"
        else:
            why = f"lacks label(s) {', '.join(missing)}"
        agents_info.append({"id": agent.id, "name": agent.name, "labels": sorted(agent.labels or []), "alive": is_alive,
                            "last_seen": agent.last_seen.isoformat(), "can_run": ok, "why": why})
    flow_name = session.scalar(select(Flow.name).where(Flow.id == run.flow_id))
    if run.state != "Scheduled":
        reasons.append(f"Flow run {run.id} of {flow_name!r} is {run.state}, not Scheduled: it is not waiting for an agent"
                       + (f" (claimed by agent {run.agent_id})." if run.agent_id else "."))
    else:
        if not due:
            reasons.append(f"It is scheduled to start at {run.scheduled_start_time.isoformat()}; agents deploy it then, not before.")
        if alive == 0:
            reasons.append(f"No agent has been seen in the last {alive_within:.0f} s: start one with "
                           f"`headwater agent start{''.join(' --label ' + lb for lb in labels)}`.")
        elif matching == 0:
            need = f"labels {', '.join(labels)}" if labels else "to accept unlabeled runs"
            reasons.append(f"None of the {alive} live agent(s) can run it: a run needs an agent with {need} "
                           f"(start one with `headwater agent start{''.join(' --label ' + lb for lb in labels)}`).")
        elif due:
            reasons.append(f"{matching} live agent(s) can run it; it should be picked up at their next poll.")
    return Explanation(run.id, run.state, labels, run.scheduled_start_time, due, agents_info, reasons)
