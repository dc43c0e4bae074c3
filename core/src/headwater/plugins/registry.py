"""Registries of named classes (storage, environments, executors, ...) filled by plugin hooks.

Entries may be classes or lazy ``"module:Class"`` strings, imported only when first needed,
so ``headwater --help`` never imports boto3 or kubernetes. A registry is filled the first
time it is used, which means classes from plugins installed or registered later still
round-trip.
"""

from __future__ import annotations

import enum
import importlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import attrs

__all__ = [
    "Registry",
    "RegistryEntry",
    "RegistryKind",
    "Registrar",
    "UnknownTypeError",
    "install_hint",
    "import_string",
    "plugin_attribute",
    "import_plugin_module",
]


class RegistryKind(str, enum.Enum):
    """The registries, each filled by one ``register_*`` hook (the one table of kinds)."""

    STORAGE = "storage"
    ENVIRONMENT = "environment"
    EXECUTOR = "executor"
    CLIENT_RESOURCE = "client_resource"
    TASK_TYPE = "task_type"
    RESULT = "result"
    SERIALIZER = "serializer"
    SCHEDULE = "schedule"
    CLOCK = "clock"
    SCHEDULE_FILTER = "schedule_filter"

    @property
    def hook(self) -> str:
        """The hook that fills this registry."""
        return _HOOKS[self]

    @property
    def label(self) -> str:
        """How errors name one entry of this kind (``storage``, ``executor``, ``result``...)."""
        return self.value.replace("_", " ")

    def __str__(self) -> str:
        return self.value


_HOOKS: dict[RegistryKind, str] = {
    RegistryKind.STORAGE: "register_storage",
    RegistryKind.ENVIRONMENT: "register_environments",
    RegistryKind.EXECUTOR: "register_executors",
    RegistryKind.CLIENT_RESOURCE: "register_client_resources",
    RegistryKind.TASK_TYPE: "register_task_types",
    RegistryKind.RESULT: "register_results",
    RegistryKind.SERIALIZER: "register_serializers",
    RegistryKind.SCHEDULE: "register_schedules",
    RegistryKind.CLOCK: "register_schedules",
    RegistryKind.SCHEDULE_FILTER: "register_schedules",
}


def install_hint(name: str, kind: str | None = None) -> str | None:
    """``pip install headwater-x`` when ``name`` is exactly a name one of our distributions provides.

    With ``kind``, only that registry's names are considered; without, every kind's.
    """
    from headwater.plugins.known import KNOWN_IMPLEMENTATIONS

    kinds = [str(kind)] if kind is not None else list(KNOWN_IMPLEMENTATIONS)
    for k in kinds:
        dist = KNOWN_IMPLEMENTATIONS.get(k, {}).get(name)
        if dist:
            return f"pip install {dist}"
    return None


def plugin_attribute(kind: str, name: str, module: str) -> Any:
    """A module ``__getattr__`` body: the class registered as ``name`` in registry ``kind``.

    ``from headwater.storage import GitHub`` imports the class when its plugin is installed,
    and raises ``ImportError: GitHub storage is in headwater-github: pip install headwater-github``
    when it is not.
    """
    if name.startswith("_"):
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    from headwater.plugins.known import known_distribution
    from headwater.plugins.manager import registry

    reg = registry(str(kind))
    if name in reg:
        return reg.get(name)
    dist = known_distribution(str(kind), name)
    if dist:
        label = str(kind).replace("_", " ")
        raise ImportError(f"{name} {label} is in {dist}: pip install {dist}", name=module)
    raise AttributeError(f"module {module!r} has no attribute {name!r}")


def import_plugin_module(module: str, distribution: str, what: str) -> Any:
    """Import ``module`` from plugin ``distribution``; a clear ``ImportError`` when it is not installed.

    For the core's shim modules (``headwater.tasks.aws.s3`` re-exports ``headwater_s3.tasks``).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.partition(".")[0]
        if exc.name and (exc.name == top or module.startswith(exc.name + ".") or exc.name == module):
            raise ImportError(f"{what} is in {distribution}: pip install {distribution}", name=module) from None
        raise


class UnknownTypeError(LookupError):
    """A type tag that no installed plugin registered (names the tag, the known ones and what to install)."""


def import_string(path: str) -> Any:
    """Import ``"package.module:Attribute"`` (also ``a.b:C.d``)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ValueError(f"Lazy reference {path!r} must look like 'package.module:Attribute'.")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@attrs.define
class RegistryEntry:
    """One registered name: the class (or its lazy path) and the plugin that registered it."""

    name: str
    target: Any
    plugin: str
    overrides: str | None = None

    @property
    def is_lazy(self) -> bool:
        return isinstance(self.target, str)

    @property
    def reference(self) -> str:
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"

    def load(self) -> Any:
        if isinstance(self.target, str):
            self.target = import_string(self.target)
        return self.target


