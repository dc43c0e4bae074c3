"""``headwater kv set|get|delete|list``: the API's key-value store (values are JSON; plain text is stored as a string)."""

from __future__ import annotations

import json

import click

from headwater_cloud_api.cli.common import api_errors, client

__all__ = ["kv"]


@click.group()
def kv() -> None:
    """The API's key-value store: set, get, delete, list."""


@kv.command("set")
@click.argument("key")
@click.argument("value")
def set_(key: str, value: str) -> None:
    """Store VALUE (JSON if it parses, else the text) under KEY."""
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    with api_errors():
        client().kv().set(key, parsed)
    click.echo(f"Set {key!r}.")


@kv.command()
@click.argument("key")
def get(key: str) -> None:
    """Print the value of KEY as JSON."""
    with api_errors():
        click.echo(json.dumps(client().kv().get(key)))


@kv.command()
@click.argument("key")
def delete(key: str) -> None:
    with api_errors():
        client().kv().delete(key)
    click.echo(f"Deleted {key!r}.")


@kv.command("list")
def list_() -> None:
    with api_errors():
        for key in client().kv().list():
            click.echo(key)
