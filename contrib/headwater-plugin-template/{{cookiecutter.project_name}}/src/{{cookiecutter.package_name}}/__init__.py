"""{{ cookiecutter.project_name }}: {{ cookiecutter.description }}

``{{ cookiecutter.storage_class }}`` is imported lazily, so ``import {{ cookiecutter.package_name }}``
(and headwater loading the plugin) stays cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = ["{{ cookiecutter.storage_class }}"]
__version__ = "{{ cookiecutter.version }}"


def __getattr__(name: str) -> Any:
    if name == "{{ cookiecutter.storage_class }}":
        from {{ cookiecutter.package_name }}.storage import {{ cookiecutter.storage_class }}

        return {{ cookiecutter.storage_class }}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
