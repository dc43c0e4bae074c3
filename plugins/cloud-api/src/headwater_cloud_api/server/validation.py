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

import attrs

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
    "MAX_WRITE_ID_LENGTH",
    "RunBatch",
    "check_run_batch",
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
    """The nesting depth of ``value`` (iterative: deep input must not exhaust the stack here either).

    Only containers are pushed: a scalar costs one type check, so a 1 000-item batch is walked in
    about a millisecond (this runs on the event loop, for every request).
    """
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    push, pop = stack.append, stack.pop
    while stack:
        item, depth = pop()
        if type(item) is dict:
            children: Any = item.values()
        elif type(item) is list:
            children = item
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        below = depth + 1
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                push((child, below))
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
_FIELD_CHECKED_ELSEWHERE = {"write_run_batch": frozenset({"batch"})}
"""Per field, arguments the generic walk leaves alone because one dedicated pass checks them (:func:`check_run_batch`)."""


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
    skipped = _FIELD_CHECKED_ELSEWHERE.get(field_name, frozenset())
    for key, value in kwargs.items():
        if key not in skipped:
            _walk_input(value, key, key, 0, free)


MAX_WRITE_ID_LENGTH = 64
"""Longest ``write_id`` (the history tables' column holds 64 characters)."""
MAX_ID_LENGTH = 36
"""Longest run id stored with a log record (ids are UUID text)."""

_STATE_KEYS = frozenset({"task_slug", "map_index", "task_run_id", "type", "message", "serialized", "version", "write_id"})
_LOG_KEYS = frozenset({"level", "name", "message", "timestamp", "task_run_id"})
_BATCH_KEYS = frozenset({"flow_run_id", "attempt", "states", "logs"})


@attrs.define(slots=True)
class RunBatch:
    """A checked ``write_run_batch`` payload: one flow run, one attempt, its task-run state writes and log records, in order.

    ``states`` holds ``(task_slug, map_index, task_run_id, type, message, serialized, version, write_id)``
    tuples; ``logs`` holds ``(level, name, message, timestamp, task_run_id)`` tuples, text as sent
    (the services sanitise NUL in free text and refuse unknown states and levels).
    """

    flow_run_id: str
    attempt: int | None
    states: list[tuple[Any, ...]]
    logs: list[tuple[Any, ...]]


def _bad_key(item: dict[str, Any], allowed: frozenset[str], path: str) -> BadInput:
    unknown = sorted(set(item) - allowed)
    return BadInput(f"'{path}' has unknown field(s) {', '.join(map(repr, unknown))}; its fields are: {', '.join(sorted(allowed))}.")


def _name(value: Any, path: str, limit: int = MAX_NAME_LENGTH, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise BadInput(f"'{path}' is required (a string).")
        return None
    if type(value) is not str:
        raise BadInput(f"'{path}' must be a string, not {type(value).__name__}.")
    if "\x00" in value:
        raise BadInput(f"'{path}' contains a NUL character (\\x00), which the database cannot store; remove it.")
    if len(value) > limit:
        raise BadInput(f"'{path}' is {len(value)} characters long; the limit is {limit}.")
    return value


def _int(value: Any, path: str, minimum: int) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise BadInput(f"'{path}' must be an integer, not {type(value).__name__}.")
    if value < minimum:
        raise BadInput(f"'{path}' must be at least {minimum} (got {value}).")
    return value


def _free(value: Any, path: str) -> str | None:
    if value is None or type(value) is str:
        return value
    raise BadInput(f"'{path}' must be a string or null, not {type(value).__name__}.")


def _timestamp(value: Any, path: str) -> datetime | None:
    if value is None:
        return None
    if type(value) is not str:
        raise BadInput(f"'{path}' must be an ISO-8601 date-time string with a time zone.")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"'{path}' is not an ISO-8601 date-time ({value[:40]!r}); send e.g. 2024-01-01T00:00:00+00:00.") from None
    if parsed.tzinfo is None:
        raise BadInput(f"'{path}' must include a time zone (e.g. 2024-01-01T00:00:00+00:00).")
    try:
        utc = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not MIN_YEAR <= utc.year <= MAX_YEAR:
        raise BadInput(f"'{path}' is {value[:40]}; give a date between the years {MIN_YEAR} and {MAX_YEAR}.")
    return parsed


