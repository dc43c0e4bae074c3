"""Where headwater keeps its files: ``$HEADWATER_HOME`` or ``~/.headwater``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["headwater_home"]


def headwater_home() -> Path:
    """The headwater home directory (not created here)."""
    value = os.environ.get("HEADWATER_HOME")
    return Path(value).expanduser() if value else Path.home() / ".headwater"
