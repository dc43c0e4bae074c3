"""Logging: every headwater logger lives under the ``headwater`` logger, with one format everywhere.

``import headwater`` installs no handler (a library must not). The ``headwater`` CLI and
``flow.run()`` call :func:`configure_logging`, which gives the ``headwater`` logger one stderr
handler formatted as::

    2026-12-01T21:35:58.123Z INFO    headwater.engine | Flow run SUCCESS: All reference tasks succeeded.

(ISO-8601 UTC timestamp, level, logger, message), coloured only when stderr is a terminal.
``[logging]`` in the configuration (``level``, ``format``; ``HEADWATER__LOGGING__LEVEL=DEBUG``)
changes it. ``flow.run()`` leaves logging alone when the application already configured it
(a handler on the root or the ``headwater`` logger).

Secret values (``[context.secrets]``, ``HEADWATER__CONTEXT__SECRETS__*`` and every value
:func:`remember_secret` was given) are masked in tracebacks and log lines by :func:`mask_secrets`.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, TextIO

__all__ = [
    "get_logger",
    "configure_logging",
    "HeadwaterFormatter",
    "SecretMaskingFilter",
    "FORMAT",
    "iso_timestamp",
    "mask_secrets",
    "remember_secret",
    "refresh_secrets",
    "MASK",
]

FORMAT = "%(asctime)s %(levelname)-7s %(name)s | %(message)s"
"""The one log format: ISO-8601 timestamp, level, logger name, message."""
_OLD_DEFAULT_FORMATS = frozenset({"[%(asctime)s] %(levelname)s - %(name)s | %(message)s"})
_HANDLER_FLAG = "_headwater_default_handler"
MASK = "********"
_LEVEL_COLOURS = {"DEBUG": "\033[2m", "INFO": "\033[36m", "WARNING": "\033[33m", "ERROR": "\033[31m",
                  "CRITICAL": "\033[1;31m"}
_RESET = "\033[0m"


def get_logger(name: str | None = None) -> logging.Logger:
    """The ``headwater`` logger, or its child ``headwater.<name>``."""
    root = logging.getLogger("headwater")
    return root.getChild(name) if name else root


def iso_timestamp(ts: float) -> str:
    """``ts`` (seconds since the epoch) as ISO-8601 UTC with milliseconds: ``2026-12-01T21:35:58.123Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


class HeadwaterFormatter(logging.Formatter):
    """The headwater format: ISO-8601 UTC ``asctime``, the level coloured when ``colour``, secrets masked."""

    def __init__(self, fmt: str | None = None, colour: bool = False) -> None:
        super().__init__(fmt or FORMAT)
        self.colour = colour

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging API
        return iso_timestamp(record.created)

    def format(self, record: logging.LogRecord) -> str:
        if not self.colour:
            return mask_secrets(super().format(record))
        saved = record.levelname
        colour = _LEVEL_COLOURS.get(saved)
        if colour:
            record.levelname = f"{colour}{saved:<7}{_RESET}"
        try:
            return mask_secrets(super().format(record))
        finally:
            record.levelname = saved


