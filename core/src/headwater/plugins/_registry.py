"""Registries of named classes (storage, environments, executors, ...) filled by plugin hooks.

Entries may be classes or lazy ``"module:Class"`` strings, imported only when first needed,
so ``headwater --help`` never imports boto3 or kubernetes. A registry is filled the first
time it is used, which means classes from plugins installed or registered later still
round-trip.
"""

from __future__ import annotations

import enum
import importlib
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

__all__ = [
    "Registry",
    "RegistryEntry",
    "RegistryKind",
    "Registrar",
    "UnknownTypeError",
    "RegistrationConflictError",
    "BUILTIN_PLUGIN",
    "CLASS_REGISTRIES",
    "install_hint",
    "import_string",
    "plugin_attribute",
    "import_plugin_module",
]


class RegistryKind(enum.StrEnum):
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
    CONFIG_SECTION = "config_section"

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
    RegistryKind.CLOCK: "register_clocks",
    RegistryKind.SCHEDULE_FILTER: "register_schedule_filters",
    RegistryKind.CONFIG_SECTION: "register_config_sections",
}

CLASS_REGISTRIES: tuple[RegistryKind, ...] = (
    RegistryKind.STORAGE,
    RegistryKind.ENVIRONMENT,
    RegistryKind.EXECUTOR,
    RegistryKind.CLIENT_RESOURCE,
    RegistryKind.RESULT,
    RegistryKind.SERIALIZER,
    RegistryKind.SCHEDULE,
    RegistryKind.CLOCK,
    RegistryKind.SCHEDULE_FILTER,
)
"""The kinds kept in a :class:`Registry` of named classes (task types and config sections have their own stores)."""


_KIND_VALUES = frozenset(k.value for k in RegistryKind)


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
    from headwater.plugins._manager import registry
    from headwater.plugins.known import known_distribution

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


BUILTIN_PLUGIN = "headwater"
"""The name the core's own implementations register under."""


class UnknownTypeError(LookupError):
    """A type tag that no installed plugin registered (names the tag, the known ones and what to install)."""


class RegistrationConflictError(ValueError):
    """Two plugins register one name without ``replace=True`` (the message names both and the fix)."""


class Registrar:
    """What every ``register_*`` hook receives: ``register(obj_or_"module:attr", name=None, *, replace=False)``.

    ``obj`` is a class (or callable) or a lazy ``"module:attr"`` string, imported only when
    first used; ``name`` defaults to the class name. Calls are attributed to the plugin whose
    hook implementation made them, so conflicts and ``headwater plugins`` name the right plugin.
    """

    def __init__(
        self,
        kind: str,
        sink: Callable[..., Any],
        owners: Mapping[Any, str] | None = None,
        *,
        swap_legacy_order: bool = False,
    ) -> None:
        self.kind = kind
        """The registry this registrar fills (``storage``, ``config_section``...)."""
        self._sink = sink
        self._owners = dict(owners or {})
        self._swap = swap_legacy_order

    def plugin(self) -> str:
        """The plugin whose hook implementation is calling (``user`` outside a hook)."""
        frame = sys._getframe(1)
        for _ in range(32):
            if frame is None:
                break
            owner = self._owners.get(frame.f_code)
            if owner is not None:
                return owner
            frame = frame.f_back  # type: ignore[assignment]
        return "user"

    def __call__(self, obj: Any, name: Any = None, *, replace: bool = False, **options: Any) -> Any:
        if self._swap and isinstance(obj, str) and ":" not in obj and name is not None and (
            not isinstance(name, str) or ":" in name
        ):
            warnings.warn(
                f"register({obj!r}, {name!r}): the name comes second now: register(obj_or_'module:attr', name). "
                "The old order still works for now.",
                DeprecationWarning,
                stacklevel=2,
            )
            obj, name = name, obj
        return self._sink(obj, name, plugin=self.plugin(), replace=replace, **options)

    def __repr__(self) -> str:
        return f"<Registrar {self.kind}>"


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

    def register(
        self, target: Any, name: str | None = None, *, plugin: str | None = None, replace: bool = False
    ) -> Any:
        """Register a class or ``"module:Class"`` under ``name`` (default: the class name). Returns ``target``.

        A plugin may override a built-in (``headwater``) entry. Taking over a name another plugin
        registered needs ``replace=True``; otherwise :class:`RegistrationConflictError` names both.
        """
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
        reference = target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
        with self._lock:
            old = self._entries.get(name)
            overrides = None
            if old is not None and old.reference != reference:
                overrides = old.plugin
                if old.plugin not in (BUILTIN_PLUGIN, plugin, "user") and plugin != "user" and not replace:
                    message = (
                        f"{self.kind} {name!r} is registered by both {old.plugin!r} ({old.reference}) and "
                        f"{plugin!r} ({reference}). Uninstall or block one of them "
                        f"(HEADWATER_BLOCKED_PLUGINS={plugin}), or pass replace=True in {plugin!r} to override on purpose."
                    )
                    self.conflicts.append(message)
                    self.conflicting.append((name, old.plugin, plugin))
                    raise RegistrationConflictError(message)
            self._entries[name] = RegistryEntry(name, target, plugin, overrides)
        return target

    def clear(self) -> None:
        """Forget every entry (the hooks refill it on the next fill)."""
        with self._lock:
            self._entries.clear()

    def _registering_as(self, plugin: str) -> Callable[..., Any]:
        def register(target: Any, name: str | None = None, *, replace: bool = False) -> Any:
            return self.register(target, name, plugin=plugin, replace=replace)

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
        hint = install_hint(name, self.kind)
        if hint:
            message += f" {name!r} is provided by a plugin: {hint}"
        else:
            hook = _HOOKS.get(RegistryKind(self.kind)) if self.kind in _KIND_VALUES else None
            how = f"the {hook} hook" if hook else "its plugin's register hook"
            message += f" Install the plugin that provides it, or register it with {how}."
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
