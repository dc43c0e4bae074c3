"""The module the ``headwater`` entry point names: hook implementations only (import-light).

Classes are registered as lazy ``"module:Class"`` strings; ``before_flow_run`` logs the commit
a flow loaded from GitHub/Git storage runs and puts it into the run's context.
"""

from __future__ import annotations

from typing import Any

from headwater.plugins import hookimpl

HEADWATER_PLUGIN_API = 1
"""The plugin API this plugin was written for."""

SOURCE_ATTRIBUTE = "_headwater_repo_source"
"""The attribute :meth:`GitHub.get_flow` / :meth:`Git.get_flow` set on the flows they load."""


@hookimpl
def register_storage(register: Any) -> None:
    """``GitHub`` and ``Git`` are the ``"type"`` tags of the serialized storages (Prefect 1 names)."""
    register("headwater_github.github:GitHub", "GitHub")
    register("headwater_github.git:Git", "Git")


@hookimpl
def register_config_sections(register: Any) -> None:
    """``[github]``: cache size and directory, retries, timeouts, pin-at-registration."""
    register("headwater_github.config:GitHubSection", "github")


@hookimpl
def extend_command(name: str, command: Any) -> None:
    """``headwater register --pin``: resolve every GitHub/Git ref at registration (when ``register`` is extensible)."""
    if name != "register" or any(getattr(p, "name", None) == "github_pin" for p in command.params):
        return
    import click

    def pin(ctx: Any, param: Any, value: bool) -> bool:
        if value:
            from headwater_github import config

            config.PIN_OVERRIDE = True
        return value

    command.params.append(click.Option(
        ["--pin", "github_pin"], is_flag=True, expose_value=False, callback=pin, is_eager=True,
        help="GitHub/Git storage: resolve the ref to a commit now; every run uses that commit.",
    ))


@hookimpl
def before_flow_run(flow: Any, parameters: dict[str, Any], context: dict[str, Any]) -> None:
    """Log the commit a repository-stored flow runs, and record it in the run's context."""
    source = getattr(flow, SOURCE_ATTRIBUTE, None)
    if not source:
        return
    from headwater_github.project import announce

    announce(flow, source, context)
