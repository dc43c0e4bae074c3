"""headwater-docker: flows built into Docker images (``Docker`` storage), run in containers
(``DockerRun``), and the Docker task library (``headwater.tasks.docker``).

Works with any engine that speaks the Docker API, podman's included: ``[docker] base_url``
or ``DOCKER_HOST`` selects it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Docker": "headwater_docker.storage",
    "DockerBuildError": "headwater_docker.storage",
    "DockerRun": "headwater_docker.environment",
    "DockerSection": "headwater_docker.config",
    "docker_client": "headwater_docker.client",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater_docker' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
