"""``headwater server start|api-key|database``: run and administer the API server (talks to the database directly)."""

from __future__ import annotations

from typing import Any

import click

from headwater_cloud_api.cli.common import console, table

__all__ = ["server"]


def _database(url: str | None) -> Any:
    from headwater_cloud_api.server.db.session import Database, MissingDriverError, default_database_url

    try:
        return Database(url or default_database_url())
    except MissingDriverError as exc:
        raise click.ClickException(str(exc)) from None


database_option = click.option(
    "--database-url", envvar="HEADWATER__SERVER__DATABASE_URL", default=None,
    help="SQLAlchemy URL (postgresql+psycopg://...); default: SQLite in $HEADWATER_HOME/server.db.",
)


@click.group()
def server() -> None:
    """Run and administer the orchestration API server."""


@server.command()
@click.option("--host", default=None, help="Address to bind ([server] host, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port ([server] port, default 4200).")
@database_option
@click.option("--auth", is_flag=True, help="Require an API key on every request (also automatic once a key exists).")
@click.option("--no-scheduler", is_flag=True, help="Do not run the scheduling service in this process.")
@click.option("--scheduler-interval", type=float, default=10.0, show_default=True, help="Seconds between scheduler passes.")
@click.option("--log-level", default="info", show_default=True)
@click.option("--heartbeat-lease", type=float, default=30.0, show_default=True,
              help="Seconds without a heartbeat after which a claimed flow run is lost (the reaper acts).")
@click.option("--max-resurrections", type=int, default=3, show_default=True,
              help="How many times a lost flow run is rescheduled before it is marked Failed.")
@click.option("--allowed-host", "allowed_hosts", multiple=True,
              help="A Host name clients use besides loopback and the bind address (repeatable; also [server] "
                   "allowed_hosts; '*' allows any). Requests naming another host get 403 (DNS-rebinding protection).")
@click.option("--allowed-origin", "allowed_origins", multiple=True,
              help="A web origin (https://ui.example.com) whose pages may call the API; pages of other origins get 403.")
def start(host: str | None, port: int | None, database_url: str | None, auth: bool, no_scheduler: bool,
          scheduler_interval: float, log_level: str, heartbeat_lease: float = 30.0, max_resurrections: int = 3,
          allowed_hosts: tuple[str, ...] = (), allowed_origins: tuple[str, ...] = ()) -> None:
    """Start the API server (migrates the database first)."""
    from headwater.plugins import get_config
    from headwater_cloud_api.server.db.session import default_database_url
    from headwater_cloud_api.server.run import serve

    cfg = get_config().server
    url = database_url or default_database_url()
    _check_driver(url)
    _uvicorn_logs_in_headwater_format()
    console.print(f"headwater API on http://{host or cfg.host}:{port if port is not None else cfg.port}/graphql, database {url.split('@')[-1]}")
    ui_host = host or cfg.host
    console.print(f"headwater UI on http://{'127.0.0.1' if ui_host in ('0.0.0.0', '::', '') else ui_host}:"
                  f"{port if port is not None else cfg.port}/ui/ (GraphQL explorer at /graphql)")
    serve(host=host or cfg.host, port=port if port is not None else cfg.port, log_level=log_level, database_url=url,
          auth=auth, scheduler=not no_scheduler, scheduler_interval=scheduler_interval,
          heartbeat_lease=heartbeat_lease, max_resurrections=max_resurrections,
          allowed_hosts=[*allowed_hosts, *cfg.allowed_hosts], allowed_origins=[*allowed_origins, *cfg.allowed_origins])


def _uvicorn_logs_in_headwater_format() -> None:
    """uvicorn's own log lines (startup, errors) in the one headwater format instead of ``INFO:     ...``.

    Uses the formatter the CLI gave the ``headwater`` logger (format from ``[logging]``, colour on a terminal).
    """
    import uvicorn.config

    from headwater.plugins import get_logger

    handler = next((h for h in get_logger().handlers if h.formatter is not None), None)
    if handler is None or handler.formatter is None:
        return
    formatter = handler.formatter
    for name in ("default", "access"):
        uvicorn.config.LOGGING_CONFIG["formatters"][name] = {
            "()": type(formatter), "fmt": formatter._fmt, "colour": bool(getattr(formatter, "colour", False)),
        }


def _check_driver(url: str) -> None:
    """One clean line (``pip install 'headwater-cloud-api[postgres]'``) when the URL's driver is missing."""
    from headwater_cloud_api.server.db.session import Database, MissingDriverError

    try:
        Database(url).dispose()
    except MissingDriverError as exc:
        raise click.ClickException(str(exc)) from None


@server.group("api-key")
def api_key() -> None:
    """Create, list and revoke API keys."""


@api_key.command("create")
@click.argument("name")
@database_option
def api_key_create(name: str, database_url: str | None) -> None:
    """Create key NAME and print it once (the server keeps only its hash)."""
    from headwater_cloud_api.server.auth import create_api_key
    from headwater_cloud_api.server.errors import APIError

    db = _database(database_url)
    try:
        db.upgrade()
        with db.write() as session:
            _, key = create_api_key(session, name)
    except APIError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo(key)
    click.echo("Store it now (e.g. HEADWATER__CLOUD__API_KEY); it is not shown again. Requests now need a key.", err=True)
    click.echo("Warning: agents and flow runs already running without a key are refused from now on (HTTP 401; agents "
               "back off and log it): restart them with HEADWATER__CLOUD__API_KEY set. Create keys before starting agents.",
               err=True)


@api_key.command("list")
@database_option
def api_key_list(database_url: str | None) -> None:
    """List API keys (names and prefixes, never the keys)."""
    from headwater_cloud_api.server.auth import list_api_keys

    db = _database(database_url)
    try:
        db.upgrade()
        with db.read() as session:
            rows = [[k.name, k.prefix + "...", k.created.isoformat(timespec="seconds")] for k in list_api_keys(session)]
    finally:
        db.dispose()
    table("API keys", ["name", "prefix", "created"], rows)


@api_key.command("revoke")
@click.argument("name")
@click.option("--disable-auth", is_flag=True,
              help="Allow revoking the last key, which turns authentication off (unless the server runs with --auth).")
@database_option
def api_key_revoke(name: str, database_url: str | None, disable_auth: bool = False) -> None:
    """Revoke (delete) key NAME; the last key only with --disable-auth."""
    from headwater_cloud_api.server.auth import revoke_api_key
    from headwater_cloud_api.server.errors import APIError

    db = _database(database_url)
    try:
        with db.write() as session:
            remaining = revoke_api_key(session, name, disable_auth=disable_auth)
    except APIError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        db.dispose()
    click.echo(f"Revoked API key {name!r}.")
    if remaining == 0:
        click.echo("That was the last key: authentication is now off (start the server with --auth to require keys anyway).")


@server.group()
def database() -> None:
    """Database migrations."""


@database.command()
@database_option
def upgrade(database_url: str | None) -> None:
    """Run the migrations up to the newest revision."""
    from headwater_cloud_api.server.db.session import current_revision

    db = _database(database_url)
    try:
        db.upgrade()
        click.echo(f"Database at revision {current_revision(db)}.")
    finally:
        db.dispose()


@database.command()
@database_option
def revision(database_url: str | None) -> None:
    """Show the database's migration revision."""
    from headwater_cloud_api.server.db.session import current_revision

    db = _database(database_url)
    try:
        click.echo(current_revision(db) or "(empty: run `headwater server database upgrade`)")
    finally:
        db.dispose()
