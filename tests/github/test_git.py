"""Git storage over file://, git daemon (git://) and smart HTTP (http://, with a token) on 127.0.0.1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from github_helpers import GitDaemon, Repo, SmartHTTP
from headwater.plugins import from_dict, load_flows_from_file
from headwater_github import Git
from headwater_github.errors import (
    PathNotFoundError,
    RefNotFoundError,
    RepoAuthError,
    RepoNetworkError,
    RepoNotFoundError,
)

FLOW = '''
from headwater import Flow, task
from helpers.text import decorate


@task
def message():
    with open("message.txt") as f:
        return decorate(f.read().strip())


with Flow("gitflow") as flow:
    message()
'''

FILES = {
    "pipelines/gitflow.py": FLOW,
    "pipelines/message.txt": "hi\n",
    "pipelines/helpers/__init__.py": "",
    "pipelines/helpers/text.py": "def decorate(text):\n    return f'<{text}>'\n",
}


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER__GITHUB__BACKOFF", "0.01")
    monkeypatch.setenv("HEADWATER__GITHUB__RETRIES", "2")


def run(store: Git, location: str) -> object:
    agent = from_dict(store.serialize(), "storage")
    state = agent.get_flow(location).run(run_on_schedule=False)
    assert state.is_successful(), state
    return next(iter(state.result.values())).result


def register(store: Git, checkout: Path) -> str:
    os.chdir(checkout)
    for name in [m for m in sys.modules if m == "helpers" or m.startswith("helpers.")]:
        del sys.modules[name]  # a module of that name another test's project left behind would shadow this checkout's
    location = store.add_flow(load_flows_from_file(checkout / "pipelines/gitflow.py")["gitflow"])
    store.build()
    return location


@pytest.fixture(params=["file", "git-daemon", "smart-http"])
def url(request: pytest.FixtureRequest, repo: Repo) -> str:
    origin = repo.origin
    if request.param == "file":
        return origin.as_uri()
    if request.param == "git-daemon":
        daemon: GitDaemon = request.getfixturevalue("git_daemon")
        return daemon.url(origin.name)
    http: SmartHTTP = request.getfixturevalue("smart_http")
    return http.url(origin.name)


def test_branch_tag_and_commit_over_every_transport(url: str, repo: Repo, tmp_path: Path) -> None:
    first = repo.commit(FILES, "first")
    repo.tag("v1")
    checkout = repo.clone(tmp_path / "checkout")
    branch = Git(repo=url, flow_path="pipelines/gitflow.py", branch_name="main")
    location = register(branch, checkout)
    assert branch.last_commit == first
    assert run(branch, location) == "<hi>"
    second = repo.commit({"pipelines/helpers/text.py": "def decorate(text):\n    return f'[{text}]'\n"}, "second")
    assert run(branch, location) == "[hi]"  # the next run follows the branch
    tagged = Git(repo=url, flow_path="pipelines/gitflow.py", tag="v1")
    assert run(tagged, tagged.add_flow(load_flows_from_file(checkout / "pipelines/gitflow.py")["gitflow"])) == "<hi>"
    pinned = Git(repo=url, flow_path="pipelines/gitflow.py", commit=first)  # an old commit, not a branch tip any more
    assert run(pinned, pinned.add_flow(load_flows_from_file(checkout / "pipelines/gitflow.py")["gitflow"])) == "<hi>"
    default = Git(repo=url, flow_path="pipelines/gitflow.py")
    location = default.add_flow(load_flows_from_file(checkout / "pipelines/gitflow.py")["gitflow"])
    assert run(default, location) == "[hi]" and second != first


def test_pin_and_project_dir(repo: Repo, tmp_path: Path) -> None:
    first = repo.commit(FILES)
    checkout = repo.clone(tmp_path / "checkout")
    store = Git(repo=repo.origin.as_uri(), flow_path="pipelines/gitflow.py", branch_name="main", pin=True,
                project_dir="pipelines")
    location = register(store, checkout)
    assert store.commit == first
    repo.commit({"pipelines/message.txt": "changed\n"})
    assert run(store, location) == "<hi>"
    import sys

    assert any(p.endswith(f"{first}/pipelines") for p in sys.path)
    with pytest.raises(ValueError, match="not inside project_dir"):
        bad = Git(repo=repo.origin.as_uri(), flow_path="pipelines/gitflow.py", commit=first, project_dir="other")
        bad.get_flow(bad.add_flow(load_flows_from_file(checkout / "pipelines/gitflow.py")["gitflow"]))


def test_smart_http_with_a_token(repo: Repo, tmp_path: Path, smart_http: SmartHTTP, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.commit(FILES)
    checkout = repo.clone(tmp_path / "checkout")
    token = "glpat-TopSecret987"
    smart_http.token = token
    try:
        store = Git(repo=smart_http.url(repo.origin.name), flow_path="pipelines/gitflow.py", branch_name="main",
                    git_token_secret_name="GIT_TOKEN", git_token_username="ci")
        monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__GIT_TOKEN", "not-it")
        with pytest.raises(RepoAuthError) as info:
            register(store, checkout)
        assert "credentials are missing or wrong" in str(info.value) and "not-it" not in str(info.value)
        monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__GIT_TOKEN", token)
        store = Git(repo=smart_http.url(repo.origin.name), flow_path="pipelines/gitflow.py", branch_name="main",
                    git_token_secret_name="GIT_TOKEN", git_token_username="ci")
        location = register(store, checkout)
        assert run(store, location) == "<hi>"
        assert "Basic " + __import__("base64").b64encode(f"ci:{token}".encode()).decode() in smart_http.auth_seen
        assert token not in repr(store) + str(store.serialize())
    finally:
        smart_http.token = None


def test_clear_errors(repo: Repo, tmp_path: Path, git_daemon: GitDaemon) -> None:
    repo.commit(FILES)
    checkout = repo.clone(tmp_path / "checkout")
    url = repo.origin.as_uri()
    with pytest.raises(RefNotFoundError, match=r"Branch nope does not exist in file://.*fix branch_name="):
        register(Git(repo=url, flow_path="pipelines/gitflow.py", branch_name="nope"), checkout)
    with pytest.raises(PathNotFoundError, match=r"pipelines/other.py is not on branch main of file://.*push it first"):
        register(Git(repo=url, flow_path="pipelines/other.py", branch_name="main"), checkout)
    with pytest.raises(RepoNotFoundError, match=r"(?s)git failed .*missing.git.*check repo="):
        register(Git(repo=git_daemon.url("missing.git"), flow_path="pipelines/gitflow.py", branch_name="main"), checkout)
    with pytest.raises(RepoNetworkError, match=r"(?s)git failed while resolving branch main of git://127\.0\.0\.1:9/x\.git.*check the network"):
        register(Git(repo="git://127.0.0.1:9/x.git", flow_path="pipelines/gitflow.py", branch_name="main"), checkout)
    with pytest.raises(ValueError, match="give branch_name or tag, not both"):
        Git(repo=url, flow_path="x.py", branch_name="main", tag="v1")


def test_urls_from_prefect_arguments() -> None:
    assert Git(repo="org/etl", flow_path="f.py").url() == "https://github.com/org/etl.git"
    assert Git(repo="org/etl", flow_path="f.py", repo_host="gitlab.com", use_ssh=True).url() == "git@gitlab.com:org/etl.git"
    assert Git(repo="ssh://git@git.example.org:2222/org/etl.git", flow_path="f.py").url() == "ssh://git@git.example.org:2222/org/etl.git"
    masked = Git(repo="https://user:hunter2@git.example.org/org/etl.git", flow_path="f.py")
    assert "hunter2" not in masked.repo_label() and "hunter2" not in masked.cache_identity()


def test_pin_from_the_configuration_round_trips(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sha = repo.commit(FILES)
    monkeypatch.setenv("HEADWATER__GITHUB__PIN", "true")
    store = Git(repo=repo.origin.as_uri(), flow_path="pipelines/gitflow.py", branch_name="main")
    location = register(store, repo.clone(tmp_path / "checkout"))
    restored = from_dict(store.serialize(), "storage")
    assert (restored.commit, restored.branch_name) == (sha, "main")
    repo.commit({"pipelines/message.txt": "later\n"})
    assert run(store, location) == "<hi>"
