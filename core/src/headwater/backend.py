"""``headwater.backend``: the orchestration API's key-value store as functions: ``set_key_value``, ``get_key_value``, ``delete_key``, ``list_keys``.

They use the ``kv`` noun of ``headwater.Client()`` (provided by ``headwater-cloud-api``) (``[cloud] api`` / ``api_key``), so a flow file may read a
setting at import time (registration) and at run time.
"""

from __future__ import annotations

from typing import Any

__all__ = ["set_key_value", "get_key_value", "delete_key", "list_keys"]


def _kv(client: Any = None) -> Any:
    from headwater.client import Client

    return (client or Client()).kv()


def set_key_value(key: str, value: Any, client: Any = None) -> None:
    """Store ``value`` (JSON, up to 10 KiB) under ``key``."""
    _kv(client).set(key, value)


def get_key_value(key: str, client: Any = None) -> Any:
    """The value stored under ``key`` (an error if it is not set)."""
    return _kv(client).get(key)


def delete_key(key: str, client: Any = None) -> bool:
    """Remove ``key``; True if it existed."""
    return _kv(client).delete(key)


def list_keys(client: Any = None) -> list[str]:
    """Every key, sorted."""
    return _kv(client).list()
