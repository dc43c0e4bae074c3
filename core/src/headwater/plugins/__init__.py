"""The plugin system: pluggy hooks (``hookspecs``), the manager that loads entry points, and registries.

Write a plugin::

    from headwater.plugins import hookimpl

    @hookimpl
    def register_storage(register):
        register("my_package.storage:MyStorage")

and point an entry point at the module: ``[project.entry-points.headwater] my = "my_package.plugin"``.
"""

import pluggy

from headwater.plugins.manager import (
    PLUGIN_API_VERSION,
    PluginRecord,
    call_register_hook,
    get_plugin_manager,
    lifecycle_hooks,
    plugin_records,
    register_plugin,
    registry,
    reset_plugin_manager,
    unregister_plugin,
)
from headwater.plugins.registry import Registry, UnknownTypeError, import_string, install_hint

hookimpl = pluggy.HookimplMarker("headwater")
"""Marks a plugin's hook implementations."""

__all__ = [
    "hookimpl",
    "PLUGIN_API_VERSION",
    "PluginRecord",
    "Registry",
    "UnknownTypeError",
    "call_register_hook",
    "get_plugin_manager",
    "import_string",
    "install_hint",
    "lifecycle_hooks",
    "plugin_records",
    "register_plugin",
    "registry",
    "reset_plugin_manager",
    "unregister_plugin",
]
