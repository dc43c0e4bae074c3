"""Serializers: turn a task's return value into bytes for a :class:`~headwater.results.Result` and back.

A serializer is a small attrs class with ``serialize(value) -> bytes`` and
``deserialize(data) -> value``. Serializers are attrs classes so a result's settings
(location and serializer) can be saved with a flow and sent to another process.
A value a serializer cannot handle raises :class:`ResultSerializationError`, which says
which serializer, which type, why, and what to do instead.
"""

from __future__ import annotations

import importlib
import io
import json
import pickle
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

import attrs
import cloudpickle

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


# --- Prefect 1's other serializers ---------------------------------------------------------------------


@attrs.define(frozen=True)
class DateTimeSerializer(Serializer):
    """A ``datetime`` as ISO 8601 text (Prefect 1's ``DateTimeSerializer``); read back as a ``datetime``.

    A timezone-aware value keeps its offset (``2030-01-02T03:04:05+00:00``); pendulum datetimes
    are datetimes, so they serialize too (and come back as stdlib datetimes).
    """

    extension: ClassVar[str] = ".txt"

    def __attrs_post_init__(self) -> None:
        _ensure_registered(DateTimeSerializer)

    def serialize(self, value: Any) -> bytes:
        if not isinstance(value, datetime):
            raise ResultSerializationError.for_value(self, value, TypeError("the value must be a datetime"))
        return value.isoformat().encode("utf-8")

    def deserialize(self, data: bytes) -> Any:
        try:
            return datetime.fromisoformat(bytes(data).decode("utf-8").strip())
        except (UnicodeError, ValueError) as exc:
            raise ResultSerializationError.for_bytes(self, exc) from exc


def _pandas(what: str) -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(f"{what} needs pandas, which is not installed: pip install pandas") from None
    return pandas


def _as_kwargs(value: Any) -> dict[str, Any]:
    return dict(value or {})


@attrs.define(frozen=True)
class PandasSerializer(Serializer):
    """A pandas DataFrame as a file of ``file_type`` (Prefect 1's ``PandasSerializer``): ``"csv"``, ``"parquet"``, ...

    ``file_type`` names a ``DataFrame.to_<file_type>`` method and a ``pandas.read_<file_type>``
    function; ``serialize_kwargs`` go to the first (``{"index": False}``), ``deserialize_kwargs``
    to the second. pandas is optional: ``pip install pandas`` (and pyarrow for parquet/feather).
    """

    file_type: str = attrs.field()
    deserialize_kwargs: dict[str, Any] = attrs.field(factory=dict, converter=_as_kwargs, hash=False)
    serialize_kwargs: dict[str, Any] = attrs.field(factory=dict, converter=_as_kwargs, hash=False)

    @file_type.validator
    def _check_file_type(self, _: Any, value: Any) -> None:
        if not isinstance(value, str) or not value.isidentifier():
            raise ValueError(f"PandasSerializer(file_type={value!r}): give a pandas format name such as 'csv' or 'parquet'.")
        try:
            import pandas
        except ImportError:
            return  # checked when used, with the install hint
        if not hasattr(pandas, f"read_{value}") or not hasattr(pandas.DataFrame, f"to_{value}"):
            raise ValueError(
                f"PandasSerializer(file_type={value!r}): pandas has no read_{value}/DataFrame.to_{value}. "
                "Use a format pandas reads and writes, e.g. 'csv', 'json', 'parquet', 'feather' or 'pickle'."
            )

    def __attrs_post_init__(self) -> None:
        _ensure_registered(PandasSerializer)

    @property
    def extension(self) -> str:  # type: ignore[override]
        return f".{self.file_type}"

    def serialize(self, value: Any) -> bytes:
        pandas = _pandas("PandasSerializer")
        if not isinstance(value, (pandas.DataFrame, pandas.Series)):
            raise ResultSerializationError.for_value(self, value, TypeError("the value must be a pandas DataFrame"))
        method = getattr(value, f"to_{self.file_type}")
        buffer = io.BytesIO()
        try:
            try:
                method(buffer, **self.serialize_kwargs)
                return buffer.getvalue()
            except TypeError:  # text formats (csv, json) want a text buffer with some pandas versions
                text = io.StringIO()
                method(text, **self.serialize_kwargs)
                return text.getvalue().encode("utf-8")
        except ImportError:
            raise
        except Exception as exc:
            raise ResultSerializationError.for_value(self, value, exc) from exc

    def deserialize(self, data: bytes) -> Any:
        pandas = _pandas("PandasSerializer")
        reader = getattr(pandas, f"read_{self.file_type}")
        try:
            return reader(io.BytesIO(bytes(data)), **self.deserialize_kwargs)
        except ImportError:
            raise
        except Exception as exc:
            raise ResultSerializationError.for_bytes(self, exc) from exc


_COMMON_FORMATS = ("bz2", "gzip", "lzma", "zlib")


