"""A registry that needs a login: push with ``[docker]`` credentials or ``docker login``'s, clear refusals, an agent's pull.

The registry is Debian's docker-registry with htpasswd auth (bcrypt) on 127.0.0.1 (conftest's
``auth_registry``); podman treats it as insecure (plain HTTP) like the session's open registry.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from docker_helpers import REGISTRY_PASSWORD, REGISTRY_USER, SECRET_NAME, Engine
from docker_helpers import with_section_credentials as _with_section_credentials
from headwater.client import Client
from headwater.plugins import from_dict
from headwater.storage import Docker
from headwater.testing import AgentProcess, ServerProcess
from headwater.testing.flows import sample_flow
from headwater_docker.environment import DockerRun, DockerRunError
from headwater_docker.storage import DockerBuildError


@pytest.fixture(autouse=True)
def _no_docker_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty docker client configuration (no `docker login` of this machine leaks into the tests)."""
    config = tmp_path / "docker-config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    return config


def _tags(registry: str, repository: str, auth: bool = True) -> list[str]:
    request = urllib.request.Request(f"http://{registry}/v2/{repository}/tags/list")
    if auth:
        token = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - the test registry
        return list(json.loads(response.read())["tags"] or [])


def _storage(registry: str, name: str, lines: list[str] | None = None) -> Docker:
    storage = Docker(registry_url=f"{registry}/private", base_image="localbase", image_name=name, project_dir="")
    if lines is not None:
        storage.output = lines.append
    return storage


@pytest.fixture(scope="module")
def pushed(auth_registry: str, engine: Engine) -> Iterator[Docker]:
    """One image pushed to the password-protected registry with [docker] credentials (module-wide)."""
    mp = pytest.MonkeyPatch()
    try:
        _with_section_credentials(mp)
        storage = _storage(auth_registry, "auth-flows")
        storage.stream_build_output = False
        storage.add_flow(sample_flow("auth-flow"))
        storage.build()
    finally:
        mp.undo()  # only for the build: each test sets the credentials it needs
    yield storage


