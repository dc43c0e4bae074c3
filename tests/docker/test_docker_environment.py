"""DockerRun on a real engine: the conformance kit, images that cannot be pulled, containers that die."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from docker_helpers import Built, Engine
from headwater.plugins import EnvironmentConformance, from_dict
from headwater.run_configs import DockerRun
from headwater_docker.environment import RUN_LABEL, DockerRunError, container_api_url


class TestDockerRunConformance(EnvironmentConformance):
    """Flows in Local storage on a directory bind-mounted at the same path; the session image runs them."""

    @pytest.fixture
    def environment(self, built: Built, tmp_path: Path) -> DockerRun:
        return DockerRun(
            image=built.storage.image,
            host_config={"network_mode": "none", "binds": {str(tmp_path): {"bind": str(tmp_path), "mode": "rw"}}},
            labels=["docker"],
        )


def test_prefect_arguments_and_round_trip() -> None:
    run = DockerRun(image="img:1", env={"A": 1}, labels=["docker", "docker"], host_config={"network_mode": "host"},
                    ports=[8080])
    data = run.serialize()
    assert data["type"] == "DockerRun" and data["env"] == {"A": "1"} and data["labels"] == ["docker"]
    assert from_dict(json.loads(json.dumps(data)), "environment") == run


def test_api_url_for_containers() -> None:
    url = "http://127.0.0.1:4200/graphql"
    assert container_api_url(url, "host", None, "host.docker.internal") == url
    assert container_api_url(url, None, None, "host.docker.internal") == "http://host.docker.internal:4200/graphql"
    assert container_api_url(url, "bridge", "http://api:4200/graphql", "x") == "http://api:4200/graphql"
    assert container_api_url("https://api.example.com/graphql", None, None, "x") == "https://api.example.com/graphql"


def test_agent_command_env_labels_and_output(built: Built, engine: Engine, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's command line runs with the container's python; env, labels and output as documented."""
    import sys

    monkeypatch.setenv("HEADWATER__DOCKER__KEEP_CONTAINERS", "true")
    run = DockerRun(env={"FROM_RUN_CONFIG": "1"}, host_config={"network_mode": "none"})
    output = tmp_path / "run.log"
    script = ("import os, json; print(json.dumps({k: v for k, v in os.environ.items() if k.startswith(('FROM_', "
              "'HEADWATER__CLOUD'))})); import sys; print('to stderr', file=sys.stderr)")
    handle = run.execute(built.storage, built.storage.flows["docker-hello"], flow_run_id="run-123",
                         command=[sys.executable, "-c", script],
                         env={"HEADWATER__CLOUD__API": "http://127.0.0.1:4200/graphql", "FROM_AGENT": "2"},
                         stdout=str(output), stderr=subprocess.STDOUT)
    assert run.wait(handle, timeout=120) == "success"
    lines = output.read_text().splitlines()
    assert json.loads(lines[0]) == {"FROM_RUN_CONFIG": "1", "FROM_AGENT": "2",
                                    "HEADWATER__CLOUD__API": "http://host.docker.internal:4200/graphql"}
    assert "to stderr" in lines
    client = engine.client()
    container = client.containers.get(handle.id)  # kept: [docker] keep_containers
    assert container.labels[RUN_LABEL] == "run-123"
    assert container.labels["io.headwater.flow-location"] == built.storage.flows["docker-hello"]
    container.remove()


def test_finished_containers_are_removed(built: Built, engine: Engine) -> None:
    run = DockerRun(host_config={"network_mode": "none"})
    handle = run.execute(built.storage, built.storage.flows["docker-hello"], command=["python3", "-c", "pass"],
                         stdout=subprocess.DEVNULL)
    assert run.wait(handle, timeout=120) == "success"
    import docker

    with pytest.raises(docker.errors.NotFound):
        engine.client().containers.get(handle.id)


def test_image_that_cannot_be_pulled_fails_the_run_with_the_engine_message(built: Built, engine: Engine,
                                                                         tmp_path: Path) -> None:
    """The pull happens in the background (execute returns at once); its failure is the run's status and output."""
    run = DockerRun(image=f"{engine.registry}/tests/does-not-exist:1", host_config={"network_mode": "none"})
    output = tmp_path / "run.log"
    handle = run.execute(built.storage, built.storage.flows["docker-hello"], stdout=str(output))
    assert run.wait(handle, timeout=120) == "failed"
    assert handle.id is None and handle.exit_code == 125
    message = output.read_text()
    assert f"Could not pull image {engine.registry}/tests/does-not-exist:1" in message
    assert any(s in message.lower() for s in ("manifest unknown", "not found", "no such image")), message


def test_pull_never_refuses_a_missing_image(built: Built, engine: Engine, tmp_path: Path) -> None:
    run = DockerRun(image="localhost/not-here:1", pull="never", host_config={"network_mode": "none"})
    output = tmp_path / "run.log"
    handle = run.execute(built.storage, built.storage.flows["docker-hello"], stdout=str(output))
    assert run.wait(handle, timeout=60) == "failed"
    assert "pull='never'" in output.read_text()


def test_container_that_cannot_start_is_an_error(built: Built, engine: Engine) -> None:
    run = DockerRun(python="/no/such/python", host_config={"network_mode": "none"})
    with pytest.raises(DockerRunError, match="did not start"):
        run.execute(built.storage, built.storage.flows["docker-hello"])
    left = engine.client().containers.list(all=True, filters={"label": "io.headwater.managed=true"})
    assert [c for c in left if c.attrs["Config"]["Cmd"][:1] == ["/no/such/python"]] == []


def test_container_killed_from_outside_is_failed(built: Built, engine: Engine) -> None:
    run = DockerRun(host_config={"network_mode": "none"})
    handle = run.execute(built.storage, built.storage.flows["docker-hello"],
                         command=["python3", "-c", "import time; time.sleep(60)"], stdout=subprocess.DEVNULL)
    assert run.status(handle) == "running"
    engine.client().containers.get(handle.id).kill()
    assert run.wait(handle, timeout=60) == "failed"
    assert handle.exit_code == 137


def test_no_image_anywhere_is_an_error(built: Built) -> None:
    from headwater.storage import Local

    with pytest.raises(DockerRunError, match="has no image to run"):
        DockerRun().execute(Local(), "x")


