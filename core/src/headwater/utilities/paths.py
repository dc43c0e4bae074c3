"""Where headwater keeps its files: ``$HEADWATER_HOME`` or ``~/.headwater``."""

from headwater.config.loader import headwater_home

__all__ = ["headwater_home"]
