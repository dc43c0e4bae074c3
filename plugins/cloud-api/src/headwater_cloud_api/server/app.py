"""The ASGI app: ``POST /graphql`` (the API), ``GET /health``; auth, size limit, no 500s for client mistakes.

GraphQL runs in a worker thread (``schema.execute_sync``) with synchronous SQLAlchemy, so the
event loop only does HTTP. Status codes: 200 for every GraphQL answer (errors in ``errors``),
400 for a body that is not a GraphQL request, 401 for auth, 413 above :data:`MAX_BODY_BYTES`,
415 for a body that is not ``application/json``, 403 for a foreign ``Host`` or ``Origin``
(``server/guard.py``: CSRF and DNS-rebinding protection; no CORS headers are ever sent).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.to_thread
from graphql import GraphQLError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from headwater_cloud_api import __version__
from headwater_cloud_api.server.auth import check_authorization
from headwater_cloud_api.server.db.session import Database, default_database_url
from headwater_cloud_api.server.errors import MAX_BODY_BYTES, APIError
from headwater_cloud_api.server.guard import RequestGuard, allowed_host_set, is_json_content_type, split_list
from headwater_cloud_api.server.limits import REQUEST_TIMEOUT, deadline_passed, request_deadline
from headwater_cloud_api.server.validation import NonFiniteNumber, json_safe, load_request_json

__all__ = ["create_app", "execute", "GRAPHQL_WORKERS", "HEALTH_DB_TIMEOUT"]

GRAPHQL_WORKERS = 24
"""Worker threads for GraphQL requests (the database pools allow as many connections)."""
HEALTH_DB_TIMEOUT = 2.0
"""Seconds ``/health`` waits for the database before reporting the API saturated."""

_log = logging.getLogger("headwater.server")


def _error(message: str, status: int, code: str) -> JSONResponse:
    return JSONResponse({"data": None, "errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status)


def execute(db: Database, query: str, variables: dict[str, Any] | None = None, operation_name: str | None = None) -> dict[str, Any]:
    """Run one GraphQL request against ``db`` and return the JSON-ready response body."""
    from headwater_cloud_api.server.schema import schema

    try:
        result = schema.execute_sync(query, variable_values=variables, context_value={"db": db}, operation_name=operation_name)
    except Exception as exc:  # strawberry raises (not returns) for a few request-level mistakes
        if type(exc).__name__ == "CannotGetOperationTypeError":
            message = (f"operationName {operation_name!r} names no operation in the document; give the name of one of its "
                       "operations, or leave operationName out when the document has one operation.")
            return {"data": None, "errors": [{"message": message, "extensions": {"code": "BAD_INPUT", "field": "operationName"}}]}
        _log.error("Unexpected error executing a GraphQL request", exc_info=exc)
        return {"data": None, "errors": [{"message": f"Internal server error ({type(exc).__name__}); the server log has the details.",
                                          "extensions": {"code": "INTERNAL"}}]}
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        errors = []
        for error in result.errors:
            formatted = error.formatted
            original = error.original_error
            if isinstance(original, APIError):
                formatted["extensions"] = {"code": original.code}
            elif original is None and (formatted.get("extensions") or {}).get("code"):  # e.g. QUERY_TOO_COMPLEX
                formatted["extensions"] = {"code": formatted["extensions"]["code"]}
            elif original is not None and deadline_passed():  # the database was interrupted at the deadline
                formatted["message"] = "The request ran longer than the server's limit and was stopped; ask for less."
                formatted["extensions"] = {"code": "TIMEOUT"}
            elif original is not None and error.path is None:
                # a variable that cannot be coerced (an impossible date, a number out of range): the client's mistake
                formatted["extensions"] = {"code": "BAD_INPUT"}
            elif original is not None and not isinstance(original, GraphQLError):
                formatted["message"] = f"Internal server error ({type(original).__name__}); the server log has the details."
                formatted["extensions"] = {"code": "INTERNAL"}
            else:
                formatted["extensions"] = {"code": "GRAPHQL_VALIDATION"}
            errors.append(formatted)
        body["errors"] = errors
    return body


def _render(body: dict[str, Any]) -> bytes:
    """The JSON answer; rendering never fails: a non-finite number (from rows stored before the checks) becomes null, with an error."""
    try:
        return json.dumps(body, allow_nan=False, ensure_ascii=False, separators=(",", ":"), default=str).encode()
    except ValueError:
        safe, paths = json_safe(body.get("data"))
        errors = list(body.get("errors") or [])
        errors.append({"message": f"NaN/Infinity at {', '.join(paths[:10])} cannot be sent as JSON; sent as null.",
                       "extensions": {"code": "NON_FINITE_VALUE"}})
        return json.dumps({"data": safe, "errors": errors}, allow_nan=False, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def _execute_rendered(db: Database, query: str, variables: dict[str, Any] | None, operation_name: str | None,
                      timeout: float = REQUEST_TIMEOUT, stopping: threading.Event | None = None) -> bytes:
    with request_deadline(timeout, stopping):
        return _render(execute(db, query, variables, operation_name))


async def _read_body(request: Request) -> bytes | None:
    """The body, or None when it exceeds MAX_BODY_BYTES (checked while reading, not only by Content-Length)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _ui_routes(db: Database, auth: bool) -> list[Any]:
    """The web UI's pages at ``/ui`` (``headwater_cloud_api.ui``; ``ui=False`` serves the API alone)."""
    from headwater_cloud_api.ui import ui_routes

    return ui_routes(db, auth)


