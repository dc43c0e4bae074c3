"""The Docker task library (``PullImage``, ``CreateContainer``, ``WaitOnContainer`` ...): lives in headwater-docker.

``from headwater.tasks.docker import PullImage`` re-exports ``headwater_docker.tasks``; without the
plugin installed the import fails with ``pip install headwater-docker``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "PullImage",
    "BuildImage",
    "PushImage",
    "TagImage",
    "RemoveImage",
    "ListImages",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "WaitOnContainer",
    "GetContainerLogs",
    "RemoveContainer",
    "ListContainers",
]


def _module() -> Any:
    from headwater.plugins import import_plugin_module

    return import_plugin_module("headwater_docker.tasks", "headwater-docker", "The Docker task library")


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    try:
        return getattr(_module(), name)
    except AttributeError:
        raise AttributeError(f"module 'headwater.tasks.docker' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted(__all__)
