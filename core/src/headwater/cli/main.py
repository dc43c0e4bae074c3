"""``headwater``: the root command group. Subcommands live in their own modules."""

from __future__ import annotations

import sys

import click

from headwater.cli.lazy import HeadwaterGroup, LazyCommand

__all__ = ["cli", "main"]

_CORE_COMMANDS = {
    "run": ("headwater.cli.run:run", "Run a flow from a file (.py, or a .yaml/.json spec) locally."),
    "version": ("headwater.cli.version:version", "Show the versions of headwater, Python and plugins."),
    "plugins": ("headwater.cli.plugins:plugins", "List installed plugins, their status, hooks and type tags."),
}


@click.group(cls=HeadwaterGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """headwater: workflow orchestration for Python."""


for _name, (_path, _help) in _CORE_COMMANDS.items():
    cli.add_command(LazyCommand(_name, _path, _help))

_plugins_loaded = False


def load_plugin_commands() -> None:
    """Let every plugin add its commands (``register_commands`` hook); a failing plugin is skipped."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from headwater.plugins.manager import call_register_hook

    class _Adder:
        def add_command(self, command: click.Command, name: str | None = None) -> None:
            cli.add_command(command, name)

    adder = _Adder()
    call_register_hook("register_commands", adder.add_command, cli=adder)


def main(argv: list[str] | None = None) -> None:
    load_plugin_commands()
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="headwater")
