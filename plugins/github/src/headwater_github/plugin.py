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
def before_flow_run(flow: Any, parameters: dict[str, Any], context: dict[str, Any]) -> None:
    """Log the commit a repository-stored flow runs, and record it in the run's context."""
    source = getattr(flow, SOURCE_ATTRIBUTE, None)
    if not source:
        return
    from headwater_github.project import announce

    announce(flow, source, context)
