"""API keys: ``hw_`` + 43 random URL-safe characters; the server stores only their sha256.

When any key exists, or the server runs with ``--auth``, every request except ``/health``
needs ``Authorization: Bearer <key>``; a missing or wrong key gets HTTP 401 and no data.
A presented key that is not known is refused even when auth is off (a wrong key is a mistake).
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.orm import Session

from headwater_cloud_api.server.db.models import ApiKey
from headwater_cloud_api.server.db.session import Database
from headwater_cloud_api.server.errors import BadInput, NotFound

__all__ = ["create_api_key", "list_api_keys", "revoke_api_key", "check_authorization", "hash_key"]

KEY_PREFIX = "hw_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str) -> tuple[ApiKey, str]:
    """A new key named ``name``: ``(row, key)`` — the key itself is returned once and never stored."""
    name = (name or "").strip()
    if not name:
        raise BadInput("An API key needs a name (e.g. the user or machine using it).")
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise BadInput(f"An API key named {name!r} already exists; revoke it first or choose another name.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, key_hash=hash_key(key), prefix=key[:8])
    session.add(row)
    session.flush()
    return row, key


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.name)))


def revoke_api_key(session: Session, name: str, disable_auth: bool = False) -> int:
    """Delete key ``name``; returns how many keys remain.

    Revoking the last key turns authentication off for a server started without ``--auth``, so it
    is refused unless ``disable_auth`` says that is meant.
    """
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is None:
        raise NotFound(f"No API key named {name!r}; list them with `headwater server api-key list`.")
    others = session.scalar(select(func.count()).select_from(ApiKey).where(ApiKey.name != name)) or 0
    if not others and not disable_auth:
        raise BadInput(
            f"{name!r} is the last API key: revoking it turns authentication off (a server started without --auth then "
            "answers anyone). Create another key first, or pass --disable-auth to revoke it and run without keys.",
            "LAST_API_KEY",
        )
    session.execute(delete(ApiKey).where(ApiKey.name == name))
    return int(others)


def check_authorization(db: Database, header: str | None, required: bool) -> str | None:
    """None if the request may proceed, else the reason for a 401 (the key itself is never echoed)."""
    token = None
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return "The Authorization header must be 'Bearer <api key>'."
        token = value.strip()
    with db.read_engine.connect() as connection:  # Core, prebuilt statements: this runs before every request
        if token is not None:
            if connection.execute(_KEY_BY_HASH, {"key_hash": hash_key(token)}).first() is None:
                return "The API key is not valid (unknown or revoked). Create one with `headwater server api-key create NAME`."
            return None
        if required or connection.execute(_ANY_KEY).first() is not None:
            return "This server requires an API key: send 'Authorization: Bearer <key>' (set HEADWATER__CLOUD__API_KEY)."
    return None


_KEY_BY_HASH = select(ApiKey.__table__.c.id).where(ApiKey.__table__.c.key_hash == bindparam("key_hash"))
_ANY_KEY = select(ApiKey.__table__.c.id).limit(1)
