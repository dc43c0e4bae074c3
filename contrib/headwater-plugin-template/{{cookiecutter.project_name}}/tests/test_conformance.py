"""headwater's conformance kit, run against {{ cookiecutter.storage_class }}.

The class is found by its tag through the installed entry point, so install the plugin
first (``pip install -e .``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headwater.testing import StorageConformance
from {{ cookiecutter.package_name }}.storage import {{ cookiecutter.storage_class }}


class Test{{ cookiecutter.storage_class }}(StorageConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Any:
        return {{ cookiecutter.storage_class }}(root=str(tmp_path / "flows"))
