"""Shared by the commands: the configured client, API errors as clean CLI errors, rich output."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click
from rich.console import Console
from rich.table import Table

__all__ = ["client", "api_errors", "console", "table"]

console = Console(highlight=False, soft_wrap=True)


def client() -> Any:
    """A ``headwater.Client`` from ``[cloud] api`` / ``api_key`` (``HEADWATER__CLOUD__API`` ...)."""
    from headwater.client import Client

    return Client()


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
    """Turn API and connection errors into a one-line ``Error: ...`` with exit code 1."""
    from headwater_cloud_api.client.transport import APIClientError

    try:
        yield
    except APIClientError as exc:
        raise click.ClickException(str(exc)) from None


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title, title_justify="left")
    for column in columns:
        is_id = column == "id"  # ids are copied into other commands: never wrapped
        t.add_column(column, no_wrap=is_id, min_width=36 if is_id else None)
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    console.print(t)
