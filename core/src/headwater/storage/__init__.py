"""Storage: where flows' code is kept so that a flow-run process can load it.

Built-ins: :class:`Local`, :class:`Module`, :class:`FileSystem` (any fsspec URL). Plugins add
more (``headwater-s3``, ``headwater-github``, ``headwater-docker``) through ``register_storage``.
"""

from typing import Any

from headwater.storage.base import FlowNotInStorageError, Storage
from headwater.storage.filesystem import FileSystem
from headwater.storage.local import Local
from headwater.storage.module import Module
from headwater.storage.pickling import FlowLoadError

__all__ = ["Storage", "Local", "Module", "FileSystem", "FlowNotInStorageError", "FlowLoadError"]


def __getattr__(name: str) -> Any:
    """Plugin-provided storage by exact name (``from headwater.storage import GitHub``), with an install hint."""
    from headwater.plugins._registry import plugin_attribute

    return plugin_attribute("storage", name, __name__)