def _import_path(fn: Any, what: str) -> str | None:
    """``module:qualname`` of a module-level function, so a CompressedSerializer serializes."""
    if fn is None or isinstance(fn, str):
        return fn
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if not module or "<" in qualname:
        raise ValueError(
            f"CompressedSerializer({what}={fn!r}): give a module-level function (it is saved by its import path "
            "so the serializer can be sent to another process), or use format='gzip' / 'bz2' / 'lzma' / 'zlib'."
        )
    return f"{module}:{qualname}"


def _load(path: str) -> Callable[..., bytes]:
    module, _, name = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


@attrs.define(frozen=True, init=False)
class CompressedSerializer(Serializer):
    """Another serializer's bytes, compressed (Prefect 1's ``CompressedSerializer``).

    ``format`` names a module with ``compress``/``decompress`` (``"gzip"``, ``"bz2"``, ``"lzma"``,
    ``"zlib"``, or e.g. ``"lz4.frame"``); or pass module-level ``compress=``/``decompress=``
    functions instead. ``compress_kwargs``/``decompress_kwargs`` go to them (``{"compresslevel": 9}``).
    """

    serializer: Serializer = attrs.field()
    format: str | None = attrs.field(default=None)
    compress: str | None = attrs.field(default=None)
    decompress: str | None = attrs.field(default=None)
    compress_kwargs: dict[str, Any] = attrs.field(factory=dict, hash=False)
    decompress_kwargs: dict[str, Any] = attrs.field(factory=dict, hash=False)

    def __init__(
        self,
        serializer: Serializer,
        format: str | None = None,  # noqa: A002 - Prefect 1's argument name
        compress: Callable[..., bytes] | str | None = None,
        decompress: Callable[..., bytes] | str | None = None,
        compress_kwargs: dict[str, Any] | None = None,
        decompress_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(serializer, type) or not (callable(getattr(serializer, "serialize", None))
                                                 and callable(getattr(serializer, "deserialize", None))):
            raise TypeError(f"CompressedSerializer(serializer=...) needs a serializer instance, got {serializer!r}.")
        if format and (compress or decompress):
            raise ValueError("CompressedSerializer: give either format= or compress=/decompress=, but not both.")
        if format:
            _compression_from_lib(format)
        elif not (compress and decompress):
            raise ValueError(
                "CompressedSerializer: give format= (e.g. 'gzip') or both compress= and decompress= functions."
            )
        self.__attrs_init__(serializer, format, _import_path(compress, "compress"),
                            _import_path(decompress, "decompress"), dict(compress_kwargs or {}),
                            dict(decompress_kwargs or {}))
        _ensure_registered(CompressedSerializer)

    def _functions(self) -> tuple[Callable[..., bytes], Callable[..., bytes]]:
        if self.format:
            return _compression_from_lib(self.format)
        assert self.compress is not None and self.decompress is not None
        return _load(self.compress), _load(self.decompress)

    @property
    def extension(self) -> str:  # type: ignore[override]
        suffix = {"gzip": ".gz", "bz2": ".bz2", "lzma": ".xz", "zlib": ".zlib"}.get(self.format or "", "")
        return getattr(self.serializer, "extension", "") + suffix

    def serialize(self, value: Any) -> bytes:
        compress, _ = self._functions()
        data = self.serializer.serialize(value)
        try:
            return bytes(compress(data, **self.compress_kwargs))
        except Exception as exc:
            raise ResultSerializationError.for_value(self, value, exc) from exc

    def deserialize(self, data: bytes) -> Any:
        _, decompress = self._functions()
        try:
            raw = decompress(bytes(data), **self.decompress_kwargs)
        except Exception as exc:
            raise ResultSerializationError.for_bytes(self, exc) from exc
        return self.serializer.deserialize(raw)


def _compression_from_lib(name: str) -> tuple[Callable[..., bytes], Callable[..., bytes]]:
    """``(module.compress, module.decompress)`` of the module ``name`` (Prefect 1's ``compression_from_lib``)."""
    others = [f for f in _COMMON_FORMATS if f != name]
    try:
        module = importlib.import_module(name)
    except ImportError:
        raise ImportError(
            f"CompressedSerializer(format={name!r}): the compression module {name!r} is not installed "
            f"(pip install it), or use one of the standard library's: {', '.join(others)}."
        ) from None
    try:
        return module.compress, module.decompress
    except AttributeError:
        raise ValueError(
            f"CompressedSerializer(format={name!r}): the module has no compress/decompress functions; pass "
            f"compress= and decompress= instead, or use one of {', '.join(others)}."
        ) from None


def _ensure_registered(cls: type) -> None:
    """Give ``cls`` its type tag (its class name) in the serializer registry, also after the registry was reset."""
    from headwater.schedules.clocks import ensure_registered

    ensure_registered("serializer", cls)


def _register_serializers() -> None:
    for cls in (DateTimeSerializer, PandasSerializer, CompressedSerializer):
        _ensure_registered(cls)


_register_serializers()
