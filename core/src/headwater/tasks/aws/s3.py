"""The S3 task library, ``S3Download``, ``S3Upload`` and ``S3List``, provided by ``headwater-s3``.

``from headwater.tasks.aws.s3 import S3Download`` imports ``headwater_s3.tasks``; without the
plugin it raises ``ImportError: The S3 task library is in headwater-s3: pip install headwater-s3``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["S3Download", "S3Upload", "S3List"]  # noqa: F822 - resolved by __getattr__ from headwater-s3


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from headwater.plugins import import_plugin_module

    module = import_plugin_module("headwater_s3.tasks", "headwater-s3", "The S3 task library")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
