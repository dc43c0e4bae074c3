"""Results: checkpoint task return values to any fsspec filesystem.

``from headwater.results import Result`` then ``@task(result=Result("file:///data/{flow_name}/{task_slug}.pkl"))``
or ``Flow("name", result=Result(...))``. Serializers decide the bytes: :class:`PickleSerializer`
(the default, cloudpickle), :class:`JSONSerializer`, :class:`TextSerializer`, :class:`BytesSerializer`,
and Prefect 1's :class:`DateTimeSerializer`, :class:`PandasSerializer`, :class:`CompressedSerializer`.
Prefect 1's cloud results :class:`GCSResult` (gcsfs) and :class:`AzureResult` (adlfs) are here too.
"""

from typing import Any

from headwater.results.cloud import AzureResult, GCSResult
from headwater.results.result import Result, ResultLocationError, default_results_dir
from headwater.results.serializers import (
    BytesSerializer,
    CompressedSerializer,
    DateTimeSerializer,
    JSONSerializer,
    PandasSerializer,
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
    "DateTimeSerializer",
    "PandasSerializer",
    "CompressedSerializer",
    "GCSResult",
    "AzureResult",
    "default_results_dir",
]


def __getattr__(name: str) -> Any:
    """Plugin-provided result by exact name (``from headwater.results import S3Result``), with an install hint."""
    from headwater.plugins._registry import plugin_attribute

    return plugin_attribute("result", name, __name__)
