"""GraphQL queries: projects, flows, flow runs, task runs, logs, agents, key-value store — with filters, ordering and paging."""

from __future__ import annotations

from datetime import datetime

import strawberry
from sqlalchemy import select
from strawberry.scalars import JSON
from strawberry.types import Info

from headwater_cloud_api.server.db import models as m
from headwater_cloud_api.server.errors import BadInput
from headwater_cloud_api.server.schema.types import (
    AgentType,
    FlowHashResult,
    FlowRunType,
    FlowType,
    KeyValueType,
    LogType,
    ProjectType,
    TaskRunType,
    db,
)
from headwater_cloud_api.server.services import flows as flow_service
from headwater_cloud_api.server.services import kv as kv_service
from headwater_cloud_api.server.services import runs as run_service
from headwater_cloud_api.server.services.projects import get_project

__all__ = ["Query", "FlowHashInput", "LogPageType", "MAX_PAGE"]

MAX_PAGE = 1000
"""Most rows one list query returns (``limit`` is capped at this)."""


@strawberry.type(name="LogPage")
class LogPageType:
    """A page of logs: ``end_cursor`` continues after the last record (the ``after`` given when the page is empty)."""

    logs: list[LogType]
    start_cursor: str | None
    end_cursor: str | None
    has_more: bool


@strawberry.input
class FlowHashInput:
    name: str
    hash: str


def _order(model: type, order_by: str, allowed: tuple[str, ...]) -> object:
    """``"created"`` ascending, ``"-created"`` descending; only ``allowed`` columns."""
    field = order_by.lstrip("-")
    if field not in allowed:
        raise BadInput(f"Cannot order by {order_by!r}; use one of {', '.join(allowed)} (prefix '-' for descending).")
    column = getattr(model, field)
    return column.desc() if order_by.startswith("-") else column.asc()


def _page(limit: int, offset: int) -> tuple[int, int]:
    if limit < 0 or offset < 0:
        raise BadInput("'limit' and 'offset' must not be negative.")
    return min(limit, MAX_PAGE), offset


