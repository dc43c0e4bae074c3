"""The distribution: ``headwater plugins`` lists it with its tags, and its wheel installs into a fresh venv
(with the core's wheel, third-party dependencies from the package index) and loads a flow from GitHub storage."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from github_helpers import FakeGitHub, Repo
from headwater.testing.distributions import install_distributions, run_headwater
from install_helpers import fresh_venv, pip_install

ROOT = Path(__file__).resolve().parents[2]


def test_headwater_plugins_lists_github_with_its_storage_tags() -> None:
    done = run_headwater(["plugins", "--json"])
    assert done.returncode == 0, done.stderr
    row = next(r for r in json.loads(done.stdout) if r["distribution"] == "headwater-github")
    assert (row["name"], row["status"], row["error"]) == ("github", "loaded", None)
    assert row["tags"]["storage"] == ["Git", "GitHub"]
    assert "before_flow_run" in row["hooks"]


def test_the_plugin_module_is_import_light() -> None:
    code = "import sys, headwater_github.plugin; print(sorted(m for m in ('httpx', 'headwater_github.github') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_loads_a_flow(tmp_path: Path, fake_github: FakeGitHub, repo: Repo) -> None:
    sha = repo.commit({
        "flows/hello.py": "from headwater import Flow, task\nfrom helper import NAME\n\n@task\ndef hi():\n    return 'hi ' + NAME\n\n"
                          "with Flow('hello') as flow:\n    hi()\n",
        "flows/helper.py": "NAME = 'wheel'\n",
    })
    install_distributions({"core": ROOT / "core", "github": ROOT / "plugins" / "github"}, tmp_path / "build")
    wheels = tmp_path / "build" / "_wheels"
    env_dir = tmp_path / "venv"
    python = fresh_venv(env_dir)
    done = pip_install(python, "--find-links", str(wheels), "headwater-github")
    assert done.returncode == 0, done.stdout + done.stderr
    code = f"""
import json
from headwater.plugins import from_dict
storage = from_dict({{"type": "GitHub", "repo": "org/{repo.name}", "path": "flows/hello.py", "ref": "main",
                      "base_url": "{fake_github.url}", "flows": {{"hello": "hello/0"}}}}, "storage")
state = storage.get_flow("hello/0").run(run_on_schedule=False)
print(json.dumps([next(iter(state.result.values())).result, storage.last_commit]))
"""
    run = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False, timeout=120,
                         env={"HEADWATER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.strip().splitlines()[-1]) == ["hi wheel", sha]
    listed = subprocess.run([str(env_dir / "bin" / "headwater"), "plugins", "--json"], capture_output=True, text=True,
                            check=False, env={"HEADWATER_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert listed.returncode == 0, listed.stderr
    assert any(r["distribution"] == "headwater-github" and r["status"] == "loaded" for r in json.loads(listed.stdout))


def test_the_lazy_user_facing_names_resolve_to_the_plugin_classes() -> None:
    import headwater.storage
    from headwater_github import Git, GitHub

    assert headwater.storage.GitHub is GitHub and headwater.storage.Git is Git