def test_push_with_docker_section_credentials_and_the_registry_check_logs_in(
        pushed: Docker, auth_registry: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert pushed.image_tag in _tags(auth_registry, "private/auth-flows")
    with pytest.raises(urllib.error.HTTPError) as refused:
        _tags(auth_registry, "private/auth-flows", auth=False)
    assert refused.value.code == 401  # the registry really needs the login
    data = json.dumps(pushed.serialize())
    assert REGISTRY_PASSWORD not in data and REGISTRY_PASSWORD not in repr(pushed)  # never serialized
    _with_section_credentials(monkeypatch)
    lines: list[str] = []
    again = _storage(auth_registry, "auth-flows", lines)
    again.add_flow(sample_flow("auth-flow"))
    again.build()  # the HEAD of the manifest logs in too: nothing to build or push
    assert again.image == pushed.image
    assert len(lines) == 1 and "is up to date" in lines[0], lines
    assert all(REGISTRY_PASSWORD not in line for line in lines)


def test_push_with_docker_login_credentials(auth_registry: str, engine: Engine, _no_docker_login: Path) -> None:
    """Prefect 1's way: `docker login` wrote ~/.docker/config.json, which the SDK and headwater's check read."""
    token = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
    (_no_docker_login / "config.json").write_text(json.dumps({"auths": {auth_registry: {"auth": token}}}))
    lines: list[str] = []
    name = f"login-{uuid.uuid4().hex[:6]}"
    storage = _storage(auth_registry, name, lines)
    storage.add_flow(sample_flow("login-flow"))
    storage.build()
    assert storage.image_tag in _tags(auth_registry, f"private/{name}")
    assert any(f"pushing {storage.image} as {REGISTRY_USER!r}" in line for line in lines), lines
    again = _storage(auth_registry, name, lines := [])
    again.add_flow(sample_flow("login-flow"))
    again.build()
    assert "is up to date" in lines[0], lines


def test_a_wrong_password_names_the_registry_the_credentials_and_the_fix(
        auth_registry: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_section_credentials(monkeypatch, password="not-the-password")
    storage = _storage(auth_registry, f"wrong-{uuid.uuid4().hex[:6]}")
    storage.stream_build_output = False
    storage.add_flow(sample_flow("wrong-flow"))
    with pytest.raises(DockerBuildError) as failed:
        storage.build()
    message = str(failed.value)
    assert failed.value.step.startswith("pushing ") and auth_registry in message
    assert f"refused [docker] registry_username {REGISTRY_USER!r} with the password of secret {SECRET_NAME!r}" in message
    assert "not-the-password" not in message


def test_no_credentials_at_all_says_how_to_log_in(auth_registry: str, engine: Engine) -> None:
    storage = _storage(auth_registry, f"anonymous-{uuid.uuid4().hex[:6]}")
    storage.stream_build_output = False
    storage.add_flow(sample_flow("anonymous-flow"))
    with pytest.raises(DockerBuildError, match=rf"(?s){auth_registry} needs credentials.*docker login {auth_registry}"):
        storage.build()


def test_a_missing_password_secret_is_named(auth_registry: str, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _with_section_credentials(monkeypatch)
    monkeypatch.delenv(f"HEADWATER__CONTEXT__SECRETS__{SECRET_NAME}")
    storage = _storage(auth_registry, f"nosecret-{uuid.uuid4().hex[:6]}")
    storage.add_flow(sample_flow("nosecret-flow"))
    with pytest.raises(DockerBuildError, match=rf"secret {SECRET_NAME!r}.*HEADWATER__CONTEXT__SECRETS__{SECRET_NAME}"):
        storage.build()


def _remove_local(engine: Engine, image: str) -> None:
    import docker

    try:
        engine.client().images.remove(image, force=True)
    except docker.errors.ImageNotFound:
        pass


def test_docker_run_pulls_with_credentials_and_refuses_clearly_without(
        pushed: Docker, engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    agent_side = from_dict(json.loads(json.dumps(pushed.serialize())), "storage")  # what an agent restores
    location = agent_side.flows["auth-flow"]
    run = DockerRun(host_config={"network_mode": "none"})
    _remove_local(engine, str(pushed.image))
    handle = run.execute(agent_side, location, stdout=str(tmp_path / "no-login.log"))
    assert run.wait(handle, timeout=120) == "failed"
    output = (tmp_path / "no-login.log").read_text()
    assert f"Could not pull image {pushed.image}" in output and f"docker login {pushed.registry_url.split('/')[0]}" in output
    _with_section_credentials(monkeypatch)
    with pytest.raises(DockerRunError, match="pull"):
        run.ensure_image(engine.client(), str(pushed.image), None)  # still without credentials: refused
    handle = run.execute(agent_side, location, stdout=str(tmp_path / "login.log"))
    assert run.wait(handle, timeout=180) == "success", (tmp_path / "login.log").read_text()
    assert engine.client().images.get(str(pushed.image))  # pulled with the [docker] credentials


def test_an_agent_pulls_the_flow_image_with_credentials(
        pushed: Docker, auth_registry: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real processes: the server, `headwater register` (nothing to build) and an agent whose secret is its own."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "flows.py").write_text(
        "from headwater.run_configs import DockerRun\n"
        "from headwater.storage import Docker\n"
        "from headwater.testing.flows import sample_flow\n"
        f"flow = sample_flow('auth-flow')\n"
        f"flow.storage = Docker(registry_url={pushed.registry_url!r}, base_image='localbase', image_name='auth-flows', "
        "project_dir='')\n"
        "flow.run_config = DockerRun(labels=['docker-auth'], host_config={'network_mode': 'host'})\n"
    )
    server = ServerProcess(f"sqlite:///{tmp_path / 'api.db'}", tmp_path, lease=8.0).start()
    agent = None
    try:
        env = {**os.environ, "HEADWATER__CLOUD__API": server.api, "HEADWATER__DOCKER__REGISTRY_USERNAME": REGISTRY_USER,
               "HEADWATER__DOCKER__REGISTRY_PASSWORD_SECRET": SECRET_NAME,
               f"HEADWATER__CONTEXT__SECRETS__{SECRET_NAME}": REGISTRY_PASSWORD}
        for args in (["project", "create", "auth"], ["register", "--project", "auth", "--path", "flows.py"]):
            done = subprocess.run([sys.executable, "-m", "headwater.cli", *args], cwd=project, env=env,
                                  capture_output=True, text=True, timeout=300, check=False)
            assert done.returncode == 0, done.stdout + done.stderr
        assert "1 registered" in done.stdout + done.stderr, done.stdout + done.stderr
        with Client(api=server.api, api_key="") as api:
            stored = api.graphql('{ flow(name: "auth-flow", project: "auth") { storage } }')["flow"]["storage"]
        image = f"{stored['registry_url']}/auth-flows:{stored['image_tag']}"
        _remove_local(engine, image)  # the agent must pull it, logged in
        _with_section_credentials(monkeypatch)  # the agent inherits these
        agent = AgentProcess(server.api, tmp_path / "agent", ("docker-auth",), "auth-agent", poll_interval=0.2)
        with Client(api=server.api, api_key="") as api:
            run = api.flow(name="auth-flow", project="auth").create_run(parameters={"x": 3})
            state = run.wait(180)
            messages = [r["message"] for r in api.flow_run(id=run.id).logs()]
            assert state.name == "Success", messages + [agent.output()]
        assert engine.client().images.get(image)
        assert REGISTRY_PASSWORD not in agent.output()
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
