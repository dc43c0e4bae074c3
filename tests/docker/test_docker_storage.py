"""Docker storage on a real engine (podman's Docker API) and a real registry."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from docker_helpers import Built, Engine
from headwater.plugins import StorageConformance, from_dict, load_flows_from_file
from headwater.storage import Docker
from headwater_docker.storage import CONTENT_LABEL, DockerBuildError


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


class TestDockerStorageConformance(StorageConformance):
    @pytest.fixture
    def storage(self, engine: Engine) -> Docker:
        storage = Docker(base_image="localbase", image_name="conformance", project_dir="", stream_build_output=False)
        return storage


def _flow_file(directory: Path, body: str, name: str = "flows.py") -> Any:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(body)
    return load_flows_from_file(str(directory / name))


FLOW = '''
from headwater import Flow, task

@task
def one():
    return 1

with Flow("{name}") as flow:
    one()
'''


def test_session_image_was_built_checked_and_pushed(built: Built, engine: Engine) -> None:
    storage = built.storage
    assert storage.image == f"{engine.registry}/tests/hello:{storage.image_tag}"
    assert storage.image_tag.startswith("hw-")
    text = "\n".join(built.lines)
    assert "checking" in text and "pushing" in text, text
    assert any(line.startswith("[") and "COPY site" in line for line in built.lines), "no progress display of the steps"
    import urllib.request

    with urllib.request.urlopen(f"http://{engine.registry}/v2/tests/hello/tags/list") as response:  # noqa: S310
        assert storage.image_tag in response.read().decode()
    client = engine.client()
    image = client.images.get(storage.image)
    assert image.labels[CONTENT_LABEL] == storage.image_tag.removeprefix("hw-")
    # no intermediate containers were left behind by the build
    assert not [c for c in client.containers.list(all=True) if c.attrs.get("Image") == image.id]


def test_unchanged_flows_are_neither_rebuilt_nor_pushed(built: Built, engine: Engine) -> None:
    flow = load_flows_from_file(str(built.project / "flows.py"))["docker-hello"]
    again = Docker(registry_url=f"{engine.registry}/tests", base_image="localbase", image_name="hello")
    lines: list[str] = []
    again.output = lines.append
    again.add_flow(flow)
    again.build()
    assert again.image == built.storage.image
    assert lines == [f"Docker storage: image {again.image} is up to date (content "
                     f"{again.image_tag.removeprefix('hw-')}); nothing to build or push."]


def test_a_changed_helper_module_changes_the_tag(built: Built, tmp_path: Path, engine: Engine) -> None:
    import shutil

    project = tmp_path / "project"
    shutil.copytree(built.project, project)
    (project / "imagehelpers.py").write_text("def greeting(name):\n    return f'hi {name}'\n")
    session_module = sys.modules.pop("imagehelpers", None)  # the session project's module has the same name
    try:
        flow = load_flows_from_file(str(project / "flows.py"))["docker-hello"]
        storage = Docker(base_image="localbase", image_name="hello-changed", stream_build_output=False)
        storage.add_flow(flow)
        assert storage.flows["docker-hello"] != built.storage.flows["docker-hello"]
        storage.build()
        assert storage.image_tag != built.storage.image_tag
        loaded = from_dict(storage.serialize(), "storage").get_flow(storage.flows["docker-hello"])
        state = loaded.run(parameters={"name": "x"})
        assert state.is_successful()
        assert [s.result for t, s in state.result.items() if t.name == "greet"] == ["hi x"]
    finally:  # later tests use the session project's module again
        if session_module is not None:
            sys.modules["imagehelpers"] = session_module


def test_flow_is_read_out_of_a_pulled_image_after_the_local_one_is_removed(built: Built, engine: Engine) -> None:
    client = engine.client()
    data = built.storage.serialize()
    client.images.remove(built.storage.image, force=True)
    agent_side = from_dict(data, "storage")
    flow = agent_side.get_flow(built.storage.flows["docker-hello"])
    assert flow.name == "docker-hello"
    client.images.get(built.storage.image)  # pulled from the registry again


def test_check_in_the_image_names_the_failing_import(tmp_path: Path, engine: Engine) -> None:
    """"onlyhere" is installed here, but its RECORD lists none of its files, so nothing of it reaches the image.

    Built in a fresh process, as `headwater register` would, so "onlyhere" counts as installed from the start.
    """
    lib = tmp_path / "lib"
    (lib / "onlyhere").mkdir(parents=True)
    (lib / "onlyhere" / "__init__.py").write_text("")
    (lib / "onlyhere" / "tasks.py").write_text(
        "from headwater import Task\n\nclass One(Task):\n    def run(self):\n        return 1\n")
    info_dir = lib / "onlyhere-1.0.dist-info"
    info_dir.mkdir()
    (info_dir / "METADATA").write_text("Metadata-Version: 2.1\nName: onlyhere\nVersion: 1.0\n")
    (info_dir / "top_level.txt").write_text("onlyhere\n")
    (info_dir / "RECORD").write_text("onlyhere-1.0.dist-info/METADATA,,\n")
    project = tmp_path / "p"
    project.mkdir()
    (project / "build.py").write_text(f'''
from headwater import Flow
from headwater.storage import Docker
from onlyhere.tasks import One

with Flow("needs-onlyhere") as flow:
    One()()

storage = Docker(base_image="localbase", image_name="{_name()}", stream_build_output=False)
storage.add_flow(flow)
storage.build()
''')
    import os

    done = subprocess.run([sys.executable, "build.py"], cwd=project, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(lib)})
    assert done.returncode != 0
    message = done.stderr
    assert "DockerBuildError" in message and "the check inside the new image" in message, message
    assert "import onlyhere.tasks failed in the image: ModuleNotFoundError: No module named 'onlyhere'" in message
    assert "does not load in the image" in message
    assert "registration was aborted" in message


def test_python_dependencies_from_a_local_wheelhouse(tmp_path: Path, engine: Engine) -> None:
    source = tmp_path / "tinydep-src"
    (source / "tinydep").mkdir(parents=True)
    (source / "tinydep" / "__init__.py").write_text("def answer():\n    return 42\n")
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "tinydep"\nversion = "1.0"\n')
    wheelhouse = tmp_path / "wheelhouse"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "-w", str(wheelhouse), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    flows = _flow_file(tmp_path / "p", '''
from headwater import Flow, task

@task
def use():
    import tinydep
    return tinydep.answer()

with Flow("with-deps") as flow:
    use()
''')
    storage = Docker(base_image="localbase", image_name=_name(), python_dependencies=["tinydep==1.0"],
                     wheelhouse=str(wheelhouse), env_vars={"TZ": "UTC"},
                     files={str(source / "tinydep" / "__init__.py"): "/app/sql/copied.py"}, stream_build_output=False)
    storage.add_flow(flows["with-deps"])
    storage.build()
    client = engine.client()
    out = client.containers.run(storage.image, ["python3", "-c", "import tinydep, os; print(tinydep.answer(), "
                                                "os.environ['TZ'], open('/app/sql/copied.py').read().count('42'))"],
                                network_mode="none", remove=True)
    assert out.decode().split() == ["42", "UTC", "1"]


def test_missing_wheel_in_the_wheelhouse_names_the_step(tmp_path: Path, engine: Engine) -> None:
    (tmp_path / "wheelhouse").mkdir()
    flows = _flow_file(tmp_path / "p", FLOW.replace("{name}", "no-wheel"))
    storage = Docker(base_image="localbase", image_name=_name(), python_dependencies=["not-in-wheelhouse"],
                     wheelhouse=str(tmp_path / "wheelhouse"), stream_build_output=False)
    storage.add_flow(flows["no-wheel"])
    with pytest.raises(DockerBuildError, match="installing python_dependencies failed: pip could not install"):
        storage.build()


def test_missing_base_image_names_the_image_and_the_fix(tmp_path: Path, engine: Engine) -> None:
    flows = _flow_file(tmp_path / "p", FLOW.replace("{name}", "no-base"))
    storage = Docker(base_image="localhost/no-such-base:1", image_name=_name(), stream_build_output=False)
    storage.add_flow(flows["no-base"])
    with pytest.raises(DockerBuildError) as info:
        storage.build()
    assert "localhost/no-such-base:1" in str(info.value)
    assert "the engine has no image" in str(info.value) and "podman-base-image.sh" in str(info.value)


def test_broken_dockerfile_step_is_named(tmp_path: Path, engine: Engine) -> None:
    flows = _flow_file(tmp_path / "p", FLOW.replace("{name}", "broken-step"))
    storage = Docker(base_image="localbase", image_name=_name(), stream_build_output=False,
                     extra_dockerfile_commands=["RUN echo about to fail && exit 3"])
    storage.add_flow(flows["broken-step"])
    with pytest.raises(DockerBuildError) as info:
        storage.build()
    assert "RUN echo about to fail && exit 3" in str(info.value)


def test_bad_registry_url_is_rejected_before_building(tmp_path: Path) -> None:
    flows = _flow_file(tmp_path / "p", FLOW.replace("{name}", "bad-registry"))
    storage = Docker(registry_url="http://127.0.0.1:5000/etl", base_image="localbase")
    storage.add_flow(flows["bad-registry"])
    with pytest.raises(DockerBuildError, match="without a scheme"):
        storage.build()
    with pytest.raises(DockerBuildError, match="does not start with a registry host"):
        _ = Docker(registry_url="etl", image_name="x").repository


def test_failed_push_names_the_registry_and_the_fix(tmp_path: Path, engine: Engine) -> None:
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flows = _flow_file(tmp_path / "p", FLOW.replace("{name}", "push-fails"))
    storage = Docker(registry_url=f"127.0.0.1:{port}/etl", base_image="localbase", stream_build_output=False)
    storage.add_flow(flows["push-fails"])
    with pytest.raises(DockerBuildError) as info:
        storage.build()
    message = str(info.value)
    assert f"pushing 127.0.0.1:{port}/etl/push-fails" in message
    assert "Fix:" in message


def test_file_paths_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="absolute path on this machine"):
        Docker(files={"relative/sql": "/app/sql"})
