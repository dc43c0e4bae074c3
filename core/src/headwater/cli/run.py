"""``headwater run FILE[:FLOW]``: run a flow locally with a live progress display and a summary table."""

from __future__ import annotations

import json
import logging
import math
import sys
from typing import Any

import click

from headwater.cli.lazy import ExtensibleCommand

__all__ = ["run", "parse_params", "run_flow_with_progress", "make_console", "ConsoleLogHandler", "summary_table"]


def make_console(stderr: bool = False) -> Any:
    """A rich console: the terminal's width on a terminal, full width (no cut columns) when piped."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    is_tty = getattr(stream, "isatty", lambda: False)()
    return Console(stderr=stderr, width=None if is_tty else 100_000, soft_wrap=not is_tty, highlight=False)


class ConsoleLogHandler(logging.Handler):
    """Log records in the headwater format, printed through a rich console so a live display stays below them."""

    def __init__(self, console: Any) -> None:
        from headwater.utilities.logging import HeadwaterFormatter, _configured_logging

        super().__init__()
        self.console = console
        self.setFormatter(HeadwaterFormatter(_configured_logging()[1], colour=bool(console.is_terminal)))

    def emit(self, record: logging.LogRecord) -> None:
        from rich.text import Text

        try:
            self.console.print(Text.from_ansi(self.format(record)), soft_wrap=True)
        except Exception:  # pragma: no cover - logging must never break the run
            self.handleError(record)


def parse_params(values: tuple[str, ...]) -> dict[str, Any]:
    """``k=v`` pairs; values are parsed as JSON when they parse (numbers, true, lists), else kept as text."""
    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--param")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, float) and not math.isfinite(value):
            raise click.BadParameter(
                f"{key}={raw}: {raw} is not a number a flow run can take (JSON has no NaN or Infinity); "
                f"pass a finite number, or quote it to send text: {key}='\"{raw}\"'.",
                param_hint="--param",
            )
        params[key] = value
    return params


@click.command(cls=ExtensibleCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("target", required=False)
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE", help="A flow parameter (repeatable).")
@click.option("--schedule/--no-schedule", default=False, help="Follow the flow's schedule instead of running once.")
@click.option("--quiet", "-q", is_flag=True, help="No live display; just the summary.")
@click.option("--executor", "executor_spec", default=None, metavar="NAME[:JSON]",
              help="Run the tasks on this executor: local, threads, processes, dask (headwater-dask) or any registered "
                   "name, with keyword arguments as JSON after a colon: 'dask:{\"address\": \"tcp://127.0.0.1:8786\"}'.")
def run(
    target: str | None,
    params: tuple[str, ...],
    schedule: bool,
    quiet: bool,
    executor_spec: str | None = None,
    **plugin_options: Any,
) -> None:
    """Run a flow from TARGET locally: `path/to/file.py`, `path/to/file.py:FLOW_NAME`, or a `.yaml`/`.json` spec.

    Exits 0 when the flow run succeeds and 1 when it fails. Plugins add options (extend_command
    hook): with headwater-cloud-api, `--name FLOW --project P [--watch]` runs a registered flow.
    """
    if any(value not in (None, False, ()) for value in plugin_options.values()):
        from headwater.plugins._manager import get_plugin_manager

        code = get_plugin_manager().hook.run_target(
            target=target, parameters=parse_params(params), options=plugin_options
        )
        if code is not None:
            sys.exit(int(code))
    if target is None:
        raise click.UsageError("Give a flow file to run, e.g. `headwater run flows/etl.py` or `flows/etl.py:etl`.")
    path, _, name = target.partition(":")
    if path.lower().endswith((".yaml", ".yml", ".json")):
        from headwater.cli.spec import run_spec_file

        sys.exit(run_spec_file(path))
    from headwater.utilities.flow_files import FlowFileError, load_flows_from_file, pick_flow

    try:
        flow = pick_flow(load_flows_from_file(path), name or None, path)
    except FlowFileError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    from headwater.engine import ParameterError

    if executor_spec is not None:
        flow.executor = parse_executor(executor_spec)
    try:
        state = run_flow_with_progress(flow, parse_params(params), run_on_schedule=schedule, quiet=quiet)
    except ParameterError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    sys.exit(0 if state.is_successful() else 1)


EXECUTOR_ALIASES = {
    "local": "LocalExecutor",
    "threads": "ThreadExecutor",
    "processes": "ProcessExecutor",
    "dask": "DaskExecutor",
    "local-dask": "LocalDaskExecutor",
}
"""Short names ``--executor`` takes, besides every registered executor name."""


def parse_executor(spec: str) -> Any:
    """An executor from ``NAME[:JSON]`` (``dask:{"address": "tcp://..."}``), looked up in the executor registry."""
    from headwater.plugins._manager import registry
    from headwater.plugins._registry import UnknownTypeError

    name, sep, raw = spec.partition(":")
    name = EXECUTOR_ALIASES.get(name.strip().lower(), name.strip())
    kwargs: Any = {}
    if sep:
        try:
            kwargs = json.loads(raw)
        except ValueError as exc:
            raise click.BadParameter(f"{spec!r}: the part after ':' must be a JSON object of keyword arguments ({exc}).",
                                     param_hint="--executor") from None
        if not isinstance(kwargs, dict):
            raise click.BadParameter(f"{spec!r}: the part after ':' must be a JSON object, got {raw}.", param_hint="--executor")
    try:
        cls = registry("executor").get(name)
    except UnknownTypeError as exc:
        raise click.BadParameter(f"{exc}\nShort names: {', '.join(EXECUTOR_ALIASES)}.", param_hint="--executor") from None
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise click.BadParameter(f"{name}({raw}): {exc}", param_hint="--executor") from None


def run_flow_with_progress(flow: Any, parameters: dict[str, Any], run_on_schedule: bool = False, quiet: bool = False) -> Any:
    """Run ``flow`` showing a live progress bar and log lines, then print a table of task states."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from headwater.engine.flow_runner import resolve_parameters

    resolve_parameters(flow, parameters)
    console = make_console(stderr=False)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    )
    total = len(flow)
    bar = progress.add_task(f"flow {flow.name!r}", total=total, detail="")
    items = {"mapped": 0, "mapped_done": 0, "failed": 0}

    def on_task_state(task: Any, state: Any, map_index: int | None) -> None:
        if map_index is not None:
            if state.is_finished():
                items["mapped_done"] += 1
                items["mapped"] = max(items["mapped"], items["mapped_done"])
            if state.is_failed():
                items["failed"] += 1
        elif state.is_finished():
            progress.advance(bar)
            if state.is_failed():
                items["failed"] += 1
        detail = f"{escape(task.name)}{'' if map_index is None else f'[{map_index}]'}: {state.name}"
        if items["mapped_done"]:
            detail += f" | mapped items done: {items['mapped_done']}"
        if items["failed"]:
            detail += f" | [red]failed: {items['failed']}[/red]"
        progress.update(bar, detail=detail)

    root = logging.getLogger("headwater")
    saved = root.handlers[:]
    # Logs go to stderr in the one headwater format (the live display re-renders below them on a
    # terminal); results to stdout.
    handler = ConsoleLogHandler(make_console(stderr=True))
    root.handlers = [handler]
    try:
        with progress:
            state = flow.run(parameters=parameters, run_on_schedule=run_on_schedule, on_task_state=on_task_state)
    finally:
        root.handlers = saved
    console.print(summary_table(flow, state))
    style = "green" if state.is_successful() else "red"
    console.print(f"[bold {style}]Flow run {state.name}:[/bold {style}] {escape(str(state.message))}")
    return state


