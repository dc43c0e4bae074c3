"""Shared by the docker tests (a uniquely named module: every test folder has a ``conftest``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "Engine", "Built", "REGISTRY_USER", "REGISTRY_PASSWORD"]

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root."""

REGISTRY_USER = "hw-pusher"
REGISTRY_PASSWORD = "correct-horse-42"
"""The one account of the session's password-protected registry (conftest's ``auth_registry``)."""


class Engine:
    """The session's engine and registry: ``base_url``, ``registry`` (``127.0.0.1:PORT``), ``client()``."""

    def __init__(self, base_url: str, registry: str, workdir: Path, service_pid: int | None = None) -> None:
        self.base_url = base_url
        self.registry = registry
        self.workdir = workdir
        self.service_pid = service_pid
        """The ``podman system service`` process (its working directory is ``workdir``)."""

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.base_url)


@dataclasses.dataclass
class Built:
    """The session's built storage, its flow, the build's output lines and the project directory."""

    storage: Any
    flow: Any
    lines: list[str]
    project: Path
