"""Serializers: turn a task's return value into bytes for a :class:`~headwater.results.Result` and back.

A serializer is a small attrs class with ``serialize(value) -> bytes`` and
``deserialize(data) -> value``. Serializers are attrs classes so a result's settings
(location and serializer) can be saved with a flow and sent to another process.
A value a serializer cannot handle raises :class:`ResultSerializationError`, which says
which serializer, which type, why, and what to do instead.
"""

from __future__ import annotations

import json
import pickle
from typing import Any, ClassVar

import attrs
import cloudpickle

__all__ = [
    "Serializer",
    "PickleSerializer",
    "JSONSerializer",
    "TextSerializer",
    "BytesSerializer",
    "ResultSerializationError",
]

_FIX = "Use a serializer that supports it, e.g. PickleSerializer, or set checkpoint=False on the task."


class ResultSerializationError(Exception):
    """A serializer could not turn a value into bytes (or bytes back into a value).

    ``serializer`` is the serializer's class name, ``value_type`` the type of the value (or
    ``"bytes"`` when deserializing) and ``cause`` the underlying error as text. The error
    pickles with those attributes, so it survives the trip back from a worker process.
    """

    def __init__(
        self,
        message: str,
        serializer: str | None = None,
        value_type: str | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message)
        self.serializer = serializer
        self.value_type = value_type
        self.cause = cause

    @classmethod
    def for_value(cls, serializer: Serializer, value: Any, exc: BaseException) -> ResultSerializationError:
        """The error for ``serializer`` failing to serialize ``value`` with ``exc``."""
        name = type(serializer).__name__
        value_type = _type_name(value)
        cause = f"{type(exc).__name__}: {exc}"
        return cls(
            f"{name} cannot serialize a value of type {value_type!r} ({cause}). {_FIX}",
            serializer=name,
            value_type=value_type,
            cause=cause,
        )

    @classmethod
    def for_bytes(cls, serializer: Serializer, exc: BaseException) -> ResultSerializationError:
        """The error for ``serializer`` failing to deserialize bytes with ``exc``."""
        name = type(serializer).__name__
        cause = f"{type(exc).__name__}: {exc}"
        return cls(
            f"{name} cannot deserialize these bytes ({cause}). Read the result with the serializer "
            "it was written with (the one set on the Result that wrote it).",
            serializer=name,
            value_type="bytes",
            cause=cause,
        )


def _type_name(value: Any) -> str:
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


@attrs.define(frozen=True)
class Serializer:
    """Base class: subclasses implement :meth:`serialize` and :meth:`deserialize`."""

    extension: ClassVar[str] = ""
    """File name suffix used by default result locations (e.g. ``".pkl"``)."""

    def serialize(self, value: Any) -> bytes:
        """``value`` as bytes; raises :class:`ResultSerializationError` if it cannot."""
        raise NotImplementedError(f"{type(self).__name__} does not implement serialize().")

    def deserialize(self, data: bytes) -> Any:
        """The value ``data`` holds; raises :class:`ResultSerializationError` if it cannot."""
        raise NotImplementedError(f"{type(self).__name__} does not implement deserialize().")


@attrs.define(frozen=True)
class PickleSerializer(Serializer):
    """The default: cloudpickle, so lambdas, closures and locally defined classes work too.

    Only read pickles you wrote yourself: unpickling runs code.
    """

    extension: ClassVar[str] = ".pkl"

    def serialize(self, value: Any) -> bytes:
        try:
            return cloudpickle.dumps(value)
        except Exception as exc:  # PicklingError, TypeError ("cannot pickle '_thread.lock'"), ...
            raise ResultSerializationError.for_value(self, value, exc) from exc

    def deserialize(self, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except Exception as exc:
            raise ResultSerializationError.for_bytes(self, exc) from exc


@attrs.define(frozen=True)
class JSONSerializer(Serializer):
    """JSON text (UTF-8): readable by any tool, for dicts, lists, strings, numbers, booleans and None.

    Tuples come back as lists; other types raise :class:`ResultSerializationError`.
    """

    extension: ClassVar[str] = ".json"
    indent: int | None = None

    def serialize(self, value: Any) -> bytes:
        try:
            return json.dumps(value, indent=self.indent, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ResultSerializationError.for_value(self, value, exc) from exc

    def deserialize(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (TypeError, ValueError) as exc:
            raise ResultSerializationError.for_bytes(self, exc) from exc


@attrs.define(frozen=True)
class TextSerializer(Serializer):
    """A ``str`` value as text in ``encoding``; anything else raises :class:`ResultSerializationError`."""

    extension: ClassVar[str] = ".txt"
    encoding: str = "utf-8"

    def serialize(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise ResultSerializationError.for_value(self, value, TypeError("the value must be a str"))
        try:
            return value.encode(self.encoding)
        except (UnicodeError, LookupError) as exc:
            raise ResultSerializationError.for_value(self, value, exc) from exc

    def deserialize(self, data: bytes) -> Any:
        try:
            return data.decode(self.encoding)
        except (UnicodeError, LookupError) as exc:
            raise ResultSerializationError.for_bytes(self, exc) from exc


@attrs.define(frozen=True)
class BytesSerializer(Serializer):
    """Bytes as they are (``bytes``, ``bytearray`` or ``memoryview``); read back as ``bytes``."""

    extension: ClassVar[str] = ".bin"

    def serialize(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise ResultSerializationError.for_value(
                self, value, TypeError("the value must be bytes, bytearray or memoryview")
            )
        return bytes(value)

    def deserialize(self, data: bytes) -> Any:
        return bytes(data)
