"""Logging set-up: every headwater logger lives under the ``headwater`` logger."""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["get_logger", "configure_logging"]

FORMAT = "[%(asctime)s] %(levelname)s - %(name)s | %(message)s"
_HANDLER_FLAG = "_headwater_default_handler"


def get_logger(name: str | None = None) -> logging.Logger:
    """The ``headwater`` logger, or its child ``headwater.<name>``."""
    root = logging.getLogger("headwater")
    return root.getChild(name) if name else root


def configure_logging(level: str | int | None = None) -> logging.Logger:
    """Give the ``headwater`` logger a stderr handler once (level from ``HEADWATER__LOGGING__LEVEL``)."""
    logger = logging.getLogger("headwater")
    level = level or os.environ.get("HEADWATER__LOGGING__LEVEL", "INFO")
    logger.setLevel(level.upper() if isinstance(level, str) else level)
    if not any(getattr(h, _HANDLER_FLAG, False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT))
        setattr(handler, _HANDLER_FLAG, True)
        logger.addHandler(handler)
    return logger
