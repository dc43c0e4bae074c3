"""Needs plugin API 0: the loader reports it incompatible and does not register its hooks."""

from typing import Any

from headwater.plugins import hookimpl

HEADWATER_PLUGIN_API = 0


@hookimpl
def register_storage(register: Any) -> None:
    register("headwater_oldapi.plugin:Nothing", "OldApiStorage")
