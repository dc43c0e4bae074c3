"""SQLAlchemy 2 models of the orchestration API (the alembic migrations in ``migrations/`` mirror them).

Every id is a UUID string, every timestamp is timezone-aware UTC. Flow runs and task runs
keep their current state (with a ``version`` that increments on each write, for optimistic
concurrency) plus an append-only state history table. Fields used by agents (issue 6):
``flow_run.agent_id`` (who claimed it), ``heartbeat`` (lease), ``times_resurrected`` (reaper).
Run records (migration 0003): ``flow_run.parent_*`` (the task run that created a child flow run),
``flow_run.run_details`` (what the storage resolved: repository, ref, commit) and ``artifact``.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "Base",
    "Project",
    "FlowGroup",
    "Flow",
    "FlowRun",
    "FlowRunState",
    "TaskRun",
    "TaskRunState",
    "Log",
    "Agent",
    "ApiKey",
    "KeyValue",
    "Artifact",
    "new_id",
    "utcnow",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    """A new random id (UUID4 text)."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Project(Base):
    __tablename__ = "project"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FlowGroup(Base):
    """The version group of a flow: all versions of one flow name in one project."""

    __tablename__ = "flow_group"
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_flow_group_project_name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    schedule_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Flow(Base):
    """One registered version of a flow: its serialized metadata and the hash that identifies it."""

    __tablename__ = "flow"
    __table_args__ = (
        UniqueConstraint("flow_group_id", "version", name="uq_flow_group_version"),
        Index("ix_flow_group_hash", "flow_group_id", "metadata_hash"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    flow_group_id: Mapped[str] = mapped_column(ForeignKey("flow_group.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    metadata_hash: Mapped[str] = mapped_column(String(128))
    serialized: Mapped[dict[str, Any]] = mapped_column(JSONType, deferred=True)
    """Every task and edge (several MB for 10 000 tasks): deferred, read only where asked for (``services/flows.py:run_fields``)."""
    labels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FlowRun(Base):
    __tablename__ = "flow_run"
    __table_args__ = (
        UniqueConstraint("flow_id", "idempotency_key", name="uq_flow_run_idempotency"),
        Index("ix_flow_run_state_start", "state", "scheduled_start_time"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    flow_id: Mapped[str] = mapped_column(ForeignKey("flow.id", ondelete="CASCADE"), index=True)
    flow_group_id: Mapped[str] = mapped_column(ForeignKey("flow_group.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(255))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    labels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    run_config: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    auto_scheduled: Mapped[bool] = mapped_column(Boolean, default=False)
    scheduled_start_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(32), default="Scheduled")
    state_message: Mapped[str | None] = mapped_column(Text)
    state_timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    agent_id: Mapped[str | None] = mapped_column(String(36), index=True)
    heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime)
    times_resurrected: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The fencing token: +1 on every claim, reschedule and restart; writes from an older attempt are refused."""
    parent_flow_run_id: Mapped[str | None] = mapped_column(String(36), index=True)
    """The flow run whose task created this one (flow of flows); no foreign key: a child outlives its parent's deletion."""
    parent_task_slug: Mapped[str | None] = mapped_column(String(255))
    parent_map_index: Mapped[int | None] = mapped_column(Integer)
    """With ``parent_task_slug``: the parent's task run, named as task runs are ((flow run, slug, map index))."""
    run_details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    """What the flow-run process resolved when it loaded the flow (``Storage.run_details()``: repo, ref, commit ...)."""


class FlowRunState(Base):
    """Append-only history: one row per accepted state write (``version`` = the run's version after it)."""

    __tablename__ = "flow_run_state"
    __table_args__ = (UniqueConstraint("flow_run_id", "version", name="uq_flow_run_state_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flow_run_id: Mapped[str] = mapped_column(ForeignKey("flow_run.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    serialized: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    write_id: Mapped[str | None] = mapped_column(String(64), index=True)
    """The client's id for this write: a retried write with a known id is not applied twice."""


class TaskRun(Base):
    __tablename__ = "task_run"
    __table_args__ = (UniqueConstraint("flow_run_id", "task_slug", "map_index", name="uq_task_run_slug_index"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    flow_run_id: Mapped[str] = mapped_column(ForeignKey("flow_run.id", ondelete="CASCADE"), index=True)
    task_slug: Mapped[str] = mapped_column(String(255))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    state: Mapped[str] = mapped_column(String(32), default="Pending")
    state_message: Mapped[str | None] = mapped_column(Text)
    state_timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=0)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The flow-run attempt that last wrote it: a newer attempt may run a finished task run again."""


class TaskRunState(Base):
    __tablename__ = "task_run_state"
    __table_args__ = (UniqueConstraint("task_run_id", "version", name="uq_task_run_state_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_run_id: Mapped[str] = mapped_column(ForeignKey("task_run.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    serialized: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    write_id: Mapped[str | None] = mapped_column(String(64), index=True)
    """The client's id for this write: a retried write with a known id is not applied twice."""


class Log(Base):
    __tablename__ = "log"
    __table_args__ = (Index("ix_log_run_time", "flow_run_id", "timestamp"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flow_run_id: Mapped[str] = mapped_column(ForeignKey("flow_run.id", ondelete="CASCADE"))
    task_run_id: Mapped[str | None] = mapped_column(String(36))
    level: Mapped[str] = mapped_column(String(16), default="INFO")
    name: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Agent(Base):
    __tablename__ = "agent"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255))
    labels: Mapped[list[str]] = mapped_column(JSONType, default=list)
    accepts_unlabeled: Mapped[bool] = mapped_column(Boolean, default=True)
    type: Mapped[str | None] = mapped_column(String(64))
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    """An API key: only its sha256 is stored; ``prefix`` (first characters) identifies it in listings."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeyValue(Base):
    __tablename__ = "key_value"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Artifact(Base):
    """A task run's artifact (Prefect 1's task run artifacts): a link or a markdown document shown on its flow run.

    The task run is named by ``(flow_run_id, task_slug, map_index)``, so an artifact may be created
    before the task run's first state reaches the API.
    """

    __tablename__ = "artifact"
    __table_args__ = (Index("ix_artifact_run_created", "flow_run_id", "created"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    flow_run_id: Mapped[str] = mapped_column(ForeignKey("flow_run.id", ondelete="CASCADE"))
    task_slug: Mapped[str | None] = mapped_column(String(255))
    map_index: Mapped[int] = mapped_column(Integer, default=-1)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
