"""Browser-abuse protection for a local API: ``Host`` and ``Origin`` allow-lists, no CORS.

A keyless server on 127.0.0.1 is reachable by every web page the user opens. Two attacks follow:

* **CSRF**: a page POSTs a mutation (``text/plain`` or a form, which browsers send cross-origin
  without a preflight). Defence: ``/graphql`` accepts only ``Content-Type: application/json``
  (a cross-origin JSON POST needs a CORS preflight, which this server never grants), and a
  request whose ``Origin`` is not allowed is refused.
* **DNS rebinding**: a page on ``evil.example`` whose name now resolves to 127.0.0.1 is
  "same-origin" for the browser, so it can read answers. Defence: the ``Host`` header must
  name an allowed host (loopback by default), which a rebinding page cannot forge.

The server sends no ``Access-Control-Allow-*`` header at all, so browsers keep cross-origin
pages from reading any answer. Non-browser clients (the Client, agents, curl) send no
``Origin`` and pass. Allowed hosts: ``localhost``, ``127.0.0.1``, ``::1``, the bind address,
plus ``--allowed-host`` / ``HEADWATER__SERVER__ALLOWED_HOSTS`` (``*`` allows any host); allowed
origins: ``http(s)://`` + an allowed host (any port), plus ``--allowed-origin``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

__all__ = ["RequestGuard", "LOOPBACK_HOSTS", "allowed_host_set", "is_json_content_type", "split_list"]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Hosts every server accepts in its ``Host`` header."""
_ANY_ADDRESS = ("0.0.0.0", "::", "")


def split_list(values: Iterable[str] | str | None) -> list[str]:
    """``"a, b"`` or ``["a,b", "c"]`` -> ``["a", "b", "c"]`` (for options that also come from environment variables)."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values for part in str(value).replace(" ", ",").split(",") if part.strip()]


def _hostname(value: str) -> str:
    """``"[::1]:4200"`` -> ``"::1"``, ``"Example.COM:80"`` -> ``"example.com"``."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value  # bare IPv6 or a name without port


def allowed_host_set(bind_host: str | None, extra: Iterable[str] = ()) -> frozenset[str]:
    """The hosts a request's ``Host`` may name: loopback, the bind address (unless a wildcard) and ``extra``."""
    hosts = set(LOOPBACK_HOSTS)
    if bind_host and _hostname(bind_host) not in _ANY_ADDRESS:
        hosts.add(_hostname(bind_host))
    hosts.update(_hostname(h) if h != "*" else "*" for h in extra)
    return frozenset(hosts)


def is_json_content_type(value: str | None) -> bool:
    """True for ``application/json`` (any parameters, e.g. ``; charset=utf-8``)."""
    if not value:
        return False
    return value.split(";", 1)[0].strip().lower() == "application/json"


class RequestGuard:
    """ASGI middleware: refuses (HTTP 403, a GraphQL-shaped JSON error) requests with a foreign ``Host`` or ``Origin``."""

    def __init__(self, app: Any, allowed_hosts: Iterable[str], allowed_origins: Iterable[str] = ()) -> None:
        self.app = app
        self.hosts = frozenset(allowed_hosts)
        self.origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)

    def _host_ok(self, host: str | None) -> bool:
        if "*" in self.hosts:
            return True
        return host is not None and _hostname(host) in self.hosts

    def _origin_ok(self, origin: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if "*" in self.origins or origin in self.origins:
            return True
        if origin == "null":  # sandboxed iframes, file:// pages, redirects: never trusted
            return False
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.hostname is not None and self._host_ok(parts.netloc)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host")
        problem = None
        if not self._host_ok(host):
            problem = (f"Host {host!r} is not allowed: this server answers only requests addressed to "
                       f"{', '.join(sorted(self.hosts))} (DNS-rebinding protection). Start it with "
                       "`--allowed-host NAME` (or HEADWATER__SERVER__ALLOWED_HOSTS) to accept another name.")
        elif "origin" in headers and not self._origin_ok(headers["origin"]):
            problem = (f"Origin {headers['origin']!r} is not allowed: web pages from other sites may not call this API "
                       "(cross-site request protection). Start the server with `--allowed-origin URL` to trust a site.")
        if problem is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"data": None, "errors": [{"message": problem, "extensions": {"code": "FORBIDDEN"}}]}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
