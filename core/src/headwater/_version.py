"""The core distribution's version (single source: core/pyproject.toml)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("headwater")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"
