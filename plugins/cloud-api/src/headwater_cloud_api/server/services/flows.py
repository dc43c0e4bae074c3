"""Flows: version groups, idempotent creation by metadata hash, archive, delete, schedule switch, move; run fields.

A flow version's stored metadata (``flow.serialized``) holds every task and edge: several MB for
10 000 tasks. Creating, claiming and running a flow run need only a few small fields of it
(:data:`RUN_FIELDS`), so :func:`run_fields` selects just those with the database's JSON operators
(SQLite ``json_extract``, PostgreSQL ``->``) and keeps them per flow id: a flow version's metadata
never changes, so nothing is ever invalidated. The ``serialized`` column is deferred on the model:
loading a ``Flow`` row does not read or decode it unless it is asked for.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from headwater_cloud_api.server.db.models import Flow, FlowGroup, FlowRun, Project
from headwater_cloud_api.server.errors import BadInput, NotFound
from headwater_cloud_api.server.services.projects import get_project

__all__ = [
    "metadata_hash",
    "validate_flow_metadata",
    "create_flow",
    "get_flow",
    "latest_flow",
    "known_flow_hashes",
    "archive_flow",
    "delete_flow",
    "set_schedule_active",
    "move_flow",
    "run_config_labels",
    "RUN_FIELDS",
    "MAX_CACHED_FLOWS",
    "run_fields",
    "validate_run_fields",
]

RUN_FIELDS = ("storage", "run_config", "parameters", "schedule", "environment")
"""The fields of a flow's metadata that runs need (creation, the scheduler, claims, the flow-run process)."""
MAX_CACHED_FLOWS = 4096
"""Flow versions whose run fields :func:`run_fields` keeps (least recently used dropped first; a few KB each)."""

_fields: OrderedDict[tuple[str, str], dict[str, str]] = OrderedDict()
"""(database URL, flow id) -> the run fields as JSON text (one process may serve several databases: tests, in-process servers)."""
_fields_lock = threading.Lock()


