"""The scheduler service: turns active schedules into upcoming flow runs (a bounded number per flow).

Idempotent: each auto-scheduled run has the idempotency key ``auto-scheduled:<ISO start time>``
under a unique ``(flow_id, idempotency_key)`` constraint and is inserted with ON CONFLICT DO
NOTHING, so a restart or several servers on one PostgreSQL database never duplicate a run.

Each pass also resumes paused task runs whose pause had a timeout (``raise PAUSE(start_time=...)``,
Prefect 1's ``Paused(start_time=...)`` / ``pause_task(duration=...)``) once that time has come:
:func:`resume_due_pauses` (the same ``resume_flow_run`` a person calls).
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from headwater_cloud_api.server.db.models import Flow, FlowGroup, FlowRun, FlowRunState, new_id, utcnow
from headwater_cloud_api.server.db.session import Database
from headwater_cloud_api.server.services.flows import run_fields, validate_run_fields

__all__ = ["schedule_flow_runs", "resume_due_pauses", "Scheduler", "MAX_SCHEDULED_RUNS"]

MAX_SCHEDULED_RUNS = 10
"""Upcoming auto-scheduled runs kept per flow."""

_log = logging.getLogger("headwater.server.scheduler")


def _insert(db: Database) -> Any:
    if db.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def schedule_flow_runs(db: Database, now: datetime | None = None, max_runs: int = MAX_SCHEDULED_RUNS) -> int:
    """Create the missing upcoming runs of every active schedule; returns how many were created."""
    now = now or utcnow()
    insert = _insert(db)
    with db.read() as s:
        rows = s.execute(
            select(Flow.id, Flow.flow_group_id, Flow.name, Flow.labels)
            .join(FlowGroup, FlowGroup.id == Flow.flow_group_id)
            .where(Flow.archived.is_(False), FlowGroup.schedule_active.is_(True))
        ).all()
    created = 0
    for flow_id, group_id, name, labels in rows:
        try:  # one malformed flow (metadata stored before registration validated it) must not stop the others
            with db.read() as s:  # its run fields (kept per flow id after the first pass), never its whole metadata
                fields = run_fields(s, flow_id)
            created += _schedule_flow(db, insert, now, max_runs, flow_id, group_id, name, fields, labels)
        except Exception as exc:
            key = (flow_id, f"{type(exc).__name__}: {exc}")
            if key not in _reported:  # logged once per flow and error, not on every pass
                _reported.add(key)
                _log.error("Scheduler: flow %r (%s) is skipped: its stored metadata cannot be scheduled (%s: %s). "
                           "Register it again (`headwater register`) to fix it; the other flows are scheduled.",
                           name, flow_id, type(exc).__name__, exc)
    return created


_reported: set[tuple[str, str]] = set()


def _schedule_flow(db: Database, insert: Any, now: datetime, max_runs: int, flow_id: str, group_id: str, name: str,
                   fields: dict[str, Any], labels: Any) -> int:
    """Create the missing upcoming runs of one flow (``fields``: its run fields); raises on malformed metadata (the caller isolates it)."""
    from headwater.plugins import from_dict

    created = 0
    schedule_data = fields.get("schedule")
    if not schedule_data:
        return 0
    validate_run_fields(name, fields)
    schedule = from_dict(schedule_data, "schedule")
    events = schedule.next(max_runs, after=now, return_events=True)
    with db.write() as s:
        upcoming = s.scalar(
            select(func.count()).select_from(FlowRun).where(
                FlowRun.flow_id == flow_id, FlowRun.auto_scheduled.is_(True), FlowRun.state == "Scheduled",
                FlowRun.scheduled_start_time > now,
            )
        ) or 0
        if upcoming >= max_runs:
            return 0
        defaults = {p["name"]: p.get("default") for p in fields.get("parameters") or [] if not p.get("required")}
        for event in events:
            run_id = new_id()
            start = event.start_time
            result = s.execute(
                insert(FlowRun).values(
                    id=run_id, flow_id=flow_id, flow_group_id=group_id, name=None,
                    parameters={**defaults, **dict(event.parameter_defaults)}, context={},
                    labels=sorted(set(event.labels if event.labels is not None else labels)),
                    run_config=fields.get("run_config"), idempotency_key=f"auto-scheduled:{start.isoformat()}",
                    auto_scheduled=True, scheduled_start_time=start, state="Scheduled", state_message="Scheduled by the scheduler",
                    state_timestamp=now, version=1, times_resurrected=0, created=now, updated=now,
                ).on_conflict_do_nothing(index_elements=["flow_id", "idempotency_key"]).returning(FlowRun.id)
            )
            if result.scalar() is not None:
                s.add(FlowRunState(flow_run_id=run_id, version=1, state="Scheduled", message="Scheduled by the scheduler", timestamp=now))
                created += 1
    return created


def resume_due_pauses(db: Database, now: datetime | None = None) -> list[tuple[str, int]]:
    """Resume the paused task runs of Paused flow runs whose pause timeout has passed: ``[(flow_run_id, task runs resumed)]``.

    The timeout is the ``start_time`` (seconds since the epoch) of the task run's Paused state,
    which the flow-run process sends as the state's ``serialized``; a pause without one waits for a person.
    A Paused flow run one of whose task runs was set to ``Resume`` directly (``set_task_run_states``,
    as Prefect 1's UI did) is scheduled again too (listed with 0 task runs resumed).
    """
    from headwater_cloud_api.server.db.models import TaskRun, TaskRunState
    from headwater_cloud_api.server.errors import APIError
    from headwater_cloud_api.server.services.runs import resume_flow_run

    now = now or utcnow()
    with db.read() as s:
        rows = s.execute(
            select(TaskRun.id, TaskRun.flow_run_id, TaskRunState.serialized)
            .join(FlowRun, FlowRun.id == TaskRun.flow_run_id)
            .join(TaskRunState, (TaskRunState.task_run_id == TaskRun.id) & (TaskRunState.version == TaskRun.version))
            .where(FlowRun.state == "Paused", TaskRun.state == "Paused")
            .limit(1000)
        ).all()
    due: dict[str, list[str]] = {}
    for task_run_id, flow_run_id, serialized in rows:
        start = (serialized or {}).get("start_time") if isinstance(serialized, dict) else None
        if isinstance(start, (int, float)) and start <= now.timestamp():
            due.setdefault(flow_run_id, []).append(task_run_id)
    resumed = []
    with db.read() as s:  # a task run set to Resume directly (set_task_run_states), its Paused flow run left as it was
        approved = s.scalars(
            select(TaskRun.flow_run_id).join(FlowRun, FlowRun.id == TaskRun.flow_run_id)
            .where(FlowRun.state == "Paused", TaskRun.state == "Resume").distinct().limit(1000)
        ).all()
    for flow_run_id in approved:
        if flow_run_id in due:
            continue
        from headwater_cloud_api.server.services.runs import StateWrite, get_flow_run, set_flow_run_states

        with db.write() as s:
            row = get_flow_run(s, flow_run_id)
            s.refresh(row)
            if row.state != "Paused":
                continue
            [result] = set_flow_run_states(s, [StateWrite(flow_run_id, "Scheduled", "A paused task run was set to Resume: "
                                                          "scheduled again.", version=row.version)])
        if result.status == "SUCCESS":
            resumed.append((flow_run_id, 0))
            _log.info("Scheduler: flow run %s scheduled again (a task run of it was set to Resume)", flow_run_id)
    for flow_run_id, ids in due.items():
        try:
            with db.write() as s:
                _, n = resume_flow_run(s, flow_run_id, ids, message="Resumed: the pause's timeout has passed.")
            resumed.append((flow_run_id, n))
            _log.info("Scheduler: resumed %d paused task run(s) of flow run %s (pause timeout passed)", n, flow_run_id)
        except APIError as exc:  # resumed or cancelled by someone else meanwhile: nothing to do
            _log.info("Scheduler: flow run %s not resumed: %s", flow_run_id, exc)
    return resumed


class Scheduler:
    """Runs :func:`schedule_flow_runs` every ``interval`` seconds in a daemon thread until :meth:`stop`."""

    def __init__(self, db: Database, interval: float = 10.0, max_runs: int = MAX_SCHEDULED_RUNS) -> None:
        self.db = db
        self.interval = interval
        self.max_runs = max_runs
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="headwater-scheduler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                schedule_flow_runs(self.db, max_runs=self.max_runs)
            except Exception:
                _log.exception("Scheduler pass failed; retrying in %s s", self.interval)
            try:
                resume_due_pauses(self.db)
            except Exception:
                _log.exception("Resuming timed-out pauses failed; retrying in %s s", self.interval)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
