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
from datetime import UTC, datetime
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
    "InputChecks",
    "check_arguments",
    "MAX_NAME_LENGTH",
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


MIN_YEAR, MAX_YEAR = 1900, 9000
"""Dates outside these years are refused (some cannot even be converted to UTC)."""
MAX_SECONDS = 10 * 365 * 86400.0
"""Largest duration argument in seconds (ten years)."""
MAX_NAME_LENGTH = 255
"""Longest name-like string argument (names, ids, keys, labels, slugs): the database columns hold 255 characters."""
_NAME_ARGS = frozenset({
    "id", "name", "project", "project_name", "project_id", "flow_id", "flow_name", "flow_run_id", "task_run_id", "agent_id",
    "run_name", "idempotency_key", "key", "task_slug", "hash", "labels", "renew", "flow_run_ids", "write_id", "after",
    "before", "order_by", "levels", "states", "search",
})
_FREE_TEXT = frozenset({"message", "serialized", "value", "parameters", "context", "description"})
"""Arguments checked elsewhere (JSON values) or kept with NUL made visible (messages)."""
_NON_NEGATIVE = frozenset({"limit", "offset", "version", "attempt"})


_FIELD_FREE_TEXT = {"write_logs": frozenset({"name", "level"})}
"""Per field, more arguments kept rather than refused (a log's logger name is sanitised in the service)."""


def _walk_input(value: Any, path: str, name: str, depth: int = 0, free: frozenset[str] = _FREE_TEXT) -> None:
    if depth > 8:
        return
    if isinstance(value, str):
        if name in free:
            return
        if "\x00" in value:
            raise BadInput(f"'{path}' contains a NUL character (\\x00), which the database cannot store; remove it.")
        if name in _NAME_ARGS and len(value) > MAX_NAME_LENGTH:
            raise BadInput(f"'{path}' is {len(value)} characters long; the limit is {MAX_NAME_LENGTH}.")
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if name in _NON_NEGATIVE and value < 0:
            raise BadInput(f"'{path}' must not be negative (got {value}).")
        if name == "map_index" and value < -1:
            raise BadInput(f"'{path}' is -1 (not mapped) or a child's index from 0, not {value}.")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise BadInput(f"'{path}' is {value}; send a finite number.")
        if name == "alive_within" and not 0 <= value <= MAX_SECONDS:
            raise BadInput(f"'{path}' is {value:g} seconds; give between 0 and {MAX_SECONDS:g}.")
    elif isinstance(value, datetime):
        try:
            utc = value.astimezone(UTC)
        except (OverflowError, ValueError):
            utc = None
        if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
            raise BadInput(f"'{path}' is {value.isoformat()}; give a date between the years {MIN_YEAR} and {MAX_YEAR}.")
    elif isinstance(value, (list, tuple)):
        if name in _FREE_TEXT:
            return
        for i, item in enumerate(value):
            _walk_input(item, f"{path}[{i}]", name, depth + 1, free)
    elif isinstance(value, dict):  # an input object as graphql coerced it (JSON scalars sit under _FREE_TEXT names)
        for key, item in value.items():
            if key in free:
                continue
            _walk_input(item, f"{path}.{key}", key, depth + 1, free)
    elif hasattr(type(value), "__strawberry_definition__"):
        for key, item in vars(value).items():
            if key in free:
                continue
            _walk_input(item, f"{path}.{key}", key, depth + 1, free)


def check_arguments(field_name: str, kwargs: dict[str, Any]) -> None:
    """The schema-level input rules for one field's arguments: :class:`BadInput` naming the argument path."""
    free = _FREE_TEXT | _FIELD_FREE_TEXT[field_name] if field_name in _FIELD_FREE_TEXT else _FREE_TEXT
    for key, value in kwargs.items():
        _walk_input(value, key, key, 0, free)


try:
    from strawberry.extensions import SchemaExtension as _SchemaExtension
except ImportError:  # pragma: no cover
    _SchemaExtension = object  # type: ignore[assignment,misc]


class InputChecks(_SchemaExtension):
    """Checks every field's arguments before its resolver runs (NUL, name lengths, negative limits, finite floats).

    The same rules on SQLite and PostgreSQL: a value PostgreSQL would refuse is refused here, as
    BAD_INPUT naming the argument, instead of surfacing as an internal database error.
    """

    def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs:
            check_arguments(info.field_name, kwargs)
        return _next(root, info, *args, **kwargs)
