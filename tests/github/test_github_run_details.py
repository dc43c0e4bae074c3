"""The commit on the flow run's record: a GitHub-stored flow run by server and agent records repo, ref and the
commit SHA it ran (``flow_run { run_details }``), equal to ``git rev-parse`` of the ref, and a new commit on the
ref shows up on the next run's record; Git storage records the same from ``get_flow``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from github_helpers import AgentProcess, FakeGitHub, Repo, ServerProcess, git
from headwater.client import Client

FLOW = '''
from headwater import Flow, task
from headwater.run_configs import UniversalRun
from headwater_github import GitHub


@task
def hello():
    return "hello"


with Flow("recorded", storage=GitHub(repo="org/records", path="flows/recorded.py", ref="main", base_url="{base_url}"),
          run_config=UniversalRun(labels=["records"])) as flow:
    hello()
'''


@pytest.mark.slow
def test_the_commit_a_run_used_is_on_its_flow_run_record(tmp_path: Path, fake_github: FakeGitHub) -> None:
    repo = Repo(tmp_path, "records")
    fake_github.repos["org/records"] = repo.origin
    repo.commit({"flows/recorded.py": FLOW.replace("{base_url}", fake_github.url)}, "start")
    base_env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HEADWATER")}
    server = ServerProcess(tmp_path, {**base_env, "HEADWATER_HOME": str(tmp_path / "server-home")})
    agent = None
    try:
        env = {**base_env, "HEADWATER__CLOUD__API": server.api, "HEADWATER_HOME": str(tmp_path / "author-home")}
        checkout = repo.clone(tmp_path / "checkout")
        for args in (("project", "create", "test"), ("register", "--project", "test", "--path", "flows/recorded.py")):
            done = subprocess.run([sys.executable, "-m", "headwater.cli", *args], cwd=checkout, env=env, capture_output=True,
                                  text=True, timeout=180, check=False)
            assert done.returncode == 0, done.stdout + done.stderr
        agent = AgentProcess(tmp_path / "elsewhere", {**env, "HEADWATER_HOME": str(tmp_path / "agent-home")}, ("records",))
        with Client(api=server.api, api_key="") as api:
            run = api.flow(name="recorded", project="test").create_run()
            state = run.wait(120)
            assert state.name == "Success", (state, run.logs(), agent.output())
            details = run.get("run_details")
            assert details["commit"] == git("rev-parse", "main", cwd=repo.origin)
            assert details == {"storage": "GitHub", "repo": f"org/records at {fake_github.url}", "ref": "main",
                               "commit": details["commit"], "path": "flows/recorded.py"}

            newer = repo.commit({"README.md": "a new commit on main\n"}, "move main")
            run2 = api.flow(name="recorded", project="test").create_run()
            assert run2.wait(120).name == "Success", (run2.logs(), agent.output())
            assert run2.get("run_details")["commit"] == newer == git("rev-parse", "main", cwd=repo.origin)
            assert run.get("run_details")["commit"] != newer  # the first run's record keeps the commit it ran
    finally:
        if agent is not None:
            agent.stop()
        server.stop()


def test_git_storage_run_details_name_the_resolved_commit(tmp_path: Path, repo: Repo) -> None:
    from headwater_github import Git

    sha = repo.commit({"flows/etl.py": "from headwater import Flow\n\nwith Flow('etl') as flow:\n    pass\n"}, "etl")
    storage = Git(repo=f"file://{repo.origin}", flow_path="flows/etl.py", branch_name="main")
    assert storage.run_details() == {}  # nothing loaded yet
    storage.add_flow(_named("etl"))
    storage.get_flow(storage.flows["etl"])
    details = storage.run_details()
    assert details["commit"] == sha == git("rev-parse", "main", cwd=repo.origin)
    assert details["ref"] == "main" and details["path"] == "flows/etl.py" and details["storage"] == "Git"


def _named(name: str) -> object:
    from headwater import Flow

    return Flow(name)
