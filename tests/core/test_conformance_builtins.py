"""The built-in storages and environments pass the conformance kits plugin authors use."""

from __future__ import annotations

import itertools
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.testing.conformance import EnvironmentConformance, StorageConformance

_modules = itertools.count()


class TestLocalStorage(StorageConformance):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Any:
        from headwater.storage import Local

        return Local(directory=str(tmp_path / "flows"))


class TestLocalStorageAsScript(StorageConformance):
    """``stored_as_script``: the flow is rebuilt from its script, which must exist as a file."""

    @pytest.fixture
    def script(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        monkeypatch.chdir(tmp_path)  # storages keep script paths relative to the working directory
        path = tmp_path / "conformance_flows.py"
        path.write_text(
            "from headwater.testing.flows import sample_flow\n"
            "flow = sample_flow('conformance-flow')\n"
            "other = sample_flow('conformance-other', variant='triple')\n"
        )
        return path

    @pytest.fixture
    def storage(self, tmp_path: Path, script: Path) -> Any:
        from headwater.storage import Local

        return Local(directory=str(tmp_path / "flows"), stored_as_script=True, path=str(script))

    # one script per storage: the location is the hash of the script, so "changed code" is a changed script
    content_addressed = False


class TestFileSystemStorage(StorageConformance):
    @pytest.fixture
    def storage(self) -> Any:
        from headwater.storage import FileSystem

        return FileSystem(url=f"memory://conformance-{uuid.uuid4().hex}/flows")


class TestModuleStorage(StorageConformance):
    """Module storage imports the flow's module where it runs: the flows live in a module on sys.path."""

    needs_build = False
    content_addressed = False

    @pytest.fixture
    def module_name(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
        name = f"hw_conformance_flows_{next(_modules)}"
        (tmp_path / f"{name}.py").write_text(
            "from headwater.testing.flows import sample_flow\n"
            "flow = sample_flow('conformance-flow')\n"
            "other = sample_flow('conformance-other', variant='triple')\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        yield name
        sys.modules.pop(name, None)

    @pytest.fixture
    def storage(self, module_name: str) -> Any:
        from headwater.storage import Module

        return Module(module_name)

    @pytest.fixture
    def flow(self, module_name: str) -> Any:
        return __import__(module_name).flow

    @pytest.fixture
    def other_flow(self, module_name: str) -> Any:
        return __import__(module_name).other


class TestLocalEnvironment(EnvironmentConformance):
    can_kill = False  # runs in this process: execute returns when the run is over

    @pytest.fixture
    def environment(self) -> Any:
        from headwater.environments.local import LocalEnvironment

        return LocalEnvironment(labels=["here"])


class TestSubprocessEnvironment(EnvironmentConformance):
    @pytest.fixture
    def environment(self) -> Any:
        from headwater.environments.subprocess import SubprocessEnvironment

        return SubprocessEnvironment(env={"CONFORMANCE": "1"})
