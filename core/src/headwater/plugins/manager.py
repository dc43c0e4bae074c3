"""The plugin manager: built-ins first, then plugins from the ``headwater`` entry-point group.

One broken plugin is recorded (with its distribution and error) and never takes the others
down. Switches, read when the manager is created:

- ``HEADWATER_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry-point plugins (built-ins only);
- ``HEADWATER_PLUGINS=a,b``: load only these (entry-point or distribution names);
- ``HEADWATER_BLOCKED_PLUGINS=a,b``: never load these.

A plugin module may declare ``HEADWATER_PLUGIN_API = 1`` (or a list of versions it supports);
one that needs another API version is reported ``incompatible`` and not loaded.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Callable
from typing import Any

import attrs
import pluggy

from headwater.plugins import hookspecs
from headwater.plugins.registry import Registry

__all__ = [
    "PLUGIN_API_VERSION",
    "PluginRecord",
    "get_plugin_manager",
    "reset_plugin_manager",
    "plugin_records",
    "call_register_hook",
    "registry",
    "lifecycle_hooks",
    "HookFacade",
]

PLUGIN_API_VERSION = 1
"""The plugin API this core offers; plugins may require it with ``HEADWATER_PLUGIN_API``."""

BUILTIN_NAME = "headwater"

REGISTRY_HOOKS: dict[str, str] = {
    "storage": "register_storage",
    "environment": "register_environments",
    "executor": "register_executors",
    "client_resource": "register_client_resources",
}
"""Registries filled by a dedicated hook; every other kind is filled by ``register_types(register)``."""

_LIFECYCLE = ("before_flow_run", "after_flow_run", "before_task_run", "after_task_run")


@attrs.define
class PluginRecord:
    """What ``headwater plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    status: str
    """``loaded``, ``failed``, ``blocked`` or ``incompatible``."""
    error: str | None = None
    hooks: list[str] = attrs.field(factory=list)
    tags: dict[str, list[str]] = attrs.field(factory=dict)
    builtin: bool = False
    warnings: list[str] = attrs.field(factory=list)
    """Problems that did not stop the plugin loading, e.g. a type tag another plugin registers too."""


_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
_records: dict[str, PluginRecord] = {}
_registries: dict[str, Registry] = {}


def _env_list(name: str) -> set[str]:
    return {part.strip() for part in os.environ.get(name, "").split(",") if part.strip()}


def _api_compatible(module: Any) -> str | None:
    """None if compatible, else the reason."""
    wanted = getattr(module, "HEADWATER_PLUGIN_API", None)
    if wanted is None:
        return None
    versions = set(wanted) if isinstance(wanted, (list, tuple, set)) else {wanted}
    if PLUGIN_API_VERSION in versions:
        return None
    return f"needs plugin API {sorted(versions)}, this headwater offers {PLUGIN_API_VERSION}; upgrade headwater or the plugin."


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created (and plugins loaded) on first use."""
    global _pm
    if _pm is not None:
        return _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager("headwater")
            pm.add_hookspecs(hookspecs)
            from headwater.plugins import builtins

            pm.register(builtins, name=BUILTIN_NAME)
            from headwater._version import __version__

            _records[BUILTIN_NAME] = PluginRecord(
                BUILTIN_NAME, "headwater", __version__, "loaded", hooks=_hooks_of(pm, builtins), builtin=True
            )
            _load_entry_points(pm)
            _pm = pm
    return _pm


def _hooks_of(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    return sorted(impl.name for impl in (pm.get_hookcallers(plugin) or []))


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    if os.environ.get("HEADWATER_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() in ("1", "true", "yes", "on"):
        return
    from importlib_metadata import entry_points

    allowed = _env_list("HEADWATER_PLUGINS")
    blocked = _env_list("HEADWATER_BLOCKED_PLUGINS")
    for ep in sorted(entry_points(group="headwater"), key=lambda e: (e.name, e.dist.name if e.dist else "")):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        names = {ep.name, dist}
        existing = _records.get(ep.name)
        if existing is not None:
            _records[f"{ep.name} ({dist})"] = PluginRecord(
                ep.name, dist, version, "failed",
                error=f"duplicate plugin name {ep.name!r}: also provided by {existing.distribution!r}; "
                f"uninstall one, or block it with HEADWATER_BLOCKED_PLUGINS={ep.name}",
            )
            continue
        if names & blocked:
            _records[ep.name] = PluginRecord(ep.name, dist, version, "blocked", error="HEADWATER_BLOCKED_PLUGINS")
            pm.set_blocked(ep.name)
            continue
        if allowed and not names & allowed:
            _records[ep.name] = PluginRecord(ep.name, dist, version, "blocked", error="not in HEADWATER_PLUGINS")
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            _records[ep.name] = PluginRecord(
                ep.name, dist, version, "failed", error=f"{type(exc).__name__}: {exc}",
            )
            _records[ep.name].tags["traceback"] = [traceback.format_exc()]
            continue
        reason = _api_compatible(plugin)
        if reason:
            _records[ep.name] = PluginRecord(ep.name, dist, version, "incompatible", error=reason)
            continue
        try:
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # e.g. a hookimpl whose signature does not match its spec
            _records[ep.name] = PluginRecord(ep.name, dist, version, "failed", error=f"{type(exc).__name__}: {exc}")
            continue
        _records[ep.name] = PluginRecord(ep.name, dist, version, "loaded", hooks=_hooks_of(pm, plugin))


def reset_plugin_manager() -> None:
    """Forget the plugin manager and every registry (tests; re-reads the switches)."""
    global _pm
    with _lock:
        _pm = None
        _records.clear()
        _registries.clear()
        _facade_cache.clear()


def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Register a plugin object in-process (tests, applications); registries are refilled on next use."""
    pm = get_plugin_manager()
    with _lock:
        registered = pm.register(plugin, name=name)
        if registered is None:
            raise ValueError(f"Plugin {name or plugin!r} is already registered or blocked.")
        _records[registered] = PluginRecord(
            registered, getattr(plugin, "__name__", registered), "-", "loaded", hooks=_hooks_of(pm, plugin)
        )
        _registries.clear()
        _facade_cache.clear()
    return registered


