"""Never loaded while headwater-testplugin is installed: its entry-point name is taken."""

from typing import Any

from headwater.plugins import hookimpl


@hookimpl
def register_storage(register: Any) -> None:
    register("headwater_dupname.plugin:Nothing", "DupStorage")
