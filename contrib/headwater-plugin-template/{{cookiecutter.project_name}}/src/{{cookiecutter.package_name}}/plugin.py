"""The module the ``headwater`` entry point names: hook implementations only, kept import-light."""

from __future__ import annotations

from headwater.plugins import Registrar, hookimpl

HEADWATER_PLUGIN_API = 1


@hookimpl
def register_storage(register: Registrar) -> None:
    register("{{ cookiecutter.package_name }}.storage:{{ cookiecutter.storage_class }}", "{{ cookiecutter.storage_tag }}")
