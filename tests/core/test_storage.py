"""headwater.storage: Local, Module and FileSystem storage, content-addressed locations, runners,
and flows that still run after the author's checkout is gone (other directory, other process)."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from headwater import Flow, Parameter, task
from headwater.serialization import from_dict
from headwater.storage import FileSystem, FlowLoadError, FlowNotInStorageError, Local, Module
from headwater.storage.base import ENV_PARAMETERS, env_runner_variables
from headwater.utilities.flow_files import FlowFileError, load_flows_from_file

PYTHON = sys.executable


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def times_ten(x: int) -> int:
    return x * 10


def arithmetic_flow(name: str = "arithmetic") -> Flow:
    with Flow(name) as flow:
        x = Parameter("x", default=1)
        times_ten(add(x, 2))
    return flow


def results_by_name(state: Any) -> dict[str, Any]:
    return {t.name: s.result for t, s in state.result.items()}


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def run_python(code: str, cwd: Path, home: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HEADWATER_HOME": str(home), **(extra_env or {})}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [PYTHON, "-c", textwrap.dedent(code), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def home(headwater_home: Path) -> Path:
    """headwater.testing's isolated HEADWATER_HOME (no HEADWATER__ variables from outside)."""
    return headwater_home


@pytest.fixture
def clean_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Forget modules and sys.path entries that a test's flow scripts add."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("hw_"):
            del sys.modules[name]


# --- the interface: add_flow, in, build ------------------------------------------------------


def test_add_flow_is_pure_and_build_writes(tmp_path: Path) -> None:
    root = tmp_path / "store"
    storage = Local(directory=str(root))
    flow = arithmetic_flow()
    location = storage.add_flow(flow)
    assert not root.exists()  # nothing written before build
    assert storage.flows == {"arithmetic": location}
    assert flow in storage and "arithmetic" in storage and location in storage
    assert "other" not in storage and arithmetic_flow("other") not in storage and 42 not in storage

    assert storage.build() is storage
    assert files_under(root) == [location]


def test_a_second_flow_of_the_same_name_is_rejected(tmp_path: Path) -> None:
    storage = Local(directory=str(tmp_path))
    storage.add_flow(arithmetic_flow())
    with pytest.raises(ValueError, match="already has a flow named 'arithmetic'"):
        storage.add_flow(arithmetic_flow())
    storage.add_flow(arithmetic_flow("second"))
    assert sorted(storage.flows) == ["arithmetic", "second"]


def test_build_is_idempotent(tmp_path: Path) -> None:
    storage = Local(directory=str(tmp_path))
    location = storage.add_flow(arithmetic_flow())
    storage.build()
    file = tmp_path / location
    first = file.stat()
    storage.build()
    assert file.stat().st_ino == first.st_ino and file.stat().st_mtime_ns == first.st_mtime_ns

    again = Local(directory=str(tmp_path))  # the same flow from a new storage object: the same one file
    assert again.add_flow(arithmetic_flow()) == location
    again.build()
    assert files_under(tmp_path) == [location]
    assert again.get_flow(location).name == "arithmetic"


# --- content-addressed locations -------------------------------------------------------------

FLOW_SCRIPT = """
from headwater import Flow, Parameter, task
from headwater.storage import Local
from hw_helper_{tag} import scale

@task
def compute(x):
    return scale(x) + 1

with Flow("content", storage=Local()) as flow:
    compute(Parameter("x", default=2))
"""

LOCATION_OF = """
import sys
from headwater.utilities.flow_files import load_flows_from_file
flow = load_flows_from_file(sys.argv[1])["content"]
print(flow.storage.add_flow(flow))
"""


def write_project(directory: Path, tag: str, factor: int = 2, body: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"hw_helper_{tag}.py").write_text(f"def scale(x):\n    return {factor} * x\n")
    script = directory / "flow.py"
    script.write_text(textwrap.dedent(FLOW_SCRIPT.format(tag=tag)) + body)
    return script


