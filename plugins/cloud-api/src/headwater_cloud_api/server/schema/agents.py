"""GraphQL fields for agents and flow-run processes (merged into ``Query`` / ``Mutation`` in ``schema/__init__.py``).

Mutations: ``claim_flow_runs`` (atomic), ``agent_heartbeat``, ``unregister_agent``,
``flow_run_heartbeat`` (returns the state: Cancelling means stop), ``end_flow_run`` (deploy
failures, forced cancellation). Query: ``explain_flow_run``. The heartbeat lease comes from the
server's settings (``create_app(heartbeat_lease=...)``), so runners heartbeat at a third of it.
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from headwater.states import ENDED_FROM_OUTSIDE_STATE_NAMES
from headwater_cloud_api.server.errors import BadInput
from headwater_cloud_api.server.schema.types import FlowRunType, db
from headwater_cloud_api.server.services import agents as agent_service
from headwater_cloud_api.server.services.runs import check_state

__all__ = ["AgentQuery", "AgentMutation", "RunStatusType", "ExplanationType"]

_END_STATES = tuple(sorted(ENDED_FROM_OUTSIDE_STATE_NAMES))


def _lease(info: Info) -> float:
    return float(getattr(db(info), "heartbeat_lease", agent_service.DEFAULT_HEARTBEAT_LEASE))


@strawberry.type(name="RunStatus")
class RunStatusType:
    """A run's current state for its agent or runner; ``lease`` is the server's heartbeat lease (seconds)."""

    id: str
    state: str
    version: int
    message: str | None
    lease: float
    attempt: int = 0

    @classmethod
    def of(cls, s: agent_service.RunStatus) -> RunStatusType:
        return cls(id=s.id, state=s.state, version=s.version, message=s.message, lease=s.lease, attempt=s.attempt)


@strawberry.type(name="Explanation")
class ExplanationType:
    flow_run_id: str
    state: str
    labels: list[str]
    scheduled_start_time: datetime
    due: bool
    agents: JSON
    reasons: list[str]


@strawberry.type
class AgentQuery:
    @strawberry.field(description="Why a run is (not) picked up: which agents are alive and which labels each lacks.")
    def explain_flow_run(self, info: Info, id: str, alive_within: float = 60.0) -> ExplanationType:
        with db(info).read() as s:
            e = agent_service.explain_flow_run(s, id, alive_within)
            return ExplanationType(flow_run_id=e.flow_run_id, state=e.state, labels=e.labels,
                                   scheduled_start_time=e.scheduled_start_time, due=e.due, agents=e.agents, reasons=e.reasons)


@strawberry.type
class AgentMutation:
    @strawberry.mutation(description="Atomically claim up to `limit` due Scheduled runs for this agent (they become Submitted).")
    def claim_flow_runs(self, info: Info, agent_id: str, limit: int = 1) -> list[FlowRunType]:
        with db(info).write() as s:  # claim and answer are one unit: a run that cannot be answered is not claimed
            return agent_service.answer_claim(s, agent_service.claim_flow_runs(s, agent_id, limit), FlowRunType.of)

    @strawberry.mutation(description="The agent is alive; returns the states of the runs it is watching.")
    def agent_heartbeat(self, info: Info, agent_id: str, flow_run_ids: list[str] | None = None,
                        renew: list[str] | None = None) -> list[RunStatusType]:
        with db(info).write() as s:
            rows = agent_service.agent_heartbeat(s, agent_id, flow_run_ids or [], _lease(info), renew or [])
            return [RunStatusType.of(r) for r in rows]

    @strawberry.mutation(description="Remove an agent (clean shutdown).")
    def unregister_agent(self, info: Info, agent_id: str) -> bool:
        with db(info).write() as s:
            return agent_service.unregister_agent(s, agent_id)

    @strawberry.mutation(description="The flow-run process is alive: renews its lease and returns the run's state (Cancelling: stop).")
    def flow_run_heartbeat(self, info: Info, flow_run_id: str, attempt: int | None = None) -> RunStatusType:
        with db(info).write() as s:
            return RunStatusType.of(agent_service.flow_run_heartbeat(s, flow_run_id, _lease(info), attempt))

    @strawberry.mutation(description="End an unfinished run as Failed or Cancelled (with its unfinished task runs) and log why; "
                                     "with `attempt` (the attempt the caller claimed), a run that has moved on is refused as SUPERSEDED.")
    def end_flow_run(self, info: Info, flow_run_id: str, state: str, message: str, task_state: str | None = None,
                     attempt: int | None = None) -> RunStatusType:
        if state not in _END_STATES:
            raise BadInput(f"end_flow_run ends a run as one of {', '.join(_END_STATES)}, not {state!r}.")
        if task_state is not None:
            check_state(task_state)
        with db(info).write() as s:
            level = "ERROR" if state == "Failed" else "INFO"
            return RunStatusType.of(agent_service.end_flow_run(s, flow_run_id, state, message, task_state, log_level=level,
                                                               attempt=attempt))
