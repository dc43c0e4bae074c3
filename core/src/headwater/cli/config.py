"""``headwater config``: show the effective configuration (secrets always masked) and where the file is."""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["config", "show", "path"]


@click.group("config")
def config() -> None:
    """Show the effective configuration: config.toml, HEADWATER__* env vars and defaults."""


def _load() -> Any:
    from headwater.config import ConfigError, get_config

    try:
        return get_config(reload=True).validate()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _cell(value: Any) -> str:
    from headwater.config import MASK
    from headwater.config._toml import format_value

    if value is None:
        return "(not set)"
    if value == MASK:
        return MASK
    if isinstance(value, dict) and not value:
        return "{}"
    return format_value(value)


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--toml", "as_toml", is_flag=True, help="Print TOML (a valid config.toml) instead of a table.")
def show(as_json: bool, as_toml: bool) -> None:
    """Print every key with its value and where it came from. Secret values are always shown as ********."""
    if as_json and as_toml:
        raise click.UsageError("Choose one of --json and --toml.")
    cfg = _load()
    if as_json:
        click.echo(json.dumps(cfg.to_dict(mask=True), indent=2, default=str))
        return
    if as_toml:
        from headwater.config._toml import dumps

        click.echo(f"# Effective headwater configuration (file: {cfg.path}); secrets are masked.")
        click.echo(dumps(cfg.to_dict(mask=True)), nl=False)
        return
    import shutil

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"headwater configuration ({cfg.path})", title_justify="left")
    table.add_column("Key", no_wrap=True)
    table.add_column("Value", overflow="fold")
    table.add_column("Source", overflow="fold")
    for key, value, source in cfg.rows():
        table.add_row(Text(key), Text(_cell(value)), Text(source.short()))  # Text: no rich markup in values
    Console(width=max(120, shutil.get_terminal_size().columns)).print(table)


@config.command("path")
def path() -> None:
    """Print the path of the configuration file (HEADWATER_HOME/config.toml) and whether it exists."""
    from headwater.config import config_path

    file = config_path()
    click.echo(f"{file}{'' if file.exists() else '  (does not exist: defaults and env vars apply)'}")
