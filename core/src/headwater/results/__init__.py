"""Results: checkpoint task return values to any fsspec filesystem.

``from headwater.results import Result`` then ``@task(result=Result("file:///data/{flow_name}/{task_slug}.pkl"))``
or ``Flow("name", result=Result(...))``. Serializers decide the bytes: :class:`PickleSerializer`
(the default, cloudpickle), :class:`JSONSerializer`, :class:`TextSerializer`, :class:`BytesSerializer`.
"""

from typing import Any

from headwater.results.result import Result, ResultLocationError, default_results_dir
from headwater.results.serializers import (
    BytesSerializer,
    JSONSerializer,
    PickleSerializer,
    ResultSerializationError,
    Serializer,
    TextSerializer,
)

__all__ = [
    "Result",
    "ResultLocationError",
    "ResultSerializationError",
    "Serializer",
    "PickleSerializer",
    "JSONSerializer",
    "TextSerializer",
    "BytesSerializer",
    "default_results_dir",
]


def __getattr__(name: str) -> Any:
    """Plugin-provided result by exact name (``from headwater.results import S3Result``), with an install hint."""
    from headwater.plugins._registry import plugin_attribute

    return plugin_attribute("result", name, __name__)
