"""``StorageConformance`` for GitHub storage (against the local GitHub API) and Git storage (file://)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from github_helpers import FakeGitHub, Repo
from headwater.plugins import StorageConformance, load_flows_from_file
from headwater_github import Git, GitHub


class _RepoFlows:
    needs_build = False  # the code is pushed to the repository, not written by build(); build() checks it is there
    stores_bytes = False  # the flow's script is re-executed at its commit where it runs: nothing is frozen at import

    @pytest.fixture
    def checkout(self, conformance_repo: Repo, tmp_path: Path) -> Path:
        """A clone of the repository, as the working directory (where registration runs)."""
        path = conformance_repo.clone(tmp_path / "checkout")
        os.chdir(path)
        return path

    @pytest.fixture
    def flow(self, checkout: Path) -> Any:
        return load_flows_from_file(checkout / "flows" / "conformance.py")["conformance-flow"]

    @pytest.fixture
    def other_flow(self, checkout: Path) -> Any:
        return load_flows_from_file(checkout / "flows" / "conformance.py")["conformance-other"]

    @pytest.fixture
    def same_flow(self, checkout: Path) -> Any:
        return load_flows_from_file(checkout / "flows" / "conformance.py")["conformance-flow"]


class TestGitHubConformance(_RepoFlows, StorageConformance):
    @pytest.fixture
    def storage(self, fake_github: FakeGitHub, checkout: Path) -> GitHub:
        return GitHub(repo="org/conformance", path="flows/conformance.py", ref="main", base_url=fake_github.url)


class TestGitConformance(_RepoFlows, StorageConformance):
    @pytest.fixture
    def storage(self, conformance_repo: Repo, checkout: Path) -> Git:
        return Git(repo=conformance_repo.origin.as_uri(), flow_path="flows/conformance.py", branch_name="main")
