"""The plugin's hooks (only): the ``KubernetesRun`` environment, the ``[k8s]`` section, ``headwater k8s``.

Import-light on purpose: nothing here imports ``kubernetes``; the registry imports the
classes by their ``"module:Class"`` strings when a run config is first used.
"""

from __future__ import annotations

from typing import Any

from headwater.plugins import hookimpl

__all__ = ["register_environments", "register_config_sections", "register_commands"]

HEADWATER_PLUGIN_API = 1


@hookimpl
def register_environments(register: Any) -> None:
    register("headwater_k8s.run_config:KubernetesRun", "KubernetesRun")


@hookimpl
def register_config_sections(register: Any) -> None:
    from headwater_k8s.config import K8sSection

    register(K8sSection, "k8s")


@hookimpl
def register_commands(cli: Any) -> None:
    from headwater.plugins import LazyCommand

    cli.add_command(LazyCommand("k8s", "headwater_k8s.cli:k8s", "Kubernetes: print the agent's manifest."))
