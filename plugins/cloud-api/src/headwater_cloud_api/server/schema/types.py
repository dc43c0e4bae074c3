"""GraphQL object types (strawberry), built from database rows; nested lists resolve lazily with their own query."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from headwater_cloud_api.server.db import models as m

__all__ = [
    "ProjectType", "FlowType", "RunConfigType", "StateType", "FlowRunType", "TaskRunType", "LogType",
    "AgentType", "KeyValueType", "WriteResultType", "FlowHashResult", "CreateFlowResult", "ApiKeyType", "ArtifactType",
]


def db(info: Info) -> Any:
    return info.context["db"]


@strawberry.type(name="State")
class StateType:
    """A state: its ``type`` (Scheduled, Running, Success...), message, timestamp and the run's version after it."""

    type: str
    message: str | None
    timestamp: datetime
    version: int
    serialized: JSON | None = None


@strawberry.type(name="Project")
class ProjectType:
    id: str
    name: str
    description: str | None
    created: datetime

    @classmethod
    def of(cls, row: m.Project) -> ProjectType:
        return cls(id=row.id, name=row.name, description=row.description, created=row.created)

    @strawberry.field
    def flows(self, info: Info, include_archived: bool = False) -> list[FlowType]:
        with db(info).read() as s:
            q = select(m.Flow).where(m.Flow.project_id == self.id)
            if not include_archived:
                q = q.where(m.Flow.archived.is_(False))
            return [FlowType.of(r) for r in s.scalars(q.order_by(m.Flow.name, m.Flow.version))]


@strawberry.type(name="RunConfig")
class RunConfigType:
    """The flow's run config: ``type`` tag (LocalRun, DockerRun...), ``labels`` and everything as ``data``."""

    type: str | None
    labels: list[str]
    data: JSON


@strawberry.type(name="Flow")
class FlowType:
    """A flow version. ``storage``, ``run_config``, ``schedule`` and ``parameters`` come from its run fields
    (``services/flows.py:run_fields``); only ``serialized`` and ``tasks`` read its whole stored metadata."""

    id: str
    name: str
    version: int
    archived: bool
    project_id: str
    flow_group_id: str
    metadata_hash: str
    labels: list[str]
    created: datetime

    @classmethod
    def of(cls, row: m.Flow) -> FlowType:
        return cls(
            id=row.id, name=row.name, version=row.version, archived=row.archived, project_id=row.project_id,
            flow_group_id=row.flow_group_id, metadata_hash=row.metadata_hash, labels=list(row.labels or []), created=row.created,
        )

    def _fields(self, info: Info) -> dict[str, Any]:
        from headwater_cloud_api.server.services.flows import run_fields

        with db(info).read() as s:
            return run_fields(s, self.id)

    def _metadata(self, info: Info) -> dict[str, Any]:
        with db(info).read() as s:
            serialized = s.scalar(select(m.Flow.serialized).where(m.Flow.id == self.id))
        if serialized is None:
            from headwater_cloud_api.server.errors import NotFound

            raise NotFound(f"Flow with id {self.id!r} was deleted while it was being read.")
        return serialized  # type: ignore[no-any-return]

    @strawberry.field(description="The flow's whole stored metadata (every task and edge: large for big flows).")
    def serialized(self, info: Info) -> JSON:
        return self._metadata(info)

    @strawberry.field
    def run_config(self, info: Info) -> RunConfigType | None:
        rc = self._fields(info)["run_config"]
        if not isinstance(rc, dict):
            return None
        return RunConfigType(type=rc.get("type"), labels=list(rc.get("labels") or []), data=rc)

    @strawberry.field
    def storage(self, info: Info) -> JSON | None:
        return self._fields(info)["storage"]

    @strawberry.field
    def schedule(self, info: Info) -> JSON | None:
        return self._fields(info)["schedule"]

    @strawberry.field
    def parameters(self, info: Info) -> JSON:
        return self._fields(info)["parameters"] or []

    @strawberry.field
    def tasks(self, info: Info) -> JSON:
        return self._metadata(info).get("tasks") or []

    @strawberry.field
    def project(self, info: Info) -> ProjectType:
        with db(info).read() as s:
            return ProjectType.of(s.get(m.Project, self.project_id))

    @strawberry.field
    def project_name(self, info: Info) -> str:
        with db(info).read() as s:
            return s.scalar(select(m.Project.name).where(m.Project.id == self.project_id))

    @strawberry.field
    def schedule_active(self, info: Info) -> bool:
        with db(info).read() as s:
            return bool(s.scalar(select(m.FlowGroup.schedule_active).where(m.FlowGroup.id == self.flow_group_id)))


