"""Prefect 1's ``prefect.backend.artifacts``: links and markdown documents a task run publishes on its flow run.

Called inside a task of a flow run executed by the API (``running_with_backend`` in the context),
each function sends one request through ``headwater.Client()``; the artifact belongs to the
current task run (flow run id, task slug, map index from ``headwater.context``) and is listed on
the flow run (GraphQL ``flow_run { artifacts }``, ``headwater flow-run show``, the UI's run page).
Outside such a run (``flow.run()`` on a laptop) they do nothing and return None, as in Prefect 1.
"""

from __future__ import annotations

import logging
from typing import Any

from headwater.backend._api import api_client, current_task_run
from headwater.utilities.context import context

__all__ = [
    "create_link_artifact",
    "update_link_artifact",
    "create_markdown_artifact",
    "update_markdown_artifact",
    "delete_artifact",
]

_log = logging.getLogger("headwater.artifacts")


def _flow_run(client: Any = None) -> Any:
    return api_client("Artifacts (headwater.backend.artifacts)", client).flow_run(id=str(context.get("flow_run_id")))


def _create(kind: str, text: str, client: Any) -> str | None:
    if not isinstance(text, str):
        raise TypeError(f"create_{kind}_artifact takes a string, got {type(text).__name__}.")
    where = current_task_run()
    if where is None:
        _log.debug("Not running under the orchestration API: the %s artifact is not created.", kind)
        return None
    _, task_slug, map_index = where
    return str(_flow_run(client).create_artifact(kind, text, task_slug=task_slug, map_index=map_index,
                                                 attempt=context.get("flow_run_attempt")))


def _update(kind: str, task_run_artifact_id: str, text: str, client: Any) -> None:
    if current_task_run() is None:
        return
    if not task_run_artifact_id:
        raise ValueError(f"update_{kind}_artifact needs the id of an existing artifact (what create_{kind}_artifact returned).")
    _flow_run(client).update_artifact(task_run_artifact_id, text, attempt=context.get("flow_run_attempt"))


def create_link_artifact(link: str, client: Any = None) -> str | None:
    """Publish ``link`` (a URL) on the current task run; returns the artifact's id (None outside an API run)."""
    return _create("link", link, client)


def update_link_artifact(task_run_artifact_id: str, link: str, client: Any = None) -> None:
    """Point an existing link artifact at ``link``."""
    _update("link", task_run_artifact_id, link, client)


def create_markdown_artifact(markdown: str, client: Any = None) -> str | None:
    """Publish a markdown document on the current task run; returns the artifact's id (None outside an API run)."""
    return _create("markdown", markdown, client)


def update_markdown_artifact(task_run_artifact_id: str, markdown: str, client: Any = None) -> None:
    """Replace the markdown of an existing artifact."""
    _update("markdown", task_run_artifact_id, markdown, client)


def delete_artifact(task_run_artifact_id: str, client: Any = None) -> None:
    """Delete an artifact (by the id its ``create_*`` returned)."""
    if current_task_run() is None:
        return
    if not task_run_artifact_id:
        raise ValueError("delete_artifact needs the id of an existing artifact (what create_*_artifact returned).")
    _flow_run(client).delete_artifact(task_run_artifact_id, attempt=context.get("flow_run_attempt"))
