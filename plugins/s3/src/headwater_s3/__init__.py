"""headwater-s3: S3 storage, S3 results and the S3 task library.

Users import the classes through the core's names (``from headwater.storage import S3``,
``from headwater.results import S3Result``, ``from headwater.tasks.aws.s3 import S3Download``);
this package exports them too. Names are imported lazily (boto3 and s3fs load on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "S3": "headwater_s3.storage",
    "S3FlowNotFoundError": "headwater_s3.storage",
    "S3Result": "headwater_s3.results",
    "S3Download": "headwater_s3.tasks",
    "S3Upload": "headwater_s3.tasks",
    "S3List": "headwater_s3.tasks",
    "S3Section": "headwater_s3.config",
    "Connection": "headwater_s3.connection",
    "S3Error": "headwater_s3.errors",
    "S3BucketNotFoundError": "headwater_s3.errors",
    "S3KeyNotFoundError": "headwater_s3.errors",
    "S3AccessDeniedError": "headwater_s3.errors",
    "S3ConnectionError": "headwater_s3.errors",
    "S3CorruptObjectError": "headwater_s3.errors",
    "S3ConfigurationError": "headwater_s3.errors",
}

__all__ = [
    "__version__",
    "S3",
    "S3FlowNotFoundError",
    "S3Result",
    "S3Download",
    "S3Upload",
    "S3List",
    "S3Section",
    "Connection",
    "S3Error",
    "S3BucketNotFoundError",
    "S3KeyNotFoundError",
    "S3AccessDeniedError",
    "S3ConnectionError",
    "S3CorruptObjectError",
    "S3ConfigurationError",
]

if TYPE_CHECKING:  # pragma: no cover
    from headwater_s3.config import S3Section
    from headwater_s3.connection import Connection
    from headwater_s3.errors import (
        S3AccessDeniedError,
        S3BucketNotFoundError,
        S3ConfigurationError,
        S3ConnectionError,
        S3CorruptObjectError,
        S3Error,
        S3KeyNotFoundError,
    )
    from headwater_s3.results import S3Result
    from headwater_s3.storage import S3, S3FlowNotFoundError
    from headwater_s3.tasks import S3Download, S3List, S3Upload


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater_s3' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
