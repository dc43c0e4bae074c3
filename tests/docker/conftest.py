"""A real container engine for the docker plugin's tests, once per session.

- the engine: podman's Docker-compatible API (``podman system service --time=0`` on a unix
  socket of this session), ``DOCKER_HOST`` pointing at it;
- a registry: Debian's ``docker-registry`` on 127.0.0.1 (a port podman trusts as insecure,
  see scripts/system-deps.d/containers.sh);
- the offline base image ``localbase`` (scripts/podman-base-image.sh, built once per machine).

Both services are stopped at the end of the session, even when tests fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docker_helpers import REGISTRY_PASSWORD, REGISTRY_USER, ROOT, Built, Engine, TokenServer  # noqa: E402 - after the path is set

REGISTRY_PORTS = range(5000, 5020)
"""Ports podman treats as insecure (plain HTTP) registries on 127.0.0.1 (containers.sh)."""

CACHE_IMAGE = "localhost/headwater-docker-test-cache:latest"
"""Keeps the layers of the last test image between sessions, so the next session's builds hit the layer cache."""


def _run(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603


def _free_registry_port() -> int:
    for port in REGISTRY_PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free registry port in {REGISTRY_PORTS} on 127.0.0.1")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """podman's Docker API and a local registry for the whole session."""
    for script in ("scripts/system-deps.d/containers.sh", "scripts/podman-base-image.sh"):
        done = _run(["bash", str(ROOT / script)], timeout=900)
        if done.returncode != 0:
            pytest.fail(f"{script} failed (exit {done.returncode}); it needs root and the Debian mirror:\n"
                        f"{done.stdout}\n{done.stderr}")
    work = tmp_path_factory.mktemp("engine")
    sock = work / "podman.sock"
    processes: list[subprocess.Popen[bytes]] = []
    saved = {k: os.environ.get(k) for k in ("DOCKER_HOST", "HEADWATER__DOCKER__WHEEL_CACHE")}
    try:
        # cwd: the service (and every conmon it starts) must not run in the checkout: conmon creates an empty file
        # "oom" in its working directory when a container is OOM-killed (test_docker_logs does that on purpose)
        with open(work / "podman.log", "ab") as log:
            processes.append(subprocess.Popen(  # noqa: S603
                ["podman", "system", "service", "--time=0", f"unix://{sock}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=work))
        registry_dir = work / "registry"
        port = _free_registry_port()
        config = work / "registry.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
            f"    rootdirectory: {registry_dir}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n  secret: headwater-tests\n"
        )
        with open(work / "registry.log", "ab") as log:
            processes.append(subprocess.Popen(  # noqa: S603
                ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=work))
        base_url = f"unix://{sock}"
        deadline = time.monotonic() + 60
        import urllib.request

        import docker

        while True:
            try:
                docker.DockerClient(base_url=base_url).ping()
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):  # noqa: S310
                    break
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        "podman service or registry did not come up:\n"
                        + (work / "podman.log").read_text(errors="replace")
                        + (work / "registry.log").read_text(errors="replace")
                    ) from None
                for p in processes:
                    assert p.poll() is None, f"{p.args!r} exited with {p.returncode}"
                time.sleep(0.1)
        before = {i.id for i in docker.DockerClient(base_url=base_url).images.list()}
        os.environ["DOCKER_HOST"] = base_url
        cache = Path.home() / ".cache" / "headwater-docker-tests" / "wheels"
        os.environ["HEADWATER__DOCKER__WHEEL_CACHE"] = str(cache)
        yield Engine(base_url, f"127.0.0.1:{port}", work, service_pid=processes[0].pid)
    finally:
        try:
            _cleanup_images(f"unix://{sock}", port if "port" in locals() else None,
                            before if "before" in locals() else set())
        except Exception:  # noqa: BLE001 - best effort
            pass
        for p in reversed(processes):
            _stop(p)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(work / "registry", ignore_errors=True)


def _serve_registry(work: Path, auth: str) -> tuple[subprocess.Popen[bytes], str]:
    """Debian's docker-registry on a podman-trusted port with the ``auth:`` section ``auth``, once it asks for a login."""
    import urllib.error
    import urllib.request

    port = _free_registry_port()
    config = work / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {work / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: headwater-tests\n"
        f"auth:\n{auth}"
    )
    with open(work / "registry.log", "ab") as log:
        process = subprocess.Popen(  # noqa: S603
            ["docker-registry", "serve", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=work)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2)  # noqa: S310
                raise RuntimeError("the registry answered without credentials: its auth is not configured")
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    break
                raise
            except (urllib.error.URLError, OSError):
                assert process.poll() is None, (work / "registry.log").read_text(errors="replace")
                if time.monotonic() > deadline:
                    raise RuntimeError("the test registry did not come up:\n"
                                       + (work / "registry.log").read_text(errors="replace")) from None
                time.sleep(0.1)
    except BaseException:
        _stop(process)
        raise
    return process, f"127.0.0.1:{port}"


@pytest.fixture(scope="session")
def auth_registry(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second registry on 127.0.0.1 that needs a login: htpasswd auth with a bcrypt entry (``127.0.0.1:PORT``)."""
    import bcrypt

    work = tmp_path_factory.mktemp("auth-registry")
    htpasswd = work / "htpasswd"
    hashed = bcrypt.hashpw(REGISTRY_PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
    htpasswd.write_text(f"{REGISTRY_USER}:{hashed}\n")
    process, registry = _serve_registry(work, f"  htpasswd:\n    realm: headwater-tests\n    path: {htpasswd}\n")
    try:
        yield registry
    finally:
        _stop(process)  # its images carry the content label: the engine fixture's clean-up removes them


@pytest.fixture(scope="session")
def token_registry(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TokenServer]]:
    """A registry that logs in with Bearer tokens from a token service (Docker Hub's and GHCR's way): ``(host, server)``."""
    work = tmp_path_factory.mktemp("token-registry")
    tokens = TokenServer(work, REGISTRY_USER, REGISTRY_PASSWORD)
    try:
        process, registry = _serve_registry(work, (
            f"  token:\n    realm: {tokens.realm}\n    service: {TokenServer.SERVICE}\n"
            f"    issuer: {TokenServer.ISSUER}\n    rootcertbundle: {tokens.certificate}\n"))
        try:
            yield registry, tokens
        finally:
            _stop(process)
    finally:
        tokens.close()


def _cleanup_images(base_url: str, port: int | None, before: set[str]) -> None:
    """Remove this session's containers and flow images (not ``before``'s), keeping the newest one's layers as a cache.

    The ``headwater-runtime:*`` images stay: they are the cache every session's builds start from.
    """
    import docker

    client = docker.DockerClient(base_url=base_url)
    for label in ("io.headwater.test=docker", "io.headwater.managed=true"):
        for container in client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)
    ours = [i for i in client.images.list(filters={"label": "io.headwater.content-hash"}) if i.id not in before]
    ours += [i for i in client.images.list() if port and i.id not in before
             and any(t.startswith(f"127.0.0.1:{port}/") for t in i.tags) and i not in ours]
    if ours:
        newest = max(ours, key=lambda i: str(i.attrs.get("Created", "")))
        newest.tag(CACHE_IMAGE.rsplit(":", 1)[0], "latest")
    for image in ours:
        for tag in image.tags:
            if not tag.startswith(CACHE_IMAGE.rsplit(":", 1)[0]):
                try:
                    client.images.remove(tag, force=True)
                except docker.errors.APIError:
                    pass
    client.close()


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own HEADWATER_HOME and no API settings."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HEADWATER_HOME", str(home))
    for var in ("HEADWATER__CLOUD__API", "HEADWATER__CLOUD__API_KEY", "HEADWATER__SERVER__DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return home


SAMPLE_PROJECT = {
    "imagehelpers.py": "def greeting(name):\n    return f'hello {name}'\n",
    "flows.py": '''
from headwater import Flow, Parameter, task
from headwater.storage import Docker
from headwater.run_configs import DockerRun

import imagehelpers


@task(log_stdout=True)
def greet(name):
    message = imagehelpers.greeting(name)
    print(message)
    return message


with Flow("docker-hello") as flow:
    greet(Parameter("name", default="world"))
''',
}


@pytest.fixture(scope="session")
def built(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One Docker storage built and pushed for the session (a flow that imports a helper module)."""
    from headwater.plugins import load_flows_from_file

    project = tmp_path_factory.mktemp("project")
    for name, text in SAMPLE_PROJECT.items():
        (project / name).write_text(text)
    flow = load_flows_from_file(str(project / "flows.py"))["docker-hello"]
    from headwater.storage import Docker

    storage = Docker(registry_url=f"{engine.registry}/tests", base_image="localbase", image_name="hello")
    lines: list[str] = []
    storage.output = lines.append
    storage.add_flow(flow)
    storage.build()
    return Built(storage=storage, flow=flow, lines=lines, project=project)
