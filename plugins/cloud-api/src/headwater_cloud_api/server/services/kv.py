"""The key-value store: small shared settings (string keys, JSON values up to MAX_KV_VALUE_BYTES)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from headwater_cloud_api.server.db.models import KeyValue, utcnow
from headwater_cloud_api.server.errors import MAX_KV_VALUE_BYTES, BadInput, NotFound

__all__ = ["set_key_value", "get_key_value", "delete_key", "list_keys"]


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key.strip() or len(key) > 255:
        raise BadInput(f"Key-value store keys are non-empty strings of at most 255 characters, got {key!r}.")
    return key


def set_key_value(session: Session, key: str, value: Any) -> KeyValue:
    _check_key(key)
    size = len(json.dumps(value, separators=(",", ":")).encode())
    if size > MAX_KV_VALUE_BYTES:
        raise BadInput(
            f"Value for key {key!r} is {size} bytes as JSON; the key-value store keeps values up to {MAX_KV_VALUE_BYTES} bytes. "
            "Store large data elsewhere (a Result, a file) and keep its location here."
        )
    now = utcnow()
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(KeyValue).values(key=key, value=value, updated=now)
    session.execute(stmt.on_conflict_do_update(index_elements=[KeyValue.key], set_={"value": stmt.excluded.value, "updated": now}))
    return KeyValue(key=key, value=value, updated=now)


def get_key_value(session: Session, key: str) -> KeyValue:
    row = session.get(KeyValue, _check_key(key))
    if row is None:
        raise NotFound(f"Key {key!r} is not in the key-value store. Set it with `headwater kv set {key} VALUE`.")
    return row


def delete_key(session: Session, key: str) -> bool:
    get_key_value(session, key)
    session.execute(delete(KeyValue).where(KeyValue.key == key))
    return True


def list_keys(session: Session) -> list[str]:
    return list(session.scalars(select(KeyValue.key).order_by(KeyValue.key)))
