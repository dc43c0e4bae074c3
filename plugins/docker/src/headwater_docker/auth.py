"""Credentials for image registries: ``docker login``'s (Prefect 1's way) or ``[docker]``'s, never serialized.

Two sources, the first that applies wins:

1. ``[docker] registry_username`` and ``registry_password_secret`` (the *name* of a secret,
   resolved with :class:`headwater.plugins.Secret` when a push, pull or registry check needs it,
   on the registering machine and on the agent). They apply to ``[docker] registry`` when that
   is set, else to the registry of the Docker storage's ``registry_url``, so they are never sent
   to another registry.
2. The engine client's configuration: ``~/.docker/config.json`` (or ``$DOCKER_CONFIG``) ``auths``
   and credential helpers, written by ``docker login`` / ``podman login --authfile``. The
   docker SDK sends those itself on push and pull; headwater reads them for its own registry
   checks (is the image already there?).

A :class:`RegistryCredentials` never shows its password (``repr``, ``describe``) and is never
part of a storage's or run config's metadata.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["RegistryCredentials", "RegistryAuthError", "credentials_for", "registry_of", "registry_request"]


class RegistryAuthError(RuntimeError):
    """The credentials for a registry cannot be read (the message names the secret or file and the fix)."""


@attrs.define(repr=False)
class RegistryCredentials:
    """A username and password for one registry host, and where they came from (for messages)."""

    host: str
    username: str
    password: str = attrs.field(repr=False)
    source: str

    def __repr__(self) -> str:
        return f"RegistryCredentials(host={self.host!r}, username={self.username!r}, source={self.source!r})"

    def auth_config(self) -> dict[str, str]:
        """The docker SDK's ``auth_config`` for push and pull."""
        return {"username": self.username, "password": self.password, "serveraddress": self.host}

    def basic(self) -> str:
        """An HTTP ``Authorization: Basic`` value."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def registry_of(ref: str) -> str | None:
    """The registry host of an image reference or ``registry_url`` (``127.0.0.1:5000/etl/x:1`` -> ``127.0.0.1:5000``)."""
    first, _, rest = ref.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def configured_credentials(host: str | None, storage_registry: str | None) -> RegistryCredentials | None:
    """``[docker] registry_username`` / ``registry_password_secret`` when they apply to ``host``."""
    from headwater_docker.config import docker_settings

    settings = docker_settings()
    if not settings.registry_username or not settings.registry_password_secret or host is None:
        return None
    for_host = settings.registry or storage_registry
    if for_host != host:
        return None
    from headwater.plugins import Secret

    name = settings.registry_password_secret
    try:
        password = Secret(name).get()
    except Exception as exc:  # SecretNotFoundError and friends: say which secret and how to provide it
        raise RegistryAuthError(
            f"[docker] registry_password_secret names the secret {name!r}, which cannot be read here ({type(exc).__name__}); "
            f"provide it on this machine (HEADWATER__CONTEXT__SECRETS__{name.upper()}, [context.secrets] or a secrets "
            f"plugin) so headwater can log in to {host} as {settings.registry_username!r}."
        ) from None
    if not isinstance(password, str) or not password:
        raise RegistryAuthError(f"The secret {name!r} ([docker] registry_password_secret) is empty or not a string.")
    return RegistryCredentials(host, settings.registry_username, password,
                               f"[docker] registry_username {settings.registry_username!r} with the password of secret {name!r}")


def docker_config_credentials(host: str) -> RegistryCredentials | None:
    """The credentials ``docker login`` stored for ``host`` (``~/.docker/config.json`` / ``$DOCKER_CONFIG``)."""
    try:
        from docker import auth
    except ImportError:  # pragma: no cover - the docker SDK is a dependency
        return None
    try:
        resolved = auth.resolve_authconfig(auth.load_config(), host) or {}
    except Exception:  # noqa: BLE001 - a broken config or credential helper: the engine reports it on push/pull
        return None
    username = resolved.get("username") or resolved.get("Username")
    password = resolved.get("password") or resolved.get("Password")
    if not username or not password:
        return None
    return RegistryCredentials(host, str(username), str(password), f"the `docker login` credentials for {host} "
                               "(~/.docker/config.json or $DOCKER_CONFIG)")


def credentials_for(host: str | None, storage_registry: str | None = None) -> RegistryCredentials | None:
    """The credentials for ``host``: ``[docker]``'s (when they apply), else ``docker login``'s, else None."""
    if host is None:
        return None
    return configured_credentials(host, storage_registry) or docker_config_credentials(host)


def registry_request(url: str, credentials: Callable[[], RegistryCredentials | None], method: str = "HEAD",
                     headers: dict[str, str] | None = None, timeout: float = 5.0) -> int:
    """The HTTP status of ``method url`` on a registry, logging in as the registry asks (Basic or Bearer token).

    ``credentials`` is called only when the registry asks for them (so an open registry costs no
    secret lookup). Raises ``urllib.error.URLError`` / ``OSError`` when nothing answers.
    """
    headers = dict(headers or {})
    status, challenge = _request(url, method, headers, timeout)
    if status != 401 or not challenge:
        return status
    found = credentials()
    return _with_challenge(url, method, headers, timeout, challenge, found)


def _with_challenge(url: str, method: str, headers: dict[str, str], timeout: float, challenge: str,
                    credentials: RegistryCredentials | None) -> int:
    scheme, _, params = challenge.partition(" ")
    if scheme.lower() == "basic":
        if credentials is None:
            return 401
        return _request(url, method, {**headers, "Authorization": credentials.basic()}, timeout)[0]
    if scheme.lower() == "bearer":
        token = _bearer_token(dict(re.findall(r'(\w+)="([^"]*)"', params)), credentials, timeout)
        if token is None:
            return 401
        return _request(url, method, {**headers, "Authorization": f"Bearer {token}"}, timeout)[0]
    return 401


def _request(url: str, method: str, headers: dict[str, str], timeout: float) -> tuple[int, str | None]:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - a registry URL
            return int(response.status), None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("WWW-Authenticate")


def _bearer_token(params: dict[str, str], credentials: RegistryCredentials | None, timeout: float) -> str | None:
    realm = params.pop("realm", None)
    if not realm:
        return None
    request = urllib.request.Request(f"{realm}?{urllib.parse.urlencode(params)}")
    if credentials is not None:
        request.add_header("Authorization", credentials.basic())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the registry's token service
            body: Any = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    return str(token) if token else None