@strawberry.type(name="FlowRun")
class FlowRunType:
    id: str
    flow_id: str
    name: str | None
    parameters: JSON
    context: JSON
    labels: list[str]
    run_config: JSON | None
    idempotency_key: str | None
    auto_scheduled: bool
    scheduled_start_time: datetime
    version: int
    start_time: datetime | None
    end_time: datetime | None
    agent_id: str | None
    heartbeat: datetime | None
    times_resurrected: int
    created: datetime
    state: StateType
    attempt: int = 0
    parent_flow_run_id: str | None = None
    parent_task_slug: str | None = None
    parent_map_index: int | None = None
    run_details: JSON | None = strawberry.field(
        default=None, description="What the flow-run process resolved loading the flow (GitHub/Git: repo, ref, commit).")

    @classmethod
    def of(cls, row: m.FlowRun) -> FlowRunType:
        return cls(
            id=row.id, flow_id=row.flow_id, name=row.name, parameters=row.parameters, context=row.context,
            labels=list(row.labels or []), run_config=row.run_config, idempotency_key=row.idempotency_key,
            auto_scheduled=row.auto_scheduled, scheduled_start_time=row.scheduled_start_time, version=row.version,
            start_time=row.start_time, end_time=row.end_time, agent_id=row.agent_id, heartbeat=row.heartbeat,
            times_resurrected=row.times_resurrected, created=row.created,
            state=StateType(type=row.state, message=row.state_message, timestamp=row.state_timestamp, version=row.version),
            attempt=row.attempt or 0, parent_flow_run_id=row.parent_flow_run_id, parent_task_slug=row.parent_task_slug,
            parent_map_index=row.parent_map_index, run_details=row.run_details,
        )

    @strawberry.field(description="The flow run whose task created this one (flow of flows), if it still exists.")
    def parent(self, info: Info) -> FlowRunType | None:
        if self.parent_flow_run_id is None:
            return None
        with db(info).read() as s:
            row = s.get(m.FlowRun, self.parent_flow_run_id)
            return None if row is None else FlowRunType.of(row)

    @strawberry.field(description="The id of the parent's task run that created this run (once that task run is in the API).")
    def parent_task_run_id(self, info: Info) -> str | None:
        from headwater_cloud_api.server.services.artifacts import parent_task_run_id

        if self.parent_flow_run_id is None:
            return None
        with db(info).read() as s:
            row = s.get(m.FlowRun, self.id)
            return None if row is None else parent_task_run_id(s, row)

    @strawberry.field(description="The flow runs this run's tasks created, oldest first.")
    def children(self, info: Info) -> list[FlowRunType]:
        from headwater_cloud_api.server.services.artifacts import child_flow_runs

        with db(info).read() as s:
            return [FlowRunType.of(r) for r in child_flow_runs(s, self.id)]

    @strawberry.field(description="The artifacts (links, markdown) its task runs created, oldest first.")
    def artifacts(self, info: Info, task_slug: str | None = None) -> list[ArtifactType]:
        from headwater_cloud_api.server.services.artifacts import list_artifacts

        with db(info).read() as s:
            return [ArtifactType.of(r) for r in list_artifacts(s, self.id, task_slug)]

    @strawberry.field
    def states(self, info: Info) -> list[StateType]:
        """The full state history, oldest first."""
        with db(info).read() as s:
            rows = s.scalars(select(m.FlowRunState).where(m.FlowRunState.flow_run_id == self.id).order_by(m.FlowRunState.version))
            return [StateType(type=r.state, message=r.message, timestamp=r.timestamp, version=r.version, serialized=r.serialized) for r in rows]

    @strawberry.field
    def flow(self, info: Info) -> FlowType:
        with db(info).read() as s:
            return FlowType.of(s.get(m.Flow, self.flow_id))

    @strawberry.field
    def task_runs(self, info: Info) -> list[TaskRunType]:
        with db(info).read() as s:
            rows = s.scalars(select(m.TaskRun).where(m.TaskRun.flow_run_id == self.id).order_by(m.TaskRun.created, m.TaskRun.task_slug, m.TaskRun.map_index))
            return [TaskRunType.of(r) for r in rows]

    @strawberry.field
    def logs(self, info: Info, limit: int = 1000, offset: int = 0) -> list[LogType]:
        with db(info).read() as s:
            rows = s.scalars(
                select(m.Log).where(m.Log.flow_run_id == self.id).order_by(m.Log.timestamp, m.Log.id).limit(min(limit, 10000)).offset(offset)
            )
            return [LogType.of(r) for r in rows]


