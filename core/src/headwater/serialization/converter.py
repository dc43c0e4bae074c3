"""One cattrs converter for everything that crosses a process or goes to the API.

Polymorphic objects (storage, environments, schedules, clocks, results, serializers) carry a
``"type"`` tag. Tags are looked up in the plugin registries *when structuring*, so a class
registered after this module was imported (by a plugin or a test) still round-trips.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn

from headwater.plugins._manager import registry
from headwater.plugins._registry import UnknownTypeError

__all__ = [
    "converter",
    "to_dict",
    "from_dict",
    "dumps",
    "register_polymorphic_base",
    "SerializationError",
    "canonical_json",
]

TYPE_KEY = "type"


class SerializationError(ValueError):
    """An object could not be serialized or restored (names the class or tag and the fix)."""


converter = cattrs.Converter()
converter.register_unstructure_hook(datetime, lambda d: d.isoformat())
converter.register_structure_hook(datetime, lambda v, _: v if isinstance(v, datetime) else datetime.fromisoformat(v))
converter.register_unstructure_hook(timedelta, lambda d: d.total_seconds())
converter.register_structure_hook(timedelta, lambda v, _: v if isinstance(v, timedelta) else timedelta(seconds=v))

_bases: dict[type, str] = {}
_lock = threading.Lock()
_unstructure_fns: dict[type, Callable[[Any], dict[str, Any]]] = {}
_structure_fns: dict[type, Callable[[dict[str, Any], type], Any]] = {}


def _kind_of(cls: type) -> str | None:
    for base, kind in _bases.items():
        if isinstance(cls, type) and issubclass(cls, base):
            return kind
    return None


def _plain_unstructure(obj: Any) -> dict[str, Any]:
    cls = type(obj)
    fn = _unstructure_fns.get(cls)
    if fn is None:
        with _lock:
            fn = _unstructure_fns[cls] = make_dict_unstructure_fn(cls, converter)
    return fn(obj)


def _plain_structure(data: dict[str, Any], cls: type) -> Any:
    fn = _structure_fns.get(cls)
    if fn is None:
        with _lock:
            fn = _structure_fns[cls] = make_dict_structure_fn(cls, converter)
    return fn(data, cls)


def _tagged_unstructure(obj: Any) -> dict[str, Any]:
    cls = type(obj)
    kind = _kind_of(cls)
    assert kind is not None
    tag = registry(kind).name_for(cls)
    if tag is None:
        raise SerializationError(
            f"{kind} class {cls.__module__}.{cls.__qualname__} is not registered, so it cannot be serialized. "
            f"Register it with the plugin hook (see `headwater plugins --all`) or "
            f"headwater.plugins.registry({kind!r}).register({cls.__name__})."
        )
    return {TYPE_KEY: tag, **_plain_unstructure(obj)}


def _tagged_structure(data: Any, base: type) -> Any:
    if isinstance(data, base):
        return data
    kind = _bases.get(base) or _kind_of(base)
    if not isinstance(data, dict) or TYPE_KEY not in data:
        raise SerializationError(f"Serialized {kind} must be a dict with a {TYPE_KEY!r} tag, got {data!r}.")
    payload = dict(data)
    tag = payload.pop(TYPE_KEY)
    try:
        cls = registry(kind or "?").get(tag)
    except UnknownTypeError as exc:
        raise SerializationError(str(exc)) from None
    if isinstance(base, type) and not (isinstance(cls, type) and issubclass(cls, base)):
        raise SerializationError(f"{kind} tag {tag!r} names {cls!r}, which is not a {base.__name__}.")
    try:
        return _plain_structure(payload, cls)
    except Exception as exc:
        detail = "; ".join(str(e) for e in getattr(exc, "exceptions", [])) or str(exc)
        raise SerializationError(f"Could not restore {kind} {tag!r} from {payload!r}: {detail}") from exc


def register_polymorphic_base(base: type, kind: str) -> None:
    """Serialize every attrs subclass of ``base`` with a ``"type"`` tag from registry ``kind``."""
    _bases[base] = kind

    def tagged_attrs_class(cls: Any) -> bool:
        return isinstance(cls, type) and issubclass(cls, base) and attrs.has(cls)

    def subclass(cls: Any) -> bool:
        return isinstance(cls, type) and issubclass(cls, base)

    converter.register_unstructure_hook_func(tagged_attrs_class, _tagged_unstructure)
    converter.register_structure_hook_func(subclass, _tagged_structure)


_CORE_BASES: dict[str, str] = {
    "storage": "headwater.storage.base:Storage",
    "environment": "headwater.environments.base:Environment",
    "schedule": "headwater.schedules.schedule:Schedule",
    "clock": "headwater.schedules.clocks:Clock",
    "schedule_filter": "headwater.schedules.filters:Filter",
    "result": "headwater.results.result:Result",
    "serializer": "headwater.results.serializers:Serializer",
    "executor": "headwater.executors.base:Executor",
}
"""The core's polymorphic bases, registered lazily (they import this module, and importing all of
them would cost a flow-run process fsspec, croniter and friends it may not need)."""
_pending_bases = dict(_CORE_BASES)


def _ensure_core_bases(kind: str | None = None) -> None:
    """Register the bases whose modules are imported (an object of another base cannot exist yet),
    and the base of ``kind``, importing it."""
    if not _pending_bases:
        return
    import sys

    from headwater.plugins._registry import import_string

    with _lock:
        for name, path in list(_pending_bases.items()):
            if name == kind or path.partition(":")[0] in sys.modules:
                base = import_string(path)
                del _pending_bases[name]
                if base not in _bases:
                    register_polymorphic_base(base, name)


def to_dict(obj: Any) -> Any:
    """``obj`` as JSON-ready data (with ``"type"`` tags for polymorphic objects)."""
    _ensure_core_bases()
    return converter.unstructure(obj)


def from_dict(data: Any, cls_or_kind: type | str) -> Any:
    """Restore an object: ``from_dict(d, Storage)`` or ``from_dict(d, "storage")`` look up the tag."""
    _ensure_core_bases(cls_or_kind if isinstance(cls_or_kind, str) else None)
    if isinstance(cls_or_kind, str):
        base = next((b for b, k in _bases.items() if k == cls_or_kind), None)
        if base is None:
            raise SerializationError(f"No polymorphic base registered for kind {cls_or_kind!r}.")
        return _tagged_structure(data, base)
    return converter.structure(data, cls_or_kind)


def canonical_json(data: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept (same bytes in every process)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    """``obj`` as deterministic JSON."""
    return canonical_json(to_dict(obj))