def _after(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise BadInput(f"'{name}' must include a time zone (e.g. 2024-01-01T00:00:00+00:00).")
    return value


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "headwater"

    @strawberry.field
    def project(self, info: Info, id: str | None = None, name: str | None = None) -> ProjectType:
        with db(info).read() as s:
            return ProjectType.of(get_project(s, id=id, name=name))

    @strawberry.field
    def projects(self, info: Info, limit: int = 100, offset: int = 0) -> list[ProjectType]:
        limit, offset = _page(limit, offset)
        with db(info).read() as s:
            return [ProjectType.of(r) for r in s.scalars(select(m.Project).order_by(m.Project.name).limit(limit).offset(offset))]

    @strawberry.field(description="A flow version by id, or by name + project (latest unarchived version, or `version`).")
    def flow(self, info: Info, id: str | None = None, name: str | None = None, project: str | None = None,
             version: int | None = None) -> FlowType:
        with db(info).read() as s:
            return FlowType.of(flow_service.get_flow(s, id=id, name=name, project=project, version=version))

    @strawberry.field
    def flows(self, info: Info, project: str | None = None, name: str | None = None, include_archived: bool = False,
              limit: int = 100, offset: int = 0, order_by: str = "name") -> list[FlowType]:
        limit, offset = _page(limit, offset)
        with db(info).read() as s:
            q = select(m.Flow)
            if project is not None:
                q = q.where(m.Flow.project_id == get_project(s, name=project).id)
            if name is not None:
                q = q.where(m.Flow.name == name)
            if not include_archived:
                q = q.where(m.Flow.archived.is_(False))
            q = q.order_by(_order(m.Flow, order_by, ("name", "version", "created")), m.Flow.version).limit(limit).offset(offset)
            return [FlowType.of(r) for r in s.scalars(q)]

    @strawberry.field(description="For each (name, hash): is the latest version of that flow in `project` unchanged? One query for a whole batch.")
    def flow_hashes(self, info: Info, project: str, flows: list[FlowHashInput]) -> list[FlowHashResult]:
        with db(info).read() as s:
            found = flow_service.known_flow_hashes(s, project, [(f.name, f.hash) for f in flows])
            return [
                FlowHashResult(name=f.name, unchanged=row is not None, id=row.id if row else None, version=row.version if row else None)
                for f, row in zip(flows, found, strict=True)
            ]

    @strawberry.field
    def flow_run(self, info: Info, id: str) -> FlowRunType:
        with db(info).read() as s:
            return FlowRunType.of(run_service.get_flow_run(s, id))

    @strawberry.field
    def flow_runs(self, info: Info, flow_id: str | None = None, flow_name: str | None = None, project: str | None = None,
                  states: list[str] | None = None, scheduled_before: datetime | None = None,
                  scheduled_after: datetime | None = None, limit: int = 100, offset: int = 0,
                  order_by: str = "-scheduled_start_time", parent_flow_run_id: str | None = None) -> list[FlowRunType]:
        limit, offset = _page(limit, offset)
        with db(info).read() as s:
            q = select(m.FlowRun)
            if flow_id is not None:
                q = q.where(m.FlowRun.flow_id == flow_id)
            if parent_flow_run_id is not None:  # flow of flows: the runs a flow run's tasks created
                q = q.where(m.FlowRun.parent_flow_run_id == parent_flow_run_id)
            if flow_name is not None or project is not None:
                q = q.join(m.Flow, m.Flow.id == m.FlowRun.flow_id)
                if flow_name is not None:
                    q = q.where(m.Flow.name == flow_name)
                if project is not None:
                    q = q.where(m.Flow.project_id == get_project(s, name=project).id)
            if states:
                for state in states:
                    run_service.check_state(state)
                q = q.where(m.FlowRun.state.in_(states))
            if _after(scheduled_before, "scheduled_before") is not None:
                q = q.where(m.FlowRun.scheduled_start_time <= scheduled_before)
            if _after(scheduled_after, "scheduled_after") is not None:
                q = q.where(m.FlowRun.scheduled_start_time > scheduled_after)
            order = _order(m.FlowRun, order_by, ("scheduled_start_time", "created", "state_timestamp", "start_time", "end_time", "name"))
            return [FlowRunType.of(r) for r in s.scalars(q.order_by(order, m.FlowRun.id).limit(limit).offset(offset))]

    @strawberry.field
    def task_runs(self, info: Info, flow_run_id: str, states: list[str] | None = None, limit: int = 1000,
                  offset: int = 0) -> list[TaskRunType]:
        limit, offset = _page(limit, offset)
        with db(info).read() as s:
            run_service.get_flow_run(s, flow_run_id)
            q = select(m.TaskRun).where(m.TaskRun.flow_run_id == flow_run_id)
            if states:
                q = q.where(m.TaskRun.state.in_(states))
            q = q.order_by(m.TaskRun.created, m.TaskRun.task_slug, m.TaskRun.map_index).limit(limit).offset(offset)
            return [TaskRunType.of(r) for r in s.scalars(q)]

    @strawberry.field(description="What a new attempt of a flow run starts from: each task run's slug, map index, state, "
                                  "message and its current state's serialized (one query a page, ordered by slug and index).")
    def resume_states(self, info: Info, flow_run_id: str, offset: int = 0, limit: int = 1000) -> JSON:
        limit, offset = _page(limit, offset)
        with db(info).read() as s:
            return run_service.resume_records(s, flow_run_id, offset, limit)

    @strawberry.field
    def logs(self, info: Info, flow_run_id: str, task_run_id: str | None = None, levels: list[str] | None = None,
             after: datetime | None = None, limit: int = 1000, offset: int = 0, order_by: str = "timestamp") -> list[LogType]:
        limit, offset = _page(limit, offset)
        with db(info).read() as s:
            run_service.get_flow_run(s, flow_run_id)
            q = select(m.Log).where(m.Log.flow_run_id == flow_run_id)
            if task_run_id is not None:
                q = q.where(m.Log.task_run_id == task_run_id)
            if levels:
                q = q.where(m.Log.level.in_([lv.upper() for lv in levels]))
            if _after(after, "after") is not None:
                q = q.where(m.Log.timestamp > after)
            q = q.order_by(_order(m.Log, order_by, ("timestamp", "level")), m.Log.id).limit(limit).offset(offset)
            return [LogType.of(r) for r in s.scalars(q)]

    @strawberry.field(description="The run's logs paged by cursor (oldest first): pass `end_cursor` as `after` for the next "
                                  "page or to follow new records, `start_cursor` as `before` to page backwards.")
    def log_page(self, info: Info, flow_run_id: str, after: str | None = None, before: str | None = None,
                 levels: list[str] | None = None, search: str | None = None, task_run_id: str | None = None,
                 limit: int = 200) -> LogPageType:
        from headwater_cloud_api.server.services.logs import read_logs

        with db(info).read() as s:
            run_service.get_flow_run(s, flow_run_id)
            page = read_logs(s, flow_run_id, after=after, before=before, levels=levels, search=search,
                             task_run_id=task_run_id, limit=limit)
            return LogPageType(logs=[LogType.of(r) for r in page.logs], start_cursor=page.start_cursor,
                               end_cursor=page.end_cursor, has_more=page.has_more)

    @strawberry.field(description="Scheduled runs due by `before` (default now) whose labels are a subset of `labels`.")
    def runs_in_queue(self, info: Info, labels: list[str], before: datetime | None = None, limit: int = 100,
                      accepts_unlabeled: bool = True) -> list[FlowRunType]:
        with db(info).read() as s:
            rows = run_service.runs_in_queue(s, labels, _after(before, "before"), limit, accepts_unlabeled)
            return [FlowRunType.of(r) for r in rows]

    @strawberry.field
    def agents(self, info: Info, limit: int = 100, offset: int = 0) -> list[AgentType]:
        limit, offset = _page(limit, offset)
        with db(info).read() as s:
            return [AgentType.of(r) for r in s.scalars(select(m.Agent).order_by(m.Agent.last_seen.desc()).limit(limit).offset(offset))]

    @strawberry.field
    def key_value(self, info: Info, key: str) -> KeyValueType:
        with db(info).read() as s:
            row = kv_service.get_key_value(s, key)
            return KeyValueType(key=row.key, value=row.value, updated=row.updated)

    @strawberry.field
    def keys(self, info: Info) -> list[str]:
        with db(info).read() as s:
            return kv_service.list_keys(s)
