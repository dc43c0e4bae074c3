"""``headwater.testing``: the pytest plugin's fixtures and the conformance kits (which must catch broken plugins)."""

# ruff: noqa: F811  (the fixtures are imported by name, and requested by that name)

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import attrs
import pytest

from headwater.plugins import hookimpl
from headwater.storage import Storage
from headwater.testing import pytest_plugin
from headwater.testing.pytest_plugin import (  # noqa: F401 - fixtures used by name
    ConverterHelper,
    PluginHelper,
    headwater_converter,
    headwater_home,
    headwater_plugin_manager,
    isolated_plugins,
)


def run_pytest(directory: Path, files: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run pytest in a subprocess on ``files`` written to ``directory``, with headwater's pytest plugin.

    ``-p no:headwater`` keeps the ``pytest11`` entry point (when installed) from loading the
    module a second time under another name.
    """
    (directory / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:headwater",
         "-p", "headwater.testing.pytest_plugin", "-q", "-rA", *args],
        cwd=directory, env=env, capture_output=True, text=True, timeout=300, check=False,
    )


def outcomes(output: str) -> dict[str, str]:
    """``{test_id: PASSED|FAILED|ERROR}`` from pytest's ``-rA`` summary."""
    return dict(
        (m.group(2).split("::", 1)[1], m.group(1))
        for m in re.finditer(r"^(PASSED|FAILED|ERROR) (\S+)", output, flags=re.MULTILINE)
    )


# --- the pytest plugin ------------------------------------------------------------------------


def test_the_pytest_plugin_has_no_autouse_fixture() -> None:
    fixtures = {
        name: obj._fixture_function_marker
        for name, obj in vars(pytest_plugin).items()
        if hasattr(obj, "_fixture_function_marker")
    }
    assert set(fixtures) == {"headwater_plugin_manager", "headwater_converter", "headwater_home"}
    assert not any(marker.autouse for marker in fixtures.values())


@attrs.define
class MemoryStorage(Storage):
    bucket: str = "default"

    def location_for(self, flow: Any) -> str:
        return f"{self.bucket}/{flow.name}"

    def _write(self, flow: Any, location: str) -> None:
        _MEMORY[location] = flow

    def get_flow(self, location: str) -> Any:
        self._require(location)
        return _MEMORY[location]


_MEMORY: dict[str, Any] = {}


class MemoryPlugin:
    @hookimpl
    def register_storage(self, register: Any) -> None:
        register(MemoryStorage, "Memory")


def test_plugin_manager_fixture_isolates_and_registers(headwater_plugin_manager: PluginHelper) -> None:
    assert os.environ["HEADWATER_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    assert [r.name for r in headwater_plugin_manager.records()] == ["headwater"]  # no entry point loaded
    assert "Memory" not in headwater_plugin_manager.registry("storage")
    assert headwater_plugin_manager.register(MemoryPlugin(), name="memory") == "memory"
    assert headwater_plugin_manager.registry("storage").get("Memory") is MemoryStorage
    memory = {r.name: r for r in headwater_plugin_manager.records()}["memory"]
    assert memory.hooks == ["register_storage"] and memory.tags == {"storage": ["Memory"]}
    impls = headwater_plugin_manager.hook.register_storage.get_hookimpls()
    assert [i.plugin_name for i in impls] == ["memory", "headwater"]  # pluggy calls from the end: tryfirst built-ins first


def test_isolated_plugins_resets_before_and_after(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.plugins import register_plugin, registry, reset_plugin_manager

    monkeypatch.setenv("HEADWATER_BLOCKED_PLUGINS", "someone")
    monkeypatch.delenv("HEADWATER_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    reset_plugin_manager()
    register_plugin(MemoryPlugin(), name="leftover")  # state a previous test leaked
    assert "Memory" in registry("storage")
    with isolated_plugins() as helper:
        assert "Memory" not in helper.registry("storage")
        assert "HEADWATER_BLOCKED_PLUGINS" not in os.environ
        helper.register(MemoryPlugin(), name="memory")
        assert "Memory" in helper.registry("storage")
    assert "Memory" not in registry("storage")
    assert os.environ["HEADWATER_BLOCKED_PLUGINS"] == "someone"
    assert "HEADWATER_DISABLE_PLUGIN_AUTOLOAD" not in os.environ
    reset_plugin_manager()


def test_plugin_manager_fixture_runs_plugin_commands(headwater_plugin_manager: PluginHelper) -> None:
    import click

    from headwater.cli.main import cli

    @click.command("kit-greet")
    def greet() -> None:
        click.echo("greetings from a test plugin")

    class CommandPlugin:
        @hookimpl
        def register_commands(self, cli: Any) -> None:
            cli.add_command(greet)

    headwater_plugin_manager.register(CommandPlugin(), name="commands")
    assert "kit-greet" in headwater_plugin_manager.invoke("--help").output
    done = headwater_plugin_manager.invoke("kit-greet")
    assert done.exit_code == 0 and done.output == "greetings from a test plugin\n"
    headwater_plugin_manager._restore_cli()
    assert "kit-greet" not in cli.commands


def test_converter_fixture_round_trips_a_registered_class(
    headwater_plugin_manager: PluginHelper, headwater_converter: ConverterHelper
) -> None:
    from headwater.serialization import SerializationError

    storage = MemoryStorage(bucket="b1", flows={"f": "b1/f"})
    with pytest.raises(SerializationError, match="not registered"):
        headwater_converter.to_dict(storage)
    headwater_plugin_manager.register(MemoryPlugin(), name="memory")
    data = headwater_converter.to_dict(storage)
    assert data == {"type": "Memory", "flows": {"f": "b1/f"}, "bucket": "b1"}
    assert json.loads(headwater_converter.dumps(storage)) == data
    assert headwater_converter.from_dict(data, "storage") == storage
    assert headwater_converter.round_trip(storage) == storage
    assert headwater_converter.converter is __import__("headwater.serialization", fromlist=["x"]).converter


def test_home_fixture_sets_headwater_home(headwater_home: Path) -> None:
    from headwater.config import headwater_home as home_dir
    from headwater.storage import Local

    assert headwater_home.is_dir() and not any(headwater_home.iterdir())
    assert os.environ["HEADWATER_HOME"] == str(headwater_home)
    assert home_dir() == headwater_home
    assert Local().root() == headwater_home / "flows"


FIXTURE_TESTS = '''
import os
from headwater.plugins import hookimpl, registry

class Plugin:
    @hookimpl
    def register_storage(self, register):
        register("headwater.storage.local:Local", "KitLocal")

def test_a_registers(headwater_plugin_manager, headwater_home):
    headwater_plugin_manager.register(Plugin(), name="kit")
    assert "KitLocal" in registry("storage")
    assert os.environ["HEADWATER_HOME"] == str(headwater_home)

def test_b_sees_nothing_of_it():
    assert "KitLocal" not in registry("storage")
    assert "HEADWATER_HOME" not in os.environ
    assert "HEADWATER_DISABLE_PLUGIN_AUTOLOAD" not in os.environ
'''


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """One pytest subprocess for this module: the fixtures' tests and the broken kits' tests."""
    done = run_pytest(tmp_path_factory.mktemp("kit-session"), {"test_fixtures.py": FIXTURE_TESTS, "test_broken.py": BROKEN_KITS})
    return done, outcomes(done.stdout)


def test_plugin_loads_with_p_and_fixtures_do_not_leak(session: tuple[Any, dict[str, str]]) -> None:
    done, results = session
    assert results["test_a_registers"] == "PASSED", done.stdout + done.stderr
    assert results["test_b_sees_nothing_of_it"] == "PASSED", done.stdout


# --- the conformance kits fail for broken implementations ---------------------------------------


BROKEN_KITS = '''
import itertools
import pytest
import attrs
from headwater.environments import Environment, RunHandle
from headwater.plugins import registry
from headwater.storage import Storage
from headwater.storage.base import FlowNotInStorageError
from headwater.testing.conformance import EnvironmentConformance, StorageConformance

_counter = itertools.count()
_written = {}


@attrs.define
class SloppyStorage(Storage):
    """Writes in add_flow, names locations by a counter, loads nothing."""

    def location_for(self, flow):
        return f"{flow.name}/{next(_counter)}"

    def add_flow(self, flow):
        location = self.location_for(flow)
        self.flows[flow.name] = location   # no duplicate check
        self._write(flow, location)        # I/O in add_flow
        return location

    def _write(self, flow, location):
        _written[location] = flow

    def get_flow(self, location):
        if location not in _written:
            raise FlowNotInStorageError(location)
        return _written[location]


@attrs.define
class LazyEnvironment(Environment):
    """Says every run succeeded without running it."""

    def execute(self, storage, flow_location, **run_context):
        return RunHandle(environment="Lazy", status="success")

    def status(self, handle):
        return handle.status

    def kill(self, handle, grace_period=10.0):
        pass


@pytest.fixture(autouse=True)
def _registered():
    registry("storage").register(SloppyStorage, "Sloppy")
    registry("environment").register(LazyEnvironment, "Lazy")
    yield
    registry("storage").unregister("Sloppy")
    registry("environment").unregister("Lazy")


class TestSloppyStorage(StorageConformance):
    @pytest.fixture
    def storage(self):
        return SloppyStorage()


class TestLazyEnvironment(EnvironmentConformance):
    @pytest.fixture
    def environment(self):
        return LazyEnvironment()
'''


def test_conformance_kits_catch_broken_implementations(session: tuple[Any, dict[str, str]]) -> None:
    done, results = session
    assert done.returncode == 1, done.stdout + done.stderr
    failed = {test for test, outcome in results.items() if outcome != "PASSED" and test.startswith("Test")}
    assert failed == {
        "TestSloppyStorage::test_add_flow_assigns_a_location_without_io",
        "TestSloppyStorage::test_duplicate_flow_name_is_rejected",
        "TestSloppyStorage::test_locations_are_content_addressed",
        "TestLazyEnvironment::test_execute_runs_a_stored_flow_to_success",
        "TestLazyEnvironment::test_failing_flow_reports_failed",
        "TestLazyEnvironment::test_kill_stops_a_long_running_run",
    }, done.stdout
    assert results["TestSloppyStorage::test_get_runner_runs_the_flow"] == "PASSED"
    assert results["TestLazyEnvironment::test_serialize_round_trip_through_the_registry"] == "PASSED"
    assert "add_flow must not write; build() does the I/O" in done.stdout
