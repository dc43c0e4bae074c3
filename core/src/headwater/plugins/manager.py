"""Deprecated: import these names from :mod:`headwater.plugins` (the plugin API)."""

from __future__ import annotations

import warnings
from typing import Any

_MOVED = (
    "PLUGIN_API_VERSION", "PluginRecord", "get_plugin_manager", "reset_plugin_manager", "plugin_records",
    "call_register_hook", "registry", "lifecycle_hooks", "register_plugin", "unregister_plugin", "HookFacade",
)


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module 'headwater.plugins.manager' has no attribute {name!r}")
    warnings.warn(
        f"headwater.plugins.manager.{name} moved: import it from headwater.plugins.",
        DeprecationWarning,
        stacklevel=2,
    )
    from headwater.plugins import _manager

    return getattr(_manager, name)
