"""``Result``: where a task's return value is checkpointed, on any fsspec filesystem.

A :class:`Result` holds a location *template* and a serializer. When a task that has a
result (or whose flow has one) succeeds, the engine calls ``result.write(value, **context)``:
the template is formatted with the task run's context (``flow_name``, ``task_name``,
``task_slug``, ``map_index``, ``today``, ``flow_run_id``, ``parameters``, ...), the value is
serialized, and the bytes are written there. The returned Result's ``location`` is stored on
the task's Success state, so the value can be read back later with :meth:`Result.read`.
"""

from __future__ import annotations

import os
import posixpath
import re
import string
import uuid
from collections.abc import Mapping
from typing import Any

import attrs
import fsspec
from fsspec.core import split_protocol, url_to_fs
from fsspec.implementations.local import LocalFileSystem

from headwater.results.serializers import PickleSerializer, Serializer
from headwater.utilities.files import atomic_write

__all__ = ["Result", "ResultLocationError", "default_results_dir"]

_UNSAFE = re.compile(r"[^\w.\-]+")


class ResultLocationError(ValueError):
    """A result location template could not be formatted (names the template, the key and the fix)."""


def default_results_dir() -> str:
    """``$HEADWATER_HOME/results`` (``~/.headwater/results`` when ``HEADWATER_HOME`` is not set)."""
    home = os.environ.get("HEADWATER_HOME") or os.path.join("~", ".headwater")
    return os.path.join(os.path.abspath(os.path.expanduser(home)), "results")


def _safe(part: Any) -> str:
    """One path component made of letters, digits, ``.``, ``_`` and ``-`` only."""
    text = _UNSAFE.sub("_", str(part)).strip("_") or "_"
    return "_" if text in (".", "..") else text


def default_result_key(ctx: Mapping[str, Any], serializer: Any = None) -> str:
    """``<flow>/<flow run id>/<task slug>[-<map index>]<extension>``: where a result with no location goes.

    Every Result type (local files, S3, GCS, Azure) names an unset location this way, each
    part made path-safe; without a flow run id (a local run) a random one keeps runs apart.
    """
    flow = ctx.get("flow_name") or "no-flow"
    run_id = ctx.get("flow_run_id") or uuid.uuid4().hex
    name = _safe(ctx.get("task_slug") or ctx.get("task_name") or "result")
    map_index = ctx.get("map_index")
    if map_index is not None:
        name = f"{name}-{_safe(map_index)}"
    return f"{_safe(flow)}/{_safe(run_id)}/{name}{getattr(serializer, 'extension', '')}"


def _serializer_or_default(value: Any) -> Any:
    if value is None:
        return PickleSerializer()
    if isinstance(value, type):
        raise TypeError(
            f"Result(serializer=...) takes a serializer instance, got the class {value.__name__}: "
            f"write serializer={value.__name__}()."
        )
    if not (callable(getattr(value, "serialize", None)) and callable(getattr(value, "deserialize", None))):
        raise TypeError(
            f"Result(serializer=...) needs an object with serialize(value) -> bytes and deserialize(bytes), "
            f"got {value!r}. Use one of headwater.results.serializers (PickleSerializer, JSONSerializer, ...)."
        )
    return value


def _check_location(_: Any, __: Any, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"Result(location=...) must be a string (a path or an fsspec URL template), got {value!r}.")


