"""``headwater plugins``: what is installed, whether it loaded, and what it provides."""

from __future__ import annotations

import json

import attrs
import click


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugin.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--hook", "hook", default=None, help="Only plugins implementing this hook.")
def plugins(show_all: bool, as_json: bool, hook: str | None) -> None:
    """List installed plugins: distribution, version, status, hooks and type tags."""
    from headwater.plugins._manager import get_plugin_manager, plugin_records

    if hook is not None and not hasattr(get_plugin_manager().hook, hook):
        known = ", ".join(sorted(n for n in dir(get_plugin_manager().hook) if not n.startswith("_")))
        raise click.BadParameter(f"no hook named {hook!r}; hooks: {known}", param_hint="--hook")
    records = [r for r in plugin_records() if show_all or not r.builtin]
    if hook is not None:
        records = [r for r in records if hook in r.hooks]
    if as_json:
        rows = []
        for r in records:
            row = attrs.asdict(r)
            row["tags"] = {k: v for k, v in r.tags.items() if k != "traceback"}
            rows.append(row)
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="headwater plugins")
    for column in ("name", "distribution", "version", "status", "hooks", "tags"):
        table.add_column(column)
    problems = []
    for r in records:
        tags = "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(r.tags.items()) if k != "traceback")
        table.add_row(r.name, r.distribution, r.version, r.status, ", ".join(r.hooks), tags)
        problems += [f"{r.name} ({r.distribution}): {text}" for text in ([r.error] if r.error else []) + r.warnings]
    if not records:
        click.echo("No plugins installed." + ("" if show_all else " (--all shows the built-in one)"))
        return
    console = Console()
    console.print(table)
    for problem in problems:  # below the table, unwrapped: these are the lines people copy
        console.print(problem, markup=False, highlight=False, soft_wrap=True)
