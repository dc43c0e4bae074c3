"""The HTTP transport of ``headwater.Client``: one ``httpx.Client`` per client, one POST per GraphQL request.

``request_count`` counts the HTTP requests actually sent (tests use it to prove "one action,
one request").
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["HttpTransport", "APIClientError", "AuthenticationError", "APIConnectionError"]


class APIClientError(Exception):
    """The API answered with GraphQL errors; ``code`` is the first error's ``extensions.code``."""

    def __init__(self, message: str, code: str | None = None, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.errors = errors or []


class AuthenticationError(APIClientError):
    """HTTP 401: missing or wrong API key."""


class APIConnectionError(APIClientError, ConnectionError):
    """The API could not be reached."""


_ssl_context: Any = None


def _tls_verify(api: str) -> Any:
    """No TLS for ``http://`` (nothing to verify); one shared default context for ``https://``.

    Building an SSL context costs ~70 ms, paid by every flow-run process before it reports Running.
    """
    global _ssl_context
    if api.startswith("http://"):
        return False
    if _ssl_context is None:
        import ssl

        _ssl_context = ssl.create_default_context()
    return _ssl_context


class HttpTransport:
    """Sends GraphQL requests to ``client.api`` with ``Authorization: Bearer <client.api_key>`` when set."""

    @staticmethod
    def defaults() -> dict[str, Any]:
        """What ``headwater.Client()`` uses when not told: ``[cloud] api``, ``api_key`` and ``request_timeout``."""
        from headwater.plugins import get_config

        cloud = get_config().cloud
        return {"api": cloud.api, "api_key": cloud.api_key, "timeout": cloud.request_timeout}

    def __init__(self, client: Any) -> None:
        self.api: str = client.api
        headers = {"User-Agent": "headwater-client"}
        if client.api_key:
            headers["Authorization"] = f"Bearer {client.api_key}"
        self.request_count = 0
        self._http = httpx.Client(
            headers=headers,
            timeout=client.options.get("timeout", 30.0),
            event_hooks={"request": [self._count]},
            verify=_tls_verify(self.api),
        )

    def _count(self, request: httpx.Request) -> None:
        self.request_count += 1

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST one GraphQL request; returns ``data`` or raises :class:`APIClientError`."""
        try:
            response = self._http.post(self.api, json={"query": query, "variables": variables or {}})
        except httpx.TransportError as exc:
            raise APIConnectionError(
                f"Cannot reach the headwater API at {self.api}: {exc}. Start it with `headwater server start`, "
                "or point HEADWATER__CLOUD__API (or [cloud] api) at it.",
                "CONNECTION",
            ) from exc
        try:
            body = response.json()
        except ValueError:
            raise APIClientError(
                f"The API at {self.api} answered HTTP {response.status_code} with a non-JSON body: {response.text[:200]!r}. "
                "Is this the headwater API's /graphql address?",
                "BAD_RESPONSE",
            ) from None
        errors = body.get("errors") if isinstance(body, dict) else None
        if response.status_code == 401:
            message = errors[0]["message"] if errors else "unauthorized"
            raise AuthenticationError(f"The API at {self.api} refused the request (HTTP 401): {message}", "UNAUTHENTICATED", errors)
        if errors:
            first = errors[0]
            code = (first.get("extensions") or {}).get("code")
            message = "; ".join(e.get("message", "?") for e in errors)
            raise APIClientError(message, code, errors)
        if response.status_code >= 400:
            raise APIClientError(f"The API at {self.api} answered HTTP {response.status_code}.", "HTTP_ERROR")
        return body.get("data") or {}

    def close(self) -> None:
        self._http.close()
