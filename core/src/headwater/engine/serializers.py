"""Prefect 1's ``prefect.engine.serializers``: the serializers of :mod:`headwater.results.serializers`.

Besides pickle, JSON, text and bytes: ``DateTimeSerializer`` (ISO 8601 text),
``PandasSerializer(file_type, deserialize_kwargs, serialize_kwargs)`` (pandas is optional:
``pip install pandas``) and ``CompressedSerializer(serializer, format=, compress_kwargs=,
decompress_kwargs=)``.
"""

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
    "Serializer",
    "PickleSerializer",
    "JSONSerializer",
    "TextSerializer",
    "BytesSerializer",
    "DateTimeSerializer",
    "PandasSerializer",
    "CompressedSerializer",
    "ResultSerializationError",
]
