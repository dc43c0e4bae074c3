"""Registers ``TestDir`` for another class: ``headwater plugins`` must report the conflict."""

from typing import Any

from headwater.plugins import hookimpl


@hookimpl
def register_storage(register: Any) -> None:
    register("headwater_conflict.plugin:OtherDirStorage", "TestDir")