def metadata_hash(serialized: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of serialized flow metadata (the same as ``flow.serialized_hash()``)."""
    text = json.dumps(serialized, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def run_config_labels(serialized: dict[str, Any]) -> list[str]:
    run_config = serialized.get("run_config") or {}
    labels = run_config.get("labels") if isinstance(run_config, dict) else None
    return [str(label) for label in labels or []]


def validate_flow_metadata(serialized: Any) -> None:
    """:class:`BadInput` naming the field when ``serialized`` is not usable flow metadata (checked at registration,
    so the scheduler and run creation never meet a malformed flow)."""
    if not isinstance(serialized, dict) or not isinstance(serialized.get("name"), str) or not serialized["name"].strip():
        raise BadInput("'serialized' must be the flow's serialized metadata (a JSON object with a non-empty 'name'), as flow.serialize() returns.")
    if len(serialized["name"]) > 255:
        raise BadInput(f"serialized.name is {len(serialized['name'])} characters long; the limit is 255.")
    for key in ("tasks", "edges", "parameters"):
        if key in serialized and serialized[key] is not None and not isinstance(serialized[key], list):
            raise BadInput(f"serialized.{key} must be a list, got {type(serialized[key]).__name__}.")
    seen: set[str] = set()
    for i, param in enumerate(serialized.get("parameters") or []):
        if not isinstance(param, dict) or not isinstance(param.get("name"), str) or not param["name"]:
            raise BadInput(f"serialized.parameters[{i}] must be an object with a non-empty string 'name', got {param!r:.80}.")
        if param["name"] in seen:
            raise BadInput(f"serialized.parameters[{i}]: parameter {param['name']!r} is declared twice.")
        seen.add(param["name"])
        if "required" in param and not isinstance(param["required"], bool):
            raise BadInput(f"serialized.parameters[{i}].required must be true or false, got {param['required']!r:.40}.")
    for key in ("run_config", "storage", "schedule", "environment", "executor"):
        if serialized.get(key) is not None and not isinstance(serialized[key], dict):
            raise BadInput(f"serialized.{key} must be an object (or null), got {type(serialized[key]).__name__}.")
    run_config = serialized.get("run_config") or {}
    labels = run_config.get("labels")
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(label, str) for label in labels)):
        raise BadInput(f"serialized.run_config.labels must be a list of strings, got {labels!r:.80}.")


def run_fields(session: Session, flow_id: str) -> dict[str, Any]:
    """The :data:`RUN_FIELDS` of flow version ``flow_id``'s metadata (a missing field is None), without decoding the rest.

    Selected with the database's JSON operators on first use and kept as JSON text per database and
    flow id (every call returns fresh objects: callers may change them). :class:`NotFound` for an unknown id.
    """
    key = (str(session.get_bind().url), flow_id)
    with _fields_lock:
        texts = _fields.get(key)
        if texts is not None:
            _fields.move_to_end(key)
    if texts is None:
        row = session.execute(
            select(*(Flow.serialized[name] for name in RUN_FIELDS)).where(Flow.id == flow_id)
        ).first()
        if row is None:
            raise NotFound(f"Flow with id {flow_id!r} does not exist (it may have been deleted). List flows with `headwater get flows`.")
        texts = {name: json.dumps(value) for name, value in zip(RUN_FIELDS, row, strict=True)}
        with _fields_lock:
            _fields[key] = texts
            while len(_fields) > MAX_CACHED_FLOWS:
                _fields.popitem(last=False)
    return {name: json.loads(text) for name, text in texts.items()}


def validate_run_fields(name: str, fields: dict[str, Any]) -> None:
    """:func:`validate_flow_metadata` of the run fields (metadata stored before registration validated it may be malformed)."""
    validate_flow_metadata({"name": name, **fields})


def latest_flow(session: Session, name: str, project: str, *, include_archived: bool = False) -> Flow:
    """The newest version of flow ``name`` in project ``project`` (by name); :class:`NotFound` otherwise."""
    project_row = get_project(session, name=project)
    query = select(Flow).where(Flow.project_id == project_row.id, Flow.name == name)
    if not include_archived:
        query = query.where(Flow.archived.is_(False))
    row = session.scalar(query.order_by(Flow.version.desc()).limit(1))
    if row is None:
        raise NotFound(
            f"Project {project!r} has no {'' if include_archived else 'unarchived '}flow named {name!r}. "
            f"Register it with `headwater register --project {project} --path FILE`."
        )
    return row


def get_flow(
    session: Session, *, id: str | None = None, name: str | None = None, project: str | None = None,
    version: int | None = None,
) -> Flow:
    """A flow version by id, or by name + project (latest unarchived version, or ``version``)."""
    if id is not None:
        row = session.get(Flow, id)
        if row is None:
            raise NotFound(f"Flow with id {id!r} does not exist (it may have been deleted). List flows with `headwater get flows`.")
        return row
    if name is None or project is None:
        raise BadInput("A flow is named by 'id', or by 'name' and 'project'.")
    if version is None:
        return latest_flow(session, name, project)
    project_row = get_project(session, name=project)
    row = session.scalar(
        select(Flow).where(Flow.project_id == project_row.id, Flow.name == name, Flow.version == version)
    )
    if row is None:
        raise NotFound(f"Flow {name!r} in project {project!r} has no version {version}.")
    return row


def _group(session: Session, project_id: str, name: str, schedule_active: bool | None) -> FlowGroup:
    group = session.scalar(
        select(FlowGroup).where(FlowGroup.project_id == project_id, FlowGroup.name == name).with_for_update()
    )
    if group is None:
        group = FlowGroup(project_id=project_id, name=name, schedule_active=True if schedule_active is None else schedule_active)
        session.add(group)
        session.flush()
    elif schedule_active is not None:
        group.schedule_active = schedule_active
    return group


def create_flow(
    session: Session,
    *,
    serialized: Any,
    project_id: str | None = None,
    project_name: str | None = None,
    hash: str | None = None,
    labels: Sequence[str] = (),
    schedule_active: bool | None = None,
    force: bool = False,
) -> tuple[Flow, bool]:
    """Register a flow version: ``(flow, created)``; unchanged metadata (same hash as the latest version) returns the existing flow.

    A new version archives the older versions and drops their not-yet-started auto-scheduled runs
    (the scheduler creates them again for the new version).
    """
    validate_flow_metadata(serialized)
    name = serialized["name"]
    project = get_project(session, id=project_id, name=project_name)
    digest = hash or metadata_hash(serialized)
    group = _group(session, project.id, name, schedule_active)
    latest = session.scalar(select(Flow).where(Flow.flow_group_id == group.id).order_by(Flow.version.desc()).limit(1))
    if latest is not None and not force and not latest.archived and latest.metadata_hash == digest:
        return latest, False
    version = (latest.version + 1) if latest is not None else 1
    older = select(Flow.id).where(Flow.flow_group_id == group.id).scalar_subquery()
    session.execute(
        delete(FlowRun).where(FlowRun.flow_id.in_(older), FlowRun.auto_scheduled.is_(True), FlowRun.state == "Scheduled")
    )
    session.execute(update(Flow).where(Flow.flow_group_id == group.id).values(archived=True))
    all_labels = sorted(set(run_config_labels(serialized)) | {str(label) for label in labels})
    row = Flow(
        flow_group_id=group.id, project_id=project.id, name=name, version=version, archived=False,
        metadata_hash=digest, serialized=serialized, labels=all_labels,
    )
    session.add(row)
    session.flush()
    return row, True


def known_flow_hashes(session: Session, project_name: str, items: Sequence[tuple[str, str]]) -> list[Flow | None]:
    """For each ``(name, hash)``: the latest unarchived version if its hash matches (unchanged), else None. One query."""
    project = get_project(session, name=project_name)
    names = sorted({name for name, _ in items})
    latest_version = (
        select(Flow.flow_group_id, func.max(Flow.version).label("v"))
        .where(Flow.project_id == project.id, Flow.name.in_(names))
        .group_by(Flow.flow_group_id)
        .subquery()
    )
    rows = session.scalars(
        select(Flow).join(latest_version, (Flow.flow_group_id == latest_version.c.flow_group_id) & (Flow.version == latest_version.c.v))
    ).all()
    by_name = {row.name: row for row in rows if not row.archived}
    out: list[Flow | None] = []
    for name, digest in items:
        row = by_name.get(name)
        out.append(row if row is not None and row.metadata_hash == digest else None)
    return out


def archive_flow(session: Session, flow: Flow) -> Flow:
    """Archive this version: no new runs, its scheduled auto runs are removed."""
    flow.archived = True
    session.execute(
        delete(FlowRun).where(FlowRun.flow_id == flow.id, FlowRun.auto_scheduled.is_(True), FlowRun.state == "Scheduled")
    )
    return flow


def delete_flow(session: Session, flow: Flow, all_versions: bool = True) -> bool:
    """Delete the flow (with ``all_versions``: its whole version group) and its runs."""
    if all_versions:
        session.execute(delete(FlowGroup).where(FlowGroup.id == flow.flow_group_id))
    else:
        session.execute(delete(Flow).where(Flow.id == flow.id))
    return True


def set_schedule_active(session: Session, flow: Flow, active: bool) -> bool:
    """Turn the schedule of the flow's version group on or off (off also drops its not-yet-started auto runs)."""
    session.execute(update(FlowGroup).where(FlowGroup.id == flow.flow_group_id).values(schedule_active=active))
    if not active:
        session.execute(
            delete(FlowRun).where(
                FlowRun.flow_group_id == flow.flow_group_id, FlowRun.auto_scheduled.is_(True), FlowRun.state == "Scheduled"
            )
        )
    return active


def move_flow(session: Session, flow: Flow, project_name: str) -> Project:
    """Move the flow's version group (all versions) to another project."""
    target = get_project(session, name=project_name)
    clash = session.scalar(
        select(FlowGroup.id).where(FlowGroup.project_id == target.id, FlowGroup.name == flow.name)
    )
    if clash is not None and clash != flow.flow_group_id:
        raise BadInput(f"Project {project_name!r} already has a flow named {flow.name!r}; delete or rename one of them first.")
    session.execute(update(FlowGroup).where(FlowGroup.id == flow.flow_group_id).values(project_id=target.id))
    session.execute(update(Flow).where(Flow.flow_group_id == flow.flow_group_id).values(project_id=target.id))
    return target
