"""``headwater register``: load flows from files and modules, register the changed ones, skip the unchanged.

With ``--watch`` it keeps running: every ``--interval`` seconds it compares the source files'
modification times and, after a change, registers again (unchanged flows are skipped in one
request, so only the edited flows get a new version). ``--dry-run`` says what would be
registered, bumped or skipped without writing anything; ``--json`` prints one JSON document
for scripts instead of the lines. Prefect 1's legacy ``register flow --file F --project P``
still works, with a deprecation warning.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

import click

from headwater.plugins import ExtensibleCommand
from headwater_cloud_api.cli.common import api_errors, client, console

__all__ = ["register", "RegisterCommand"]


def _register_once(api: Any, project: str, paths: tuple[str, ...], modules: tuple[str, ...], names: tuple[str, ...],
                   labels: tuple[str, ...], force: bool, no_schedule: bool, ignore: tuple[str, ...] = (),
                   pattern: str | None = None, dry_run: bool = False, as_json: bool = False) -> int:
    """Load and register every flow once; prints one line per flow and a summary; returns the number of errors."""
    from headwater_cloud_api.registration import ProjectNotFoundError, load_flows

    # With --json, stdout carries the JSON document only: what flow files print goes to stderr.
    with contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
        flows, errors = load_flows(paths, modules, names, ignore=ignore, pattern=pattern)
    try:
        with api_errors(), contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext():
            results = api.registration().register_many(flows, project, labels=labels, force=force,
                                                       schedule=not no_schedule, dry_run=dry_run)
    except ProjectNotFoundError as exc:
        if as_json:
            _print_json(project, dry_run, [], str(exc))
            sys.exit(1)
        raise click.ClickException(str(exc)) from None
    every = [*errors, *results]
    for result in errors:
        result.dry_run = dry_run
    counts = {"registered": 0, "skipped": 0, "error": 0}
    for result in every:
        counts[result.status] += 1
    if as_json:
        _print_json(project, dry_run, every, None if (flows or errors) else "No flows found.")
        return counts["error"] if (flows or errors) else 1
    would = "Would register" if dry_run else "Registered"
    for result in every:
        for warning in result.warnings:
            console.print(f"[yellow]Warning[/yellow]: {warning}")
        if result.status == "registered":
            if dry_run and result.action == "bump":
                console.print(f"  {result.name}: [green]Would bump[/green] (version {result.previous_version} -> "
                              f"{result.version})")
            elif dry_run:
                console.print(f"  {result.name}: [green]{would}[/green] (new flow, version {result.version})")
            else:
                console.print(f"  {result.name}: [green]Registered[/green] (version {result.version})")
        elif result.status == "skipped" and dry_run:
            console.print(f"  {result.name}: Would skip (metadata unchanged, version {result.version})")
        elif result.status == "skipped":
            console.print(f"  {result.name}: Skipped (metadata unchanged)")
        else:
            console.print(f"  {result.name}: [red]Error[/red] ({result.error})")
    if dry_run:
        bumps = sum(1 for r in every if r.status == "registered" and r.action == "bump")
        console.print(f"Dry run: {counts['registered'] - bumps} would be registered, {bumps} bumped, "
                      f"{counts['skipped']} skipped, {counts['error']} errors. Nothing was written.")
    else:
        console.print(f"{counts['registered']} registered, {counts['skipped']} skipped, {counts['error']} errors.")
    if not (flows or errors):
        console.print("No flows found.")
        return 1
    return counts["error"]


def _print_json(project: str, dry_run: bool, results: list[Any], error: str | None) -> None:
    """One JSON document on stdout: the project, whether it was a dry run, one entry per flow, the counts."""
    counts = {"registered": 0, "skipped": 0, "error": 0, "new": 0, "bump": 0, "skip": 0}
    for result in results:
        counts[result.status] += 1
        if result.action in ("new", "bump", "skip"):
            counts[result.action] += 1
    document = {"project": project, "dry_run": dry_run, "flows": [r.to_json() for r in results], "counts": counts,
                "error": error}
    click.echo(json.dumps(document, indent=2, sort_keys=True))


_LEGACY_HINT = ("`headwater register flow --file FILE --project P` is deprecated (Prefect 1's legacy form); "
                "use `headwater register --project P --path FILE`.")


def _legacy_args(args: list[str]) -> list[str]:
    """Prefect 1's ``register flow --file F --project P [-n NAME] [-l LABEL] [--skip-if-flow-metadata-unchanged]``.

    In that form ``-f`` is ``--file`` and ``-p`` is ``--project``, as they were; it bumps the
    version every time unless ``--skip-if-flow-metadata-unchanged`` is given (Prefect 1's
    behaviour), i.e. it is ``--force`` without that flag.
    """
    out: list[str] = []
    skip_unchanged = False
    rest = iter(args[1:])
    for arg in rest:
        name, eq, value = arg.partition("=")
        if name in ("--file", "-f"):
            out += ["--path", value if eq else next(rest, "")]
        elif name in ("--project", "-p"):
            out += ["--project", value if eq else next(rest, "")]
        elif name == "--skip-if-flow-metadata-unchanged":
            skip_unchanged = True
        else:
            out.append(arg)
    if not skip_unchanged and "--force" not in out:
        out.append("--force")
    return out


class RegisterCommand(ExtensibleCommand):
    """``register`` that also understands Prefect 1's legacy ``register flow --file F --project P``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] == "flow":
            click.echo(f"Warning: {_LEGACY_HINT}", err=True)
            args = _legacy_args(list(args))
        return super().parse_args(ctx, args)


@click.command(cls=RegisterCommand)
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
@click.option("--dry-run", is_flag=True,
              help="Say what would be registered, bumped or skipped; build no storage and change nothing in the API.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (every flow's result and the counts) for scripts.")
def register(project: str, paths: tuple[str, ...], modules: tuple[str, ...], names: tuple[str, ...],
             labels: tuple[str, ...], force: bool, no_schedule: bool, watch: bool, interval: float,
             max_checks: int | None, ignore: tuple[str, ...] = (), pattern: str | None = None,
             dry_run: bool = False, as_json: bool = False) -> None:
    """Register every flow found; prints Registered / Skipped / Error per flow and exits 1 if any failed.

    In a --path folder, only ``*.py`` files that mention ``Flow`` (or match --pattern) are imported,
    skipping hidden files and those matched by ``.headwaterignore`` or --ignore: helper scripts never run.
    """
    if not paths and not modules:
        raise click.UsageError("Give at least one --path or --module.")
    if watch and (dry_run or as_json):
        raise click.UsageError("--watch keeps registering; it cannot be combined with --dry-run or --json.")
    api = client()
    failed = _register_once(api, project, paths, modules, names, labels, force, no_schedule, ignore, pattern,
                            dry_run=dry_run, as_json=as_json)
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
