"""One way to get a Docker SDK client: ``base_url`` argument, then ``[docker] base_url``, then ``DOCKER_HOST``."""

from __future__ import annotations

import os
from typing import Any

__all__ = ["docker_client", "engine_url", "DockerEngineError"]


class DockerEngineError(RuntimeError):
    """The Docker engine cannot be reached or refused a request (the message says which and how to fix it)."""


def engine_url(base_url: str | None = None) -> str | None:
    """The engine address in effect: the argument, ``[docker] base_url``, ``DOCKER_HOST``, else None (SDK default)."""
    if base_url:
        return base_url
    from headwater_docker.config import docker_settings

    return docker_settings().base_url or os.environ.get("DOCKER_HOST") or None


def docker_client(base_url: str | None = None, timeout: float | None = None) -> Any:
    """A ``docker.DockerClient`` for the selected engine, checked with a ping.

    Raises :class:`DockerEngineError` naming the address when the engine does not answer.
    """
    from docker.errors import DockerException

    import docker
    from headwater_docker.config import docker_settings

    url = engine_url(base_url)
    timeout = timeout if timeout is not None else docker_settings().timeout
    try:
        if url:
            client = docker.DockerClient(base_url=url, timeout=int(timeout))
        else:
            client = docker.from_env(timeout=int(timeout))
        client.ping()
    except (DockerException, OSError) as exc:
        where = url or "the default socket (DOCKER_HOST is not set)"
        raise DockerEngineError(
            f"Cannot reach the Docker engine at {where}: {exc}. Start the engine (Docker, or podman with "
            "`podman system service --time=0 unix:///run/podman/podman.sock`) and point headwater at it with "
            "[docker] base_url, HEADWATER__DOCKER__BASE_URL or DOCKER_HOST."
        ) from exc
    return client


def engine_get_json(path: str, base_url: str | None = None, timeout: float = 10.0) -> Any:
    """``GET path`` on the engine's API without the docker SDK (fast: no SDK import); None on 404.

    For ``unix://`` and ``tcp://``/``http://`` engines only; raises :class:`DockerEngineError` for
    others (TLS, ssh) and when the engine does not answer, so callers fall back to the SDK.
    """
    import http.client
    import json
    import socket
    from urllib.parse import quote, urlsplit

    url = engine_url(base_url) or "unix:///var/run/docker.sock"
    parts = urlsplit(url)
    connection: http.client.HTTPConnection
    if parts.scheme in ("unix", "http+unix"):
        sock_path = parts.path

        class _UnixConnection(http.client.HTTPConnection):
            def connect(self) -> None:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(sock_path)

        connection = _UnixConnection("localhost", timeout=timeout)
    elif parts.scheme in ("tcp", "http") and os.environ.get("DOCKER_TLS_VERIFY") in (None, "", "0"):
        connection = http.client.HTTPConnection(parts.hostname or "localhost", parts.port or 2375, timeout=timeout)
    else:
        raise DockerEngineError(f"engine_get_json does not speak {parts.scheme}:// (use the docker SDK).")
    try:
        connection.request("GET", quote(path, safe="/?=&:@"))
        response = connection.getresponse()
        body = response.read()
    except OSError as exc:
        raise DockerEngineError(f"the engine at {url} did not answer GET {path}: {exc}") from exc
    finally:
        connection.close()
    if response.status == 404:
        return None
    if response.status >= 400:
        raise DockerEngineError(f"the engine at {url} answered GET {path} with {response.status}: {body[:300]!r}")
    return json.loads(body)
