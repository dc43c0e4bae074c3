"""``headwater register``: load flows from files and modules, register the changed ones, skip the unchanged.

With ``--watch`` it keeps running: every ``--interval`` seconds it compares the source files'
modification times and, after a change, registers again (unchanged flows are skipped in one
request, so only the edited flows get a new version).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from headwater.plugins import ExtensibleCommand
from headwater_cloud_api.cli.common import api_errors, client, console

__all__ = ["register"]


def _register_once(api: Any, project: str, paths: tuple[str, ...], modules: tuple[str, ...], names: tuple[str, ...],
                   labels: tuple[str, ...], force: bool, no_schedule: bool, ignore: tuple[str, ...] = (),
                   pattern: str | None = None) -> int:
    """Load and register every flow once; prints one line per flow and a summary; returns the number of errors."""
    from headwater_cloud_api.registration import ProjectNotFoundError, load_flows

    flows, errors = load_flows(paths, modules, names, ignore=ignore, pattern=pattern)
    try:
        with api_errors():
            results = api.registration().register_many(flows, project, labels=labels, force=force, schedule=not no_schedule)
    except ProjectNotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    counts = {"registered": 0, "skipped": 0, "error": 0}
    for result in [*errors, *results]:
        counts[result.status] += 1
        for warning in result.warnings:
            console.print(f"[yellow]Warning[/yellow]: {warning}")
        if result.status == "registered":
            console.print(f"  {result.name}: [green]Registered[/green] (version {result.version})")
        elif result.status == "skipped":
            console.print(f"  {result.name}: Skipped (metadata unchanged)")
        else:
            console.print(f"  {result.name}: [red]Error[/red] ({result.error})")
    console.print(f"{counts['registered']} registered, {counts['skipped']} skipped, {counts['error']} errors.")
    if not (flows or errors):
        console.print("No flows found.")
        return 1
    return counts["error"]


@click.command(cls=ExtensibleCommand)
@click.option("--project", required=True, help="The project (it must exist: `headwater project create P`).")
@click.option("--path", "-p", "paths", multiple=True, type=click.Path(exists=True),
              help="A flow file or a directory of them (repeatable). `-p` is --path, as in Prefect 1.")
@click.option("--module", "-m", "modules", multiple=True, help="An importable module defining flows (repeatable).")
@click.option("--name", "-n", "names", multiple=True, help="Only flows with this name (repeatable).")
@click.option("--label", "-l", "labels", multiple=True, help="Extra label for every flow's runs (repeatable).")
@click.option("--force", is_flag=True, help="Register a new version even when the metadata is unchanged.")
@click.option("--no-schedule", is_flag=True, help="Register with the schedule turned off.")
@click.option("--watch", is_flag=True, help="Keep running: register again whenever a source file changes (Ctrl-C stops).")
@click.option("--interval", type=float, default=1.0, show_default=True, help="With --watch: seconds between checks for changes.")
@click.option("--max-checks", type=int, default=None, hidden=True, help="With --watch: stop after this many checks (tests).")
@click.option("--ignore", "ignore", multiple=True, metavar="GLOB",
              help="In a --path folder, skip files matching this gitignore-style pattern (repeatable; adds to .headwaterignore).")
@click.option("--pattern", default=None, metavar="GLOB",
              help="In a --path folder, import the files matching this glob (e.g. 'flows/*.py') instead of those mentioning Flow.")
def register(project: str, paths: tuple[str, ...], modules: tuple[str, ...], names: tuple[str, ...],
             labels: tuple[str, ...], force: bool, no_schedule: bool, watch: bool, interval: float,
             max_checks: int | None, ignore: tuple[str, ...] = (), pattern: str | None = None) -> None:
    """Register every flow found; prints Registered / Skipped / Error per flow and exits 1 if any failed.

    In a --path folder, only ``*.py`` files that mention ``Flow`` (or match --pattern) are imported,
    skipping hidden files and those matched by ``.headwaterignore`` or --ignore: helper scripts never run.
    """
    if not paths and not modules:
        raise click.UsageError("Give at least one --path or --module.")
    api = client()
    failed = _register_once(api, project, paths, modules, names, labels, force, no_schedule, ignore, pattern)
    if not watch:
        if failed:
            sys.exit(1)
        return
    from headwater_cloud_api.registration import watch_sources

    console.print(f"Watching {len(paths) + len(modules)} source(s) for changes every {interval:g} s (Ctrl-C stops).")

    def again() -> None:
        console.print("[bold]Change detected[/bold]: registering again.")
        try:
            _register_once(api, project, paths, modules, names, labels, False, no_schedule, ignore, pattern)
        except click.ClickException as exc:  # the API went away or the project was deleted: report, keep watching
            console.print(f"[red]Error[/red]: {exc.format_message()}")

    watch_sources(again, paths, modules, interval=interval, max_checks=max_checks)
