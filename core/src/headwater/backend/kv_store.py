"""Prefect 1's ``prefect.backend.kv_store``: the orchestration API's key-value store as functions.

They use the ``kv`` noun of ``headwater.Client()`` (provided by ``headwater-cloud-api``; ``[cloud] api`` /
``api_key``), so a flow file may read a setting at import time (registration) and at run time.
``get_key_value`` returns mappings as :class:`Box` objects (``value.schema`` as well as
``value["schema"]``), as Prefect 1's GraphQL results did.
"""

from __future__ import annotations

from typing import Any

from headwater.backend._api import api_client

__all__ = ["Box", "KeyNotFoundError", "set_key_value", "get_key_value", "delete_key", "list_keys"]


class Box(dict[str, Any]):
    """A dict whose keys are also attributes, nested mappings included (Prefect 1's ``box.Box``); equal to the plain dict."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key, value in self.items():
            dict.__setitem__(self, key, _boxed(value))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{name!r} is not a key of this value (its keys: {', '.join(map(repr, self)) or 'none'}).") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, _boxed(value))

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *(k for k in self if isinstance(k, str) and k.isidentifier())})

    def to_dict(self) -> dict[str, Any]:
        """A plain copy (nested Boxes become dicts)."""
        return {k: _plain(v) for k, v in self.items()}


def _boxed(value: Any) -> Any:
    if isinstance(value, dict) and not isinstance(value, Box):
        return Box(value)
    if isinstance(value, list):
        return [_boxed(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Box):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class KeyNotFoundError(ValueError, KeyError):
    """The key is not in the key-value store (a ``ValueError``, as Prefect 1 raised, and a ``KeyError``)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _kv(client: Any) -> Any:
    return api_client("The key-value store (headwater.backend.kv_store)", client).kv()


def _not_found(exc: Exception, key: str) -> bool:
    return getattr(exc, "code", None) == "NOT_FOUND"


def set_key_value(key: str, value: Any, client: Any = None) -> str:
    """Store ``value`` (any JSON value, up to 10 KiB) under ``key``; returns the key (Prefect 1 returned the pair's id)."""
    _kv(client).set(key, _plain(value))
    return key


def get_key_value(key: str, client: Any = None) -> Any:
    """The value stored under ``key`` (mappings as :class:`Box`); :class:`KeyNotFoundError` if it is not set."""
    try:
        return _boxed(_kv(client).get(key))
    except Exception as exc:
        if _not_found(exc, key):
            raise KeyNotFoundError(f"No value found for key: {key!r}. Set it with set_key_value({key!r}, ...) "
                                   f"or `headwater kv set {key} VALUE`.") from None
        raise


def delete_key(key: str, client: Any = None) -> bool:
    """Remove ``key``; True when it was removed, :class:`KeyNotFoundError` if it was not set."""
    try:
        return bool(_kv(client).delete(key))
    except Exception as exc:
        if _not_found(exc, key):
            raise KeyNotFoundError(f"No value found for key: {key!r}; nothing to delete.") from None
        raise


def list_keys(client: Any = None) -> list[str]:
    """Every key, sorted."""
    return list(_kv(client).list())