def create_app(
    database_url: str | None = None,
    *,
    auth: bool = False,
    scheduler: bool = True,
    scheduler_interval: float = 10.0,
    upgrade: bool = True,
    database: Database | None = None,
    reaper: bool = True,
    heartbeat_lease: float = 30.0,
    max_resurrections: int = 3,
    reaper_interval: float | None = None,
    request_timeout: float = REQUEST_TIMEOUT,
    graphql_workers: int = GRAPHQL_WORKERS,
    bind_host: str | None = None,
    allowed_hosts: list[str] | tuple[str, ...] = (),
    allowed_origins: list[str] | tuple[str, ...] = (),
    ui: bool = True,
) -> Starlette:
    """The server app. ``database_url`` None: ``[server] database_url`` or SQLite in ``$HEADWATER_HOME``.

    ``upgrade`` runs the migrations at startup; ``scheduler`` starts the scheduling service;
    ``reaper`` the lost-run reaper (``heartbeat_lease`` seconds, ``max_resurrections`` reschedules).
    ``allowed_hosts`` / ``allowed_origins``: names accepted besides loopback and ``bind_host``
    in the ``Host`` / ``Origin`` headers (``server/guard.py``; ``"*"`` accepts any).
    """
    db = database or Database(database_url or default_database_url())
    db.heartbeat_lease = heartbeat_lease  # type: ignore[attr-defined]  # read by the agent schema (issue 6)
    state: dict[str, Any] = {}
    stopping = threading.Event()  # set at shutdown: running requests stop at their next field
    workers = anyio.CapacityLimiter(graphql_workers)  # GraphQL gets its own threads: /health and auth stay answerable

    async def health(request: Request) -> Response:
        """``ok``, or HTTP 503 ``saturated`` when GraphQL requests queue for a worker or the database does not answer in time."""
        stats = workers.statistics()
        problem = None
        if stats.tasks_waiting > 0:
            problem = f"{stats.tasks_waiting} GraphQL request(s) waiting for one of {graphql_workers} busy workers"
        else:
            try:
                with anyio.fail_after(HEALTH_DB_TIMEOUT):
                    await anyio.to_thread.run_sync(db.ping, abandon_on_cancel=True)
            except TimeoutError:
                problem = f"the database did not answer within {HEALTH_DB_TIMEOUT:g} s"
            except Exception as exc:  # the database is down
                problem = f"the database is unreachable ({type(exc).__name__})"
        body = {"status": "ok" if problem is None else "saturated", "version": __version__, "database": db.dialect,
                "busy_workers": stats.borrowed_tokens, "workers": graphql_workers, "waiting": stats.tasks_waiting}
        if problem is not None:
            body["problem"] = problem
        return JSONResponse(body, status_code=200 if problem is None else 503)

    async def graphql(request: Request) -> Response:
        if request.method != "POST":
            if "text/html" in request.headers.get("accept", ""):  # a browser: the GraphQL explorer (ui/, no CDN)
                from headwater_cloud_api.ui import graphiql_page

                return graphiql_page(request)  # type: ignore[return-value]
            return _error("Send GraphQL requests as POST with a JSON body {\"query\": ..., \"variables\": {...}}.", 405, "METHOD_NOT_ALLOWED")
        if not is_json_content_type(request.headers.get("content-type")):  # text/plain and forms are how CSRF posts
            return _error(f"Content-Type {request.headers.get('content-type')!r} is not accepted: send the GraphQL request "
                          "as 'Content-Type: application/json'.", 415, "UNSUPPORTED_MEDIA_TYPE")
        denied = await run_in_threadpool(check_authorization, db, request.headers.get("authorization"), auth)
        if denied:
            return _error(denied, 401, "UNAUTHENTICATED")
        try:
            raw = await _read_body(request)
        except ClientDisconnect:  # the client went away mid-request (a partition, a killed process): nobody to answer
            return Response(status_code=400)
        if raw is None:
            return _error(f"Request body is larger than {MAX_BODY_BYTES} bytes (the server's limit); send smaller batches.", 413, "PAYLOAD_TOO_LARGE")
        try:
            payload = load_request_json(raw)  # NaN/Infinity and deep nesting are refused here (validation.py)
        except NonFiniteNumber as exc:
            return _error(f"Request body is refused: {exc}.", 400, "BAD_INPUT")
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(f"Request body is not valid JSON: {exc}.", 400, "BAD_REQUEST")
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            return _error("A GraphQL request is a JSON object with a 'query' string (and optional 'variables' object).", 400, "BAD_REQUEST")
        variables = payload.get("variables")
        if variables is not None and not isinstance(variables, dict):
            return _error("'variables' must be a JSON object.", 400, "BAD_REQUEST")
        operation = payload.get("operationName")
        if stopping.is_set():
            return _error("The server is shutting down; retry against a running server.", 503, "SHUTTING_DOWN")
        try:
            with anyio.fail_after(request_timeout + 1.0):  # the worker stops itself at the deadline; this is the backstop
                rendered = await anyio.to_thread.run_sync(
                    _execute_rendered, db, payload["query"], variables, operation if isinstance(operation, str) else None,
                    request_timeout, stopping, limiter=workers, abandon_on_cancel=True)
        except TimeoutError:
            return _error(f"The request did not finish within {request_timeout:g} s (the server's limit) and was stopped.",
                          503, "TIMEOUT")
        return Response(rendered, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if upgrade:
            await run_in_threadpool(db.upgrade)
        if scheduler:
            from headwater_cloud_api.server.services.scheduler import Scheduler

            state["scheduler"] = Scheduler(db, interval=scheduler_interval)
            state["scheduler"].start()
        if reaper:  # lost runs: heartbeat lease expired -> rescheduled, then Failed (services/reaper.py)
            from headwater_cloud_api.server.services.reaper import Reaper

            state["reaper"] = Reaper(db, heartbeat_lease, max_resurrections, reaper_interval)
            state["reaper"].start()
        try:
            yield
        finally:
            stopping.set()  # prompt shutdown: requests still running stop at their next field
            for service in ("scheduler", "reaper"):
                if service in state:
                    await run_in_threadpool(state[service].stop)
            db.dispose()

    app = Starlette(
        routes=[Route("/health", health, methods=["GET"]), Route("/graphql", graphql, methods=["GET", "POST"]),
                *(_ui_routes(db, auth) if ui else [])],
        lifespan=lifespan,
        middleware=[Middleware(RequestGuard, allowed_hosts=allowed_host_set(bind_host, split_list(allowed_hosts)),
                               allowed_origins=split_list(allowed_origins))],
    )
    app.state.db = db
    app.state.stopping = stopping
    return app
