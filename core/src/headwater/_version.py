"""The core distribution's version (single source: core/pyproject.toml reads it from here)."""

__version__ = "0.1.0"
