"""The plugin manager: built-ins first, then plugins from the ``headwater`` entry-point group.

Registries are filled by calling the ``register_*`` hooks through ``pm.hook``, so pluggy's
ordering, ``wrapper=True`` implementations, tracing and call monitoring all apply. One broken
plugin is recorded (with its distribution and error) and never takes the others down; a plugin
implementing a hook that does not exist is reported ``broken`` with the closest real hook.
``HEADWATER_TRACE_PLUGINS=1`` writes every hook call to stderr. Switches, read when the manager is created:

- ``HEADWATER_DISABLE_PLUGIN_AUTOLOAD=1``: load no entry-point plugins (built-ins only);
- ``HEADWATER_PLUGINS=a,b``: load only these (entry-point or distribution names);
- ``HEADWATER_BLOCKED_PLUGINS=a,b``: never load these.

A plugin module may declare ``HEADWATER_PLUGIN_API = 1`` (or a list of versions it supports);
one that needs another API version is reported ``incompatible`` and not loaded.
"""

from __future__ import annotations

import difflib
import importlib
import json
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import pluggy

from headwater.plugins import hookspecs
from headwater.plugins._registry import BUILTIN_PLUGIN, CLASS_REGISTRIES, Registrar, Registry, RegistryKind

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
    "EntryPointInfo",
    "headwater_entry_points",
]

PLUGIN_API_VERSION = 1
"""The plugin API this core offers; plugins may require it with ``HEADWATER_PLUGIN_API``."""

BUILTIN_NAME = BUILTIN_PLUGIN

_LIFECYCLE = ("before_flow_run", "after_flow_run", "before_task_run", "after_task_run")
_TRUE = ("1", "true", "yes", "on")
_log = logging.getLogger("headwater.plugins")


@attrs.define
class PluginRecord:
    """What ``headwater plugins`` shows for one plugin."""

    name: str
    distribution: str
    version: str
    status: str
    """``loaded``, ``broken`` (an unknown hook), ``failed``, ``blocked`` or ``incompatible``."""
    error: str | None = None
    hooks: list[str] = attrs.field(factory=list)
    tags: dict[str, list[str]] = attrs.field(factory=dict)
    builtin: bool = False
    warnings: list[str] = attrs.field(factory=list)
    """Problems that did not stop the plugin loading."""


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
            from headwater.plugins import _builtins

            pm.register(_builtins, name=BUILTIN_NAME)
            from headwater._version import __version__

            _records[BUILTIN_NAME] = PluginRecord(
                BUILTIN_NAME, "headwater", __version__, "loaded", hooks=_hooks_of(pm, _builtins), builtin=True
            )
            _load_entry_points(pm)
            if os.environ.get("HEADWATER_TRACE_PLUGINS", "").strip().lower() in _TRUE:
                _enable_tracing(pm)
            _pm = pm
    return _pm