class SecretMaskingFilter(logging.Filter):
    """Masks known secret values in a record's message before any handler sees it (on task loggers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty()) and os.environ.get("NO_COLOR") is None and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False


def _configured_logging() -> tuple[str, str]:
    """``(level, format)`` from ``[logging]`` (INFO and :data:`FORMAT` when the configuration cannot be read)."""
    level, fmt = os.environ.get("HEADWATER__LOGGING__LEVEL", "INFO"), FORMAT
    try:
        from headwater.config import get_config

        section = get_config().logging
        level, fmt = section.level, section.format or FORMAT
    except Exception:  # a broken config.toml is reported by whoever reads it; logging still works
        pass
    if fmt in _OLD_DEFAULT_FORMATS:
        fmt = FORMAT
    return str(level).upper(), fmt


def configure_logging(level: str | int | None = None, *, stream: TextIO | None = None, fmt: str | None = None,
                      only_if_unconfigured: bool = False) -> logging.Logger:
    """Give the ``headwater`` logger its stderr handler (once) with the headwater format; returns the logger.

    ``level`` and ``fmt`` default to ``[logging] level`` / ``format`` of the configuration.
    ``only_if_unconfigured`` (what ``flow.run()`` uses) adds no handler when the application
    already put one on the root or the ``headwater`` logger, so its own set-up wins.
    """
    logger = logging.getLogger("headwater")
    conf_level, conf_fmt = _configured_logging() if (level is None or fmt is None) else ("INFO", FORMAT)
    level = level if level is not None else conf_level
    fmt = fmt or conf_fmt
    if only_if_unconfigured:
        if logger.level == logging.NOTSET:
            logger.setLevel(level.upper() if isinstance(level, str) else level)
        if logger.handlers or logging.getLogger().handlers:
            return logger
    else:
        logger.setLevel(level.upper() if isinstance(level, str) else level)
    existing = [h for h in logger.handlers if getattr(h, _HANDLER_FLAG, False)]
    target = stream if stream is not None else sys.stderr
    if existing:
        handler = existing[0]
        if stream is not None and isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)
    else:
        handler = logging.StreamHandler(target)
        setattr(handler, _HANDLER_FLAG, True)
        logger.addHandler(handler)
    handler.setFormatter(HeadwaterFormatter(fmt, colour=_is_tty(getattr(handler, "stream", target))))
    return logger


# --- secrets ----------------------------------------------------------------------------------------

_remembered: set[str] = set()
_remembered_lock = threading.Lock()
_SECRET_PREFIX = "HEADWATER__CONTEXT__SECRETS__"
_MIN_SECRET_LENGTH = 4  # masking "1" or "on" everywhere would garble every message


def remember_secret(value: Any) -> None:
    """Mask ``value`` (a secret read at run time, e.g. from a plugin) in every later traceback and log line."""
    for text in _secret_strings(value):
        with _remembered_lock:
            _remembered.add(text)
    refresh_secrets()


def _secret_strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _secret_strings(v)]
    if isinstance(value, (list, tuple, set)):
        return [s for v in value for s in _secret_strings(v)]
    if value is None or isinstance(value, bool):
        return []
    text = str(value)
    return [text] if len(text) >= _MIN_SECRET_LENGTH else []


_cache: tuple[float, list[str]] = (-1.0, [])
_reading = threading.local()
_CACHE_SECONDS = 1.0


def _known_secrets(fresh: bool = False) -> list[str]:
    """Every secret value to mask, longest first (a secret containing another is masked whole).

    Read again at most every second unless ``fresh`` (this runs per log line); ``flow.run()``
    and :func:`remember_secret` refresh it, and failures read it fresh.
    """
    global _cache
    now = time.monotonic()
    if getattr(_reading, "active", False) or (not fresh and 0 <= now - _cache[0] < _CACHE_SECONDS):
        return _cache[1]
    _reading.active = True  # reading the configuration may log: don't recurse
    try:
        values: set[str] = set()
        for var, text in os.environ.items():
            if var.upper().startswith(_SECRET_PREFIX):
                values.update(_secret_strings(text.strip().strip("\"'")))
        values.update(_config_secrets())
        with _remembered_lock:
            values.update(_remembered)
    finally:
        _reading.active = False
    _cache = (now, sorted(values, key=len, reverse=True))
    return _cache[1]


def refresh_secrets() -> None:
    """Read the secret values again now (``flow.run()`` calls it: the environment or config.toml may have changed)."""
    _known_secrets(fresh=True)


def _config_secrets() -> set[str]:
    try:
        from headwater.config import get_config

        return set(_secret_strings(get_config().context.secrets))
    except Exception:
        return set()


def mask_secrets(text: str, fresh: bool = False) -> str:
    """``text`` with every known secret value replaced by ``********`` (``fresh``: read the secrets again now)."""
    if not text:
        return text
    secrets = _known_secrets(fresh)
    if not secrets:
        return text
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
