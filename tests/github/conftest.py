"""Fixtures of the headwater-github tests: an isolated HEADWATER_HOME, real repositories, the servers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from github_helpers import FakeGitHub, GitDaemon, Repo, SmartHTTP
from headwater_github.cache import release_held

CONFORMANCE_FLOWS = '''
from headwater.testing.flows import sample_flow

flow = sample_flow("conformance-flow")
other = sample_flow("conformance-other", variant="triple")
'''


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Own HEADWATER_HOME, no HEADWATER__ variables; cwd, sys.path, sys.modules and cache locks restored after."""
    for var in list(os.environ):
        if var.upper().startswith("HEADWATER__"):
            monkeypatch.delenv(var)
    home = tmp_path / "headwater-home"
    home.mkdir()
    monkeypatch.setenv("HEADWATER_HOME", str(home))
    cwd, path = os.getcwd(), list(sys.path)
    yield home
    os.chdir(cwd)
    sys.path[:] = path
    for name, module in list(sys.modules.items()):  # the test's project modules, new or re-imported
        file = getattr(module, "__file__", None) or ""
        paths = [str(p) for p in (getattr(module, "__path__", None) or [])]
        if str(tmp_path) in file or any(str(tmp_path) in p for p in paths):
            del sys.modules[name]
    release_held()


@pytest.fixture(scope="session")
def repo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where every session repository lives (git daemon and smart HTTP serve this directory)."""
    return tmp_path_factory.mktemp("repos")


@pytest.fixture(scope="session")
def conformance_repo(repo_root: Path) -> Repo:
    """``org/conformance``: flows/conformance.py defines the conformance kit's two flows."""
    repo = Repo(repo_root, "conformance")
    repo.commit({"flows/conformance.py": CONFORMANCE_FLOWS, "README.md": "conformance\n"}, "conformance flows")
    return repo


@pytest.fixture(scope="session")
def github(repo_root: Path, conformance_repo: Repo) -> Iterator[FakeGitHub]:
    """The GitHub REST server, no token required (tests add repositories and set ``token``)."""
    with FakeGitHub({"org/conformance": conformance_repo.origin}) as server:
        yield server


@pytest.fixture
def fake_github(github: FakeGitHub) -> Iterator[FakeGitHub]:
    """The session's GitHub server, with its token, failures and records reset after the test."""
    yield github
    github.token = None
    github.failures.clear()
    github.corrupt_tarballs.clear()
    problems = list(github.problems)
    github.problems.clear()
    github.requests.clear()
    assert not problems, problems


@pytest.fixture(scope="session")
def git_daemon(repo_root: Path) -> Iterator[GitDaemon]:
    with GitDaemon(repo_root) as daemon:
        yield daemon


@pytest.fixture(scope="session")
def smart_http(repo_root: Path) -> Iterator[SmartHTTP]:
    with SmartHTTP(repo_root) as server:
        yield server


@pytest.fixture
def repo(tmp_path: Path, fake_github: FakeGitHub, repo_root: Path, request: pytest.FixtureRequest) -> Repo:
    """A fresh repository ``org/<test>`` served by the GitHub server, git daemon and smart HTTP."""
    import re

    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:60]
    made = Repo(repo_root, name)
    fake_github.repos[f"org/{name}"] = made.origin
    return made
