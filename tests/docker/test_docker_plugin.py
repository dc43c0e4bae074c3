"""The distribution: entry point, lazy names, config section, public-API-only imports, and a fresh-venv install."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from docker_helpers import ROOT, Engine
from headwater.testing.distributions import run_headwater
from install_helpers import fresh_venv, pip_install

PLUGIN = ROOT / "plugins" / "docker"


def test_headwater_plugins_lists_docker() -> None:
    done = run_headwater(["plugins", "--json"])
    assert done.returncode == 0, done.stderr
    row = next(r for r in json.loads(done.stdout) if r["distribution"] == "headwater-docker")
    assert (row["name"], row["version"], row["status"]) == ("docker", "0.1.0", "loaded")
    assert row["tags"]["storage"] == ["Docker"] and row["tags"]["environment"] == ["DockerRun"]


def test_user_facing_names_resolve_and_plugin_module_is_import_light() -> None:
    code = (
        "import sys; import headwater_docker.plugin; assert 'docker' not in sys.modules, 'plugin imports docker';"
        "from headwater.storage import Docker; from headwater.run_configs import DockerRun;"
        "from headwater.tasks.docker import PullImage, WaitOnContainer;"
        "print(Docker.__module__, DockerRun.__module__, PullImage.__module__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["headwater_docker.storage", "headwater_docker.environment", "headwater_docker.tasks"]


def test_docker_config_section(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater_docker.config import docker_settings

    monkeypatch.setenv("HEADWATER__DOCKER__BASE_URL", "unix:///tmp/elsewhere.sock")
    monkeypatch.setenv("HEADWATER__DOCKER__API_URL_FOR_CONTAINERS", "http://api:4200/graphql")
    monkeypatch.setenv("HEADWATER__DOCKER__KEEP_CONTAINERS", "true")
    settings = docker_settings()
    assert settings.base_url == "unix:///tmp/elsewhere.sock"
    assert settings.api_url_for_containers == "http://api:4200/graphql"
    assert settings.keep_containers is True
    from headwater_docker.client import DockerEngineError, docker_client

    with pytest.raises(DockerEngineError, match=r"Cannot reach the Docker engine at unix:///tmp/elsewhere.sock"):
        docker_client()


def test_plugin_imports_only_the_public_core_api() -> None:
    allowed = {"headwater", "headwater.plugins", "headwater.states", "headwater.signals", "headwater.context",
               "headwater.storage", "headwater.run_configs", "headwater.client", "headwater.triggers"}
    bad = []
    for path in (PLUGIN / "src").rglob("*.py"):
        for match in re.finditer(r"^\s*(?:from|import)\s+(headwater(?:\.[\w.]+)?)", path.read_text(), re.M):
            if match.group(1) not in allowed:
                bad.append(f"{path.relative_to(ROOT)}: {match.group(1)}")
    assert bad == []


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_builds_and_runs_an_image(tmp_path: Path, engine: Engine) -> None:
    """Wheels of the core and the plugin (third-party dependencies from the package index) in a new venv;
    there, a Docker storage build copies the *installed* (non-editable) distributions into the image."""
    import shutil

    wheels = tmp_path / "wheels"
    for source in (ROOT / "core", PLUGIN):  # copies: a build leaves build/ and *.egg-info in its source tree
        copy = tmp_path / "src" / source.name
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                               "--no-index", "-w", str(wheels), str(copy)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    venv = tmp_path / "venv"
    python = fresh_venv(venv)
    pins = [line.split("#")[0].strip() for line in (ROOT / "requirements" / "docker.txt").read_text().splitlines()]
    done = pip_install(python, "--find-links", str(wheels), "headwater-docker", *[p for p in pins if p])
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([str(venv / "bin" / "headwater"), "plugins", "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert any(r["distribution"] == "headwater-docker" and r["status"] == "loaded" for r in json.loads(done.stdout))
    project = tmp_path / "project"
    project.mkdir()
    (project / "flow.py").write_text('''
import sys
from headwater import Flow, task
from headwater.storage import Docker
from headwater.run_configs import DockerRun

@task
def answer():
    return 42

with Flow("fresh-venv") as flow:
    answer()

storage = Docker(base_image="localbase", image_name="fresh-venv-test", stream_build_output=False)
location = storage.add_flow(flow)
storage.build()
run = DockerRun(host_config={"network_mode": "none"})
handle = run.execute(storage, location)
print("STATUS", run.wait(handle, timeout=120))
''')
    done = subprocess.run([str(python), "flow.py"], cwd=project, capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DOCKER_HOST": engine.base_url,
                               "HEADWATER_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "STATUS success" in done.stdout, done.stdout + done.stderr