def location_in_child(script: Path, home: Path) -> str:
    proc = run_python(LOCATION_OF, script.parent, home, str(script))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_locations_are_content_addressed_across_processes(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    script = write_project(tmp_path / "a", tag)
    first = location_in_child(script, tmp_path / "home")
    assert re.fullmatch(r"content/[0-9a-f]{16}\.flow", first)
    assert location_in_child(script, tmp_path / "other-home") == first  # same code, other process: same

    elsewhere = write_project(tmp_path / "b" / "deeper", tag)  # same code in another directory: same
    assert location_in_child(elsewhere, tmp_path / "home") == first

    changed_task = write_project(tmp_path / "c", tag, body="\n# a comment outside the task changes nothing\n")
    assert location_in_child(changed_task, tmp_path / "home") == first
    changed_task.write_text(changed_task.read_text().replace("scale(x) + 1", "scale(x) + 2"))
    assert location_in_child(changed_task, tmp_path / "home") != first

    changed_helper = write_project(tmp_path / "d", tag, factor=3)  # the helper module's code counts too
    assert location_in_child(changed_helper, tmp_path / "home") != first


def test_locations_change_with_the_flow_and_carry_no_timestamp(tmp_path: Path) -> None:
    one = Local(directory=str(tmp_path)).add_flow(arithmetic_flow())
    assert Local(directory=str(tmp_path)).add_flow(arithmetic_flow()) == one
    with Flow("arithmetic") as other:
        times_ten(add(Parameter("x", default=1), 3))  # a different constant
    assert Local(directory=str(tmp_path)).add_flow(other) != one
    assert re.fullmatch(r"arithmetic/[0-9a-f]{16}\.flow", one)


# --- loading and running --------------------------------------------------------------------


def test_get_flow_get_runner_and_get_env_runner(tmp_path: Path) -> None:
    storage = Local(directory=str(tmp_path))
    location = storage.add_flow(arithmetic_flow())
    storage.build()
    restored = from_dict(json.loads(json.dumps(storage.serialize())), "storage")  # as an agent gets it

    flow = restored.get_flow(location)
    assert flow.name == "arithmetic"
    assert sorted(t.name for t in flow.tasks) == ["add", "times_ten", "x"]

    state = restored.get_runner(location)(parameters={"x": 4})
    assert state.is_successful()
    assert results_by_name(state)["times_ten"] == 60

    env = env_runner_variables(restored, location, {"x": 5}, {"flow_run_id": "run-1"})
    assert json.loads(env[ENV_PARAMETERS]) == {"x": 5}
    state = restored.get_env_runner(location)(env)
    assert results_by_name(state)["times_ten"] == 70

    with pytest.raises(FlowNotInStorageError, match="no flow at location 'nope/0.flow'.*arithmetic ->"):
        restored.get_flow("nope/0.flow")


def test_a_location_that_was_never_built_says_so(tmp_path: Path) -> None:
    storage = Local(directory=str(tmp_path / "empty"))
    location = storage.add_flow(arithmetic_flow())
    with pytest.raises(FlowNotInStorageError, match="does not exist on this machine"):
        storage.get_flow(location)


def test_pickle_envelope_version_mismatch_gives_a_clear_message(tmp_path: Path) -> None:
    storage = Local(directory=str(tmp_path))
    location = storage.add_flow(arithmetic_flow())
    storage.build()
    file = tmp_path / location
    envelope = pickle.loads(file.read_bytes())
    assert envelope["versions"]["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    envelope["versions"]["python"] = "2.7"
    file.write_bytes(pickle.dumps(envelope))
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    with pytest.raises(FlowLoadError, match=rf"pickled with Python 2\.7 but this is Python {re.escape(here)}.*stored_as_script=True"):
        storage.get_flow(location)

    file.write_bytes(b"not a pickle")
    with pytest.raises(FlowLoadError, match="not a headwater flow file or is corrupt"):
        storage.get_flow(location)


SCRIPT_FLOW = """
from headwater import Flow, Parameter, task
from headwater.storage import Local

@task
def greet(name):
    return f"hello {name}"

with Flow("scripted", storage=Local(directory=DIRECTORY, stored_as_script=True)) as flow:
    greet(Parameter("name", default="world"))
"""


def test_local_stored_as_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_imports: None) -> None:
    store = tmp_path / "store"
    author = tmp_path / "author"
    author.mkdir()
    script = author / "scripted_flow.py"
    script.write_text(textwrap.dedent(SCRIPT_FLOW).replace("DIRECTORY", repr(str(store))))
    monkeypatch.chdir(author)
    flow = load_flows_from_file(script)["scripted"]
    location = flow.storage.add_flow(flow)
    assert re.fullmatch(r"scripted/[0-9a-f]{16}\.py", location)
    assert not store.exists()
    flow.storage.build()
    assert (store / location).read_text() == script.read_text()
    data = flow.storage.serialize()
    assert str(author) not in json.dumps(data)

    shutil.rmtree(author)  # the author's copy is gone; the stored script is enough
    monkeypatch.chdir(tmp_path)
    restored = from_dict(data, "storage")
    state = restored.get_runner(location)(parameters={"name": "storage"})
    assert results_by_name(state)["greet"] == "hello storage"

    (store / location).write_text("raise RuntimeError('broken script')\n")
    with pytest.raises(FlowFileError, match="broken script"):
        restored.get_flow(location)


def test_local_default_directory_is_resolved_where_the_flow_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "h1"))
    storage = Local()
    location = storage.add_flow(arithmetic_flow())
    storage.build()
    assert files_under(tmp_path / "h1" / "flows") == [location]
    assert storage.serialize()["directory"] is None

    shutil.move(tmp_path / "h1" / "flows", tmp_path / "h2" / "flows")
    restored = from_dict(storage.serialize(), "storage")
    with pytest.raises(FlowNotInStorageError, match=r"\$HEADWATER_HOME/flows"):
        restored.get_flow(location)
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "h2"))
    assert results_by_name(restored.get_runner(location)())["times_ten"] == 30


