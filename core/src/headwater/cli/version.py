"""``headwater version``."""

from __future__ import annotations

import platform

import click


@click.command()
def version() -> None:
    """Show the versions of headwater, Python and loaded plugins."""
    from headwater import __version__
    from headwater.plugins._manager import plugin_records

    click.echo(f"headwater {__version__}")
    click.echo(f"python {platform.python_version()} ({platform.python_implementation()})")
    for record in plugin_records():
        if not record.builtin:
            click.echo(f"{record.distribution} {record.version} ({record.status})")