class Registry:
    """Named classes of one kind. ``fill`` is called once, on first use, to run the plugin hooks."""

    def __init__(self, kind: str, fill: Callable[[Registry], None] | None = None) -> None:
        self.kind = kind
        self._fill = fill
        self._filled = fill is None
        self._lock = threading.RLock()
        self._entries: dict[str, RegistryEntry] = {}
        self.conflicts: list[str] = []
        self.conflicting: list[tuple[str, str, str]] = []
        """``(name, first_plugin, second_plugin)`` for each entry in :attr:`conflicts`."""
        self._current_plugin = "user"

    # --- filling ------------------------------------------------------------------------

    def _ensure(self) -> None:
        if self._filled:
            return
        with self._lock:
            if self._filled:
                return
            self._filled = True
            assert self._fill is not None
            self._fill(self)

    def register(self, target: Any, name: str | None = None, *, plugin: str | None = None) -> Any:
        """Register a class or ``"module:Class"`` under ``name`` (default: the class name). Returns ``target``."""
        if name is None:
            if isinstance(target, str):
                name = target.rpartition(":")[2].rpartition(".")[2]
            else:
                name = getattr(target, "__name__", None)
        if not name or not isinstance(name, str):
            raise ValueError(f"Cannot register {target!r} in the {self.kind} registry without a name.")
        if isinstance(target, str) and ":" not in target:
            raise ValueError(f"{self.kind} {name!r}: lazy reference {target!r} must look like 'package.module:Class'.")
        plugin = plugin or self._current_plugin
        with self._lock:
            old = self._entries.get(name)
            overrides = None
            if old is not None and old.reference != (target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"):
                if old.plugin == "headwater" or plugin == "user":
                    overrides = old.plugin
                elif old.plugin != plugin:
                    self.conflicts.append(
                        f"{self.kind} {name!r} is registered by both {old.plugin!r} ({old.reference}) and "
                        f"{plugin!r}; using {plugin!r}'s. Uninstall or block one of them (HEADWATER_BLOCKED_PLUGINS)."
                    )
                    self.conflicting.append((name, old.plugin, plugin))
                    overrides = old.plugin
            self._entries[name] = RegistryEntry(name, target, plugin, overrides)
        return target

    def _registering_as(self, plugin: str) -> Callable[..., Any]:
        def register(target: Any, name: str | None = None) -> Any:
            return self.register(target, name, plugin=plugin)

        return register

    # --- lookup -------------------------------------------------------------------------

    def get(self, name: str) -> Any:
        """The class registered as ``name`` (importing it if lazy); :class:`UnknownTypeError` if none."""
        self._ensure()
        entry = self._entries.get(name)
        if entry is None:
            raise UnknownTypeError(self._unknown_message(name))
        try:
            return entry.load()
        except Exception as exc:
            raise UnknownTypeError(
                f"{self.kind} {name!r} is registered by plugin {entry.plugin!r} as {entry.reference}, but importing it "
                f"failed: {exc!r}. Reinstall that plugin or check its dependencies."
            ) from exc

    def _unknown_message(self, name: str) -> str:
        known = ", ".join(sorted(self._entries)) or "none"
        message = f"Unknown {self.kind} type {name!r}. Installed {self.kind} types: {known}."
        hint = install_hint(name)
        if hint:
            message += f" {name!r} is provided by a plugin: {hint}"
        else:
            message += f" Install the plugin that provides it, or register it with the register_{self.kind}... hook."
        return message

    def name_for(self, cls: type) -> str | None:
        """The registered name of exactly ``cls``; lazy entries are resolved only if their module is imported."""
        import sys

        self._ensure()
        reference = f"{cls.__module__}:{cls.__qualname__}"
        found = None
        for entry in self._entries.values():
            if entry.target is cls or entry.reference == reference:
                found = entry.name
            elif entry.is_lazy and entry.reference.partition(":")[0] in sys.modules:
                try:
                    if entry.load() is cls:
                        found = entry.name
                except Exception:
                    continue
        return found

    def __contains__(self, name: object) -> bool:
        self._ensure()
        return name in self._entries

    def names(self) -> list[str]:
        self._ensure()
        return sorted(self._entries)

    def entries(self) -> list[RegistryEntry]:
        self._ensure()
        return [self._entries[k] for k in sorted(self._entries)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def unregister(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)

    def __repr__(self) -> str:
        return f"<Registry {self.kind}: {', '.join(self._entries) if self._filled else '(not loaded)'}>"