# --- the key scenario: the author's directory is gone, another home, another process ----------

KEY_FLOW = """
from pathlib import Path

from headwater import Flow, Parameter, task
from headwater.storage import Local
from hw_key_helper import double

@task
def compute(x, out):
    value = double(x) + 1
    Path(out).write_text(str(value))
    return value

with Flow("key-scenario", storage=Local()) as flow:
    compute(Parameter("x", default=3), Parameter("out"))
"""

AUTHOR = """
import json, sys
from headwater.utilities.flow_files import load_flows_from_file

flow = load_flows_from_file("flow.py")["key-scenario"]
location = flow.storage.add_flow(flow)
flow.storage.build()
print(json.dumps({"storage": flow.storage.serialize(), "location": location}))
"""


def test_flow_runs_after_its_directory_is_deleted_from_another_home_and_directory(tmp_path: Path) -> None:
    author_dir = tmp_path / "A"
    author_dir.mkdir()
    (author_dir / "flow.py").write_text(textwrap.dedent(KEY_FLOW))
    (author_dir / "hw_key_helper.py").write_text("def double(x):\n    return 2 * x\n")
    h1, h2 = tmp_path / "H1", tmp_path / "H2"

    proc = run_python(AUTHOR, author_dir, h1)
    assert proc.returncode == 0, proc.stderr
    stored = json.loads(proc.stdout)
    text = json.dumps(stored)
    assert str(tmp_path) not in text and str(author_dir) not in text and "flow.py" not in text
    assert files_under(h1 / "flows") == [stored["location"]]

    shutil.rmtree(author_dir)
    h2.mkdir()
    shutil.move(h1 / "flows", h2 / "flows")
    shutil.rmtree(h1)
    elsewhere = tmp_path / "agent-cwd"
    elsewhere.mkdir()
    out = tmp_path / "out.txt"

    storage = from_dict(stored["storage"], "storage")
    env = env_runner_variables(storage, stored["location"], {"x": 5, "out": str(out)})
    runner = subprocess.run(
        [PYTHON, "-m", "headwater.environments.run_from_env"],
        cwd=elsewhere, env={**os.environ, "HEADWATER_HOME": str(h2), **env},
        capture_output=True, text=True, timeout=120,
    )
    assert runner.returncode == 0, runner.stderr
    assert out.read_text() == "11"
    assert "Success" in runner.stderr


# --- Module ------------------------------------------------------------------------------------

MODULE_SOURCE = """
from headwater import Flow, Parameter, task

@task
def shout(word):
    return word.upper()

with Flow("moduled") as flow:
    shout(Parameter("word", default="hi"))

with Flow("other") as other_flow:
    shout(Parameter("word", default="other"))
"""


def test_module_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_imports: None) -> None:
    name = f"hw_mod_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MODULE_SOURCE))
    monkeypatch.syspath_prepend(str(tmp_path))

    storage = Module(name)
    with Flow("moduled") as local_copy:  # any flow object of that name: only the name is used
        pass
    location = storage.add_flow(local_copy)
    assert location == f"{name}#moduled"
    assert storage.build() is storage
    assert files_under(tmp_path) == [f"{name}.py"]  # nothing written

    restored = from_dict(json.loads(json.dumps(storage.serialize())), "storage")
    state = restored.get_runner(location)(parameters={"word": "module"})
    assert results_by_name(state)["shout"] == "MODULE"

    by_attr = Module(f"{name}:other_flow")
    with Flow("other") as placeholder:
        pass
    other_location = by_attr.add_flow(placeholder)
    assert by_attr.get_flow(other_location).name == "other"

    with pytest.raises(ValueError, match="needs an importable module path"):
        Module("")
    missing = Module("hw_no_such_module_anywhere")
    missing_location = missing.add_flow(placeholder)
    with pytest.raises(FlowFileError, match="hw_no_such_module_anywhere"):
        missing.get_flow(missing_location)


# --- FileSystem -------------------------------------------------------------------------------


@pytest.fixture
def memory_url() -> Iterator[str]:
    prefix = f"test-storage-{uuid.uuid4().hex}"
    yield f"memory://{prefix}"
    fs = fsspec.filesystem("memory")
    if fs.exists(prefix):
        fs.rm(prefix, recursive=True)


