"""Small TOML helpers: parse one scalar (env var values) and write a plain dict back as TOML.

Reading uses the standard library's :mod:`tomllib`; writing covers what a configuration holds
(tables, strings, numbers, booleans, dates, arrays and inline tables), so ``headwater config show
--toml`` needs no extra dependency.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import tomllib
from collections.abc import Mapping
from typing import Any

__all__ = ["parse_scalar", "dumps", "format_key", "format_value"]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_scalar(text: str) -> Any:
    """``text`` read as one TOML value (``true``, ``42``, ``1.5``, ``"s"``, ``["a", "b"]`` ...); otherwise ``text`` itself.

    Used for ``HEADWATER__SECTION__KEY`` values: ``HEADWATER__SERVER__PORT=4300`` is the int 4300,
    ``HEADWATER__SERVER__HOST=127.0.0.1`` is not valid TOML and so stays the string ``"127.0.0.1"``.
    """
    try:
        parsed = tomllib.loads(f"v = {text}")
    except (tomllib.TOMLDecodeError, ValueError):
        return text
    if set(parsed) != {"v"}:  # "1\nother = 2" would smuggle in a second key: keep the raw text
        return text
    return parsed["v"]


def format_key(key: str) -> str:
    """A TOML key: bare when it can be, quoted otherwise."""
    return key if _BARE_KEY.match(key) else _string(key)


def _string(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes; TOML also forbids a raw DEL.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def format_value(value: Any) -> str:
    """One value in TOML syntax (strings quoted, booleans lower-case, lists and inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        items = ", ".join(f"{format_key(str(k))} = {format_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ", ".join(format_value(v) for v in value if v is not None) + "]"
    return _string(str(value))


def dumps(data: Mapping[str, Any]) -> str:
    """``data`` as a TOML document; ``None`` values (which TOML cannot hold) become ``# key is not set`` comments."""
    lines: list[str] = []
    _table(lines, (), data)
    return "\n".join(lines).strip() + "\n"


def _table(lines: list[str], prefix: tuple[str, ...], table: Mapping[str, Any]) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    tables = [(k, v) for k, v in table.items() if isinstance(v, Mapping)]
    if prefix and (scalars or not tables):
        lines.append("[" + ".".join(format_key(p) for p in prefix) + "]")
    for key, value in scalars:
        if value is None:
            lines.append(f"# {format_key(str(key))} is not set")
        else:
            lines.append(f"{format_key(str(key))} = {format_value(value)}")
    if scalars or (prefix and not tables):
        lines.append("")
    for key, value in tables:
        _table(lines, (*prefix, str(key)), value)
