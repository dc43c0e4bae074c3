"""The plugin's hooks: ``Docker`` storage, the ``DockerRun`` environment, the ``[docker]`` section.

Import-light on purpose: nothing here imports the docker SDK; the registry imports the
classes by their lazy ``"module:Class"`` strings when a flow first needs them.
"""

from __future__ import annotations

from headwater.plugins import Registrar, hookimpl

HEADWATER_PLUGIN_API = 1

__all__ = ["register_storage", "register_environments", "register_config_sections"]


@hookimpl
def register_storage(register: Registrar) -> None:
    register("headwater_docker.storage:Docker", "Docker")


@hookimpl
def register_environments(register: Registrar) -> None:
    register("headwater_docker.environment:DockerRun", "DockerRun")


@hookimpl
def register_config_sections(register: Registrar) -> None:
    register("headwater_docker.config:DockerSection", "docker")
