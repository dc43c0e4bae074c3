"""The UI's HTTP routes (Starlette): server-rendered pages, live fragments, logs by cursor, and the few mutations.

Reads and writes go through the API's database session and services in this process (the same
functions the GraphQL resolvers call), in a worker thread like GraphQL, so the event loop only
does HTTP. Pages render the whole layout; with the ``X-Fragment: main`` header only the page's
content (the polling script swaps it in place); the run page has a cheaper live endpoint that
answers 204 while nothing changed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from headwater.states import FAILED_STATE_NAMES
from headwater_cloud_api import __version__
from headwater_cloud_api.server.errors import APIError, NotFound
from headwater_cloud_api.ui import data
from headwater_cloud_api.ui.security import (
    CSRFError,
    authorized,
    check_csrf,
    clear_login,
    csrf_token,
    finish,
    set_login,
)

__all__ = ["ui_routes", "PREFIX", "graphiql_page", "templates"]

PREFIX = "/ui"
HERE = Path(__file__).parent
STATIC = HERE / "static"
_log = logging.getLogger("headwater.server.ui")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@functools.lru_cache(maxsize=1)
def _static_version() -> str:
    """A hash of the static files (read once per process: they ship in the wheel), for cache-busting URLs."""
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(STATIC.glob("*")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def _ago(value: datetime | None, now: datetime | None = None) -> str:
    if value is None:
        return "—"
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 5:
        text = "just now" if not future else "in a moment"
        return text
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            text = f"{int(seconds // size)} {unit}"
            break
    return f"in {text}" if future else f"{text} ago"


def _duration(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    if start is None:
        return "—"
    seconds = ((end or now or datetime.now(UTC)) - start).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _iso(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else ""


def _hhmmss(value: datetime | None) -> str:
    return value.strftime("%H:%M:%S.") + f"{value.microsecond // 1000:03d}" if value else ""


def templates() -> Environment:
    """The UI's Jinja2 environment (autoescaping on; the templates ship in the wheel)."""
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html", "svg"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(ago=_ago, duration=_duration, iso=_iso, hhmmss=_hhmmss, short=lambda s: (s or "")[:8],
                       tojson_pretty=lambda v: json.dumps(v, indent=2, sort_keys=True, default=str))
    env.globals.update(P=PREFIX, version=__version__, static_v=_static_version(), quote=quote, urlencode=urlencode,
                       LEVELS=LEVELS)
    return env