def check_run_batch(batch: Any, max_items: int) -> RunBatch:
    """Check a ``write_run_batch`` payload in one pass (types, lengths, NUL, ranges, dates) and return it as tuples.

    The same rules as the typed mutations' (graphql-core's coercion plus :class:`InputChecks`),
    applied once per item instead of four walks; every error is a :class:`BadInput` naming the
    path (``batch.states[3].map_index``). ``max_items`` bounds states and logs separately.
    """
    if not isinstance(batch, dict):
        raise BadInput("'batch' must be a JSON object {flow_run_id, attempt, states: [...], logs: [...]}.")
    if not batch.keys() <= _BATCH_KEYS:
        raise _bad_key(batch, _BATCH_KEYS, "batch")
    flow_run_id = _name(batch.get("flow_run_id"), "batch.flow_run_id", required=True)
    attempt = _int(batch.get("attempt"), "batch.attempt", 0)
    raw_states, raw_logs = batch.get("states") or [], batch.get("logs") or []
    for key, value in (("states", raw_states), ("logs", raw_logs)):
        if not isinstance(value, list):
            raise BadInput(f"'batch.{key}' must be a list.")
        if len(value) > max_items:
            raise BadInput(f"{len(value)} items in 'batch.{key}'; the limit is {max_items}. Split the batch.")
    states: list[tuple[Any, ...]] = []
    append = states.append
    state_keys, str_ = _STATE_KEYS, str
    for i, item in enumerate(raw_states):
        if type(item) is not dict or not item.keys() <= state_keys:
            if type(item) is not dict:
                raise BadInput(f"'batch.states[{i}]' must be a JSON object.")
            raise _bad_key(item, state_keys, f"batch.states[{i}]")
        get = item.get
        slug, map_index, task_run_id, kind = get("task_slug"), get("map_index", -1), get("task_run_id"), get("type")
        message, serialized, version, write_id = get("message"), get("serialized"), get("version"), get("write_id")
        # the common item (a slug, a small index, a message and a write id: all plain) is checked inline
        if not (type(slug) is str_ and len(slug) <= MAX_NAME_LENGTH and "\x00" not in slug):
            _name(slug, f"batch.states[{i}].task_slug")
            if slug is None and task_run_id is None:
                raise BadInput(f"'batch.states[{i}]' names its task run by 'task_slug' (+ 'map_index') or by 'task_run_id'.")
        if type(map_index) is not int or map_index < -1:
            if map_index is None:
                map_index = -1
            elif type(map_index) is int:
                raise BadInput(f"'batch.states[{i}].map_index' is -1 (not mapped) or a child's index from 0, not {map_index}.")
            else:
                raise BadInput(f"'batch.states[{i}].map_index' must be an integer, not {type(map_index).__name__}.")
        if type(kind) is not str_:
            raise BadInput(f"'batch.states[{i}].type' must be a state name such as 'Running' (a string).")
        if task_run_id is not None:
            _name(task_run_id, f"batch.states[{i}].task_run_id")
        if message is not None and type(message) is not str_:
            raise BadInput(f"'batch.states[{i}].message' must be a string or null, not {type(message).__name__}.")
        if write_id is not None and not (type(write_id) is str_ and len(write_id) <= MAX_WRITE_ID_LENGTH and "\x00" not in write_id):
            _name(write_id, f"batch.states[{i}].write_id", MAX_WRITE_ID_LENGTH)
        if version is not None:
            _int(version, f"batch.states[{i}].version", 0)
        if serialized is not None:
            if type(serialized) is not dict:
                raise BadInput(f"'batch.states[{i}].serialized' must be a JSON object.")
            check_json_value(serialized, f"batch.states[{i}].serialized")
        append((slug, map_index, task_run_id, kind, message, serialized, version, write_id))
    logs: list[tuple[Any, ...]] = []
    for i, item in enumerate(raw_logs):
        if type(item) is not dict:
            raise BadInput(f"'batch.logs[{i}]' must be a JSON object.")
        if not item.keys() <= _LOG_KEYS:
            raise _bad_key(item, _LOG_KEYS, f"batch.logs[{i}]")
        get = item.get
        level, name, message = get("level") or "INFO", get("name"), get("message")
        if type(level) is not str_:
            raise BadInput(f"'batch.logs[{i}].level' must be a level name such as 'INFO'.")
        if type(message) is not str_:
            raise BadInput(f"'batch.logs[{i}].message' is required (a string).")
        logs.append((level, _free(name, f"batch.logs[{i}].name"), message, _timestamp(get("timestamp"), f"batch.logs[{i}].timestamp"),
                     _name(get("task_run_id"), f"batch.logs[{i}].task_run_id", MAX_ID_LENGTH)))
    return RunBatch(flow_run_id, attempt, states, logs)  # type: ignore[arg-type]


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
