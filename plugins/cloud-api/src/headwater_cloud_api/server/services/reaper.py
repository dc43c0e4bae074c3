"""The reaper: finds claimed flow runs whose heartbeat lease expired and reschedules or fails them.

A run is lost when it is Submitted, Running or Cancelling and its ``heartbeat`` is older than the
lease (the flow-run process or the whole machine died, e.g. SIGKILL). A lost run is rescheduled
(back to Scheduled, ``times_resurrected`` + 1, its unfinished task runs back to Pending) up to
``max_resurrections`` times, then Failed with a message naming the run and why; a lost
Cancelling run becomes Cancelled. The reaper waits one lease after it starts before reaping
(while the server was down, runners could not heartbeat). Several servers may reap at once:
rows are read ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and every write is version-checked.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import select

from headwater_cloud_api.server.db.models import Flow, FlowRun, utcnow
from headwater_cloud_api.server.db.session import Database
from headwater_cloud_api.server.services.agents import (
    ACTIVE_STATES,
    DEFAULT_HEARTBEAT_LEASE,
    DEFAULT_MAX_RESURRECTIONS,
    end_flow_run,
)

__all__ = ["reap_lost_runs", "Reaper"]

_log = logging.getLogger("headwater.server.reaper")


def reap_lost_runs(db: Database, lease: float = DEFAULT_HEARTBEAT_LEASE, max_resurrections: int = DEFAULT_MAX_RESURRECTIONS,
                   now: datetime | None = None) -> list[tuple[str, str]]:
    """One pass: ``[(flow_run_id, new state)]`` for every lost run handled."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=lease)
    handled: list[tuple[str, str]] = []
    with db.write() as s:
        q = (
            select(FlowRun.id, FlowRun.state, FlowRun.times_resurrected, FlowRun.heartbeat, FlowRun.agent_id, Flow.name)
            .join(Flow, Flow.id == FlowRun.flow_id)
            .where(FlowRun.state.in_(ACTIVE_STATES), FlowRun.heartbeat.is_not(None), FlowRun.heartbeat < cutoff)
            .order_by(FlowRun.heartbeat)
            .limit(500)
        )
        if db.dialect == "postgresql":
            q = q.with_for_update(of=FlowRun, skip_locked=True)
        for run_id, state, resurrected, heartbeat, agent_id, flow_name in s.execute(q).all():
            silent = (now - heartbeat).total_seconds()
            what = (f"Flow run {run_id} of flow {flow_name!r} (agent {agent_id}) lost: no heartbeat for {silent:.0f} s "
                    f"(lease {lease:g} s) while {state}; its flow-run process or machine is gone")
            if state == "Cancelling":
                status = end_flow_run(s, run_id, "Cancelled", f"{what}. It was being cancelled: marked Cancelled.",
                                      task_state="Cancelled", log_level="WARNING", log_name="headwater.reaper")
            elif resurrected < max_resurrections:
                status = end_flow_run(
                    s, run_id, "Scheduled",
                    f"{what}. Rescheduled (resurrection {resurrected + 1} of {max_resurrections}).",
                    task_state="Pending", task_message="The flow run was lost and rescheduled; this task run starts again.",
                    log_level="WARNING", log_name="headwater.reaper",
                )
            else:
                status = end_flow_run(
                    s, run_id, "Failed",
                    f"{what}. Already rescheduled {resurrected} time(s), the limit (max_resurrections={max_resurrections}): "
                    "marked Failed. Check the agent's log and the machine it ran on.",
                    task_state="Failed", task_message=f"Flow run {run_id} was lost (no heartbeat).",
                    log_level="ERROR", log_name="headwater.reaper",
                )
            handled.append((run_id, status.state))
            _log.warning("Reaper: flow run %s -> %s", run_id, status.state)
    return handled


class Reaper:
    """Runs :func:`reap_lost_runs` every ``interval`` seconds in a daemon thread, after one ``lease`` of grace."""

    def __init__(self, db: Database, lease: float = DEFAULT_HEARTBEAT_LEASE, max_resurrections: int = DEFAULT_MAX_RESURRECTIONS,
                 interval: float | None = None) -> None:
        self.db = db
        self.lease = lease
        self.max_resurrections = max_resurrections
        self.interval = interval if interval is not None else max(0.2, min(lease / 3, 10.0))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="headwater-reaper", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval):
            if time.monotonic() - started < self.lease:
                continue  # runners could not heartbeat while this server was down: give them one lease
            try:
                reap_lost_runs(self.db, self.lease, self.max_resurrections)
            except Exception:
                _log.exception("Reaper pass failed; retrying in %s s", self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
