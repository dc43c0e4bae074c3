"""GitHub storage against the local GitHub REST server: whole project, commits, registration checks, errors, secrets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from github_helpers import FakeGitHub, Repo
from headwater.plugins import from_dict, load_flows_from_file
from headwater_github import GitHub
from headwater_github.errors import (
    CorruptDownloadError,
    FlowNotInFileError,
    PathNotFoundError,
    RateLimitError,
    RefNotFoundError,
    RepoAuthError,
    RepoNetworkError,
    RepoNotFoundError,
)

FLOW = '''
import os
from headwater import Flow, task
from scripts.helpers import shout


@task
def read_message():
    with open("data/message.txt") as f:
        return shout(f.read().strip()) + " in " + os.path.basename(os.getcwd())


with Flow("{name}") as flow:
    read_message()
'''

FILES = {
    "flows/etl/job.py": FLOW.replace("{name}", "job"),
    "flows/etl/scripts/__init__.py": "",
    "flows/etl/scripts/helpers.py": "def shout(text):\n    return text.upper()\n",
    "flows/etl/data/message.txt": "hello\n",
}


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER__GITHUB__BACKOFF", "0.01")


def storage(fake_github: FakeGitHub, made: Repo, **kwargs: object) -> GitHub:
    options: dict[str, object] = {"repo": f"org/{made.name}", "path": "flows/etl/job.py", "ref": "main",
                                  "base_url": fake_github.url}
    options.update(kwargs)
    return GitHub(**options)  # type: ignore[arg-type]


def registered(store: GitHub, checkout: Path, name: str = "job") -> str:
    """Load the flow from ``checkout`` like ``headwater register`` does, add it, build (the registration check)."""
    os.chdir(checkout)
    flow = load_flows_from_file(checkout / "flows" / "etl" / "job.py")[name]
    location = store.add_flow(flow)
    store.build()
    return location


def result(flow: Any) -> Any:
    state = flow.run(run_on_schedule=False)
    assert state.is_successful(), state
    return next(iter(state.result.values())).result


def test_the_whole_project_is_importable_and_the_flow_directory_is_the_cwd(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    sha = repo.commit(FILES)
    store = storage(fake_github, repo)
    location = registered(store, repo.clone(tmp_path / "checkout"))
    agent = from_dict(store.serialize(), "storage")
    os.chdir(tmp_path)
    flow = agent.get_flow(location)
    assert result(flow) == "HELLO in etl"
    assert agent.last_commit == sha
    assert Path.cwd().name == "etl" and Path.cwd().parent.parent.name == sha
    assert fake_github.count("/tarball/") == 1


def test_the_default_branch_tags_and_commits_resolve(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    first = repo.commit(FILES)
    repo.tag("v1")
    second = repo.commit({"flows/etl/scripts/helpers.py": "def shout(text):\n    return text + '!'\n"})
    for ref, sha, expected in ((None, second, "hello! in etl"), ("v1", first, "HELLO in etl"), (first, first, "HELLO in etl")):
        store = storage(fake_github, repo, ref=ref)
        location = store.add_flow(load_flows_from_file(repo.work / "flows/etl/job.py")["job"])
        assert result(store.get_flow(location)) == expected, ref
        assert store.last_commit == sha


def test_each_run_resolves_main_again_unless_pinned(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    first = repo.commit(FILES)
    checkout = repo.clone(tmp_path / "checkout")
    floating, pinned = storage(fake_github, repo), storage(fake_github, repo, pin=True)
    loc_f = registered(floating, checkout)
    loc_p = registered(pinned, checkout)
    assert floating.commit is None and pinned.commit == first
    assert from_dict(pinned.serialize(), "storage").commit == first  # the pin travels with the flow's metadata
    second = repo.commit({"flows/etl/scripts/helpers.py": "def shout(text):\n    return text * 2\n"})
    assert result(from_dict(floating.serialize(), "storage").get_flow(loc_f)) == "hellohello in etl"
    assert result(from_dict(pinned.serialize(), "storage").get_flow(loc_p)) == "HELLO in etl"
    assert second != first


def test_pin_from_the_configuration(fake_github: FakeGitHub, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sha = repo.commit(FILES)
    monkeypatch.setenv("HEADWATER__GITHUB__PIN", "true")
    store = storage(fake_github, repo)
    registered(store, repo.clone(tmp_path / "checkout"))
    assert store.commit == sha


def test_registration_fails_when_the_file_is_not_pushed(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    repo.commit({"README.md": "nothing yet\n"})
    checkout = repo.clone(tmp_path / "checkout")
    for rel, text in FILES.items():
        (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
        (checkout / rel).write_text(text)
    with pytest.raises(PathNotFoundError) as info:
        registered(storage(fake_github, repo), checkout)
    message = str(info.value)
    assert message.startswith(f"flows/etl/job.py is not on ref main of org/{repo.name}")
    assert "push it first" in message


def test_registration_fails_when_the_pushed_file_lacks_the_flow(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    repo.commit(FILES)
    checkout = repo.clone(tmp_path / "checkout")
    (checkout / "flows/etl/job.py").write_text(FLOW.replace("{name}", "renamed"))  # renamed locally, not pushed
    with pytest.raises(FlowNotInFileError, match=r"Flow 'renamed' is not in flows/etl/job.py on ref main of org/.*push your changes first"):
        registered(storage(fake_github, repo), checkout, name="renamed")


def test_registration_names_a_missing_ref_or_repository(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    repo.commit(FILES)
    checkout = repo.clone(tmp_path / "checkout")
    with pytest.raises(RefNotFoundError, match=r"Ref nope does not exist in org/.*fix ref="):
        registered(storage(fake_github, repo, ref="nope"), checkout)
    with pytest.raises(RepoNotFoundError, match=r"Repository org/missing does not exist at http://127\.0\.0\.1"):
        registered(storage(fake_github, repo, repo="org/missing"), checkout)


def test_the_token_is_sent_and_never_shown(fake_github: FakeGitHub, repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo.commit(FILES)
    checkout = repo.clone(tmp_path / "checkout")
    fake_github.token = token = "ghp_SuperSecret123"
    store = storage(fake_github, repo, access_token_secret="ETL_TOKEN")
    with pytest.raises(RepoAuthError, match="the token secret 'ETL_TOKEN' is not set"):
        registered(store, checkout)
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__ETL_TOKEN", "wrong-token")
    with pytest.raises(RepoAuthError, match=r"rejected the token .*401.*'ETL_TOKEN' holds a wrong or expired token"):
        registered(storage(fake_github, repo, access_token_secret="ETL_TOKEN"), checkout)
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__ETL_TOKEN", token)
    store = storage(fake_github, repo, access_token_secret="ETL_TOKEN")
    location = registered(store, checkout)
    assert result(store.get_flow(location)) == "HELLO in etl"
    assert {r["headers"].get("Authorization") for r in fake_github.requests if r["path"].startswith("/api/")} >= {f"Bearer {token}"}
    shown = repr(store) + str(store.serialize())
    assert token not in shown and "ETL_TOKEN" in shown
    env = {**os.environ, "HEADWATER__CONTEXT__SECRETS__ETL_TOKEN": token}
    config = subprocess.run([sys.executable, "-m", "headwater.cli", "config", "show"], capture_output=True, text=True, env=env, check=False)
    assert config.returncode == 0, config.stderr
    assert token not in config.stdout + config.stderr


def test_the_rate_limit_error_says_when_it_resets(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    repo.commit(FILES)
    fake_github.rate_limit(reset=1893456000, match="/commits/")  # 2030-01-01 00:00:00 UTC
    store = storage(fake_github, repo)
    store.add_flow(load_flows_from_file(repo.work / "flows/etl/job.py")["job"])
    with pytest.raises(RateLimitError) as info:
        store.get_flow(store.flows["job"])
    assert "rate limit exceeded" in str(info.value) and "resets at 2030-01-01 00:00:00 UTC" in str(info.value)
    assert info.value.reset == 1893456000
    assert fake_github.count("/commits/") == 1  # not retried: retrying cannot help before the reset


def test_403_without_rate_limit_is_an_access_error(fake_github: FakeGitHub, repo: Repo) -> None:
    repo.commit(FILES)
    fake_github.fail(403, match="/commits/", message="Resource not accessible by integration")
    store = storage(fake_github, repo)
    with pytest.raises(RepoAuthError, match=r"refused access .*403.*Resource not accessible.*contents: read"):
        store.resolve_commit()


def test_server_errors_and_cut_downloads_are_retried(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    repo.commit(FILES)
    store = storage(fake_github, repo)
    location = store.add_flow(load_flows_from_file(repo.work / "flows/etl/job.py")["job"])
    fake_github.fail(500, match="/commits/", times=2)
    fake_github.corrupt_tarballs[:] = ["truncate", "garbage"]
    assert result(store.get_flow(location)) == "HELLO in etl"
    assert fake_github.count("/commits/") == 3 and fake_github.count("/_codeload/") == 3


def test_persistent_failures_name_the_repository_and_the_fix(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    sha = repo.commit(FILES)
    store = storage(fake_github, repo)
    location = store.add_flow(load_flows_from_file(repo.work / "flows/etl/job.py")["job"])
    fake_github.fail(500, match="/commits/", times=10)
    with pytest.raises(RepoNetworkError, match=r"GitHub answered 500 while resolving ref main of org/"):
        store.get_flow(location)
    assert fake_github.count("/commits/") == 4  # [github] retries = 4 attempts
    fake_github.failures.clear()
    fake_github.corrupt_tarballs[:] = ["garbage"] * 4
    with pytest.raises(CorruptDownloadError, match=rf"tarball of commit {sha[:12]} of org/.* is not a valid archive"):
        store.tree(sha)
    assert not any(p.name == sha for p in store.cache().root.rglob(sha))  # nothing half-written is kept
    unreachable = storage(fake_github, repo, base_url="http://127.0.0.1:9/api/v3")
    with pytest.raises(RepoNetworkError, match=r"Cannot reach GitHub at http://127\.0\.0\.1:9/api/v3 .*Check the network"):
        unreachable.resolve_commit()


def test_unchanged_checkouts_keep_the_location_and_helper_changes_move_it(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    repo.commit(FILES)
    checkout = repo.clone(tmp_path / "checkout")
    os.chdir(checkout)

    def location() -> str:
        for name in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
            del sys.modules[name]  # a new registration process imports the helpers afresh
        return storage(fake_github, repo).location_for(load_flows_from_file(checkout / "flows/etl/job.py")["job"])

    first = location()
    assert location() == first
    (checkout / "flows/etl/scripts/helpers.py").write_text("def shout(text):\n    return text.title()\n")
    changed = location()
    assert changed != first and re.fullmatch(r"job/[0-9a-f]{16}", changed)


def test_registration_warns_about_helpers_that_are_not_pushed(fake_github: FakeGitHub, repo: Repo, tmp_path: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    repo.commit(FILES)
    checkout = repo.clone(tmp_path / "checkout")
    for name in [m for m in sys.modules if m == "scripts" or m.startswith("scripts.")]:
        del sys.modules[name]
    (checkout / "flows/etl/scripts/helpers.py").write_text("def shout(text):\n    return text[::-1]\n")
    with caplog.at_level("WARNING", logger="headwater"):
        registered(storage(fake_github, repo), checkout)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("flows/etl/scripts/helpers.py" in w and "push your changes" in w for w in warnings), warnings
    assert not any("flows/etl/scripts/__init__.py" in w for w in warnings), warnings


def test_a_flow_file_over_one_megabyte_is_read_through_the_raw_media_type(fake_github: FakeGitHub, repo: Repo, tmp_path: Path) -> None:
    big = FILES["flows/etl/job.py"] + "\n" + "# a long comment line to pad the file\n" * 30000
    repo.commit({**FILES, "flows/etl/job.py": big})
    store = storage(fake_github, repo)
    location = registered(store, repo.clone(tmp_path / "checkout"))
    assert any("raw" in r["headers"].get("Accept", "") for r in fake_github.requests if "/contents/" in r["path"])
    assert result(store.get_flow(location)) == "HELLO in etl"


def test_register_pin_option_pins_every_storage(fake_github: FakeGitHub, repo: Repo, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import click
    from click.testing import CliRunner

    from headwater_github import config, plugin

    sha = repo.commit(FILES)
    monkeypatch.setattr(config, "PIN_OVERRIDE", False)
    seen: dict[str, object] = {}

    @click.command()
    def fake_register() -> None:  # stands in for `headwater register` (its body builds the storages)
        store = storage(fake_github, repo)
        registered(store, repo.clone(tmp_path / "checkout"))
        seen["commit"] = store.commit

    plugin.extend_command(name="register", command=fake_register)
    plugin.extend_command(name="register", command=fake_register)  # idempotent
    assert [p.name for p in fake_register.params] == ["github_pin"]
    done = CliRunner().invoke(fake_register, ["--pin"], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert seen["commit"] == sha
