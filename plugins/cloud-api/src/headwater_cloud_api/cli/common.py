"""Shared by the commands: the configured client, API errors as clean CLI errors, rich output."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["client", "api_errors", "console", "table", "make_console", "iso", "log_line"]


def make_console() -> Console:
    """Stdout as a rich console: the terminal's width on a terminal, full width (no cut columns) when piped."""
    is_tty = sys.stdout.isatty() if hasattr(sys.stdout, "isatty") else False
    return Console(highlight=False, soft_wrap=True, width=None if is_tty else 100_000)


console = make_console()


def iso(timestamp: str | None) -> str:
    """An API timestamp in the one headwater log format: ``2026-12-01T21:35:58.123Z`` (UTC)."""
    if not timestamp:
        return ""
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return timestamp
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def log_line(record: dict[str, Any]) -> str:
    """A log record of the API as the headwater format prints it: ``<ISO time> <LEVEL> <logger> | <message>``."""
    return f"{iso(record.get('timestamp'))} {record.get('level') or '':<7} {record.get('name') or ''} | {record.get('message')}"


def client() -> Any:
    """A ``headwater.Client`` from ``[cloud] api`` / ``api_key`` (``HEADWATER__CLOUD__API`` ...)."""
    from headwater import Client

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
        t.add_row(*["" if v is None else escape(str(v)) for v in row])  # values are text, not rich markup
    console.print(t)