def _format_template(template: str, values: Mapping[str, Any]) -> str:
    """``template.format(**values)`` with errors that name the template, the key and the keys available."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ResultLocationError(
            f"Result location {template!r} is not a valid template ({exc}). "
            "Write keys as {key} and a literal brace as {{ or }}."
        ) from exc
    for field in fields:
        root = re.split(r"[.\[]", field, maxsplit=1)[0]
        if root == "" or root.isdigit():
            raise ResultLocationError(
                f"Result location {template!r} has a positional field {{{field}}}; use named keys "
                f"such as {{flow_name}} or {{task_slug}}."
            )
        if root not in values:
            available = ", ".join(sorted(values)) or "none"
            raise ResultLocationError(
                f"Result location {template!r} uses the key {root!r}, which is not in the task run's context. "
                f"Available keys: {available}. Change the template, or add the key with "
                f"flow.run(context={{{root!r}: ...}})."
            )
    try:
        return template.format_map(values)
    except (KeyError, IndexError, AttributeError, TypeError, ValueError) as exc:
        raise ResultLocationError(f"Result location {template!r} could not be formatted: {exc!r}.") from exc


def _absolute(location: str) -> str:
    """A plain path made absolute (with ``~`` expanded); URLs are returned as they are."""
    protocol, _ = split_protocol(location)
    if protocol is None:
        return os.path.abspath(os.path.expanduser(location))
    return location


def _filesystem(location: str) -> tuple[fsspec.AbstractFileSystem, str]:
    return url_to_fs(_absolute(location))


@attrs.define(slots=False)
class Result:
    """A location template and a serializer for checkpointing task return values.

    ``location`` is a path or any fsspec URL (``file://``, ``memory://``, ``s3://``, ...) with
    str.format keys from the task run's context, e.g.
    ``"file:///data/{flow_name}/{task_name}-{map_index}.pkl"``. Without a location, results go
    to ``$HEADWATER_HOME/results/<flow_name>/<flow_run_id>/<task_slug>[-<map_index>]<ext>``.
    ``serializer`` defaults to :class:`~headwater.results.serializers.PickleSerializer`.

    ``value`` (not a persisted field) holds the value of a Result returned by :meth:`write`
    or :meth:`read`.
    """

    location: str | None = attrs.field(default=None, validator=_check_location)
    serializer: Serializer = attrs.field(default=None, converter=_serializer_or_default)

    def __attrs_post_init__(self) -> None:
        self.value: Any = None

    # --- locations ------------------------------------------------------------------------

    def format(self, **kwargs: Any) -> str:
        """The location for a task run with context ``kwargs`` (the template filled in)."""
        if self.location is None:
            return self._default_location(kwargs)
        return _absolute(_format_template(self.location, kwargs))

    def at(self, target: str) -> Result:
        """This Result writing to ``target`` (a task's ``target=``): a URL or absolute path as it is,
        a relative one under this Result's directory (the directory of ``location`` before its
        first template field, as Prefect 1 put targets under a LocalResult's ``dir``; or the
        default results directory)."""
        protocol, _ = split_protocol(target)
        if protocol is not None or os.path.isabs(os.path.expanduser(target)):
            return attrs.evolve(self, location=target)
        if self.location is None:
            base = default_results_dir()
        else:  # the directory before the template's first {field}: LocalResult(dir=d)'s targets are under d, every run
            head = self.location.split("{", 1)[0]
            base = posixpath.dirname(head) if split_protocol(self.location)[0] else os.path.dirname(head)
        return attrs.evolve(self, location=posixpath.join(base, target) if split_protocol(base)[0] else os.path.join(base, target))

    def _default_location(self, ctx: Mapping[str, Any]) -> str:
        return os.path.join(default_results_dir(), *default_result_key(ctx, self.serializer).split("/"))

    # --- reading and writing --------------------------------------------------------------

    def write(self, value: Any, **kwargs: Any) -> Result:
        """Serialize ``value`` and write it to :meth:`format` ``(**kwargs)``; returns a new Result there.

        The value is serialized completely before the target is touched, and local files are
        written to a temporary file in the same directory and renamed into place, so a failed
        write never leaves a half-written result behind.
        """
        location = self.format(**kwargs)
        data = self.serializer.serialize(value)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"{type(self.serializer).__name__}.serialize() returned {type(data).__name__}, not bytes: "
                "a serializer must return bytes."
            )
        fs, path = _filesystem(location)
        if isinstance(fs, LocalFileSystem):
            atomic_write(path, bytes(data))
        else:
            parent = posixpath.dirname(path)
            if parent and parent != "/":
                fs.makedirs(parent, exist_ok=True)
            fs.pipe_file(path, bytes(data))
        return self._with(location, value)

    def read(self, location: str) -> Result:
        """Read and deserialize the result at ``location`` (a written location, not a template)."""
        fs, path = _filesystem(location)
        try:
            data = fs.cat_file(path)
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"No result at {location!r}: nothing was written there, or it was removed. "
                "Check the location (a task's Success state has it as state.location)."
            ) from exc
        return self._with(location, self.serializer.deserialize(data))

    def exists(self, location: str | None = None, **kwargs: Any) -> bool:
        """Whether a result exists at ``location`` (a location or template, formatted with ``kwargs``).

        Without ``location``, checks this Result's own location for the context ``kwargs``.
        """
        if location is None:
            target = self.format(**kwargs)
        elif kwargs or _has_fields(location):
            target = _absolute(_format_template(location, kwargs))
        else:
            target = location
        fs, path = _filesystem(target)
        return bool(fs.exists(path))

    def _with(self, location: str, value: Any) -> Result:
        new = attrs.evolve(self, location=location)
        new.value = value
        return new


def _has_fields(template: str) -> bool:
    try:
        return any(name is not None for _, name, _, _ in string.Formatter().parse(template))
    except ValueError:
        return False
