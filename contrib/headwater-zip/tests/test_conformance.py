"""headwater's conformance kit, run against ZipStorage.

The class is found by its tag through the installed entry point, so install the plugin
first (``pip install -e .``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headwater.testing import StorageConformance
from headwater_zip.storage import ZipStorage


class TestZipStorage(StorageConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Any:
        return ZipStorage(path=str(tmp_path / "flows.zip"))


class TestZipStorageUncompressed(StorageConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Any:
        return ZipStorage(path=str(tmp_path / "archives" / "flows.zip"), compression="stored")
