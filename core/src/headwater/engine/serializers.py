"""Prefect 1's ``prefect.engine.serializers``: the serializers of :mod:`headwater.results.serializers`.

Prefect 1's ``DateTimeSerializer``, ``PandasSerializer`` and ``CompressedSerializer`` are not
provided (see docs/prefect1.md); any object with ``serialize(value) -> bytes`` and
``deserialize(bytes)`` can be registered as a serializer instead.
"""

from headwater.results.serializers import (
    BytesSerializer,
    JSONSerializer,
    PickleSerializer,
    ResultSerializationError,
    Serializer,
    TextSerializer,
)

__all__ = [
    "Serializer",
    "PickleSerializer",
    "JSONSerializer",
    "TextSerializer",
    "BytesSerializer",
    "ResultSerializationError",
]
