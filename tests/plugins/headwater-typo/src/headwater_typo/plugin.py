"""Implements ``register_storages`` (a typo): the loader must report it broken, not silently load it."""

from headwater.plugins import Registrar, hookimpl


@hookimpl
def register_storages(register: Registrar) -> None:
    register("headwater_typo.plugin:Nothing", "TypoStorage")
