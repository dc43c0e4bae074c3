"""Input checks at the door: values every database can store and every answer can carry.

* Numbers must be finite: JSON has no ``NaN``/``Infinity`` (Python's ``json`` accepts them, and
  ``1e999`` parses as infinity), and an answer that carries one cannot be rendered.
* Text must not contain NUL (PostgreSQL ``text``/``jsonb`` cannot store ``\\x00``).
* Nesting is bounded (a deeply nested document would exhaust the parser's recursion).

:func:`load_request_json` parses a request body with those rules; :func:`check_json_value`
checks a value that arrived another way (a GraphQL literal) and names the field at fault.
"""

from __future__ import annotations

import json
import math
from typing import Any

from headwater_cloud_api.server.errors import BadInput

__all__ = [
    "MAX_JSON_DEPTH",
    "NonFiniteNumber",
    "load_request_json",
    "check_json_value",
    "check_text",
    "strip_nul",
    "json_safe",
]

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays/objects accepted in a request (parameters, context, key-value values)."""


class NonFiniteNumber(ValueError):
    """The request body holds NaN, Infinity or a number too large for a float."""


def _constant(name: str) -> Any:
    raise NonFiniteNumber(
        f"the request body contains {name}, which is not a JSON number; send a finite number, null or a string instead"
    )


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumber(
            f"the number {text[:40]} is too large for a 64-bit float (it would become Infinity, not a finite number); send it as a string"
        )
    return value


def _depth(value: Any, limit: int) -> int:
    """The nesting depth of ``value`` (iterative: deep input must not exhaust the stack here either)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def load_request_json(raw: bytes) -> Any:
    """Parse a request body; ``ValueError`` (with a message for the client) on invalid JSON, non-finite numbers or deep nesting."""
    try:
        value = json.loads(raw, parse_constant=_constant, parse_float=_float)
    except RecursionError:
        raise ValueError(f"the request body is nested too deeply (the limit is {MAX_JSON_DEPTH} levels)") from None
    if _depth(value, MAX_JSON_DEPTH + 2) > MAX_JSON_DEPTH + 2:  # + the request object and 'variables'
        raise ValueError(f"the request body is nested more than {MAX_JSON_DEPTH} levels deep; flatten the value")
    return value


def check_json_value(value: Any, field: str, *, allow_nul: bool = False) -> Any:
    """``value`` unchanged, or :class:`BadInput` naming ``field`` (and the path inside it) for NaN/Infinity, NUL or deep nesting."""
    stack: list[tuple[Any, str, int]] = [(value, field, 1)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadInput(f"'{field}' is nested more than {MAX_JSON_DEPTH} levels deep (at {path}); flatten it.")
        if isinstance(item, float) and not math.isfinite(item):
            raise BadInput(f"'{path}' is {item}, which JSON cannot carry; send a finite number, null or a string.")
        if isinstance(item, str):
            if not allow_nul and "\x00" in item:
                raise BadInput(f"'{path}' contains a NUL character (\\x00), which the database cannot store; remove it.")
        elif isinstance(item, dict):
            for key, child in item.items():
                if not allow_nul and "\x00" in str(key):
                    raise BadInput(f"A key in '{path}' contains a NUL character (\\x00); remove it.")
                stack.append((child, f"{path}.{key}", depth + 1))
        elif isinstance(item, list):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
    return value


def check_text(value: str | None, field: str, max_length: int | None = None) -> str | None:
    """``value`` unchanged, or :class:`BadInput` naming ``field`` for a NUL character or more than ``max_length`` characters."""
    if value is None:
        return None
    if "\x00" in value:
        raise BadInput(f"'{field}' contains a NUL character (\\x00), which the database cannot store; remove it.")
    if max_length is not None and len(value) > max_length:
        raise BadInput(f"'{field}' is {len(value)} characters long; the limit is {max_length}.")
    return value


def strip_nul(value: str) -> str:
    """Log text as PostgreSQL can store it: NUL characters become U+FFFD (logs are kept, not refused)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def json_safe(value: Any) -> tuple[Any, list[str]]:
    """``value`` with non-finite floats replaced by None, and the paths replaced (for answers built from legacy rows)."""
    replaced: list[str] = []

    def walk(item: Any, path: str) -> Any:
        if isinstance(item, float) and not math.isfinite(item):
            replaced.append(path)
            return None
        if isinstance(item, dict):
            return {k: walk(v, f"{path}.{k}") for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v, f"{path}[{i}]") for i, v in enumerate(item)]
        return item

    return walk(value, "data"), replaced