def _hooks_of(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    return sorted(caller.name for caller in (pm.get_hookcallers(plugin) or []))


def _unknown_hooks(pm: pluggy.PluginManager, plugin: Any) -> list[str]:
    """Hook implementations of ``plugin`` that match no hook specification (a misspelled hook)."""
    return sorted(
        caller.name
        for caller in (pm.get_hookcallers(plugin) or [])
        if caller.spec is None and not any(i.optionalhook for i in caller.get_hookimpls() if i.plugin is plugin)
    )


def _spec_names() -> list[str]:
    return sorted(name for name in dir(hookspecs) if name.startswith(("register_", "before_", "after_", "get_")))


def unknown_hook_message(names: list[str]) -> str:
    """``unknown hook 'register_storages' (did you mean 'register_storage'?)`` for each name."""
    parts = []
    for name in names:
        close = difflib.get_close_matches(name, _spec_names(), n=1)
        parts.append(f"unknown hook {name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return "; ".join(parts) + ". Rename the function to a hook in headwater.plugins.hookspecs."


def _register_checked(pm: pluggy.PluginManager, plugin: Any, name: str) -> str | None:
    """Register ``plugin``; if it implements a hook that does not exist, unregister it and return why."""
    pm.register(plugin, name=name)
    unknown = _unknown_hooks(pm, plugin)
    if not unknown:
        return None
    pm.unregister(plugin)
    return unknown_hook_message(unknown)


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    if os.environ.get("HEADWATER_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() in _TRUE:
        return
    allowed = _env_list("HEADWATER_PLUGINS")
    blocked = _env_list("HEADWATER_BLOCKED_PLUGINS")
    for ep in headwater_entry_points():
        dist = ep.dist_name
        version = ep.version
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
            broken = _register_checked(pm, plugin, ep.name)
        except Exception as exc:  # e.g. a hookimpl whose signature does not match its spec
            _records[ep.name] = PluginRecord(ep.name, dist, version, "failed", error=f"{type(exc).__name__}: {exc}")
            continue
        if broken:
            _records[ep.name] = PluginRecord(ep.name, dist, version, "broken", error=broken)
            continue
        _records[ep.name] = PluginRecord(ep.name, dist, version, "loaded", hooks=_hooks_of(pm, plugin))
    pm.check_pending()  # every plugin left registered implements only known hooks


@attrs.frozen
class EntryPointInfo:
    """One entry point of the ``headwater`` group: what the loader needs, without ``importlib.metadata`` objects."""

    name: str
    value: str
    """``"module"`` or ``"module:attribute"``."""
    dist_name: str = "?"
    version: str = "?"

    def load(self) -> Any:
        """Import the module (and attribute) the entry point names, as ``EntryPoint.load()`` does."""
        module_name, _, attribute = self.value.partition(":")
        obj: Any = importlib.import_module(module_name.strip())
        for part in filter(None, attribute.strip().split(".")):
            obj = getattr(obj, part)
        return obj


_EP_CACHE_VERSION = 1
_EP_CACHE_KEEP = 16
_ep_memo: dict[str, list[EntryPointInfo]] = {}


def _distributions_key() -> str:
    """A digest of what decides the entry points: the interpreter, ``sys.path`` and each distribution's metadata.

    For each ``sys.path`` directory: the names of its ``*.dist-info`` / ``*.egg-info`` entries
    (names carry versions) and the size and mtime of each one's ``entry_points.txt``, so an
    install, uninstall, upgrade or an edited entry point gives another key. Costs a directory
    listing per path entry and a ``stat`` per distribution (about a millisecond).
    """
    try:
        from _blake2 import blake2b  # what hashlib.blake2b is, without importing OpenSSL's _hashlib at start-up
    except ImportError:  # pragma: no cover - an interpreter built without it
        from hashlib import blake2b
    digest = blake2b(digest_size=16)
    digest.update(f"{_EP_CACHE_VERSION}|{sys.executable}|{sys.version}".encode())
    for entry in sys.path:
        digest.update(b"\0P" + os.fsencode(entry))
        try:
            with os.scandir(entry or ".") as it:
                names = sorted(e.name for e in it if e.name.endswith((".dist-info", ".egg-info")))
        except OSError:  # a zip file, a missing directory
            try:
                digest.update(str(os.stat(entry).st_mtime_ns).encode())
            except OSError:
                pass
            continue
        for name in names:
            try:
                st = os.stat(os.path.join(entry or ".", name, "entry_points.txt"))
                stamp = f"{st.st_size}:{st.st_mtime_ns}"
            except OSError:
                stamp = "-"
            digest.update(f"\0{name}|{stamp}".encode())
    return digest.hexdigest()


def _scan_entry_points() -> list[EntryPointInfo]:
    """The ``headwater`` group read with ``importlib_metadata`` (every distribution's metadata), sorted."""
    from importlib_metadata import entry_points

    found = [
        EntryPointInfo(ep.name, ep.value, ep.dist.name if ep.dist else "?", ep.dist.version if ep.dist else "?")
        for ep in entry_points(group="headwater")
    ]
    return sorted(found, key=lambda e: (e.name, e.dist_name if e.dist_name != "?" else ""))


def _cache_dir() -> str | None:
    if os.environ.get("HEADWATER_PLUGIN_CACHE", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    from headwater.config.loader import headwater_home

    return os.path.join(headwater_home(), "cache", "plugins")


def headwater_entry_points() -> list[EntryPointInfo]:
    """The entry points of the ``headwater`` group, sorted by name: scanned once per set of installed distributions.

    Scanning every distribution's metadata costs tens of milliseconds, on every process's first
    ``flow.run()``; the result is kept in ``$HEADWATER_HOME/cache/plugins/`` under
    :func:`_distributions_key`, so a process whose ``sys.path`` and distributions are unchanged
    reads one small file instead. ``HEADWATER_PLUGIN_CACHE=0`` scans every time. An unreadable or
    unwritable cache is ignored.
    """
    key = _distributions_key()
    memo = _ep_memo.get(key)
    if memo is not None:
        return memo
    directory = _cache_dir()
    path = os.path.join(directory, f"entry-points-{key}.json") if directory else None
    found: list[EntryPointInfo] | None = None
    if path is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
            if data.get("version") == _EP_CACHE_VERSION and data.get("key") == key:
                found = [EntryPointInfo(*row) for row in data["entry_points"]]
        except (OSError, ValueError, TypeError, KeyError):
            found = None
    if found is None:
        found = _scan_entry_points()
        if path is not None and directory is not None:
            _write_entry_point_cache(directory, path, key, found)
    _ep_memo.clear()
    _ep_memo[key] = found
    return found


def _write_entry_point_cache(directory: str, path: str, key: str, found: list[EntryPointInfo]) -> None:
    rows = [[e.name, e.value, e.dist_name, e.version] for e in found]
    try:
        os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"version": _EP_CACHE_VERSION, "key": key, "entry_points": rows}, fh)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one
        olds = sorted(
            (os.path.join(directory, n) for n in os.listdir(directory) if n.startswith("entry-points-")),
            key=lambda p: os.stat(p).st_mtime_ns if os.path.exists(p) else 0,
        )
        for stale in olds[:-_EP_CACHE_KEEP]:
            os.unlink(stale)
    except OSError:  # a read-only home: scan again next time
        pass


def _enable_tracing(pm: pluggy.PluginManager) -> None:
    """``HEADWATER_TRACE_PLUGINS=1``: write every hook call, with the plugins it reaches, to stderr."""

    def before(hook_name: str, hook_impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        plugins = ", ".join(impl.plugin_name for impl in reversed(hook_impls)) or "none"  # in call order
        arguments = ", ".join(f"{k}={type(v).__name__}" for k, v in kwargs.items())
        sys.stderr.write(f"headwater plugin trace: {hook_name}({arguments}) -> {plugins}\n")

    def after(outcome: Any, hook_name: str, hook_impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        if outcome.exception is not None:
            sys.stderr.write(f"headwater plugin trace: {hook_name} raised {outcome.exception!r}\n")

    pm.add_hookcall_monitoring(before, after)


def reset_plugin_manager() -> None:
    """Forget the plugin manager and every registry (tests; re-reads the switches)."""
    global _pm
    with _lock:
        _pm = None
        _records.clear()
        _registries.clear()
        _facade_cache.clear()


def register_plugin(plugin: Any, name: str | None = None) -> str:
    """Register a plugin object in-process (tests, applications); registries are refilled on next use.

    A plugin implementing a hook that does not exist is refused with the closest real hook name.
    """
    pm = get_plugin_manager()
    with _lock:
        registered = pm.register(plugin, name=name)
        if registered is None:
            raise ValueError(f"Plugin {name or plugin!r} is already registered or blocked.")
        unknown = _unknown_hooks(pm, plugin)
        if unknown:
            pm.unregister(plugin)
            raise ValueError(f"Plugin {registered!r}: {unknown_hook_message(unknown)}")
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
    for kind in CLASS_REGISTRIES:
        try:
            reg = registry(kind)
            entries = reg.entries()
        except Exception:
            continue
        for entry in entries:
            record = _records.get(entry.plugin)
            if record is not None:
                tags = record.tags.setdefault(str(kind), [])
                if entry.name not in tags:
                    tags.append(entry.name)
        for message, (_, owner, _taker) in zip(reg.conflicts, reg.conflicting, strict=False):
            record = _records.get(owner)  # the plugin that tried to take the name over is failed with the message
            if record is not None and message not in record.warnings:
                record.warnings.append(message)
    _record_task_types()
    _record_config_sections()
    return sorted(_records.values(), key=lambda r: (not r.builtin, r.name))


def _record_names(hook_name: str, kind: str) -> None:
    """Add each plugin's names for ``hook_name`` to its record, with a throwaway registrar (nothing imported)."""

    def sink(obj: Any, name: Any, *, plugin: str, replace: bool = False, **options: Any) -> Any:
        label = name if isinstance(name, str) else (obj.rpartition(":")[2] if isinstance(obj, str) else obj.__name__)
        record = _records.get(plugin)
        if record is not None:
            tags = record.tags.setdefault(kind, [])
            if label not in tags:
                tags.append(label)
        return obj

    try:
        call_register_hook(hook_name, sink, kind=kind, swap_legacy_order=True, record_failures=False)
    except Exception:  # reported when the real store loads it
        return


def _record_task_types() -> None:
    _record_names("register_task_types", "task_type")


def _record_config_sections() -> None:
    _record_names("register_config_sections", "config_section")


def _culprit(exc: BaseException, owners: Mapping[Any, str]) -> str | None:
    """The plugin whose hook implementation raised ``exc`` (the outermost hook frame in its traceback)."""
    tb = exc.__traceback__
    while tb is not None:
        owner = owners.get(tb.tb_frame.f_code)
        if owner is not None:
            return owner
        tb = tb.tb_next
    return None


def _mark_failed(plugin: str, hook_name: str, exc: BaseException) -> None:
    record = _records.get(plugin)
    if record is not None:
        record.status = "failed"
        record.error = f"hook {hook_name} raised {type(exc).__name__}: {exc}"
    _log.warning("Plugin %r: hook %s raised %s: %s", plugin, hook_name, type(exc).__name__, exc)


def call_register_hook(
    hook_name: str,
    sink: Callable[..., Any],
    *,
    kind: str | None = None,
    reset: Callable[[], None] | None = None,
    swap_legacy_order: bool = False,
    record_failures: bool = True,
    **kwargs: Any,
) -> None:
    """Call ``hook_name`` through ``pm.hook`` with one :class:`Registrar` feeding ``sink``.

    ``sink(obj, name, *, plugin, replace, **options)`` stores one registration. pluggy's
    ordering and wrappers apply (built-ins are ``tryfirst``, so plugins override them). A
    plugin whose implementation raises is marked failed, ``reset()`` forgets what was stored,
    and the hook is called again without it, so one broken plugin never stops the others.
    """
    pm = get_plugin_manager()
    hook = getattr(pm.hook, hook_name)
    excluded: list[str] = []
    while True:
        impls = [impl for impl in hook.get_hookimpls() if impl.plugin_name not in excluded]
        owners = {
            impl.function.__code__: impl.plugin_name for impl in impls if hasattr(impl.function, "__code__")
        }
        registrar = Registrar(kind or hook_name, sink, owners, swap_legacy_order=swap_legacy_order)
        caller = hook
        if excluded:
            caller = pm.subset_hook_caller(hook_name, remove_plugins=[pm.get_plugin(n) for n in excluded])
        arguments = {"register": registrar, **kwargs} if "register" in (hook.spec.argnames if hook.spec else ()) else kwargs
        try:
            caller(**arguments)
            return
        except Exception as exc:
            culprit = _culprit(exc, owners)
            if culprit is None or culprit in excluded:
                raise
            if record_failures:
                _mark_failed(culprit, hook_name, exc)
            excluded.append(culprit)
            if reset is not None:
                reset()


def registry(kind: str) -> Registry:
    """The registry of ``kind`` (``storage``, ``environment``, ``executor``, ``client_resource``, ``result``...)."""
    key = str(kind)
    reg = _registries.get(key)
    if reg is not None:
        return reg
    with _lock:
        reg = _registries.get(key)
        if reg is None:
            reg = Registry(key, fill=_filler(key))
            _registries[key] = reg
    return reg


def _filler(kind: str) -> Callable[[Registry], None]:
    def fill(reg: Registry) -> None:
        try:
            registry_kind = RegistryKind(kind)
        except ValueError:
            registry_kind = None
        hook_name = registry_kind.hook if registry_kind is not None else None

        def sink(obj: Any, name: str | None, *, plugin: str, replace: bool = False) -> Any:
            return reg.register(obj, name, plugin=plugin, replace=replace)

        if hook_name is not None:
            call_register_hook(hook_name, sink, kind=kind, reset=reg.clear)
        _fill_legacy_types(reg, kind)

    return fill


def _fill_legacy_types(reg: Registry, kind: str) -> None:
    """The deprecated ``register_types(register)`` hook: ``register(kind, obj, name=None)`` for any kind."""
    pm = get_plugin_manager()
    if not pm.hook.register_types.get_hookimpls():
        return

    def sink(target_kind: Any, obj: Any = None, *, plugin: str, replace: bool = False, name: str | None = None) -> Any:
        if str(target_kind) == kind:
            reg.register(obj, name, plugin=plugin, replace=replace)
        return obj

    def legacy(registrar: Registrar) -> Callable[..., Any]:
        def register(target_kind: str, obj: Any, name: str | None = None, *, replace: bool = False) -> Any:
            return sink(target_kind, obj, plugin=registrar.plugin(), replace=replace, name=name)

        return register

    hook = pm.hook.register_types
    impls = hook.get_hookimpls()
    owners = {impl.function.__code__: impl.plugin_name for impl in impls if hasattr(impl.function, "__code__")}
    registrar = Registrar(kind, sink, owners)
    adapter = legacy(registrar)
    # the adapter's frames sit below the plugin's, so attribution still finds the plugin
    for impl in impls:
        if not getattr(impl.function, "_headwater_warned", False) and impl.plugin_name != BUILTIN_NAME:
            record = _records.get(impl.plugin_name)
            message = "hook register_types is deprecated: use register_results/register_serializers/register_schedules..."
            if record is not None and message not in record.warnings:
                record.warnings.append(message)
    try:
        hook(register=adapter)
    except Exception as exc:
        culprit = _culprit(exc, owners)
        if culprit is None:
            raise
        _mark_failed(culprit, "register_types", exc)


class HookFacade:
    """Typed calls of the lifecycle hooks (``pm.hook`` with keyword arguments spelled out)."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._hook = pm.hook
        # A task hook no plugin implements costs a pluggy call per task run (microseconds, twice per
        # task): make it a no-op. The facade is rebuilt whenever a plugin is (un)registered.
        for name in ("before_task_run", "after_task_run"):
            if not getattr(pm.hook, name).get_hookimpls():
                setattr(self, name, _no_task_hook)
        self.calls_before_task_run = bool(pm.hook.before_task_run.get_hookimpls())
        """Whether a plugin sees each task run's context before it starts (else mapped chunks share one context)."""
        self.calls_after_task_run = bool(pm.hook.after_task_run.get_hookimpls())
        """Whether a plugin sees each task run's state (else a chunk of mapped children is recorded in one go)."""

    def before_flow_run(self, *, flow: Any, parameters: dict[str, Any], context: dict[str, Any]) -> None:
        self._hook.before_flow_run(flow=flow, parameters=parameters, context=context)

    def after_flow_run(self, *, flow: Any, state: Any) -> None:
        self._hook.after_flow_run(flow=flow, state=state)

    def before_task_run(self, *, task: Any, map_index: int | None, context: dict[str, Any]) -> None:
        self._hook.before_task_run(task=task, map_index=map_index, context=context)

    def after_task_run(self, *, task: Any, map_index: int | None, state: Any) -> None:
        self._hook.after_task_run(task=task, map_index=map_index, state=state)


def _no_task_hook(**_: Any) -> None:
    """Stands in for a task lifecycle hook that no plugin implements."""


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
