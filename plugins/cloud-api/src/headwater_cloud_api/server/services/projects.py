"""Projects: create, delete, look up by id or name."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater_cloud_api.server.db.models import Project
from headwater_cloud_api.server.errors import BadInput, NotFound

__all__ = ["create_project", "delete_project", "get_project"]


def get_project(session: Session, *, id: str | None = None, name: str | None = None) -> Project:
    """The project with this id or name; :class:`NotFound` (with the command to create it) otherwise."""
    if id is None and name is None:
        raise BadInput("A project is named by 'id' or 'name'; give one of them.")
    row = session.get(Project, id) if id is not None else session.scalar(select(Project).where(Project.name == name))
    if row is None:
        what = f"id {id!r}" if id is not None else f"name {name!r}"
        raise NotFound(
            f"Project with {what} does not exist. Create it with `headwater project create {name or '<name>'}`."
        )
    return row


def create_project(session: Session, name: str, description: str | None = None) -> Project:
    name = (name or "").strip()
    if not name:
        raise BadInput("A project needs a non-empty name.")
    if len(name) > 255:
        raise BadInput(f"Project name is {len(name)} characters long; the limit is 255.")
    if session.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise BadInput(f"Project {name!r} already exists; choose another name or use the existing project.", "CONFLICT")
    row = Project(name=name, description=description)
    session.add(row)
    session.flush()
    return row


def delete_project(session: Session, *, id: str | None = None, name: str | None = None) -> bool:
    """Delete the project and everything in it (flows, runs, logs)."""
    row = get_project(session, id=id, name=name)
    session.delete(row)
    return True
