"""Commands imported only when used, so ``headwater --help`` stays fast and import-light."""

from __future__ import annotations

from typing import Any

import click

from headwater.plugins._registry import import_string

__all__ = ["LazyCommand", "HeadwaterGroup", "ExtensibleCommand"]


class LazyCommand(click.Command):
    """A placeholder for the click command at ``"module:attr"``; ``short_help`` is shown without importing."""

    def __init__(self, name: str, path: str, short_help: str) -> None:
        super().__init__(name, short_help=short_help, help=short_help)
        self.path = path

    def load(self) -> click.Command:
        command = import_string(self.path)
        if not isinstance(command, click.Command):
            raise click.ClickException(f"{self.path} is not a click command.")
        return command


class ExtensibleCommand(click.Command):
    """A core command that plugins may add options to (the ``extend_command`` hook).

    An option that only an uninstalled plugin adds is an error that says what to install
    (``headwater run --name X`` without headwater-cloud-api).
    """

    extensible = True

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            from headwater.plugins.known import KNOWN_IMPLEMENTATIONS

            dist = KNOWN_IMPLEMENTATIONS.get(f"{self.name}_option", {}).get(exc.option_name.split("=", 1)[0])
            if dist is None:
                raise
            raise click.UsageError(
                f"No such option: {exc.option_name}. `headwater {self.name} {exc.option_name}` comes from the plugin "
                f"{dist}, which is not installed (or failed to load: see `headwater plugins`). Install it with: "
                f"pip install {dist}",
                ctx,
            ) from None


class HeadwaterGroup(click.Group):
    """A click group that resolves :class:`LazyCommand` entries on first use."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if isinstance(command, LazyCommand):
            command = command.load()
            command.name = cmd_name
            self.commands[cmd_name] = command
            if getattr(command, "extensible", False):
                from headwater.plugins._manager import get_plugin_manager

                get_plugin_manager().hook.extend_command(name=cmd_name, command=command)
        return command

    def format_commands(self, ctx: click.Context, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.commands[name]
            if command.hidden:
                continue
            rows.append((name, command.get_short_help_str(limit=formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
