"""The entry-point module: hook implementations only, every class registered lazily."""

from __future__ import annotations

from typing import Any

import click

from headwater.plugins import hookimpl

HEADWATER_PLUGIN_API = 1


@hookimpl
def register_storage(register: Any) -> None:
    register("headwater_testplugin.heavy:DirStorage", "TestDir")


@hookimpl
def register_environments(register: Any) -> None:
    register("headwater_testplugin.heavy:InlineEnvironment", "TestInline")


@hookimpl
def register_task_types(register: Any) -> None:
    register("shout", "headwater_testplugin.tasks:shout")


@click.command("testplugin-hello")
@click.argument("name", default="world")
def hello(name: str) -> None:
    """Say hello (a command added by headwater-testplugin)."""
    click.echo(f"hello {name} from headwater-testplugin")


@hookimpl
def register_commands(cli: Any) -> None:
    cli.add_command(hello)
