"""headwater's web UI: server-rendered pages (Jinja2) with a little vanilla JavaScript, served by the API server.

Mounted by :func:`headwater_cloud_api.server.app.create_app` at ``/ui`` (``/`` redirects there);
``GET /graphql`` from a browser serves the GraphQL explorer. No Node.js at install or run time:
templates and static files ship in the wheel. Pages read the API's services in-process.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ui_routes", "graphiql_page", "PREFIX", "run_url", "ui_base_url", "client_run_url"]

PREFIX = "/ui"


def ui_routes(db: object, auth: bool) -> list[Any]:
    """The UI's Starlette routes for one server's database (``auth``: keys required even before one exists)."""
    from headwater_cloud_api.ui.routes import ui_routes as routes

    return routes(db, auth)


def graphiql_page(request: object) -> object:
    """The GraphQL explorer page (for ``GET /graphql`` with ``Accept: text/html``)."""
    from headwater_cloud_api.ui.routes import graphiql_page as page

    return page(request)  # type: ignore[arg-type]


def ui_base_url(api: str) -> str:
    """The UI's address for an API address: ``http://127.0.0.1:4200/graphql`` -> ``http://127.0.0.1:4200/ui``."""
    base = api.rstrip("/")
    if base.endswith("/graphql"):
        base = base[: -len("/graphql")]
    return base + PREFIX


def run_url(api: str, flow_run_id: str) -> str:
    """The flow run's page for an API address."""
    return f"{ui_base_url(api)}/flow-runs/{flow_run_id}"


def client_run_url(client: object, flow_run_id: str) -> str:
    """The run's page for a ``headwater.Client`` (its ``api``, else ``[cloud] api``)."""
    api = getattr(client, "api", None)
    if not api:
        from headwater.plugins import get_config

        api = get_config().cloud.api
    return run_url(str(api), flow_run_id)
