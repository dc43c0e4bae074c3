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


class _CoreGroup(HeadwaterGroup):
    """The root group: an unknown command that a headwater plugin provides says what to install."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = click.utils.make_str(args[0]) if args else None
        if name is not None and self.get_command(ctx, name) is None:
            dist = _known_command_distribution(name)
            if dist is not None:
                ctx.fail(f"`headwater {name}` comes from the plugin {dist}, which is not installed (or failed to "
                         f"load: see `headwater plugins`). Install it with: pip install {dist}")
        return super().resolve_command(ctx, args)


def _known_command_distribution(name: str) -> str | None:
    try:
        from headwater.plugins.known import KNOWN_IMPLEMENTATIONS
    except ImportError:  # pragma: no cover - the table is part of the core
        return None
    return KNOWN_IMPLEMENTATIONS.get("command", {}).get(name)


def _version() -> str:
    from headwater._version import __version__

    return __version__


@click.group(cls=_CoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(_version(), "--version", "-V", prog_name="headwater", message="%(prog)s %(version)s")
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
    from headwater.plugins._manager import call_register_hook

    class _Adder:
        def add_command(self, command: click.Command, name: str | None = None) -> None:
            cli.add_command(command, name)

    adder = _Adder()
    call_register_hook("register_commands", adder.add_command, cli=adder)


def main(argv: list[str] | None = None) -> None:
    """The ``headwater`` command: configure logging (``[logging]``), add plugin commands, run."""
    from headwater.utilities.logging import configure_logging

    configure_logging()
    load_plugin_commands()
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="headwater")
