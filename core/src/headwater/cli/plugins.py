"""``headwater plugins``: what is installed, whether it loaded, and what it provides."""

from __future__ import annotations

import json

import attrs
import click

_STATUS_STYLE = {"loaded": "green", "broken": "bold red", "failed": "bold red", "incompatible": "yellow", "blocked": "dim"}


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugin.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--hook", "hook", default=None, help="Only plugins implementing this hook.")
def plugins(show_all: bool, as_json: bool, hook: str | None) -> None:
    """List installed plugins: version, distribution, status, the hooks each implements and the names it registered."""
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
    from rich.text import Text

    if not records:
        click.echo("No plugins installed." + ("" if show_all else " (--all shows the built-in one)"))
        return
    console = Console()
    problems = []
    for r in records:
        # One block per plugin: a heading line, then its hooks and the names it registered,
        # wrapped to the terminal (a column-per-field table squeezes them into unreadable cells).
        heading = Text.assemble(
            (r.name, "bold"), f" {r.version} ({r.distribution}) ", (r.status, _STATUS_STYLE.get(r.status, "")),
            " built-in" if r.builtin else "",
        )
        console.print(heading)
        lines = [("hooks", ", ".join(r.hooks) or "-")]
        lines += [(kind, ", ".join(names)) for kind, names in sorted(r.tags.items()) if kind != "traceback"]
        if console.is_terminal:
            details = Table.grid(padding=(0, 2))
            details.add_column(style="dim", no_wrap=True)
            details.add_column()
            for label, value in lines:
                details.add_row(f"  {label}", value)
            console.print(details)
        else:
            width = max(len(label) for label, _ in lines)
            for label, value in lines:
                console.print(f"  {label:<{width}}  {value}", markup=False, highlight=False, soft_wrap=True)
        problems += [f"{r.name} ({r.distribution}): {text}" for text in ([r.error] if r.error else []) + r.warnings]
    if problems:
        console.print()
    for problem in problems:  # below the table, unwrapped: these are the lines people copy
        console.print(problem, markup=False, highlight=False, soft_wrap=True)