def unregister_plugin(name: str) -> None:
    pm = get_plugin_manager()
    with _lock:
        pm.unregister(name=name)
        _records.pop(name, None)
        _registries.clear()
        _facade_cache.clear()


def plugin_records() -> list[PluginRecord]:
    """Every plugin seen (built-in first), with status and, once registries are loaded, its tags."""
    get_plugin_manager()
    for kind in [*REGISTRY_HOOKS, "schedule", "clock", "schedule_filter", "result", "serializer"]:
        try:
            reg = registry(kind)
            entries = reg.entries()
        except Exception:
            continue
        for entry in entries:
            record = _records.get(entry.plugin)
            if record is not None:
                tags = record.tags.setdefault(kind, [])
                if entry.name not in tags:
                    tags.append(entry.name)
        for message, (_, first, second) in zip(reg.conflicts, reg.conflicting, strict=False):
            for plugin in (first, second):
                record = _records.get(plugin)
                if record is not None and message not in record.warnings:
                    record.warnings.append(message)
    _record_task_types()
    return sorted(_records.values(), key=lambda r: (not r.builtin, r.name))


def _record_task_types() -> None:
    """Add each plugin's spec task types to its record (handlers are not imported)."""
    pm = get_plugin_manager()
    for impl in pm.hook.register_task_types.get_hookimpls():
        record = _records.get(impl.plugin_name)
        if record is None:
            continue
        names: list[str] = []
        try:
            impl.function(register=lambda name, handler=None, _names=names: _names.append(name))
        except Exception:  # reported when the real registry loads it
            continue
        tags = record.tags.setdefault("task_type", [])
        tags.extend(n for n in names if n not in tags)


def call_register_hook(hook_name: str, register: Callable[..., Any], **kwargs: Any) -> None:
    """Call every implementation of ``hook_name`` in registration order (built-ins first).

    ``register`` is passed to each; if it has a ``_registering_as(plugin)`` factory (a
    :class:`Registry`), each plugin gets a ``register`` that records who registered what.
    A plugin whose hook raises is recorded as failed; the others still run.
    """
    pm = get_plugin_manager()
    caller = getattr(pm.hook, hook_name)
    for impl in caller.get_hookimpls():
        plugin_name = impl.plugin_name
        bound = register
        owner = getattr(register, "__self__", None)
        if isinstance(owner, Registry):
            bound = owner._registering_as(plugin_name)
        try:
            impl.function(**{"register": bound, **kwargs} if "register" in impl.argnames else kwargs)
        except Exception as exc:
            record = _records.get(plugin_name)
            if record is not None:
                record.status = "failed"
                record.error = f"hook {hook_name} raised {type(exc).__name__}: {exc}"


def registry(kind: str) -> Registry:
    """The registry of ``kind`` (``storage``, ``environment``, ``executor``, ``client_resource``, ``schedule``...)."""
    reg = _registries.get(kind)
    if reg is not None:
        return reg
    with _lock:
        reg = _registries.get(kind)
        if reg is None:
            reg = Registry(kind, fill=_filler(kind))
            _registries[kind] = reg
    return reg


def _filler(kind: str) -> Callable[[Registry], None]:
    def fill(reg: Registry) -> None:
        hook = REGISTRY_HOOKS.get(kind)
        if hook is not None:
            call_register_hook(hook, reg.register)
            return

        def register_typed(plugin: str) -> Callable[..., Any]:
            def register(target_kind: str, target: Any, name: str | None = None) -> Any:
                if target_kind == kind:
                    reg.register(target, name, plugin=plugin)
                return target

            return register

        pm = get_plugin_manager()
        for impl in pm.hook.register_types.get_hookimpls():
            try:
                impl.function(register=register_typed(impl.plugin_name))
            except Exception as exc:
                record = _records.get(impl.plugin_name)
                if record is not None:
                    record.status = "failed"
                    record.error = f"hook register_types raised {type(exc).__name__}: {exc}"

    return fill


class HookFacade:
    """Typed calls of the lifecycle hooks (``pm.hook`` with keyword arguments spelled out)."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._hook = pm.hook

    def before_flow_run(self, *, flow: Any, parameters: dict[str, Any], context: dict[str, Any]) -> None:
        self._hook.before_flow_run(flow=flow, parameters=parameters, context=context)

    def after_flow_run(self, *, flow: Any, state: Any) -> None:
        self._hook.after_flow_run(flow=flow, state=state)

    def before_task_run(self, *, task: Any, map_index: int | None, context: dict[str, Any]) -> None:
        self._hook.before_task_run(task=task, map_index=map_index, context=context)

    def after_task_run(self, *, task: Any, map_index: int | None, state: Any) -> None:
        self._hook.after_task_run(task=task, map_index=map_index, state=state)


_facade_cache: dict[str, HookFacade | None] = {}


def lifecycle_hooks() -> HookFacade | None:
    """A facade for the lifecycle hooks, or None when no plugin implements any (keeps the engine fast)."""
    if "lifecycle" in _facade_cache:
        return _facade_cache["lifecycle"]
    pm = get_plugin_manager()
    used = any(getattr(pm.hook, name).get_hookimpls() for name in _LIFECYCLE)
    facade = HookFacade(pm) if used else None
    _facade_cache["lifecycle"] = facade
    return facade
