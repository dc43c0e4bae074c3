"""End to end with real processes: `headwater register` builds, checks and pushes the image; the local image is
removed; `headwater agent start --label docker` pulls it and runs each flow run in a container on podman."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docker_helpers import Engine
from headwater.client import Client
from headwater.testing import AgentProcess, ServerProcess, wait_for
from headwater_docker.environment import RUN_LABEL

FLOWS = '''
import os
import time

from headwater import Flow, Parameter, task
from headwater.run_configs import DockerRun
from headwater.storage import Docker

import imagehelpers

storage = Docker(registry_url=os.environ["E2E_REGISTRY"] + "/e2e", base_image="localbase", image_name="e2e-flows",
                 env_vars={"TZ": "UTC"})
run_config = DockerRun(env={"GREETING": "hello"}, labels=["docker"], host_config={"network_mode": "host"})


@task(log_stdout=True)
def greet(name):
    print(imagehelpers.shout(os.environ["GREETING"] + " " + name + " from " + os.environ["TZ"]))
    return name


@task
def nap(seconds):
    time.sleep(seconds)
    return seconds


with Flow("docker-greet", storage=storage, run_config=run_config) as greet_flow:
    greet(Parameter("name", default="docker"))

with Flow("docker-sleepy", storage=storage, run_config=run_config) as sleepy:
    nap(Parameter("seconds", default=120))

missing = DockerRun(image=os.environ["E2E_REGISTRY"] + "/e2e/no-such-image:1", labels=["docker"],
                    host_config={"network_mode": "host"})
with Flow("docker-missing-image", storage=storage, run_config=missing) as missing_image:
    greet("nobody")



@task
def chatter():
    import subprocess
    import sys

    print("RAW-STDOUT printed outside logging")
    print("RAW-STDERR written to sys.stderr", file=sys.stderr, flush=True)
    subprocess.run(["sh", "-c", "echo RAW-CHILD from a child process"], check=True)
    return 1


with Flow("docker-chatter", storage=storage, run_config=run_config) as chatter_flow:
    chatter()

# PYTHONPATH replaces the image's: the container's python cannot import headwater and dies at once
broken = DockerRun(env={"PYTHONPATH": "/nonexistent"}, labels=["docker"], host_config={"network_mode": "host"})
with Flow("docker-dies-at-import", storage=storage, run_config=broken) as dies_at_import:
    greet("nobody")

for _flow in (greet_flow, sleepy, missing_image, chatter_flow, dies_at_import):
    storage.add_flow(_flow)
'''


def _cli(*args: str, cwd: Path, api: str, registry: str) -> str:
    result = subprocess.run([sys.executable, "-m", "headwater.cli", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "HEADWATER__CLOUD__API": api, "E2E_REGISTRY": registry}, timeout=280)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


class Stack:
    def __init__(self, server: ServerProcess, agent: AgentProcess, api: Client, registration: str, engine: Engine,
                 project: Path) -> None:
        self.server, self.agent, self.api, self.registration, self.engine, self.project = (
            server, agent, api, registration, engine, project)

    def run(self, flow: str, **parameters: Any) -> Any:
        return self.api.flow(name=flow, project="test").create_run(parameters=parameters)


@pytest.fixture(scope="module")
def stack(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("e2e")
    project = work / "project"
    project.mkdir()
    (project / "imagehelpers.py").write_text("def shout(text):\n    return text.upper() + '!'\n")
    (project / "flows.py").write_text(FLOWS)
    server = ServerProcess(f"sqlite:///{work / 'api.db'}", work, lease=8.0, max_resurrections=1).start()
    agent = None
    try:
        _cli("project", "create", "test", cwd=project, api=server.api, registry=engine.registry)
        out = _cli("register", "--project", "test", "--path", "flows.py", cwd=project, api=server.api,
                   registry=engine.registry)
        client = engine.client()
        image = next(i for i in client.images.list() if any("/e2e/e2e-flows:hw-" in t for t in i.tags))
        for tag in image.tags:
            client.images.remove(tag, force=True)  # the agent must pull it from the registry
        agent = AgentProcess(server.api, work / "agent", ("docker",), "docker-agent", poll_interval=0.2,
                             cancel_grace_period=1.0)
        with Client(api=server.api, api_key="") as api:
            yield Stack(server, agent, api, out, engine, project)
    finally:
        if agent is not None:
            agent.stop()
        server.stop()


def _states(api: Client, run_id: str) -> list[str]:
    return [s.name for s in api.flow_run(id=run_id).states()]


def _messages(api: Client, run_id: str) -> list[str]:
    return [r["message"] for r in api.flow_run(id=run_id).logs()]


def _containers(engine: Engine, run_id: str) -> list[Any]:
    return engine.client().containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})


def test_registration_built_checked_and_pushed_the_image(stack: Stack) -> None:
    out = stack.registration
    assert "5 registered, 0 skipped, 0 errors." in out, out
    assert re.search(r"\[\d+/\d+\] COPY flows /opt/headwater/flows", out), out
    assert "checking" in out and "loading 5 flow(s)" in out
    assert f"pushing {stack.engine.registry}/e2e/e2e-flows:hw-" in out


def test_flow_run_in_a_container_reports_states_and_logs(stack: Stack) -> None:
    run = stack.run("docker-greet", name="e2e")
    assert run.wait(180).name == "Success", _messages(stack.api, run.id) + [stack.agent.output()]
    assert _states(stack.api, run.id) == ["Scheduled", "Submitted", "Running", "Success"]
    messages = _messages(stack.api, run.id)
    assert any("deployed flow run" in m and "with DockerRun" in m for m in messages), messages
    assert "HELLO E2E FROM UTC!" in messages, messages  # the task's stdout, from inside the container
    wait_for(lambda: not _containers(stack.engine, run.id), 30, what="the finished container to be removed")


def test_unchanged_flows_are_not_rebuilt_on_re_registration(stack: Stack) -> None:
    out = _cli("register", "--project", "test", "--path", "flows.py", cwd=stack.project, api=stack.server.api,
               registry=stack.engine.registry)
    assert "0 registered, 5 skipped, 0 errors." in out, out
    assert "is already in the registry" in out or "is up to date" in out, out
    assert "COPY flows" not in out


def test_cancel_stops_the_container(stack: Stack) -> None:
    run = stack.run("docker-sleepy", seconds=120)
    wait_for(lambda: any(t["state"]["type"] == "Running" for t in stack.api.flow_run(id=run.id).task_runs()), 120,
             what="the nap task to run in its container")
    assert _containers(stack.engine, run.id)
    run.cancel()
    assert run.wait(60).name == "Cancelled"
    wait_for(lambda: not _containers(stack.engine, run.id), 60, what="the cancelled container to be gone")


def test_sigkill_of_the_container_is_rescheduled_by_the_reaper(stack: Stack) -> None:
    run = stack.run("docker-sleepy", seconds=6)
    wait_for(lambda: any(t["state"]["type"] == "Running" for t in stack.api.flow_run(id=run.id).task_runs()), 120,
             what="the nap task to run in its container")
    (container,) = _containers(stack.engine, run.id)
    container.kill(signal="SIGKILL")
    wait_for(lambda: run.get("times_resurrected") == 1, 60, what="the reaper to reschedule the run")
    assert run.wait(180).name == "Success", _messages(stack.api, run.id)
    states = _states(stack.api, run.id)
    assert states == ["Scheduled", "Submitted", "Running", "Scheduled", "Submitted", "Running", "Success"], states
    messages = _messages(stack.api, run.id)
    assert any("exited with status 137 while Running" in m for m in messages), messages
    assert any("no heartbeat" in m and "Rescheduled" in m for m in messages), messages


def test_an_image_that_does_not_exist_fails_the_run_with_the_pull_error(stack: Stack) -> None:
    run = stack.run("docker-missing-image")
    assert run.wait(120).name == "Failed"
    assert _states(stack.api, run.id) == ["Scheduled", "Submitted", "Failed"]
    messages = "\n".join(_messages(stack.api, run.id))
    assert f"Could not pull image {stack.engine.registry}/e2e/no-such-image:1" in messages, messages


def _logs(api: Client, run_id: str) -> list[dict[str, Any]]:
    return list(api.flow_run(id=run_id).logs())


def test_output_outside_logging_reaches_the_run_logs_once(stack: Stack) -> None:
    from headwater_docker.logs import RECORD_LINE

    run = stack.run("docker-chatter")
    assert run.wait(180).name == "Success", _messages(stack.api, run.id)
    expected = {"RAW-STDOUT printed outside logging", "RAW-STDERR written to sys.stderr", "RAW-CHILD from a child process"}
    # the runner reports Success itself; the agent forwards the container's output in batches, as it follows it
    wait_for(lambda: expected <= set(_messages(stack.api, run.id)), 60, what="the container's own output in the run logs")
    logs = _logs(stack.api, run.id)
    by_message = {r["message"]: r for r in logs}
    assert by_message["RAW-STDOUT printed outside logging"]["name"] == "headwater.docker.container.stdout"
    assert by_message["RAW-STDOUT printed outside logging"]["level"] == "INFO"
    assert by_message["RAW-STDERR written to sys.stderr"]["name"] == "headwater.docker.container.stderr"
    assert by_message["RAW-STDERR written to sys.stderr"]["level"] == "WARNING"
    assert "RAW-CHILD from a child process" in by_message
    forwarded = [r["message"] for r in logs if r["name"].startswith("headwater.docker.container")]
    assert not [m for m in forwarded if RECORD_LINE.match(m)], forwarded  # the runner's own records came once, from it
    wait_for(lambda: not _containers(stack.engine, run.id), 30, what="the finished container to be removed")
    forwarded = [r["message"] for r in _logs(stack.api, run.id) if r["name"].startswith("headwater.docker.container")]
    assert sorted(forwarded) == sorted(expected), forwarded  # each once, and nothing else


def test_a_container_that_dies_at_import_shows_its_output_in_the_logs_and_the_failed_message(stack: Stack) -> None:
    run = stack.run("docker-dies-at-import")
    state = run.wait(120)
    assert state.name == "Failed", _messages(stack.api, run.id)
    assert _states(stack.api, run.id) == ["Scheduled", "Submitted", "Failed"]
    assert "No module named" in state.message and "headwater" in state.message, state.message
    crash = [r for r in _logs(stack.api, run.id) if r["name"] == "headwater.docker.container.stderr"]
    assert any("No module named" in r["message"] and "headwater" in r["message"] for r in crash), crash
