"""The ``[docker]`` configuration section (``config.toml`` or ``HEADWATER__DOCKER__*`` variables)."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["DockerSection", "docker_settings"]


@attrs.define
class DockerSection:
    """``[docker]``: which engine to use and how containers reach the API.

    - ``base_url``: the engine's address (``unix:///run/podman/podman.sock``,
      ``tcp://host:2375``); empty means ``DOCKER_HOST``, then the platform default socket.
    - ``api_url_for_containers``: the orchestration API's URL as a flow-run container sees it.
      Empty means: the agent's own API URL when the container shares the host network
      (``network_mode="host"``, the usual Linux setup), else the agent's URL with a loopback
      host replaced by ``container_host`` (Docker Desktop on macOS/Windows, podman machines).
    - ``container_host``: the name containers use for the host (``host.docker.internal``;
      podman: ``host.containers.internal``).
    - ``keep_containers``: keep finished flow-run containers (for debugging) instead of removing them.
    - ``timeout``: seconds an engine API call may take (builds and pushes stream, so they are not cut).
    - ``wheel_cache``: where wheels of the host's editable distributions are cached between builds
      (empty: ``<headwater home>/docker/wheels``).
    - ``registry_username`` / ``registry_password_secret``: credentials for pushing and pulling
      flow images: a username and the *name* of the secret holding the password (resolved where
      the push or pull happens: the registering machine, the agent). Without them the engine
      client's ``docker login`` credentials (``~/.docker/config.json``) are used.
    - ``registry``: the registry host those credentials are for (empty: the host of the Docker
      storage's ``registry_url``); they are never sent to another registry.
    """

    base_url: str | None = None
    api_url_for_containers: str | None = None
    container_host: str = "host.docker.internal"
    keep_containers: bool = False
    timeout: float = 120.0
    wheel_cache: str | None = None
    registry_username: str | None = None
    registry_password_secret: str | None = None
    registry: str | None = None


def docker_settings() -> DockerSection:
    """The effective ``[docker]`` section (defaults when the configuration cannot be read)."""
    from headwater.plugins import get_config

    try:
        section: Any = get_config().section("docker")
    except Exception:
        return DockerSection()
    return section if isinstance(section, DockerSection) else DockerSection()
