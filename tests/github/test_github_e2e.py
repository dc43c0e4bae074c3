"""End to end with real processes: API server, ``headwater register`` from a checkout that is then
deleted, a staging agent elsewhere running the flow from the (local) GitHub API, and a new commit
on ``main`` picked up by the next run, whose logs show the new SHA."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from github_helpers import AgentProcess, FakeGitHub, GitDaemon, Repo, ServerProcess, git
from headwater.client import Client

TOKEN = "ghp_e2eSecretToken0123456789"

FLOW = '''
from headwater import Flow, context, task
from headwater.run_configs import UniversalRun
from headwater_github import GitHub
from scripts.example import greeting


@task(log_stdout=True)
def post():
    with open("data/message.txt") as f:  # relative to the flow file's directory
        text = f.read().strip()
    message = greeting(text)
    print(f"posting: {message}")
    print(f"context commit: {context.get('git_commit')}")
    return message


with Flow(
    "slack",
    storage=GitHub(repo="org/etl", path="flows/test/slack.py", ref="main", base_url="{base_url}"),
    run_config=UniversalRun(labels=["staging"]),
) as flow:
    post()
'''


def _cli(*args: str, cwd: Path, env: dict[str, str], ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "headwater.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=180, check=False)
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.mark.slow
def test_registered_from_a_deleted_checkout_runs_on_the_agent_and_follows_main(tmp_path: Path, fake_github: FakeGitHub) -> None:
    repo = Repo(tmp_path, "etl")
    fake_github.repos["org/etl"] = repo.origin
    fake_github.token = TOKEN
    repo.commit({
        "flows/test/slack.py": FLOW.replace("{base_url}", fake_github.url),
        "flows/test/scripts/__init__.py": "",
        "flows/test/scripts/example.py": 'def greeting(text):\n    return f"v0 says {text}"\n',
        "flows/test/data/message.txt": "hello team\n",
        "README.md": "etl flows\n",
    }, "start")
    base_env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HEADWATER")}
    base_env["HEADWATER__CONTEXT__SECRETS__GITHUB_ACCESS_TOKEN"] = TOKEN
    server = ServerProcess(tmp_path, {**base_env, "HEADWATER_HOME": str(tmp_path / "server-home")})
    agent = None
    try:
        env = {**base_env, "HEADWATER__CLOUD__API": server.api, "HEADWATER_HOME": str(tmp_path / "author-home")}
        checkout = repo.clone(tmp_path / "checkout")
        _cli("project", "create", "test", cwd=checkout, env=env)
        out = _cli("register", "--project", "test", "--path", "flows/test/slack.py", cwd=checkout, env=env).stdout
        assert "1 registered, 0 skipped, 0 errors." in out, out
        again = _cli("register", "--project", "test", "--path", "flows/test/slack.py", cwd=checkout, env=env).stdout
        assert "0 registered, 1 skipped, 0 errors." in again, again  # unchanged checkout: skipped
        (checkout / "flows/test/scripts/example.py").write_text('def greeting(text):\n    return f"v1 says {text}"\n')
        git("commit", "-q", "-am", "first", cwd=checkout)
        git("push", "-q", "origin", "main", cwd=checkout)
        first = git("rev-parse", "HEAD", cwd=checkout)
        changed = _cli("register", "--project", "test", "--path", "flows/test/slack.py", cwd=checkout, env=env).stdout
        assert "1 registered, 0 skipped, 0 errors." in changed, changed  # a changed helper module: a new version
        (checkout / "flows/test/draft.py").write_text(FLOW.replace("{base_url}", fake_github.url)
                                                      .replace('"slack"', '"draft"').replace("slack.py", "draft.py"))
        draft = _cli("register", "--project", "test", "--path", "flows/test/draft.py", cwd=checkout, env=env, ok=False)
        assert draft.returncode != 0
        assert "flows/test/draft.py is not on ref main of org/etl" in draft.stdout and "push it first" in draft.stdout, draft.stdout
        shutil.rmtree(checkout)

        agent_env = {**base_env, "HEADWATER__CLOUD__API": server.api, "HEADWATER_HOME": str(tmp_path / "agent-home")}
        agent = AgentProcess(tmp_path / "elsewhere", agent_env, ("staging",))
        with Client(api=server.api, api_key="") as api:
            run = api.flow(name="slack", project="test").create_run()
            state = run.wait(120)
            logs = [r["message"] for r in run.logs()]
            assert state.name == "Success", (state, logs, agent.output())
            assert "posting: v1 says hello team" in logs, logs
            assert any(first in m and "org/etl" in m for m in logs), logs  # the commit is logged ...
            assert f"context commit: {first}" in logs, logs  # ... and in the run's context
            assert logs.index(next(m for m in logs if first in m)) < logs.index("posting: v1 says hello team")

            second = repo.commit({"flows/test/scripts/example.py": 'def greeting(text):\n    return f"v2 says {text}"\n'},
                                 "change the helper")
            run2 = api.flow(name="slack", project="test").create_run()
            state2 = run2.wait(120)
            logs2 = [r["message"] for r in run2.logs()]
            assert state2.name == "Success", (state2, logs2, agent.output())
            assert "posting: v2 says hello team" in logs2, logs2
            assert any(second in m for m in logs2) and not any(first in m for m in logs2), logs2
            assert f"context commit: {second}" in logs2, logs2

            third = repo.commit(delete=("flows/test/slack.py",), message="move the flow away")
            run3 = api.flow(name="slack", project="test").create_run()
            state3 = run3.wait(120)
            assert state3.name == "Failed", state3
            assert f"flows/test/slack.py is not in commit {third[:12]} (ref main) of org/etl" in str(state3.message), state3.message
        everything = "\n".join(logs + logs2) + agent.output() + server.log.read_text()
        assert TOKEN not in everything
        assert fake_github.count("/tarball/") == 3  # the agent's first run, the helper change, the deleted flow file  # one download per commit
        assert all(r["headers"].get("Authorization") == f"Bearer {TOKEN}" for r in fake_github.requests
                   if r["path"].startswith("/api/"))
    finally:
        if agent is not None:
            agent.stop()
        server.stop()


GIT_FLOW = '''
from headwater import Flow, context, task
from headwater.run_configs import UniversalRun
from headwater_github import Git
from scripts.example import greeting


@task(log_stdout=True)
def post():
    print(greeting(open("data/message.txt").read().strip()))
    print(f"context commit: {context.get('git_commit')}")


with Flow("git-slack", storage=Git(repo="{url}", flow_path="flows/test/slack.py", branch_name="main"),
          run_config=UniversalRun(labels=["staging"])) as flow:
    post()
'''


@pytest.mark.slow
def test_git_storage_over_git_daemon_runs_on_the_agent(tmp_path: Path, repo: Repo, git_daemon: GitDaemon) -> None:
    url = git_daemon.url(repo.origin.name)
    sha = repo.commit({
        "flows/test/slack.py": GIT_FLOW.replace("{url}", url),
        "flows/test/scripts/__init__.py": "",
        "flows/test/scripts/example.py": 'def greeting(text):\n    return f"git says {text}"\n',
        "flows/test/data/message.txt": "hello\n",
    })
    base_env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HEADWATER")}
    server = ServerProcess(tmp_path, {**base_env, "HEADWATER_HOME": str(tmp_path / "server-home")})
    agent = None
    try:
        env = {**base_env, "HEADWATER__CLOUD__API": server.api, "HEADWATER_HOME": str(tmp_path / "author-home")}
        checkout = repo.clone(tmp_path / "checkout")
        _cli("project", "create", "test", cwd=checkout, env=env)
        out = _cli("register", "--project", "test", "--path", "flows/test/slack.py", cwd=checkout, env=env).stdout
        assert "1 registered, 0 skipped, 0 errors." in out, out
        shutil.rmtree(checkout)
        agent = AgentProcess(tmp_path / "elsewhere", {**env, "HEADWATER_HOME": str(tmp_path / "agent-home")}, ("staging",))
        with Client(api=server.api, api_key="") as api:
            run = api.flow(name="git-slack", project="test").create_run()
            state = run.wait(120)
            logs = [r["message"] for r in run.logs()]
            assert state.name == "Success", (state, logs, agent.output())
            assert "git says hello" in logs and f"context commit: {sha}" in logs, logs
            assert any(sha in m and url in m for m in logs), logs
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
