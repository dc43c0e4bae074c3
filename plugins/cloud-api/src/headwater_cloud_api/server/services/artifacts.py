"""Run records beyond states and logs: task run artifacts (links, markdown), a flow run's run details, its children.

Artifacts are Prefect 1's task run artifacts: ``create_link_artifact`` / ``create_markdown_artifact``
in a task make one, tied to the task run by ``(flow_run_id, task_slug, map_index)`` (so it may be
created before the task run's first state reaches the API), and listed on the flow run.
Run details are what the flow-run process resolved when it loaded the flow from storage (for
GitHub/Git storage the repository, ref and commit SHA): one small mapping of strings per run.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from headwater_cloud_api.server.db.models import Artifact, FlowRun, TaskRun, new_id, utcnow
from headwater_cloud_api.server.errors import BadInput, NotFound

__all__ = [
    "ARTIFACT_KINDS",
    "MAX_ARTIFACT_BYTES",
    "MAX_RUN_DETAILS_BYTES",
    "create_artifact",
    "update_artifact",
    "delete_artifact",
    "list_artifacts",
    "set_run_details",
    "child_flow_runs",
    "parent_task_run_id",
]

ARTIFACT_KINDS: dict[str, str] = {"link": "link", "markdown": "markdown"}
"""Artifact kind -> the key its text is stored under in ``data`` (Prefect 1: ``{"link": ...}``, ``{"markdown": ...}``)."""
MAX_ARTIFACT_BYTES = 256 * 1024
"""Largest artifact (its data as JSON)."""
MAX_RUN_DETAILS_BYTES = 16 * 1024
"""Largest run-details mapping (as JSON)."""


def _run(session: Session, flow_run_id: str) -> FlowRun:
    row = session.get(FlowRun, flow_run_id)
    if row is None:
        raise NotFound(f"Flow run with id {flow_run_id!r} does not exist. List runs with `headwater get flow-runs`.")
    return row


def _data(kind: str, text: Any) -> dict[str, Any]:
    key = ARTIFACT_KINDS.get(kind)
    if key is None:
        raise BadInput(f"Unknown artifact kind {kind!r}; kinds are: {', '.join(sorted(ARTIFACT_KINDS))}.")
    if not isinstance(text, str):
        raise BadInput(f"A {kind} artifact's {key} must be a string, got {type(text).__name__}.")
    data = {key: text.replace("\x00", "\ufffd")}
    size = len(json.dumps(data).encode())
    if size > MAX_ARTIFACT_BYTES:
        raise BadInput(f"The {kind} artifact is {size} bytes; artifacts hold up to {MAX_ARTIFACT_BYTES} bytes. "
                       "Keep large documents elsewhere and link to them (create_link_artifact).")
    return data


def _fence(row: FlowRun, attempt: int | None, what: str) -> None:
    """Refuse a write from a superseded attempt of the run (``attempt`` None: an outside writer, not fenced)."""
    from headwater_cloud_api.server.services.runs import Superseded

    if attempt is not None and attempt != (row.attempt or 0):
        raise Superseded(f"Flow run {row.id} is at attempt {row.attempt}; {what} comes from attempt {attempt}, "
                         "which was superseded. Nothing was written.")


def create_artifact(session: Session, flow_run_id: str, kind: str, text: str, task_slug: str | None = None,
                    map_index: int | None = None, attempt: int | None = None) -> Artifact:
    """A new artifact of ``kind`` (``link`` or ``markdown``) on the task run ``task_slug[map_index]`` of ``flow_run_id``.

    With ``attempt`` (what a flow-run process sends), a superseded attempt's artifact is refused.
    """
    _fence(_run(session, flow_run_id), attempt, "this artifact")
    now = utcnow()
    row = Artifact(id=new_id(), flow_run_id=flow_run_id, task_slug=task_slug,
                   map_index=-1 if map_index is None else map_index, kind=kind, data=_data(kind, text),
                   created=now, updated=now)
    session.add(row)
    session.flush()
    return row


def _artifact(session: Session, artifact_id: str) -> Artifact:
    row = session.get(Artifact, artifact_id)
    if row is None:
        raise NotFound(f"Artifact with id {artifact_id!r} does not exist (it was deleted, or the id is not an artifact's).")
    return row


def update_artifact(session: Session, artifact_id: str, text: str, attempt: int | None = None) -> Artifact:
    """Replace the link or markdown of an existing artifact (its kind stays); fenced by ``attempt`` like creation."""
    row = _artifact(session, artifact_id)
    _fence(_run(session, row.flow_run_id), attempt, "this artifact update")
    data = _data(row.kind, text)
    now = utcnow()
    session.execute(update(Artifact).where(Artifact.id == artifact_id).values(data=data, updated=now))
    row.data, row.updated = data, now
    return row


def delete_artifact(session: Session, artifact_id: str, attempt: int | None = None) -> bool:
    row = _artifact(session, artifact_id)
    _fence(_run(session, row.flow_run_id), attempt, "this artifact deletion")
    session.execute(delete(Artifact).where(Artifact.id == artifact_id))
    return True


def list_artifacts(session: Session, flow_run_id: str, task_slug: str | None = None) -> list[Artifact]:
    """A flow run's artifacts, oldest first (only one task's with ``task_slug``)."""
    q = select(Artifact).where(Artifact.flow_run_id == flow_run_id)
    if task_slug is not None:
        q = q.where(Artifact.task_slug == task_slug)
    return list(session.scalars(q.order_by(Artifact.created, Artifact.id)))


def set_run_details(session: Session, flow_run_id: str, details: Any, attempt: int | None = None) -> dict[str, str]:
    """Record what the flow-run process resolved (``{"repo": ..., "ref": ..., "commit": ...}``); replaces earlier details.

    With ``attempt``, a write from a superseded attempt of the run is refused, as for state writes.
    """
    if not isinstance(details, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in details.items()):
        raise BadInput("Run details are a JSON object of string keys to string values, e.g. {\"commit\": \"<sha>\"}.")
    size = len(json.dumps(details).encode())
    if size > MAX_RUN_DETAILS_BYTES:
        raise BadInput(f"Run details are {size} bytes as JSON; the limit is {MAX_RUN_DETAILS_BYTES}.")
    _fence(_run(session, flow_run_id), attempt, "these run details")
    clean = {k.replace("\x00", ""): v.replace("\x00", "\ufffd") for k, v in details.items()}
    session.execute(update(FlowRun).where(FlowRun.id == flow_run_id).values(run_details=clean))
    return clean


def child_flow_runs(session: Session, flow_run_id: str) -> list[FlowRun]:
    """The flow runs created by tasks of ``flow_run_id``, oldest first."""
    q = select(FlowRun).where(FlowRun.parent_flow_run_id == flow_run_id)
    return list(session.scalars(q.order_by(FlowRun.created, FlowRun.id)))


def parent_task_run_id(session: Session, run: FlowRun) -> str | None:
    """The id of the task run that created ``run`` (None: no parent task, or its first state has not arrived yet)."""
    if run.parent_flow_run_id is None or run.parent_task_slug is None:
        return None
    index = -1 if run.parent_map_index is None else run.parent_map_index
    return session.scalar(select(TaskRun.id).where(TaskRun.flow_run_id == run.parent_flow_run_id,
                                                   TaskRun.task_slug == run.parent_task_slug, TaskRun.map_index == index))
