"""headwater.environments: LocalEnvironment, SubprocessEnvironment and the run configs running stored
flows for real — exit status, parameters, env, working dir, kill of a process group, unloadable storage."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from headwater import Flow, Parameter, task
from headwater.environments import Environment, LocalEnvironment, RunHandle, SubprocessEnvironment, run_from_env
from headwater.plugins import registry
from headwater.run_configs import LocalRun, UniversalRun
from headwater.storage import Local, Storage
from headwater.storage.base import ENV_FLOW_LOCATION, ENV_STORAGE

WAIT = 120.0  # seconds: a bound for a hung child, never a timing target


@task
def write_value(value: Any, out: str) -> Any:
    Path(out).write_text(json.dumps(value))
    return value


@task
def boom() -> None:
    raise ValueError("boom from the task")


@task
def report(out: str) -> None:
    names = ("HW_TEST_INHERITED", "HW_TEST_ENV", "HW_TEST_RUN", ENV_FLOW_LOCATION)
    Path(out).write_text(json.dumps({"cwd": os.getcwd(), **{n: os.environ.get(n) for n in names}}))


GRANDCHILD = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # only SIGKILL ends this one
with open(sys.argv[1] + ".tmp", "w") as fh:
    fh.write(str(os.getpid()))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""


@task
def spawn_and_hang(directory: str) -> None:
    grandchild_file = os.path.join(directory, "grandchild.pid")
    subprocess.Popen([sys.executable, "-c", GRANDCHILD, grandchild_file])
    while not os.path.exists(grandchild_file):
        time.sleep(0.02)
    Path(directory, "child.pid").write_text(str(os.getpid()))
    time.sleep(600)


def flow_of(name: str, build: Callable[[], None]) -> Flow:
    with Flow(name) as flow:
        build()
    return flow


def value_flow() -> Flow:
    return flow_of("value", lambda: write_value(Parameter("value", default="default"), Parameter("out")))


@pytest.fixture
def store(tmp_path: Path) -> Callable[[Flow], tuple[Storage, str]]:
    """Build a flow into a Local storage under tmp_path; returns (storage, location)."""

    def build(flow: Flow) -> tuple[Storage, str]:
        storage = Local(directory=str(tmp_path / "store"))
        location = storage.add_flow(flow)
        storage.build()
        return storage, location

    return build


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


# --- LocalEnvironment ------------------------------------------------------------------------


def test_local_environment_runs_the_stored_flow_in_process(tmp_path: Path, store: Any) -> None:
    storage, location = store(value_flow())
    out = tmp_path / "out.json"
    env = LocalEnvironment(labels=["dev"])
    env.setup(storage)
    handle = env.execute(storage, location, parameters={"value": {"n": [1, 2]}, "out": str(out)})
    assert handle.environment == "LocalEnvironment"
    assert env.status(handle) == "success" and handle.status == "success"
    assert handle.state.is_successful()
    assert json.loads(out.read_text()) == {"n": [1, 2]}
    assert env.wait(handle) == "success"
    env.kill(handle)  # nothing left to stop
    assert env.status(handle) == "success"


def test_local_environment_reports_failed_runs_and_unloadable_flows(tmp_path: Path, store: Any) -> None:
    storage, location = store(flow_of("boom", lambda: boom()))
    env = LocalEnvironment()
    handle = env.execute(storage, location)
    assert env.status(handle) == "failed"
    assert handle.state.is_failed()

    missing = Local(directory=str(tmp_path / "nothing-here"), flows={"ghost": "ghost/0000000000000000.flow"})
    handle = env.execute(missing, "ghost/0000000000000000.flow")
    assert env.status(handle) == "failed"
    assert "could not run the flow at 'ghost/0000000000000000.flow'" in handle.state.message
    assert "does not exist on this machine" in handle.state.message

    storage, location = store(value_flow())
    handle = env.execute(storage, location, parameters={"nope": 1})  # bad parameters fail the run, not the agent
    assert env.status(handle) == "failed"
    assert "has no parameter 'nope'" in handle.state.message


# --- SubprocessEnvironment -------------------------------------------------------------------


def test_subprocess_environment_runs_the_flow_in_a_child_with_parameters(tmp_path: Path, store: Any) -> None:
    storage, location = store(value_flow())
    out = tmp_path / "out.json"
    env = SubprocessEnvironment(labels=["local"])
    handle = env.execute(
        storage, location, parameters={"value": ["from", "parent"], "out": str(out)}, stderr=tmp_path / "err.log"
    )
    assert isinstance(handle, RunHandle)
    assert handle.pid is not None and handle.pid != os.getpid()
    assert handle.environment == "SubprocessEnvironment"
    assert env.wait(handle, timeout=WAIT) == "success", (tmp_path / "err.log").read_text()
    assert handle.exit_code == 0
    assert json.loads(out.read_text()) == ["from", "parent"]
    assert "finished: <Success" in (tmp_path / "err.log").read_text()


def test_subprocess_environment_failed_run_exits_1(tmp_path: Path, store: Any) -> None:
    storage, location = store(flow_of("boom", lambda: boom()))
    env = SubprocessEnvironment()
    handle = env.execute(storage, location, stderr=tmp_path / "err.log", stdout=subprocess.DEVNULL)
    assert env.wait(handle, timeout=WAIT) == "failed"
    assert handle.exit_code == 1
    log = (tmp_path / "err.log").read_text()
    assert "boom from the task" in log
    assert "finished: <Failed" in log


def test_env_and_working_dir_reach_the_child(tmp_path: Path, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    storage, location = store(flow_of("report", lambda: report(Parameter("out"))))
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    out = tmp_path / "report.json"
    monkeypatch.setenv("HW_TEST_INHERITED", "from-agent")
    monkeypatch.setenv("HW_TEST_ENV", "overridden")
    env = SubprocessEnvironment(env={"HW_TEST_ENV": "from-environment"}, working_dir=str(workdir))
    handle = env.execute(
        storage, location, parameters={"out": str(out)}, env={"HW_TEST_RUN": "from-run-context"},
        stderr=tmp_path / "err.log",
    )
    assert env.wait(handle, timeout=WAIT) == "success", (tmp_path / "err.log").read_text()
    seen = json.loads(out.read_text())
    assert os.path.realpath(seen["cwd"]) == os.path.realpath(workdir)
    assert seen["HW_TEST_INHERITED"] == "from-agent"
    assert seen["HW_TEST_ENV"] == "from-environment"
    assert seen["HW_TEST_RUN"] == "from-run-context"
    assert seen[ENV_FLOW_LOCATION] == location


@pytest.mark.parametrize("run_config_class", [LocalRun, UniversalRun])
def test_run_configs_execute_like_subprocess_environments(
    run_config_class: type[SubprocessEnvironment], tmp_path: Path, store: Any
) -> None:
    storage, location = store(flow_of("report", lambda: report(Parameter("out"))))
    out = tmp_path / "report.json"
    kwargs: dict[str, Any] = {"labels": ["test"], "env": {"HW_TEST_ENV": "run-config"}}
    if run_config_class is LocalRun:
        kwargs["working_dir"] = str(tmp_path)
    run_config = run_config_class(**kwargs)
    assert run_config.labels == ("test",)
    with Flow("carrier", run_config=run_config) as carrier:
        pass
    assert carrier.environment is run_config
    handle = run_config.execute(storage, location, parameters={"out": str(out)}, stderr=tmp_path / "err.log")
    assert handle.environment == run_config_class.__name__
    assert run_config.wait(handle, timeout=WAIT) == "success", (tmp_path / "err.log").read_text()
    seen = json.loads(out.read_text())
    assert seen["HW_TEST_ENV"] == "run-config"
    if run_config_class is LocalRun:
        assert os.path.realpath(seen["cwd"]) == os.path.realpath(tmp_path)


def test_command_replaces_the_default_command_line(tmp_path: Path, store: Any) -> None:
    storage, location = store(value_flow())
    out = tmp_path / "cmd.txt"
    code = "import os, sys; open(sys.argv[1], 'w').write(os.environ['HEADWATER__RUN__FLOW_LOCATION'])"
    env = SubprocessEnvironment()
    handle = env.execute(storage, location, command=[sys.executable, "-c", code, str(out)])
    assert env.wait(handle, timeout=WAIT) == "success"
    assert out.read_text() == location
    with pytest.raises(TypeError, match="must be a list"):
        env.execute(storage, location, command="headwater execute flow-run")
    with pytest.raises(TypeError, match="run context 'stdout' must be a path"):
        env.execute(storage, location, stdout=1.5)


def test_exit_status_of_a_custom_command_decides_the_status(tmp_path: Path, store: Any) -> None:
    storage, location = store(value_flow())
    env = SubprocessEnvironment()
    handle = env.execute(storage, location, command=[sys.executable, "-c", "raise SystemExit(3)"])
    assert env.wait(handle, timeout=WAIT) == "failed"
    assert handle.exit_code == 3


def test_missing_working_dir_is_a_clear_error(tmp_path: Path, store: Any) -> None:
    storage, location = store(value_flow())
    env = LocalRun(working_dir=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=r"working_dir '.*missing' does not exist"):
        env.execute(storage, location)


def test_kill_ends_the_child_and_its_process_group(tmp_path: Path, store: Any) -> None:
    storage, location = store(flow_of("hang", lambda: spawn_and_hang(Parameter("directory"))))
    env = SubprocessEnvironment()
    handle = env.execute(storage, location, parameters={"directory": str(tmp_path)}, stderr=tmp_path / "err.log")
    wait_for(lambda: (tmp_path / "child.pid").exists() or env.status(handle) != "running", "the flow to start")
    assert env.status(handle) == "running", (tmp_path / "err.log").read_text()
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    assert alive(grandchild)
    assert os.getpgid(grandchild) == handle.pid  # the child leads its own process group

    env.kill(handle, grace_period=0.5)  # the grandchild ignores SIGTERM: it needs the SIGKILL after the grace period
    assert env.status(handle) == "cancelled"
    assert handle.exit_code is not None and handle.exit_code < 0
    assert not alive(handle.pid)
    wait_for(lambda: not alive(grandchild), "the grandchild to die")
    env.kill(handle)  # again: harmless
    assert env.status(handle) == "cancelled"


def test_kill_after_the_run_finished_changes_nothing(tmp_path: Path, store: Any) -> None:
    storage, location = store(value_flow())
    env = SubprocessEnvironment()
    handle = env.execute(storage, location, parameters={"out": str(tmp_path / "o.json")})
    assert env.wait(handle, timeout=WAIT) == "success"
    env.kill(handle, grace_period=0)
    assert env.status(handle) == "success"


# --- a storage the child cannot load ---------------------------------------------------------


def test_unbuilt_location_fails_with_a_clear_message_on_stderr(tmp_path: Path) -> None:
    storage = Local(directory=str(tmp_path / "never-built"))
    with Flow("ghost") as flow:
        boom()
    location = storage.add_flow(flow)  # no build()
    env = SubprocessEnvironment()
    handle = env.execute(storage, location, stderr=tmp_path / "err.log")
    assert env.wait(handle, timeout=WAIT) == "failed"
    assert handle.exit_code == run_from_env.EXIT_CANNOT_LOAD
    message = (tmp_path / "err.log").read_text()
    assert f"cannot load the flow at {location!r} from Local storage" in message
    assert "does not exist on this machine" in message


@attrs.define
class ParentOnlyStorage(Storage):
    """Registered in this process only: the child cannot restore it."""

    def location_for(self, flow: Any) -> str:
        return flow.name

    def _write(self, flow: Any, location: str) -> None:
        return None

    def get_flow(self, location: str) -> Any:
        raise NotImplementedError


def test_storage_unknown_to_the_child_fails_with_a_clear_message(tmp_path: Path) -> None:
    registry("storage").register(ParentOnlyStorage)
    try:
        storage = ParentOnlyStorage(flows={"x": "x"})
        env = SubprocessEnvironment()
        handle = env.execute(storage, "x", stderr=tmp_path / "err.log")
        assert env.wait(handle, timeout=WAIT) == "failed"
    finally:
        registry("storage").unregister("ParentOnlyStorage")
    assert handle.exit_code == 2
    message = (tmp_path / "err.log").read_text()
    assert "cannot load the flow run" in message
    assert "Unknown storage type 'ParentOnlyStorage'" in message
    assert "Local" in message  # the installed types are listed


def test_run_from_env_without_variables_exits_2_and_says_why() -> None:
    err = io.StringIO()
    assert run_from_env.main(env={}, err=err) == 2
    assert f"{ENV_STORAGE} is not set" in err.getvalue()

    err = io.StringIO()
    assert run_from_env.main(env={ENV_STORAGE: "{not json", ENV_FLOW_LOCATION: "x"}, err=err) == 2
    assert "not valid JSON" in err.getvalue()

    err = io.StringIO()
    assert run_from_env.main(env={ENV_STORAGE: json.dumps({"type": "Local"})}, err=err) == 2
    assert f"{ENV_FLOW_LOCATION} is not set" in err.getvalue()


def test_run_from_env_by_hand_runs_the_flow(tmp_path: Path, store: Any) -> None:
    from headwater.storage.base import env_runner_variables

    storage, location = store(value_flow())
    out = tmp_path / "o.json"
    variables = env_runner_variables(storage, location, {"value": 7, "out": str(out)})
    err = io.StringIO()
    assert run_from_env.main(env=variables, err=err) == 0, err.getvalue()
    assert json.loads(out.read_text()) == 7
    variables = env_runner_variables(storage, location, {"value": 7})  # missing required parameter 'out'
    err = io.StringIO()
    assert run_from_env.main(env=variables, err=err) == 1
    assert "missing required parameter(s) 'out'" in err.getvalue()


def test_environments_are_abstract() -> None:
    with pytest.raises(TypeError):
        Environment()  # type: ignore[abstract]