def test_filesystem_file_url_pickled(tmp_path: Path) -> None:
    url = (tmp_path / "fs-store").as_uri()
    storage = FileSystem(url)
    location = storage.add_flow(arithmetic_flow())
    assert not (tmp_path / "fs-store").exists()
    storage.build()
    assert files_under(tmp_path / "fs-store") == [location]
    restored = from_dict(json.loads(json.dumps(storage.serialize())), "storage")
    assert results_by_name(restored.get_runner(location)(parameters={"x": 0}))["times_ten"] == 20


def test_filesystem_memory_url_pickled(memory_url: str) -> None:
    storage = FileSystem(memory_url)
    location = storage.add_flow(arithmetic_flow())
    fs = fsspec.filesystem("memory")
    root = memory_url.removeprefix("memory://")
    assert not fs.exists(f"{root}/{location}")
    storage.build()
    assert fs.exists(f"{root}/{location}")
    restored = from_dict(storage.serialize(), "storage")
    assert results_by_name(restored.get_runner(location)())["times_ten"] == 30
    with pytest.raises(ValueError, match="needs a url"):
        FileSystem("")


PROJECT_FLOW = """
from pathlib import Path

from headwater import Flow, Parameter, task
from headwater.storage import FileSystem
from {helper} import label

@task
def describe(n, out):
    text = label(n)
    Path(out).write_text(text)
    return text

with Flow("project", storage=FileSystem({url!r}, stored_as_script=True, path="flows/project_flow.py", project_dir=".")) as flow:
    describe(Parameter("n", default=1), Parameter("out"))
"""

RUN_STORED = """
import json, sys
from headwater.serialization import from_dict
stored = json.loads(sys.argv[1])
storage = from_dict(stored["storage"], "storage")
state = storage.get_runner(stored["location"])(parameters=json.loads(sys.argv[2]))
print(state.is_successful())
"""


def make_project(root: Path, url: str, helper: str, suffix: str = "!") -> Path:
    (root / "flows").mkdir(parents=True)
    (root / "flows" / "project_flow.py").write_text(textwrap.dedent(PROJECT_FLOW.format(url=url, helper=helper)))
    (root / "flows" / f"{helper}.py").write_text(f"def label(n):\n    return f'item-{{n}}{suffix}'\n")
    (root / "README.md").write_text("a project\n")
    return root / "flows" / "project_flow.py"


def test_filesystem_script_with_project_dir_imports_sibling_module_at_run_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_imports: None
) -> None:
    url = (tmp_path / "remote").as_uri()
    helper = f"hw_label_{uuid.uuid4().hex[:8]}"
    project = tmp_path / "project"
    script = make_project(project, url, helper)
    monkeypatch.chdir(project)
    flow = load_flows_from_file(script)["project"]
    storage = flow.storage
    location = storage.add_flow(flow)
    assert re.fullmatch(r"project/[0-9a-f]{16}/flows/project_flow\.py", location)
    assert not (tmp_path / "remote").exists()
    storage.build()
    uploaded = files_under(tmp_path / "remote")
    assert f"project/{location.split('/')[1]}/flows/{helper}.py" in uploaded
    assert f"project/{location.split('/')[1]}/.complete" in uploaded
    stored = {"storage": storage.serialize(), "location": location}
    assert str(project) not in json.dumps(stored)

    monkeypatch.chdir(tmp_path)
    shutil.rmtree(project)  # the project is only in the storage now
    sys.modules.pop(helper, None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out.txt"
    proc = run_python(RUN_STORED, elsewhere, tmp_path / "home", json.dumps(stored), json.dumps({"n": 7, "out": str(out)}))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True", proc.stderr
    assert out.read_text() == "item-7!"


def test_filesystem_project_location_changes_with_any_project_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, memory_url: str, clean_imports: None
) -> None:
    helper = f"hw_label_{uuid.uuid4().hex[:8]}"
    locations = []
    for name, suffix in (("p1", "!"), ("p2", "!"), ("p3", "?")):
        script = make_project(tmp_path / name, memory_url, helper, suffix)
        monkeypatch.chdir(tmp_path / name)
        flow = load_flows_from_file(script)["project"]
        locations.append(flow.storage.add_flow(flow))
        sys.modules.pop(helper, None)
    assert locations[0] == locations[1]  # same files, other directory
    assert locations[0] != locations[2]  # the helper changed

    # and in memory:// the uploaded project runs in this process too
    monkeypatch.chdir(tmp_path / "p3")
    flow = load_flows_from_file(tmp_path / "p3" / "flows" / "project_flow.py")["project"]
    flow.storage.add_flow(flow)
    flow.storage.build()
    sys.modules.pop(helper, None)
    shutil.rmtree(tmp_path / "p3")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "mem-out.txt"
    restored = from_dict(flow.storage.serialize(), "storage")
    state = restored.get_runner(locations[2])(parameters={"n": 2, "out": str(out)})
    assert state.is_successful(), state.message
    assert out.read_text() == "item-2?"
