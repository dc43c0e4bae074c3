"""The plugin's configuration sections: ``[cloud]`` (clients and agents) and ``[server]`` (the API server).

Registered through ``register_config_sections``, so ``HEADWATER__CLOUD__API_KEY`` and
``[server] database_url`` exist only where this plugin is installed.
"""

from __future__ import annotations

from typing import Any

import attrs

from headwater.plugins import secret_field

__all__ = ["CloudSection", "ServerSection"]


@attrs.define
class CloudSection:
    """``[cloud]``: how clients and agents reach the orchestration API."""

    api: str = "http://127.0.0.1:4200/graphql"
    api_key: str | None = secret_field()
    request_timeout: float = 30.0


def _port(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"'{attribute.name}' must be a TCP port between 0 and 65535, got {value}")


def _names(value: Any) -> list[str]:
    """A list of names, also from one comma-separated string (``HEADWATER__SERVER__ALLOWED_HOSTS=a,b``)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value]


@attrs.define
class ServerSection:
    """``[server]``: the orchestration API server (``database_url`` unset means SQLite in HEADWATER_HOME).

    ``allowed_hosts`` / ``allowed_origins``: Host names and web origins accepted besides loopback
    and the bind address (DNS-rebinding and cross-site protection; see docs/reliability.md).
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=4200, validator=_port)
    database_url: str | None = None
    # TOML arrays, also in the environment: HEADWATER__SERVER__ALLOWED_HOSTS='["etl.example.org"]'
    allowed_hosts: list[str] = attrs.field(factory=list, converter=_names)
    allowed_origins: list[str] = attrs.field(factory=list, converter=_names)
