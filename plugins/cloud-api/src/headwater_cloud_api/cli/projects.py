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
@click.option("--skip-if-exists", is_flag=True, help="Succeed quietly when the project already exists (for scripts).")
def create(name: str, description: str | None, skip_if_exists: bool = False) -> None:
    """Create project NAME."""
    from headwater_cloud_api.client.transport import APIClientError

    with api_errors():
        try:
            client().project(name=name).create(description=description)
        except APIClientError as exc:
            if not (skip_if_exists and exc.code == "CONFLICT"):
                raise
            click.echo(f"Project {name!r} already exists; skipping.")
            return
    click.echo(f"Created project {name!r}.")


@project.command("list")
def list_() -> None:
    """List projects."""
    with api_errors():
        rows = client().graphql("{ projects(limit: 1000) { name description created } }")["projects"]
    table("Projects", ["name", "description", "created"], [[r["name"], r["description"], r["created"][:19]] for r in rows])