@strawberry.type(name="TaskRun")
class TaskRunType:
    id: str
    flow_run_id: str
    task_slug: str
    map_index: int
    version: int
    start_time: datetime | None
    end_time: datetime | None
    created: datetime
    state: StateType

    @classmethod
    def of(cls, row: m.TaskRun) -> TaskRunType:
        return cls(
            id=row.id, flow_run_id=row.flow_run_id, task_slug=row.task_slug, map_index=row.map_index, version=row.version,
            start_time=row.start_time, end_time=row.end_time, created=row.created,
            state=StateType(type=row.state, message=row.state_message, timestamp=row.state_timestamp, version=row.version),
        )

    @strawberry.field
    def states(self, info: Info) -> list[StateType]:
        with db(info).read() as s:
            rows = s.scalars(select(m.TaskRunState).where(m.TaskRunState.task_run_id == self.id).order_by(m.TaskRunState.version))
            return [StateType(type=r.state, message=r.message, timestamp=r.timestamp, version=r.version, serialized=r.serialized) for r in rows]


@strawberry.type(name="Log")
class LogType:
    id: int
    flow_run_id: str
    task_run_id: str | None
    level: str
    name: str | None
    message: str
    timestamp: datetime

    @classmethod
    def of(cls, row: m.Log) -> LogType:
        return cls(id=row.id, flow_run_id=row.flow_run_id, task_run_id=row.task_run_id, level=row.level, name=row.name,
                   message=row.message, timestamp=row.timestamp)


@strawberry.type(name="Agent")
class AgentType:
    id: str
    name: str
    labels: list[str]
    accepts_unlabeled: bool
    type: str | None
    last_seen: datetime
    created: datetime

    @classmethod
    def of(cls, row: m.Agent) -> AgentType:
        return cls(id=row.id, name=row.name, labels=list(row.labels or []), accepts_unlabeled=row.accepts_unlabeled,
                   type=row.type, last_seen=row.last_seen, created=row.created)


@strawberry.type(name="KeyValue")
class KeyValueType:
    key: str
    value: JSON | None
    updated: datetime


@strawberry.type(name="WriteResult")
class WriteResultType:
    """One state write: ``status`` SUCCESS (``version`` is the new version) or STALE (not written; current version and state)."""

    id: str
    status: str
    version: int
    state: str


@strawberry.type
class FlowHashResult:
    """Registration's batch check: ``unchanged`` means the latest version has exactly this hash."""

    name: str
    unchanged: bool
    id: str | None
    version: int | None


@strawberry.type
class CreateFlowResult:
    id: str
    version: int
    created: bool
    """False when the metadata was unchanged and the existing version is returned."""


@strawberry.type(name="ApiKey")
class ApiKeyType:
    id: str
    name: str
    prefix: str
    created: datetime


@strawberry.type(name="Artifact")
class ArtifactType:
    """A task run artifact: ``kind`` ``link`` or ``markdown``; ``data`` is ``{"link": ...}`` or ``{"markdown": ...}``."""

    id: str
    flow_run_id: str
    task_slug: str | None
    map_index: int
    kind: str
    data: JSON
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, row: m.Artifact) -> ArtifactType:
        return cls(id=row.id, flow_run_id=row.flow_run_id, task_slug=row.task_slug, map_index=row.map_index, kind=row.kind,
                   data=row.data, created=row.created, updated=row.updated)

    @strawberry.field(description="The link or markdown text.")
    def text(self) -> str:
        return str(self.data.get(self.kind, ""))
