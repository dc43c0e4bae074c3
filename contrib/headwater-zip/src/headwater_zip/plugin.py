"""The module the ``headwater`` entry point names: hook implementations only.

Keep it light: headwater imports it whenever it starts (even for ``headwater --help``), so
classes are registered as lazy ``"module:Class"`` strings and imported on first use.
"""

from __future__ import annotations

from typing import Any

from headwater.plugins import hookimpl

HEADWATER_PLUGIN_API = 1
"""The plugin API this plugin was written for; headwater reports it incompatible otherwise."""


@hookimpl
def register_storage(register: Any) -> None:
    """``Zip`` is the ``"type"`` tag of serialized ZipStorage objects."""
    register("headwater_zip.storage:ZipStorage", "Zip")
