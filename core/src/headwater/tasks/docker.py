"""The Docker task library (Prefect 1's ``prefect.tasks.docker``), provided by ``headwater-docker``.

``from headwater.tasks.docker import PullImage`` imports ``headwater_docker.tasks``; without the
plugin it raises ``ImportError: The Docker task library is in headwater-docker: pip install headwater-docker``.
"""

from __future__ import annotations

from typing import Any

__all__ = [  # noqa: F822 - resolved by __getattr__ from headwater-docker
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


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from headwater.plugins import import_plugin_module

    module = import_plugin_module("headwater_docker.tasks", "headwater-docker", "The Docker task library")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
