"""``headwater project create|list``."""

from __future__ import annotations

import click

from headwater_cloud_api.cli.common import api_errors, client, table

__all__ = ["project"]


@click.group()
def project() -> None:
    """Create and list projects."""


@project.command()
@click.argument("name")
@click.option("--description", "-d", default=None)
def create(name: str, description: str | None) -> None:
    """Create project NAME."""
    with api_errors():
        client().project(name=name).create(description=description)
    click.echo(f"Created project {name!r}.")


@project.command("list")
def list_() -> None:
    """List projects."""
    with api_errors():
        rows = client().graphql("{ projects(limit: 1000) { name description created } }")["projects"]
    table("Projects", ["name", "description", "created"], [[r["name"], r["description"], r["created"][:19]] for r in rows])
