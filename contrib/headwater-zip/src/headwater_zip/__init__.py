"""headwater-zip: Storage of flows in a zip archive on local disk.

``ZipStorage`` is imported lazily, so ``import headwater_zip``
(and headwater loading the plugin) stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ZipStorage"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "ZipStorage":
        from headwater_zip.storage import ZipStorage

        return ZipStorage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
