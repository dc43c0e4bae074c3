"""Which configuration values are secret, and how they are hidden (``********``).

A value is secret when its key path is marked secret by a typed section
(``secret_field()``), when it sits under ``context.secrets``, or when any part of its key
contains ``api_key``, ``password``, ``token`` or ``secret``. Passwords inside URLs
(``postgresql://user:pw@host/db``) are masked everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["MASK", "SECRET_WORDS", "is_secret_key", "is_secret_path", "mask_url", "mask_tree"]

MASK = "********"
SECRET_WORDS = ("api_key", "apikey", "password", "passwd", "token", "secret")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^@/\s]+)(?P<at>@)")


def is_secret_key(key: str) -> bool:
    """True for key names that look like credentials (``api_key``, ``db_password``, ``token`` ...)."""
    lowered = key.lower()
    return any(word in lowered for word in SECRET_WORDS)


def is_secret_path(path: tuple[str, ...], secret_paths: Collection[tuple[str, ...]] = ()) -> bool:
    """True when ``path`` (or a parent of it) is marked secret or has a credential-like name."""
    if any(path[: len(marked)] == marked for marked in secret_paths):
        return True
    return any(is_secret_key(part) for part in path)


def mask_url(text: str) -> str:
    """``text`` with the password of any ``scheme://user:password@host`` URL replaced by ``********``."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + m.group("at"), text)


def mask_tree(value: Any, path: tuple[str, ...] = (), secret_paths: Collection[tuple[str, ...]] = ()) -> Any:
    """A copy of ``value`` with every secret leaf replaced by ``********`` (keys are kept; ``None`` stays ``None``)."""
    if isinstance(value, Mapping):
        return {k: mask_tree(v, (*path, str(k)), secret_paths) for k, v in value.items()}
    if value is None:
        return None
    if is_secret_path(path, secret_paths):
        return MASK
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, (list, tuple)):
        return [mask_tree(v, path, secret_paths) for v in value]
    return value
