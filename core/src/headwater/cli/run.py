"""``headwater run FILE[:FLOW]``: run a flow locally with a live progress display and a summary table."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

__all__ = ["run", "parse_params", "run_flow_with_progress"]


def parse_params(values: tuple[str, ...]) -> dict[str, Any]:
    """``k=v`` pairs; values are parsed as JSON when they parse (numbers, true, lists), else kept as text."""
    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--param")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("target", required=False)
@click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE", help="A flow parameter (repeatable).")
@click.option("--schedule/--no-schedule", default=False, help="Follow the flow's schedule instead of running once.")
@click.option("--quiet", "-q", is_flag=True, help="No live display; just the summary.")
@click.option("--name", "flow_name", default=None, help="With --project: run a registered flow through the API.")
@click.option("--project", default=None, help="With --name: the project of the registered flow.")
@click.option("--label", "-l", "labels", multiple=True, help="With --name: a label of the new run (repeatable).")
@click.option("--watch", "-w", is_flag=True, help="With --name: follow the run's states and logs until it finishes.")
def run(
    target: str | None,
    params: tuple[str, ...],
    schedule: bool,
    quiet: bool,
    flow_name: str | None,
    project: str | None,
    labels: tuple[str, ...] = (),
    watch: bool = False,
) -> None:
    """Run a flow from TARGET locally: `path/to/file.py`, `path/to/file.py:FLOW_NAME`, or a `.yaml`/`.json` spec.

    Exits 0 when the flow run succeeds and 1 when it fails.
    """
    if target is None:
        if flow_name or project:
            sys.exit(_run_through_api(flow_name, project, parse_params(params), labels, watch))
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

    try:
        state = run_flow_with_progress(flow, parse_params(params), run_on_schedule=schedule, quiet=quiet)
    except ParameterError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    sys.exit(0 if state.is_successful() else 1)


def _run_through_api(flow_name: str | None, project: str | None, params: dict[str, Any], labels: tuple[str, ...],
                     watch: bool) -> int:
    """Delegate to the plugin registered as ``api_run`` ``default`` (headwater-cloud-api); its exit code."""
    from headwater.plugins import registry

    if not (flow_name and project):
        raise click.UsageError("Running a registered flow needs both --name FLOW and --project PROJECT.")
    runners = registry("api_run")
    if "default" not in runners:
        raise click.UsageError(
            "Running a registered flow through the API needs the cloud-api plugin: pip install headwater-cloud-api"
        )
    return int(runners.get("default")(flow_name, project, params, labels, watch))


def run_flow_with_progress(flow: Any, parameters: dict[str, Any], run_on_schedule: bool = False, quiet: bool = False) -> Any:
    """Run ``flow`` showing a live progress bar and log lines, then print a table of task states."""
    from rich.console import Console
    from rich.logging import RichHandler
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from headwater.engine.flow_runner import resolve_parameters

    resolve_parameters(flow, parameters)
    console = Console(stderr=False)
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
        detail = f"{task.slug}: {state.name}"
        if items["mapped_done"]:
            detail += f" | mapped items done: {items['mapped_done']}"
        if items["failed"]:
            detail += f" | [red]failed: {items['failed']}[/red]"
        progress.update(bar, detail=detail)

    root = logging.getLogger("headwater")
    saved = root.handlers[:]
    # Logs go to stderr (the live display re-renders below them on a terminal); results to stdout.
    handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False, rich_tracebacks=False)
    handler.setFormatter(logging.Formatter("%(name)s | %(message)s"))
    root.handlers = [handler]
    try:
        with progress:
            state = flow.run(parameters=parameters, run_on_schedule=run_on_schedule, on_task_state=on_task_state)
    finally:
        root.handlers = saved
    console.print(summary_table(flow, state))
    style = "green" if state.is_successful() else "red"
    console.print(f"[bold {style}]Flow run {state.name}:[/bold {style}] {state.message}")
    return state


def summary_table(flow: Any, state: Any) -> Any:
    """A rich table of every task's final state, in topological order."""
    from rich.table import Table

    table = Table(title=f"Flow {flow.name!r}")
    table.add_column("task")
    table.add_column("state")
    table.add_column("message", overflow="fold")
    results = state.result if isinstance(state.result, dict) else {}
    colors = {"Success": "green", "Mapped": "cyan", "Failed": "red", "TriggerFailed": "red", "TimedOut": "red",
              "Skipped": "dim", "Cached": "yellow", "Cancelled": "dim"}
    for task in flow.sorted_tasks():
        task_state = results.get(task)
        if task_state is None:
            table.add_row(task.slug, "-", "not run")
            continue
        name = task_state.name
        if task_state.is_mapped():
            failed = sum(1 for s in task_state.map_states if s.is_failed())
            name = f"Mapped ({len(task_state.map_states)} items{', ' + str(failed) + ' failed' if failed else ''})"
        color = colors.get(task_state.name, "white")
        table.add_row(task.slug, f"[{color}]{name}[/{color}]", task_state.message or "")
    return table
