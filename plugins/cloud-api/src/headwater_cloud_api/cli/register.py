"""``headwater register``: load flows from files and modules, register the changed ones, skip the unchanged."""

from __future__ import annotations

import sys

import click

from headwater_cloud_api.cli.common import api_errors, client, console

__all__ = ["register"]


@click.command()
@click.option("--project", "-p", required=True, help="The project (it must exist: `headwater project create P`).")
@click.option("--path", "paths", multiple=True, type=click.Path(exists=True), help="A flow file or a directory of them (repeatable).")
@click.option("--module", "-m", "modules", multiple=True, help="An importable module defining flows (repeatable).")
@click.option("--name", "-n", "names", multiple=True, help="Only flows with this name (repeatable).")
@click.option("--label", "-l", "labels", multiple=True, help="Extra label for every flow's runs (repeatable).")
@click.option("--force", is_flag=True, help="Register a new version even when the metadata is unchanged.")
@click.option("--no-schedule", is_flag=True, help="Register with the schedule turned off.")
def register(project: str, paths: tuple[str, ...], modules: tuple[str, ...], names: tuple[str, ...],
             labels: tuple[str, ...], force: bool, no_schedule: bool) -> None:
    """Register every flow found; prints Registered / Skipped / Error per flow and exits 1 if any failed."""
    from headwater_cloud_api.registration import ProjectNotFoundError, load_flows

    if not paths and not modules:
        raise click.UsageError("Give at least one --path or --module.")
    flows, errors = load_flows(paths, modules, names)
    try:
        with api_errors():
            results = client().registration().register_many(flows, project, labels=labels, force=force, schedule=not no_schedule)
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
    if counts["error"] or not (flows or errors):
        if not (flows or errors):
            console.print("No flows found.")
        sys.exit(1)
