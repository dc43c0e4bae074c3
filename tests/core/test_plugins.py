"""The plugin system seen from a plugin author: real distributions, loaded through their entry points.

The distributions under tests/plugins/ are built once per session into a temporary directory
(``headwater.testing.distributions``), and each scenario runs ``headwater`` or a Python snippet
in a subprocess with some of them on ``PYTHONPATH``, where ``importlib.metadata`` sees their
entry points as if they were installed. Lifecycle hooks, conflicts and hook errors are also
checked in-process with ``isolated_plugins()`` (what the ``headwater_plugin_manager`` fixture uses).
"""

from __future__ import annotations

import inspect
import json
import re
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.plugins import hookimpl
from headwater.testing.distributions import install_distributions, run_headwater, run_python
from headwater.testing.pytest_plugin import PluginHelper, isolated_plugins

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "tests" / "plugins"
DOCS = ROOT / "docs" / "plugins.md"
OURS = {"headwater-testplugin", "headwater-brokenplugin", "headwater-oldapi", "headwater-dupname", "headwater-conflict",
        "headwater-typo"}
TESTPLUGIN_HOOKS = ["register_commands", "register_environments", "register_storage", "register_task_types"]


@pytest.fixture(scope="session")
def sites(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every test distribution built once and unpacked into its own directory."""
    sources = {p.name: p for p in sorted(PLUGINS.iterdir()) if (p / "pyproject.toml").is_file()}
    assert set(sources) == OURS
    return install_distributions(sources, tmp_path_factory.mktemp("plugin-sites"))


@pytest.fixture
def plugins() -> Iterator[PluginHelper]:
    """What the ``headwater_plugin_manager`` fixture gives: a fresh manager, autoload disabled."""
    with isolated_plugins() as helper:
        yield helper


def _paths(sites: dict[str, Path], names: Iterable[str]) -> list[Path]:
    return [sites[f"headwater-{name}"] for name in names]


def plugins_json(sites: dict[str, Path], names: Iterable[str], *args: str, **env: str | None) -> list[dict[str, Any]]:
    """``headwater plugins --json [args]`` with the named test distributions; only their records."""
    done = run_headwater(["plugins", "--json", *args], _paths(sites, names), **env)
    assert done.returncode == 0, done.stderr
    return [r for r in json.loads(done.stdout) if r["distribution"] in OURS or r["builtin"]]


def record(records: list[dict[str, Any]], distribution: str) -> dict[str, Any]:
    found = [r for r in records if r["distribution"] == distribution]
    assert len(found) == 1, (distribution, records)
    return found[0]


# --- discovery and the loader's statuses ------------------------------------------------------


def test_entry_point_plugin_is_discovered_with_hooks_and_tags(sites: dict[str, Path]) -> None:
    records = plugins_json(sites, ["testplugin"])
    assert [r["distribution"] for r in records] == ["headwater-testplugin"]  # the built-in only with --all
    testplugin = records[0]
    assert testplugin["name"] == "testplugin"
    assert testplugin["version"] == "1.2.3"
    assert testplugin["status"] == "loaded" and testplugin["error"] is None
    assert testplugin["hooks"] == TESTPLUGIN_HOOKS
    assert testplugin["tags"] == {"storage": ["TestDir"], "environment": ["TestInline"], "task_type": ["shout"]}
    assert testplugin["warnings"] == []


def test_all_lists_the_builtin_plugin_first(sites: dict[str, Path]) -> None:
    records = plugins_json(sites, ["testplugin"], "--all")
    assert records[0]["name"] == "headwater" and records[0]["builtin"] is True
    assert {"Local", "Module", "FileSystem"} <= set(records[0]["tags"]["storage"])
    assert "TestDir" not in records[0]["tags"]["storage"]


def test_broken_plugin_is_recorded_and_the_others_still_load(sites: dict[str, Path]) -> None:
    records = plugins_json(sites, ["testplugin", "brokenplugin"])
    broken = record(records, "headwater-brokenplugin")
    assert broken["name"] == "broken"
    assert broken["status"] == "failed"
    assert broken["error"].startswith("RuntimeError: headwater-brokenplugin is broken on purpose")
    assert broken["hooks"] == [] and broken["tags"] == {}
    assert record(records, "headwater-testplugin")["status"] == "loaded"
    table = run_headwater(["plugins"], _paths(sites, ["testplugin", "brokenplugin"]))
    assert table.returncode == 0, table.stderr
    assert "broken (headwater-brokenplugin): RuntimeError: headwater-brokenplugin is broken on purpose" in table.stdout


def test_broken_plugin_does_not_break_using_the_others(sites: dict[str, Path], tmp_path: Path) -> None:
    done = run_python(
        "from headwater.plugins import registry; print(registry('storage').get('TestDir').__name__)",
        _paths(sites, ["brokenplugin", "testplugin"]),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "DirStorage"


def test_incompatible_plugin_api_is_reported_and_not_loaded(sites: dict[str, Path]) -> None:
    records = plugins_json(sites, ["oldapi"], "--all")
    oldapi = record(records, "headwater-oldapi")
    assert oldapi["status"] == "incompatible"
    assert "needs plugin API [0]" in oldapi["error"] and "offers 1" in oldapi["error"]
    assert oldapi["hooks"] == []
    assert all("OldApiStorage" not in r["tags"].get("storage", []) for r in records)


def test_misspelled_hook_is_reported_broken_with_the_closest_hook(sites: dict[str, Path]) -> None:
    records = plugins_json(sites, ["typo", "testplugin"])
    typo = record(records, "headwater-typo")
    assert typo["status"] == "broken"
    assert "unknown hook 'register_storages' (did you mean 'register_storage'?)" in typo["error"]
    assert record(records, "headwater-testplugin")["status"] == "loaded"  # the others still load
    done = run_python("from headwater.plugins import registry; print('TypoStorage' in registry('storage'))",
                      _paths(sites, ["typo"]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False"]
    table = run_headwater(["plugins"], _paths(sites, ["typo"]))
    assert "broken" in table.stdout and "did you mean 'register_storage'?" in table.stdout


def test_trace_plugins_logs_every_hook_call_with_its_plugins(sites: dict[str, Path]) -> None:
    done = run_python("from headwater.plugins import registry; registry('storage').names()",
                      _paths(sites, ["testplugin"]), HEADWATER_TRACE_PLUGINS="1", HEADWATER_PLUGINS="testplugin")
    assert done.returncode == 0, done.stderr
    assert "headwater plugin trace: register_storage(register=Registrar) -> headwater, testplugin\n" in done.stderr
    quiet = run_python("from headwater.plugins import registry; registry('storage').names()", _paths(sites, ["testplugin"]))
    assert "plugin trace" not in quiet.stderr


def test_two_distributions_with_one_entry_point_name_are_both_named(sites: dict[str, Path]) -> None:
    records = plugins_json(sites, ["testplugin", "dupname"])
    assert sorted(r["distribution"] for r in records) == ["headwater-dupname", "headwater-testplugin"]
    assert {r["name"] for r in records} == {"testplugin"}
    loaded, = (r for r in records if r["status"] == "loaded")
    failed, = (r for r in records if r["status"] == "failed")
    assert loaded["distribution"] != failed["distribution"]
    assert "duplicate plugin name 'testplugin'" in failed["error"]
    assert repr(loaded["distribution"]) in failed["error"]  # the record names the other distribution too
    assert "HEADWATER_BLOCKED_PLUGINS" in failed["error"]


def test_tag_conflict_between_two_plugins_is_an_error_naming_both(sites: dict[str, Path]) -> None:
    records = plugins_json(sites, ["testplugin", "conflict"])
    taker, owner = record(records, "headwater-conflict"), record(records, "headwater-testplugin")
    assert taker["status"] == "failed"
    assert "storage 'TestDir' is registered by both 'testplugin'" in taker["error"]
    assert "and 'conflict'" in taker["error"] and "replace=True" in taker["error"]
    assert "HEADWATER_BLOCKED_PLUGINS=conflict" in taker["error"]
    assert owner["status"] == "loaded" and len(owner["warnings"]) == 1
    assert "storage 'TestDir' is registered by both 'testplugin'" in owner["warnings"][0]
    table = run_headwater(["plugins"], _paths(sites, ["testplugin", "conflict"]))
    assert re.search(r"conflict \(headwater-conflict\): hook register_storage raised RegistrationConflictError: "
                     r"storage 'TestDir' is registered by both", table.stdout)
    done = run_python("from headwater.plugins import registry; print(registry('storage').get('TestDir').__name__)",
                      _paths(sites, ["testplugin", "conflict"]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["DirStorage"]  # testplugin's registration stands


# --- the switches ---------------------------------------------------------------------------


def test_disable_autoload_loads_no_entry_point(sites: dict[str, Path]) -> None:
    done = run_headwater(["plugins", "--json"], _paths(sites, ["testplugin", "brokenplugin"]),
                         HEADWATER_DISABLE_PLUGIN_AUTOLOAD="1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    table = run_headwater(["plugins"], _paths(sites, ["testplugin"]), HEADWATER_DISABLE_PLUGIN_AUTOLOAD="1")
    assert "No plugins installed" in table.stdout
    helped = run_headwater(["--help"], _paths(sites, ["testplugin"]), HEADWATER_DISABLE_PLUGIN_AUTOLOAD="1")
    assert "testplugin-hello" not in helped.stdout


def test_allow_list_by_entry_point_or_distribution_name(sites: dict[str, Path]) -> None:
    names = ["testplugin", "conflict", "brokenplugin"]
    records = plugins_json(sites, names, HEADWATER_PLUGINS="testplugin")
    assert record(records, "headwater-testplugin")["status"] == "loaded"
    for other in ("headwater-conflict", "headwater-brokenplugin"):  # broken is never imported: blocked, not failed
        assert record(records, other)["status"] == "blocked"
        assert record(records, other)["error"] == "not in HEADWATER_PLUGINS"
    assert record(records, "headwater-testplugin")["warnings"] == []  # conflict's TestDir never registered
    by_distribution = plugins_json(sites, names, HEADWATER_PLUGINS="headwater-conflict, broken")
    assert record(by_distribution, "headwater-conflict")["status"] == "loaded"
    assert record(by_distribution, "headwater-brokenplugin")["status"] == "failed"
    assert record(by_distribution, "headwater-testplugin")["status"] == "blocked"


def test_block_list_by_entry_point_or_distribution_name(sites: dict[str, Path]) -> None:
    names = ["testplugin", "brokenplugin"]
    records = plugins_json(sites, names, HEADWATER_BLOCKED_PLUGINS="broken")
    broken = record(records, "headwater-brokenplugin")
    assert broken["status"] == "blocked" and broken["error"] == "HEADWATER_BLOCKED_PLUGINS"
    assert record(records, "headwater-testplugin")["status"] == "loaded"
    records = plugins_json(sites, names, "--all", HEADWATER_BLOCKED_PLUGINS="headwater-testplugin")
    assert record(records, "headwater-testplugin")["status"] == "blocked"
    assert all("TestDir" not in r["tags"].get("storage", []) for r in records)
    helped = run_headwater(["--help"], _paths(sites, names), HEADWATER_BLOCKED_PLUGINS="testplugin")
    assert "testplugin-hello" not in helped.stdout


def test_hook_option_filters_plugins(sites: dict[str, Path]) -> None:
    names = ["testplugin", "conflict"]
    assert [r["name"] for r in plugins_json(sites, names, "--hook", "register_task_types")] == ["testplugin"]
    storage = plugins_json(sites, names, "--all", "--hook", "register_storage")
    assert [r["name"] for r in storage] == ["headwater", "conflict", "testplugin"]
    assert plugins_json(sites, names, "--hook", "before_flow_run") == []
    bad = run_headwater(["plugins", "--hook", "register_nothing"], _paths(sites, names))
    assert bad.returncode == 2
    assert "no hook named 'register_nothing'" in bad.stderr and "register_storage" in bad.stderr


# --- what the test plugin provides ---------------------------------------------------------------


def test_help_lists_plugin_command_without_importing_heavy_module(sites: dict[str, Path], tmp_path: Path) -> None:
    marker = tmp_path / "imported.txt"
    helped = run_headwater(["--help"], _paths(sites, ["testplugin"]), HEADWATER_TESTPLUGIN_MARKER=str(marker))
    assert helped.returncode == 0, helped.stderr
    assert re.search(r"testplugin-hello\s+Say hello \(a command added by headwater-testplugin\)", helped.stdout)
    listed = run_headwater(["plugins"], _paths(sites, ["testplugin"]), HEADWATER_TESTPLUGIN_MARKER=str(marker))
    assert "TestDir" in listed.stdout
    assert not marker.exists(), "headwater --help / plugins imported the plugin's heavy module"
    # the marker works: resolving the lazy registry entry does import the module
    used = run_python(
        "from headwater.plugins import registry; registry('storage').get('TestDir')",
        _paths(sites, ["testplugin"]), HEADWATER_TESTPLUGIN_MARKER=str(marker),
    )
    assert used.returncode == 0, used.stderr
    assert marker.read_text() == "headwater_testplugin.heavy imported\n"


def test_plugin_command_runs(sites: dict[str, Path]) -> None:
    done = run_headwater(["testplugin-hello", "Ada"], _paths(sites, ["testplugin"]))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello Ada from headwater-testplugin\n"


ROUND_TRIP = """
import json, sys
from headwater.plugins import registry
from headwater.serialization import from_dict, serialize_flow
from headwater.testing.flows import sample_flow

directory, out = sys.argv[1], sys.argv[2]
DirStorage = registry("storage").get("TestDir")
flow = sample_flow("plugin-flow")
flow.storage = DirStorage(directory=directory)
location = flow.storage.add_flow(flow)
flow.storage.build()
data = json.loads(json.dumps(flow.storage.serialize()))
storage = from_dict(data, "storage")
environment = from_dict({"type": "TestInline", "labels": ["b", "a", "b"]}, "environment")
flow.run_config = environment
handle = environment.execute(storage, location, parameters={"x": 5, "path": out})
status = environment.wait(handle, timeout=60)
print(json.dumps({
    "storage": data,
    "restored": f"{type(storage).__module__}:{type(storage).__name__}",
    "same": storage == flow.storage,
    "environment": environment.serialize(),
    "metadata": {k: serialize_flow(flow)[k] for k in ("storage", "run_config")},
    "status": status,
}))
"""


def test_plugin_storage_and_environment_round_trip_and_run_a_flow(sites: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    code = ROUND_TRIP.replace("sys.argv[1], sys.argv[2]", f"{str(tmp_path / 'flows')!r}, {str(out)!r}")
    done = run_python(code, _paths(sites, ["testplugin"]))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    location = next(iter(result["storage"]["flows"].values()))
    assert result["storage"] == {"type": "TestDir", "flows": {"plugin-flow": location}, "directory": str(tmp_path / "flows")}
    assert result["restored"] == "headwater_testplugin.heavy:DirStorage" and result["same"] is True
    assert result["environment"] == {"type": "TestInline", "labels": ["a", "b"]}
    assert result["metadata"] == {"storage": result["storage"], "run_config": result["environment"]}
    assert result["status"] == "success"
    assert out.read_text() == "12"  # (5 + 1) * 2, computed by the restored storage's flow
    assert (tmp_path / "flows" / location).is_file()


SPEC_FLOW = """
from headwater.spec import FlowEngine, task_types
engine = FlowEngine()
flow = engine.flow_spec_to_flow({"label": "plugin-spec", "tasks": [
    {"key": "loud", "task_type": "shout", "task_params": {"msg": "hello"}},
    {"key": "echo", "task_type": "print", "precursors": ["loud"],
     "task_params": {"msg": "$ctx.flow.tasks.loud.data.result"}},
]})
engine.tick_flow_until_has_no_pending(flow)
print("shout" in task_types(), flow.status, flow.task_by_slug("loud").data["result"])
"""


def test_plugin_task_type_runs_in_a_spec_flow(sites: dict[str, Path]) -> None:
    pytest.importorskip("headwater.spec", reason="headwater.spec (declarative flow specs) is not built yet")
    done = run_python(SPEC_FLOW, _paths(sites, ["testplugin"]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["HELLO!", "True COMPLETED HELLO!"]
    without = run_python(SPEC_FLOW, _paths(sites, ["testplugin"]), HEADWATER_BLOCKED_PLUGINS="testplugin")
    assert without.returncode != 0
    assert "Unknown task_type 'shout'" in without.stderr


KIT_TESTS = """
import pytest
from headwater.plugins import registry
from headwater.testing.conformance import EnvironmentConformance, StorageConformance


class TestDirStorage(StorageConformance):
    @pytest.fixture
    def storage(self, tmp_path):
        return registry("storage").get("TestDir")(directory=str(tmp_path / "flows"))


class TestInlineEnvironment(EnvironmentConformance):
    @pytest.fixture
    def environment(self):
        return registry("environment").get("TestInline")()
"""


def test_conformance_kits_pass_for_the_plugins_classes(sites: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "test_kit.py").write_text(KIT_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    done = run_python(
        "import sys, pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'test_kit.py']))",
        _paths(sites, ["testplugin"]), cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    from headwater.testing.conformance import EnvironmentConformance, StorageConformance

    expected = sum(name.startswith("test_") for kit in (StorageConformance, EnvironmentConformance) for name in vars(kit))
    assert re.search(rf"\b{expected} passed\b", done.stdout), done.stdout


# --- in-process: lifecycle hooks, conflicts, hook errors -------------------------------------------


class Recorder:
    """A plugin object recording every lifecycle call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def before_flow_run(self, flow: Any, parameters: dict[str, Any], context: dict[str, Any]) -> None:
        self.calls.append(("before_flow_run", (flow.name, dict(parameters))))

    @hookimpl
    def after_flow_run(self, flow: Any, state: Any) -> None:
        self.calls.append(("after_flow_run", (flow.name, type(state).__name__)))

    @hookimpl
    def before_task_run(self, task: Any, map_index: int | None, context: dict[str, Any]) -> None:
        self.calls.append(("before_task_run", task.name))

    @hookimpl
    def after_task_run(self, task: Any, map_index: int | None, state: Any) -> None:
        self.calls.append(("after_task_run", (task.name, type(state).__name__)))


def test_lifecycle_hooks_are_called_in_order(plugins: PluginHelper) -> None:
    from headwater.plugins import lifecycle_hooks
    from headwater.testing.flows import sample_flow

    assert lifecycle_hooks() is None  # no plugin implements them: the engine skips the calls
    recorder = Recorder()
    plugins.register(recorder, name="recorder")
    flow = sample_flow("lifecycle")
    state = flow.run(parameters={"x": 3})
    assert state.is_successful()
    calls = recorder.calls
    assert calls[0] == ("before_flow_run", ("lifecycle", {"x": 3}))
    assert calls[-1] == ("after_flow_run", ("lifecycle", "Success"))
    task_calls = calls[1:-1]
    started = [name for hook, name in task_calls if hook == "before_task_run"]
    ended = [value[0] for hook, value in task_calls if hook == "after_task_run"]
    assert sorted(started) == sorted(ended) == sorted(t.name for t in flow.tasks)
    assert all(value[1] == "Success" for hook, value in task_calls if hook == "after_task_run")

    def before(name: str) -> int:
        return task_calls.index(("before_task_run", name))

    def after(name: str) -> int:
        return task_calls.index(("after_task_run", (name, "Success")))

    for name in started:
        assert before(name) < after(name)
    assert after("x") < before("add_one") and after("add_one") < before("double") < after("double") < before("write")
    plugins.unregister("recorder")
    assert lifecycle_hooks() is None


class FirstStorage:
    @hookimpl
    def register_storage(self, register: Any) -> None:
        register("headwater.storage.local:Local", "Shared")


class SecondStorage:
    @hookimpl
    def register_storage(self, register: Any) -> None:
        register("headwater.storage.module:Module", "Shared")


class RaisingStorage:
    @hookimpl
    def register_storage(self, register: Any) -> None:
        raise RuntimeError("no storage today")


def test_in_process_conflict_and_failing_hook_are_recorded(plugins: PluginHelper) -> None:
    from headwater.storage import Module

    pm = plugins
    pm.register(FirstStorage(), name="first")
    pm.register(RaisingStorage(), name="raising")
    pm.register(SecondStorage(), name="second")
    storage = pm.registry("storage")
    assert storage.get("Shared") is Module  # pluggy calls the later plugin first: its registration stands
    assert storage.get("Local").__name__ == "Local"  # built-ins unaffected by the failing hook
    records = {r.name: r for r in pm.records()}
    assert records["raising"].status == "failed"
    assert records["raising"].error == "hook register_storage raised RuntimeError: no storage today"
    message = (
        "storage 'Shared' is registered by both 'second' (headwater.storage.module:Module) and 'first' "
        "(headwater.storage.local:Local). Uninstall or block one of them (HEADWATER_BLOCKED_PLUGINS=first), "
        "or pass replace=True in 'first' to override on purpose."
    )
    assert records["first"].status == "failed"
    assert records["first"].error == f"hook register_storage raised RegistrationConflictError: {message}"
    assert records["second"].status == "loaded" and records["second"].warnings == [message]


def test_replace_true_takes_over_another_plugins_name(plugins: PluginHelper) -> None:
    from headwater.storage import Local, Module

    class Owner:
        @hookimpl
        def register_storage(self, register: Any) -> None:
            register("headwater.storage.module:Module", "Shared")

    class Taker:
        @hookimpl(trylast=True)
        def register_storage(self, register: Any) -> None:
            register("headwater.storage.local:Local", "Shared", replace=True)

    plugins.register(Owner(), name="owner")
    plugins.register(Taker(), name="taker")
    assert plugins.registry("storage").get("Shared") is Local
    assert Module is not Local and {r.name: r.status for r in plugins.records()}["taker"] == "loaded"


def test_register_hooks_go_through_pluggy_wrappers_and_monitoring(plugins: PluginHelper) -> None:
    seen: list[str] = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def register_storage(self, register: Any) -> Any:
            seen.append(f"before {register.kind}")
            result = yield
            seen.append("after")
            return result

    class Adds:
        @hookimpl
        def register_storage(self, register: Any) -> None:
            seen.append("adds")
            register("headwater.storage.module:Module", "Added")

    plugins.register(Adds(), name="adds")
    plugins.register(Wrapper(), name="wrapper")
    calls: list[str] = []
    plugins.pm.add_hookcall_monitoring(lambda name, impls, kwargs: calls.append(name), lambda *a: None)
    assert "Added" in plugins.registry("storage")
    assert seen == ["before storage", "adds", "after"]
    assert "register_storage" in calls
    assert {e.name: e.plugin for e in plugins.registry("storage").entries()}["Added"] == "adds"


def test_in_process_plugin_with_an_unknown_hook_is_refused(plugins: PluginHelper) -> None:
    class Typo:
        @hookimpl
        def register_executor(self, register: Any) -> None:
            raise AssertionError("never called")

    with pytest.raises(ValueError, match=r"unknown hook 'register_executor' \(did you mean 'register_executors'\?\)"):
        plugins.register(Typo(), name="typo")
    assert "typo" not in {r.name for r in plugins.records()}


def test_old_argument_order_still_works_with_a_deprecation_warning(plugins: PluginHelper) -> None:
    import importlib

    task_types = importlib.import_module("headwater.spec.task_types")

    class Old:
        @hookimpl
        def register_task_types(self, register: Any) -> None:
            register("old_order", "headwater.spec.task_types:get_handler")

    plugins.register(Old(), name="old")
    with pytest.warns(DeprecationWarning, match="the name comes second now"):
        task_types._load_plugin_task_types(task_types._register_missing)
    assert "old_order" in task_types.task_types()
    task_types.unregister("old_order")


def test_deprecated_module_paths_still_work_and_warn() -> None:
    import headwater.plugins as api

    with pytest.warns(DeprecationWarning, match="import it from headwater.plugins"):
        from headwater.plugins.manager import registry as old_registry
    assert old_registry is api.registry
    with pytest.warns(DeprecationWarning, match="headwater_cloud_api.config"):
        from headwater.config import CloudSection
    assert CloudSection.__module__ == "headwater_cloud_api.config"
    assert callable(api.registry)  # the function is not shadowed by a module of the same name


def test_lazy_plugin_names_import_or_give_the_exact_install_hint(plugins: PluginHelper) -> None:
    import headwater.storage

    with pytest.raises(ImportError, match=r"^GitHub storage is in headwater-github: pip install headwater-github$"):
        from headwater.storage import GitHub  # noqa: F401  (built-ins only here: the plugin is not loaded)
    with pytest.raises(ImportError, match=r"DaskExecutor executor is in headwater-dask: pip install headwater-dask"):
        from headwater.executors import DaskExecutor  # noqa: F401
    with pytest.raises(ImportError, match="cannot import name 'DigitalOceanSpaces'"):
        from headwater.storage import DigitalOceanSpaces  # noqa: F401
    from headwater.plugins import install_hint

    assert install_hint("DigitalOceanSpaces") is None and install_hint("S3", "storage") == "pip install headwater-s3"

    class Provides:
        @hookimpl
        def register_storage(self, register: Any) -> None:
            register("headwater.storage.module:Module", "GitHub")

    plugins.register(Provides(), name="provides")
    assert headwater.storage.GitHub is headwater.storage.Module


def test_plugin_overriding_a_builtin_is_not_a_conflict(plugins: PluginHelper) -> None:
    class Override:
        @hookimpl
        def register_storage(self, register: Any) -> None:
            register("headwater.storage.module:Module", "Local")

    plugins.register(Override(), name="override")
    entry = {e.name: e for e in plugins.registry("storage").entries()}["Local"]
    assert entry.plugin == "override" and entry.overrides == "headwater"
    assert plugins.registry("storage").conflicts == []


# --- docs/plugins.md documents every hook ---------------------------------------------------------


def _hookspecs() -> dict[str, str]:
    from headwater.plugins import hookspecs

    found = {}
    for name, fn in vars(hookspecs).items():
        if callable(fn) and hasattr(fn, "headwater_spec"):
            params = ", ".join(inspect.signature(fn).parameters)
            found[name] = f"{name}({params})"
    return found


def test_every_hookspec_is_documented_with_its_signature() -> None:
    specs = _hookspecs()
    assert "register_storage" in specs and "before_task_run" in specs and len(specs) >= 13
    text = DOCS.read_text(encoding="utf-8")
    missing = [signature for signature in specs.values() if f"`{signature}`" not in text]
    assert not missing, f"docs/plugins.md does not document these hooks (as `name(args)`): {missing}"


def test_docs_name_no_hook_that_does_not_exist() -> None:
    text = DOCS.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `((?:register|before|after|get|extend|run)_\w+)\(", text, flags=re.MULTILINE))
    assert documented == set(_hookspecs()), textwrap.shorten(str(documented ^ set(_hookspecs())), 300)