def display_names(tasks: Any) -> dict[Any, str]:
    """Each task's name as written; the slug only where two tasks share a name."""
    tasks = list(tasks)
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.name] = counts.get(t.name, 0) + 1
    return {t: t.name if counts[t.name] == 1 else (t.slug or t.name) for t in tasks}


def _is_internal(task: Any) -> bool:
    """Constant tasks the engine adds for literal arguments: not something the user wrote."""
    from headwater.core.collections import Constant

    return isinstance(task, Constant)


def summary_table(flow: Any, state: Any) -> Any:
    """A rich table of every task's final state, in topological order (internal constant tasks hidden)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Flow {flow.name!r}")
    table.add_column("task")
    table.add_column("state")
    table.add_column("message", overflow="fold")
    results = state.result if isinstance(state.result, dict) else {}
    colors = {"Success": "green", "Mapped": "cyan", "Failed": "red", "TriggerFailed": "red", "TimedOut": "red",
              "Skipped": "dim", "Cached": "yellow", "Cancelled": "dim"}
    tasks = [t for t in flow.sorted_tasks() if not _is_internal(t)]
    names = display_names(tasks)
    for task in tasks:
        task_state = results.get(task)
        if task_state is None:
            table.add_row(escape(names[task]), "-", "not run")
            continue
        name = task_state.name
        if task_state.is_mapped():
            failed = sum(1 for s in task_state.map_states if s.is_failed())
            name = f"Mapped ({len(task_state.map_states)} items{', ' + str(failed) + ' failed' if failed else ''})"
        color = colors.get(task_state.name, "white")
        message = str(task_state.message or "").split("\n", 1)[0]
        table.add_row(escape(names[task]), f"[{color}]{name}[/{color}]", escape(message))
    return table
