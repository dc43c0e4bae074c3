"""``headwater spec``: run the persistent spec worker, submit spec files, show stored flows.

``run_spec_file(path)`` is what ``headwater run FILE.yaml`` calls: it runs a spec locally and
prints its tasks' statuses.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.table import Table

    from headwater.spec.model import SpecFlow
    from headwater.spec.store import FlowStore

__all__ = ["spec", "worker", "submit", "show", "run_spec_file", "flow_table", "SpecInputError", "EXIT_INVALID_SPEC"]

_STATUS_STYLE = {"COMPLETED": "green", "FAILED": "red", "RUNNING": "yellow", "PENDING": "white", "SKIPPED": "dim"}

db_option = click.option(
    "--db",
    required=True,
    envvar="HEADWATER__SPEC__DB",
    show_envvar=True,
    metavar="URL",
    help="SQLAlchemy URL of the flow store, e.g. sqlite:///flows.db or postgresql+psycopg://user@host/db.",
)


def flow_table(flow: SpecFlow) -> Table:
    """A rich table of the flow's tasks in tick order: key, type, status and state message."""
    from rich.table import Table
    from rich.text import Text

    from headwater.spec.model import ROOT_KEY, spec_tasks

    title = f"Flow {flow.label or flow.name!r}" + (f" ({flow.key})" if flow.key else "")
    table = Table(title=title)
    table.add_column("task", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("message", overflow="fold")
    for task in spec_tasks(flow):
        if task.key == ROOT_KEY:
            continue
        status = task.status.value
        table.add_row(
            Text(task.key), Text(str(task.task_type)), Text(status, style=_STATUS_STYLE.get(status, "")),
            Text(task.state.message or ""),
        )
    return table


def _summary(flow: SpecFlow) -> Any:
    from rich.text import Text

    status = flow.status.value
    line = Text(f"Flow {status}", style=f"bold {_STATUS_STYLE.get(status, '')}")
    line.append(f": {flow.state.message}" if flow.state.message else "", style="")
    for error in flow.data.get("errors") or []:
        line.append(f"\n  task {error.get('task')!r}: {error.get('message')}", style="")
    return line


EXIT_INVALID_SPEC = 2
"""Exit status for a spec that cannot be read or is invalid (as for a flow file that cannot be loaded); 1 means it FAILED."""


class SpecInputError(click.ClickException):
    """A spec file or store that cannot be used: exits with :data:`EXIT_INVALID_SPEC`, not 1 (which means the flow failed)."""

    exit_code = EXIT_INVALID_SPEC


def _cli_parameters() -> dict[str, Any]:
    """``--param KEY=VALUE`` of the ``headwater run`` invocation this runs in (empty outside one)."""
    ctx = click.get_current_context(silent=True)
    values = ctx.params.get("params") if ctx is not None else None
    if not values:
        return {}
    from headwater.cli.run import parse_params

    return parse_params(tuple(values))


def run_spec_file(path: str, parameters: dict[str, Any] | None = None) -> int:
    """Run the YAML/JSON spec at ``path`` locally, print its tasks' statuses; 0 if it COMPLETED, 1 if not, 2 if invalid.

    ``parameters`` (default: the ``--param`` values of the running ``headwater run``) are merged into
    the flow's ``data``, so tasks read them as ``$ctx.flow.data.NAME``.
    """
    import math

    from rich.console import Console
    from rich.text import Text

    from headwater.core.flow import Flow
    from headwater.spec.engine import FlowEngine
    from headwater.spec.model import SpecError, Status

    console = Console()
    try:
        params = _cli_parameters() if parameters is None else dict(parameters)
        bad = sorted(k for k, v in params.items() if isinstance(v, float) and not math.isfinite(v))
        if bad:
            raise SpecError(f"--param {', '.join(bad)}: NaN and Infinity are not values a spec can hold; quote them to pass text.")
        flow = Flow.from_flow_spec(path)
    except (SpecError, ValueError, OSError, click.BadParameter) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
        Console(stderr=True).print(Text(f"Error: {message}", style="red"))
        return EXIT_INVALID_SPEC
    if params:
        flow.data.update(params)
    FlowEngine().tick_flow_until_has_no_pending(flow)
    console.print(flow_table(flow))
    console.print(_summary(flow))
    return 0 if flow.status is Status.COMPLETED else 1


def _store(db: str) -> FlowStore:
    from headwater.spec.store import FlowStore, redact_url

    try:
        store = FlowStore(db)
        store.ensure_tables()
    except ImportError as exc:
        raise click.ClickException(redact_url(db, str(exc))) from None
    except Exception as exc:  # an unreachable database, a bad URL: never print the password
        raise click.ClickException(f"Cannot open the flow store {redact_url(db)!r}: {redact_url(db, str(exc))}") from None
    return store


@contextmanager
def _stop_on_signals(stop: Any) -> Iterator[None]:
    """SIGTERM and SIGINT ask the worker to stop after the flow it is ticking."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = lambda signum, frame: stop()  # noqa: E731
    saved = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


@click.group("spec", context_settings={"help_option_names": ["-h", "--help"]})
def spec() -> None:
    """Declarative flow specs: the persistent worker, submitting specs, showing stored flows."""


@spec.command("worker")
@db_option
@click.option("--interval", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds to wait before polling again when there was nothing to tick.")
@click.option("--max-flows", type=click.IntRange(min=1), default=10, show_default=True,
              help="Flows claimed per poll (each is ticked once, then released).")
@click.option("--lease", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds a claimed flow stays hidden from other workers; make it longer than ticking --max-flows flows takes.")
@click.option("--worker-id", default=None, help="Name of this worker in claims (default: host:pid:random).")
@click.option("--until-done", is_flag=True, help="Exit once no flow in the store is PENDING or RUNNING.")
def worker(db: str, interval: float, max_flows: int, lease: float, worker_id: str | None, until_done: bool) -> None:
    """Tick stored flows: claim up to --max-flows, tick each once, release, repeat (stop with Ctrl-C or SIGTERM)."""
    from headwater.spec.worker import Worker

    w = Worker(_store(db), worker_id=worker_id, interval=interval, max_flows=max_flows, lease_seconds=lease)
    with _stop_on_signals(w.stop):
        ticks = w.run(until_done=until_done)
    click.echo(f"Worker {w.worker_id} stopped after {ticks} tick(s).", err=True)


@spec.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@db_option
def submit(file: str, db: str) -> None:
    """Save the spec in FILE (YAML or JSON) to the store as a new flow and print its key."""
    from headwater.core.flow import Flow
    from headwater.spec.model import SpecError
    from headwater.spec.store import FlowExistsError

    try:
        flow = Flow.from_flow_spec(file)
    except (SpecError, ValueError) as exc:
        raise SpecInputError(str(exc)) from None
    try:
        click.echo(_store(db).save(flow))
    except (SpecError, FlowExistsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None


@spec.command("show")
@click.argument("key")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the whole flow dict as JSON instead of a table.")
def show(key: str, db: str, as_json: bool) -> None:
    """Show the stored flow KEY: its tasks and their statuses."""
    from rich.console import Console

    from headwater.spec.store import FlowNotFoundError

    try:
        flow = _store(db).load(key)
    except FlowNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(flow.to_flow_dict(), indent=2, sort_keys=True))
        return
    console = Console()
    console.print(flow_table(flow))
    console.print(_summary(flow))


if __name__ == "__main__":  # python -m headwater.cli.spec worker --db ...
    spec()