class UI:
    """The pages of one server (its database and whether keys are required)."""

    def __init__(self, db: Any, auth: bool) -> None:
        self.db = db
        self.auth = auth
        self.env = templates()

    # --- rendering ----------------------------------------------------------------------------

    def html(self, request: Request, template: str, status: int = 200, **context: Any) -> Response:
        tmpl = self.env.get_template(template)
        context.update(request=request, csrf=csrf_token(request), path=request.url.path, auth=self.auth_enabled(),
                       query=request.query_params)
        if request.headers.get("x-fragment") == "main" and "content" in tmpl.blocks:
            body = "".join(tmpl.blocks["content"](tmpl.new_context(context)))
        else:
            body = tmpl.render(**context)
        response = HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
        return finish(request, response)

    def auth_enabled(self) -> bool:
        from headwater_cloud_api.server.auth import check_authorization

        return check_authorization(self.db, None, self.auth) is not None

    def error(self, request: Request, status: int, message: str) -> Response:
        if request.headers.get("accept", "").startswith("application/json"):
            return JSONResponse({"error": message}, status_code=status)
        return self.html(request, "error.html", status=status, message=message, status_code=status)

    def page(self, func: Callable[..., Response]) -> Callable[[Request], Any]:
        """A GET page: login first, then ``func(request, session)`` in a worker thread with a read session."""

        async def endpoint(request: Request) -> Response:
            def work() -> Response:
                denied = authorized(self.db, request, self.auth)
                if denied:
                    return self.login_redirect(request)
                try:
                    with self.db.read() as session:
                        return func(request, session)
                except NotFound as exc:
                    return self.error(request, 404, str(exc))
                except APIError as exc:
                    return self.error(request, 400, str(exc))
            return await run_in_threadpool(work)

        return endpoint

    def action(self, func: Callable[..., Response]) -> Callable[[Request], Any]:
        """A POST: login, CSRF check, then ``func(request, form, session)`` in a write transaction."""

        async def endpoint(request: Request) -> Response:
            form = await read_form(request)

            def work() -> Response:
                try:
                    check_csrf(request, form)
                except CSRFError as exc:
                    return self.error(request, 403, str(exc))
                if authorized(self.db, request, self.auth):
                    return self.login_redirect(request)
                try:
                    with self.db.write() as session:
                        return func(request, form, session)
                except NotFound as exc:
                    return self.error(request, 404, str(exc))
                except APIError as exc:
                    return self.error(request, 400, str(exc))
            return await run_in_threadpool(work)

        return endpoint

    def login_redirect(self, request: Request) -> Response:
        if request.headers.get("x-fragment") or request.headers.get("accept", "").startswith("application/json"):
            return JSONResponse({"error": "login required", "login": f"{PREFIX}/login"}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/login?{urlencode({'next': target})}", status_code=303)

    # --- pages ----------------------------------------------------------------------------------

    def dashboard(self, request: Request, s: Any) -> Response:
        return self.html(request, "dashboard.html", d=data.dashboard(s), nav="dashboard")

    def flows(self, request: Request, s: Any) -> Response:
        d = data.flows_page(s, request.query_params.get("project") or None, request.query_params.get("q") or None)
        return self.html(request, "flows.html", d=d, nav="flows")

    def flow(self, request: Request, s: Any, error: str | None = None, form: Any = None, status: int = 200) -> Response:
        d = data.flow_page(s, request.path_params["id"])
        return self.html(request, "flow.html", d=d, nav="flows", error=error, form=form or {}, status=status)

    def flow_run(self, request: Request, s: Any) -> Response:
        d = data.flow_run_page(s, request.path_params["id"])
        return self.html(request, "flow_run.html", d=d, nav="runs")

    def flow_run_live(self, request: Request, s: Any) -> Response:
        """The run page's changing parts as HTML fragments, or 204 while its token is unchanged."""
        run_id = request.path_params["id"]
        token = data.run_token(s, run_id)
        if request.query_params.get("token") == token:
            return Response(status_code=204, headers={"Cache-Control": "no-store"})
        d = data.flow_run_page(s, run_id)
        ctx = {"d": d, "csrf": csrf_token(request), "P": PREFIX}
        parts = {}
        tmpl = self.env.get_template("flow_run.html")
        for name in ("header", "summary", "dag", "gantt", "tasks", "explain"):
            parts[name] = "".join(tmpl.blocks[f"part_{name}"](tmpl.new_context({**self.env.globals, **ctx})))
        return finish(request, JSONResponse({"token": d["token"], "state": d["run"].state, "finished": d["finished"],
                                             "parts": parts}, headers={"Cache-Control": "no-store"}))

    def flow_run_logs(self, request: Request, s: Any) -> Response:
        """A page of logs as HTML rows plus cursors (JSON); ``tail=1`` gives the newest page."""
        from headwater_cloud_api.server.services.logs import encode_cursor, read_logs

        run_id = request.path_params["id"]
        q = request.query_params
        data.run_token(s, run_id)  # 404 for an unknown run
        minimum = (q.get("level") or "DEBUG").upper()
        levels = list(LEVELS[LEVELS.index(minimum):]) if minimum in LEVELS else None
        before = q.get("before") or (encode_cursor(2**62) if q.get("tail") else None)
        page = read_logs(s, run_id, after=q.get("after") or None, before=before, levels=levels, search=q.get("q") or None,
                         task_run_id=q.get("task_run_id") or None, limit=min(int(q.get("limit") or 200), 1000))
        rows = self.env.get_template("_log_rows.html").render(logs=page.logs)
        end = page.end_cursor
        if q.get("tail") and not page.logs:
            end = None
        return JSONResponse({"html": rows, "count": len(page.logs), "start_cursor": page.start_cursor, "end_cursor": end,
                             "has_more": page.has_more}, headers={"Cache-Control": "no-store"})

    def task_group(self, request: Request, s: Any) -> Response:
        offset = max(0, int(request.query_params.get("offset") or 0))
        d = data.task_group_page(s, request.path_params["id"], request.path_params["slug"], offset)
        return self.html(request, "task_group.html", d=d, nav="runs")

    def task_run(self, request: Request, s: Any) -> Response:
        return self.html(request, "task_run.html", d=data.task_run_page(s, request.path_params["id"]), nav="runs")

    def runs(self, request: Request, s: Any) -> Response:
        q = request.query_params
        d = data.runs_page(s, q.get("state") or None, q.get("agent") or None, q.get("flow") or None,
                           max(0, int(q.get("offset") or 0)))
        return self.html(request, "runs.html", d=d, nav="runs")

    def agents(self, request: Request, s: Any) -> Response:
        return self.html(request, "agents.html", d=data.agents_page(s), nav="agents")

    def projects(self, request: Request, s: Any) -> Response:
        return self.html(request, "projects.html", d=data.projects_page(s), nav="projects")

    def kv(self, request: Request, s: Any) -> Response:
        return self.html(request, "kv.html", d=data.kv_page(s), nav="kv")

    # --- actions --------------------------------------------------------------------------------

    def run_flow(self, request: Request, form: Any, s: Any) -> Response:
        from headwater_cloud_api.server.services import runs as run_service

        flow_id = request.path_params["id"]
        d = data.flow_page(s, flow_id)
        try:
            parameters = parse_parameters(d["fields"], form)
        except ValueError as exc:
            return self.flow(request, s, error=str(exc), form=form, status=400)
        labels = [lb.strip() for lb in str(form.get("labels") or "").split(",") if lb.strip()]
        try:
            run = run_service.create_flow_run(s, flow_id=flow_id, parameters=parameters, run_name=str(form.get("run_name") or "") or None,
                                              labels=labels or None)
        except APIError as exc:
            return self.flow(request, s, error=str(exc), form=form, status=400)
        return RedirectResponse(f"{PREFIX}/flow-runs/{run.id}", status_code=303)

    def set_schedule(self, request: Request, form: Any, s: Any) -> Response:
        from headwater_cloud_api.server.services import flows as flow_service

        flow = flow_service.get_flow(s, id=request.path_params["id"])
        flow_service.set_schedule_active(s, flow, str(form.get("active")) == "on")
        return RedirectResponse(_back(form, f"{PREFIX}/flows/{flow.id}"), status_code=303)

    def cancel(self, request: Request, form: Any, s: Any) -> Response:
        from headwater_cloud_api.server.services import runs as run_service

        run_service.cancel_flow_run(s, request.path_params["id"])
        return RedirectResponse(f"{PREFIX}/flow-runs/{request.path_params['id']}", status_code=303)

    def restart(self, request: Request, form: Any, s: Any) -> Response:
        restart_from_failed(s, request.path_params["id"], from_failed=str(form.get("mode") or "from-failed") != "all")
        return RedirectResponse(f"{PREFIX}/flow-runs/{request.path_params['id']}", status_code=303)

    def resume(self, request: Request, form: Any, s: Any) -> Response:
        from headwater_cloud_api.server.services import runs as run_service

        run_service.resume_flow_run(s, request.path_params["id"], message="Resumed from the web UI.")
        return RedirectResponse(f"{PREFIX}/flow-runs/{request.path_params['id']}", status_code=303)

    def resume_task_run(self, request: Request, form: Any, s: Any) -> Response:
        from headwater_cloud_api.server.db.models import TaskRun
        from headwater_cloud_api.server.errors import NotFound
        from headwater_cloud_api.server.services import runs as run_service

        row = s.get(TaskRun, request.path_params["id"])
        if row is None:
            raise NotFound(f"Task run {request.path_params['id']!r} does not exist.")
        run_service.resume_flow_run(s, row.flow_run_id, [row.id], message="Resumed from the web UI.")
        return RedirectResponse(f"{PREFIX}/task-runs/{row.id}", status_code=303)

    def create_project(self, request: Request, form: Any, s: Any) -> Response:
        from headwater_cloud_api.server.services.projects import create_project

        create_project(s, str(form.get("name") or ""), str(form.get("description") or "") or None)
        return RedirectResponse(f"{PREFIX}/projects", status_code=303)

    def kv_set(self, request: Request, form: Any, s: Any) -> Response:
        from headwater_cloud_api.server.services.kv import set_key_value

        raw = str(form.get("value") or "")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw  # plain text is a string value, as `headwater kv set` does
        set_key_value(s, str(form.get("key") or ""), value)
        return RedirectResponse(f"{PREFIX}/kv", status_code=303)

    def kv_delete(self, request: Request, form: Any, s: Any) -> Response:
        from headwater_cloud_api.server.services.kv import delete_key

        delete_key(s, str(form.get("key") or ""))
        return RedirectResponse(f"{PREFIX}/kv", status_code=303)

    # --- login ----------------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        next_url = _safe_next(request.query_params.get("next"))
        if request.method == "GET":
            return self.html(request, "login.html", next=next_url, error=None, nav="login")
        form = await read_form(request)
        try:
            check_csrf(request, form)
        except CSRFError as exc:
            return self.html(request, "login.html", next=next_url, error=str(exc), nav="login", status=403)
        key = str(form.get("api_key") or "").strip()
        from headwater_cloud_api.server.auth import check_authorization

        problem = await run_in_threadpool(check_authorization, self.db, f"Bearer {key}" if key else None, True)
        if problem:
            return self.html(request, "login.html", next=_safe_next(str(form.get("next") or "")), nav="login", status=401,
                             error="That API key is not valid (unknown or revoked). Create one with "
                                   "`headwater server api-key create NAME`.")
        response = RedirectResponse(_safe_next(str(form.get("next") or "")), status_code=303)
        set_login(request, response, key)
        return response

    async def logout(self, request: Request) -> Response:
        form = await read_form(request)
        try:
            check_csrf(request, form)
        except CSRFError as exc:
            return self.error(request, 403, str(exc))
        response = RedirectResponse(f"{PREFIX}/login", status_code=303)
        clear_login(response)
        return response

    async def states_css(self, request: Request) -> Response:
        from headwater.plugins import DagLayout  # the palette lives next to the DAG drawing

        return Response(DagLayout.state_css(), media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{PREFIX}/", self.page(self.dashboard), methods=["GET"], name="ui-dashboard"),
            Route(f"{PREFIX}", lambda r: RedirectResponse(f"{PREFIX}/", 307), methods=["GET"]),
            Route("/", lambda r: RedirectResponse(f"{PREFIX}/", 307), methods=["GET"]),
            Route(f"{PREFIX}/flows", self.page(self.flows), methods=["GET"]),
            Route(f"{PREFIX}/flows/{{id}}", self.page(self.flow), methods=["GET"]),
            Route(f"{PREFIX}/flows/{{id}}/run", self.action(self.run_flow), methods=["POST"]),
            Route(f"{PREFIX}/flows/{{id}}/schedule", self.action(self.set_schedule), methods=["POST"]),
            Route(f"{PREFIX}/flow-runs", self.page(self.runs), methods=["GET"]),
            Route(f"{PREFIX}/flow-runs/{{id}}", self.page(self.flow_run), methods=["GET"]),
            Route(f"{PREFIX}/flow-runs/{{id}}/live", self.page(self.flow_run_live), methods=["GET"]),
            Route(f"{PREFIX}/flow-runs/{{id}}/logs", self.page(self.flow_run_logs), methods=["GET"]),
            Route(f"{PREFIX}/flow-runs/{{id}}/cancel", self.action(self.cancel), methods=["POST"]),
            Route(f"{PREFIX}/flow-runs/{{id}}/restart", self.action(self.restart), methods=["POST"]),
            Route(f"{PREFIX}/flow-runs/{{id}}/resume", self.action(self.resume), methods=["POST"]),
            Route(f"{PREFIX}/flow-runs/{{id}}/tasks/{{slug}}", self.page(self.task_group), methods=["GET"]),
            Route(f"{PREFIX}/task-runs/{{id}}", self.page(self.task_run), methods=["GET"]),
            Route(f"{PREFIX}/task-runs/{{id}}/resume", self.action(self.resume_task_run), methods=["POST"]),
            Route(f"{PREFIX}/agents", self.page(self.agents), methods=["GET"]),
            Route(f"{PREFIX}/projects", self.page(self.projects), methods=["GET"]),
            Route(f"{PREFIX}/projects", self.action(self.create_project), methods=["POST"]),
            Route(f"{PREFIX}/kv", self.page(self.kv), methods=["GET"]),
            Route(f"{PREFIX}/kv", self.action(self.kv_set), methods=["POST"]),
            Route(f"{PREFIX}/kv/delete", self.action(self.kv_delete), methods=["POST"]),
            Route(f"{PREFIX}/login", self.login, methods=["GET", "POST"]),
            Route(f"{PREFIX}/logout", self.logout, methods=["POST"]),
            Route(f"{PREFIX}/static/states.css", self.states_css, methods=["GET"]),
            Route(f"{PREFIX}/static/vendor/{{name}}", vendor_asset, methods=["GET"]),
            Mount(f"{PREFIX}/static", app=StaticFiles(directory=str(STATIC)), name="ui-static"),
        ]


MAX_FORM_BYTES = 1_000_000
"""The UI's forms are small (parameters, a KV value); larger bodies are refused."""


async def read_form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as ``{name: value}`` (the last value wins; no multipart needed)."""
    from urllib.parse import parse_qsl

    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _safe_next(value: str | None) -> str:
    """Only this UI's own paths (no ``//evil.example`` or absolute URLs) are followed after login."""
    if value and value.startswith(PREFIX + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return f"{PREFIX}/"


def _back(form: Any, default: str) -> str:
    return _safe_next(str(form.get("back") or "")) if form.get("back") else default


def parse_parameters(fields: list[dict[str, Any]], form: Any) -> dict[str, Any]:
    """Typed parameter values from the Run form: numbers, booleans, JSON; empty optional fields keep their defaults."""
    values: dict[str, Any] = {}
    for f in fields:
        name, kind = f["name"], f["kind"]
        key = f"param:{name}"
        if kind == "bool":
            values[name] = form.get(key) == "on"
            continue
        raw = form.get(key)
        text = "" if raw is None else str(raw)
        if text.strip() == "":
            if f["required"]:
                raise ValueError(f"Parameter {name!r} is required: enter a value.")
            continue
        try:
            if kind == "int":
                values[name] = int(text)
            elif kind == "float":
                values[name] = float(text)
            elif kind == "str":
                values[name] = text
            elif kind == "json":
                values[name] = json.loads(text)
            else:  # no default to tell the type: JSON when it parses (5, true, [1, 2]), else the text
                try:
                    values[name] = json.loads(text)
                except ValueError:
                    values[name] = text
        except ValueError as exc:
            want = {"int": "an integer", "float": "a number", "json": "JSON (e.g. [1, 2] or {\"a\": 1})"}.get(kind, "a value")
            raise ValueError(f"Parameter {name!r} must be {want}; got {text!r} ({exc}).") from None
    return values


def restart_from_failed(session: Any, run_id: str, from_failed: bool = True) -> int:
    """The UI's restart: the API's ``restart_flow_run`` (a new attempt); how many task runs run again.

    ``from_failed`` keeps the task runs that succeeded (the new attempt reuses their checkpointed
    results) and resets the others to Pending; without it, every task run is reset.
    """
    from sqlalchemy import func, select

    from headwater_cloud_api.server.db.models import TaskRun
    from headwater_cloud_api.server.errors import BadInput
    from headwater_cloud_api.server.services import runs as run_service

    run = run_service.get_flow_run(session, run_id)
    if run.state not in run_service.FINISHED_STATES:
        raise BadInput(f"Flow run {run_id} is {run.state}: only a finished run can be restarted (cancel it first).")
    query = select(func.count()).select_from(TaskRun).where(TaskRun.flow_run_id == run_id)
    if from_failed:
        query = query.where(TaskRun.state.not_in(sorted(run_service.KEPT_TASK_STATES)))
    again = int(session.scalar(query) or 0)
    if from_failed and not again and run.state not in FAILED_STATE_NAMES | {"Cancelled"}:
        raise BadInput(f"Flow run {run_id} is {run.state} and has no failed task runs: there is nothing to restart "
                       "(restart all to run the whole flow again).")
    run_service.restart_flow_run(session, run_id, from_failed=from_failed)
    return again


def ui_routes(db: Any, auth: bool) -> list[BaseRoute]:
    """The UI's routes for the app of ``create_app`` (mounted at :data:`PREFIX`, plus ``/`` redirecting there)."""
    return UI(db, auth).routes()


GRAPHIQL_ASSETS = {
    "js": "graphiql-3.8.3.min.js", "css": "graphiql-3.8.3.min.css",
    "react": "react-18.3.1.production.min.js", "react_dom": "react-dom-18.3.1.production.min.js",
}
"""The vendored GraphiQL build and the React it runs on (gzipped in ``static/``; versions and licences in static/README.md)."""
_VENDOR_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_vendor_cache: dict[str, bytes] = {}


def _vendor_bytes(name: str) -> bytes | None:
    """The gzipped bytes of vendored asset ``name`` (read once), or None when it is not one."""
    if name not in GRAPHIQL_ASSETS.values():
        return None
    data = _vendor_cache.get(name)
    if data is None:
        path = STATIC / f"{name}.gz"
        if not path.is_file():
            return None
        data = _vendor_cache[name] = path.read_bytes()
    return data


async def vendor_asset(request: Request) -> Response:
    """A vendored asset, sent gzipped as stored (or unpacked for a client that does not accept gzip); cached for a year."""
    import gzip

    name = request.path_params["name"]
    data = _vendor_bytes(name)
    if data is None:
        return Response(f"No asset {name!r}.", status_code=404, media_type="text/plain")
    headers = {"Cache-Control": "public, max-age=31536000, immutable", "Vary": "Accept-Encoding"}
    media = _VENDOR_TYPES.get(Path(name).suffix, "application/octet-stream")
    if "gzip" in request.headers.get("accept-encoding", ""):
        return Response(data, media_type=media, headers={**headers, "Content-Encoding": "gzip"})
    return Response(gzip.decompress(data), media_type=media, headers=headers)


def graphiql_page(request: Request) -> Response:
    """GraphiQL for ``GET /graphql`` from a browser, from assets in the wheel (no CDN).

    Without the vendored GraphiQL files (a trimmed install), the UI's own small explorer is served instead.
    """
    env = templates()
    if all((STATIC / f"{name}.gz").is_file() for name in GRAPHIQL_ASSETS.values()):
        body = env.get_template("graphiql.html").render(request=request, assets=GRAPHIQL_ASSETS)
    else:
        body = env.get_template("graphiql_lite.html").render(request=request)
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})
