"""The API client the backend functions and the flow-of-flows tasks use, with a clear hint when no plugin provides it."""

from __future__ import annotations

from typing import Any

from headwater.utilities.context import context

__all__ = ["api_client", "running_with_backend", "current_task_run"]

INSTALL_HINT = "pip install headwater-cloud-api"


def api_client(feature: str, client: Any = None) -> Any:
    """``client`` or a new ``headwater.Client()``; an ``ImportError`` naming ``feature`` when no plugin provides the API nouns."""
    if client is not None:
        return client
    from headwater.client import Client

    if "flow_run" not in Client.resource_names():
        raise ImportError(
            f"{feature} talks to the orchestration API, and no installed plugin provides its client "
            f"(the flow_run noun of headwater.Client). Install it: {INSTALL_HINT}"
        )
    return Client()


def running_with_backend() -> bool:
    """True inside a flow run executed by the API's flow-run process (Prefect 1's ``context.running_with_backend``)."""
    return bool(context.get("running_with_backend")) and bool(context.get("flow_run_id"))


def current_task_run() -> tuple[str, str | None, int] | None:
    """``(flow_run_id, task_slug, map_index)`` of the task run this code runs in under the API, else None."""
    if not running_with_backend():
        return None
    map_index = context.get("map_index")
    return str(context.get("flow_run_id")), context.get("task_slug"), -1 if map_index is None else int(map_index)
