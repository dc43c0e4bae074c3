"""The CLI that Prefect 1 teams script: `auth login/logout/status`, `register --dry-run/--json`, the legacy
`register flow --file F --project P`, and `agent local start` with the hostname label and --import-path."""

from __future__ import annotations

import json
import socket
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent_helpers import run_state, wait_for
from cloud_api_helpers import write_flow_file
from headwater.cli.main import cli, load_plugin_commands
from headwater.client import Client
from headwater.testing.processes import AgentProcess


@pytest.fixture
def run_cli(sqlite_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("HEADWATER__CLOUD__API", sqlite_server.api)
    load_plugin_commands()
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> Any:
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == code, (result.output, result.stderr)
        return result

    return run


def _api_key(tmp_path: Path, name: str = "ci") -> str:
    """A new API key in the sqlite_server fixture's database (``tmp_path/api.db``): the server now requires keys."""
    from headwater_cloud_api.server.auth import create_api_key
    from headwater_cloud_api.server.db.session import Database

    db = Database(f"sqlite:///{tmp_path / 'api.db'}")
    try:
        with db.write() as session:
            _, key = create_api_key(session, name)
    finally:
        db.dispose()
    return key


def _flows(sqlite_server: Any) -> list[dict[str, Any]]:
    with Client(api=sqlite_server.api, api_key="") as api:
        return api.graphql("{ flows(include_archived: true) { name version } }")["flows"]


# --- auth -----------------------------------------------------------------------------------------------------


def test_auth_login_stores_the_key_0600_keeps_the_file_and_status_logout(run_cli: Any, sqlite_server: Any,
                                                                         _headwater_home: Path, tmp_path: Path) -> None:
    config = _headwater_home / "config.toml"
    config.write_text('# my settings\n[server]\nport = 4300\n\n[cloud]\nrequest_timeout = 12.5\n')
    key = _api_key(tmp_path)
    out = run_cli("auth", "login", "--key", key).output
    assert "Logged in to" in out and key not in out and key[-4:] in out
    data = tomllib.loads(config.read_text())
    assert data["cloud"] == {"api_key": key, "request_timeout": 12.5} and data["server"] == {"port": 4300}
    assert config.read_text().startswith("# my settings\n")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    status = run_cli("auth", "status", "--check").output
    assert f"the file {config}" in status and key[-4:] in status and key not in status
    assert "The API accepts the key." in status and "mode 600" in status
    # The stored key is what clients use now: the server requires keys once one exists.
    with Client() as api:
        assert api.graphql("{ projects { name } }") == {"projects": []}
    assert "the API key was removed" in run_cli("auth", "logout").output
    assert "api_key" not in tomllib.loads(config.read_text())["cloud"]
    assert "nothing to do" in run_cli("auth", "logout").output
    assert "not set" in run_cli("auth", "status").output


def test_auth_login_refuses_a_wrong_key_unless_told_not_to_check(run_cli: Any, sqlite_server: Any,
                                                                  _headwater_home: Path, tmp_path: Path) -> None:
    _api_key(tmp_path)
    config = _headwater_home / "config.toml"
    result = run_cli("auth", "login", "--key", "hw_wrong-key-123456", code=1)
    assert "did not accept the key" in result.output and "Nothing was stored" in result.output
    assert not config.exists()
    run_cli("auth", "login", "--key", "hw_offline-key-123456", "--no-check", "--api", "http://127.0.0.1:9/graphql")
    cloud = tomllib.loads(config.read_text())["cloud"]
    assert cloud == {"api_key": "hw_offline-key-123456", "api": "http://127.0.0.1:9/graphql"}
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_auth_status_names_the_environment_variable(run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER__CLOUD__API_KEY", "hw_from-the-environment")
    out = run_cli("auth", "status").output
    assert "the environment variable HEADWATER__CLOUD__API_KEY" in out and "hw_from-the-environment" not in out


def test_auth_login_refuses_a_config_without_a_cloud_table(run_cli: Any, _headwater_home: Path) -> None:
    config = _headwater_home / "config.toml"
    config.write_text('cloud.api = "http://127.0.0.1:4200/graphql"\n')
    result = run_cli("auth", "login", "--key", "hw_k-123456789", "--no-check", code=1)
    assert "without a [cloud] table" in result.output
    assert config.read_text() == 'cloud.api = "http://127.0.0.1:4200/graphql"\n'


# --- register --dry-run and --json ----------------------------------------------------------------------------


def test_register_dry_run_writes_nothing_and_says_new_bump_skip(run_cli: Any, sqlite_server: Any, tmp_path: Path,
                                                                 _headwater_home: Path) -> None:
    flows = tmp_path / "flows"
    write_flow_file(flows / "etl.py", name="etl", y=1)
    write_flow_file(flows / "report.py", name="report", y=1)
    run_cli("project", "create", "P")
    out = run_cli("register", "--project", "P", "-p", str(flows), "--dry-run").output
    assert "etl: Would register (new flow, version 1)" in out and "report: Would register" in out
    assert "Dry run: 2 would be registered, 0 bumped, 0 skipped, 0 errors. Nothing was written." in out
    assert _flows(sqlite_server) == [] and not (_headwater_home / "flows").exists()  # no storage built
    run_cli("register", "--project", "P", "-p", str(flows))
    built = sorted(p.name for p in (_headwater_home / "flows").rglob("*.py"))
    write_flow_file(flows / "etl.py", name="etl", y=2)  # change one flow
    out = run_cli("register", "--project", "P", "-p", str(flows), "--dry-run").output
    assert "etl: Would bump (version 1 -> 2)" in out and "report: Would skip (metadata unchanged, version 1)" in out
    assert "0 would be registered, 1 bumped, 1 skipped" in out
    assert sorted(f["version"] for f in _flows(sqlite_server)) == [1, 1]
    assert sorted(p.name for p in (_headwater_home / "flows").rglob("*.py")) == built
    out = run_cli("register", "--project", "P", "-p", str(flows), "--dry-run", "--force").output
    assert "report: Would bump (version 1 -> 2)" in out


def test_register_json_is_one_document_for_scripts(run_cli: Any, sqlite_server: Any, tmp_path: Path) -> None:
    flows = tmp_path / "flows"
    write_flow_file(flows / "etl.py", name="etl", y=1)
    (flows / "noisy.py").write_text('print("importing noisy")\nfrom headwater import Flow\nwith Flow("noisy") as f:\n    pass\n')
    (flows / "broken.py").write_text("from headwater import Flow\nraise RuntimeError('boom')\n")
    run_cli("project", "create", "P")
    result = run_cli("register", "--project", "P", "-p", str(flows), "--json", "--dry-run", code=1)
    doc = json.loads(result.stdout)  # flow files' prints went to stderr
    assert "importing noisy" in result.stderr
    assert doc["dry_run"] is True and doc["project"] == "P" and doc["error"] is None
    by_name = {f["name"]: f for f in doc["flows"]}
    assert by_name["etl"]["action"] == "new" and by_name["etl"]["version"] == 1 and by_name["etl"]["dry_run"]
    assert [f["status"] for f in doc["flows"] if f["status"] == "error"] == ["error"]
    assert doc["counts"]["error"] == 1 and doc["counts"]["new"] == 2
    (flows / "broken.py").unlink()
    doc = json.loads(run_cli("register", "--project", "P", "-p", str(flows), "--json").stdout)
    assert {f["name"]: (f["status"], f["action"], f["version"]) for f in doc["flows"]} == {
        "etl": ("registered", "new", 1), "noisy": ("registered", "new", 1)}
    doc = json.loads(run_cli("register", "--project", "P", "-p", str(flows), "--json").stdout)
    assert {f["action"] for f in doc["flows"]} == {"skip"} and doc["counts"]["skipped"] == 2
    missing = run_cli("register", "--project", "nope", "-p", str(flows), "--json", code=1)
    assert "does not exist" in json.loads(missing.stdout)["error"]
    assert "cannot be combined" in run_cli("register", "--project", "P", "-p", str(flows), "--watch", "--json",
                                           code=2).output


# --- legacy `register flow --file F --project P` -------------------------------------------------------------


def test_legacy_register_flow_file_is_deprecated_but_works(run_cli: Any, sqlite_server: Any, tmp_path: Path) -> None:
    path = write_flow_file(tmp_path / "etl.py", name="etl", y=1)
    run_cli("project", "create", "P")
    result = run_cli("register", "flow", "--file", str(path), "--project", "P")
    assert "deprecated" in result.stderr and "headwater register --project P --path FILE" in result.stderr
    assert "etl: Registered (version 1)" in result.stdout
    # Prefect 1's legacy form bumps the version every time, and -p is --project there.
    assert "etl: Registered (version 2)" in run_cli("register", "flow", "-f", str(path), "-p", "P").stdout
    out = run_cli("register", "flow", f"--file={path}", "--project=P", "--skip-if-flow-metadata-unchanged").stdout
    assert "etl: Skipped (metadata unchanged)" in out
    assert sorted(f["version"] for f in _flows(sqlite_server)) == [1, 2]


# --- agent local start ----------------------------------------------------------------------------------------


def test_local_agent_labels_and_import_paths(tmp_path: Path) -> None:
    from headwater_cloud_api.cli.agent import agent_labels, import_path_env

    host = socket.gethostname()
    assert agent_labels(("a", "b", "a"), True) == ["a", "b", host]
    assert agent_labels(("a",), False) == ["a"]
    assert agent_labels((host,), True) == [host]
    lib, other = tmp_path / "lib", tmp_path / "other"
    env = import_path_env((str(lib), str(other)), {"X": "1"}, environ={"PYTHONPATH": "/opt/site"})
    assert env == {"X": "1", "PYTHONPATH": f"{lib}:{other}:/opt/site"}
    assert import_path_env((), {"X": "1"}) == {"X": "1"}
    assert import_path_env((str(lib),), {"PYTHONPATH": "/given"}, environ={})["PYTHONPATH"] == f"{lib}:/given"


def test_local_agent_cli_refuses_a_missing_import_path(run_cli: Any, tmp_path: Path) -> None:
    out = run_cli("agent", "local", "start", "--import-path", str(tmp_path / "missing"), code=2).output
    assert "does not exist" in out
    assert "--no-hostname-label" in run_cli("agent", "local", "start", "--help").output


FLOW_WITH_TEAM_MODULE = '''
from headwater import Flow, task
from headwater.run_configs import LocalRun


@task(log_stdout=True)
def use_team_module():
    import teamlib  # only importable through the agent's --import-path

    print(f"teamlib says {teamlib.greeting()}")
    return teamlib.greeting()


with Flow("uses-teamlib", run_config=LocalRun(labels=[HOST])) as flow:
    use_team_module()
'''


def test_local_agent_runs_a_hostname_labelled_flow_with_its_import_path(sqlite_server: Any, tmp_path: Path) -> None:
    from headwater_cloud_api.registration import Registration, load_flows

    lib = tmp_path / "repo" / "lib"
    lib.mkdir(parents=True)
    (lib / "teamlib.py").write_text("def greeting():\n    return 'hello from the team library'\n")
    flow_file = tmp_path / "repo" / "flows" / "teamflow.py"
    flow_file.parent.mkdir(parents=True)
    flow_file.write_text(FLOW_WITH_TEAM_MODULE.replace("HOST", repr(socket.gethostname())))
    with Client(api=sqlite_server.api, api_key="") as api:
        api.project(name="P").create()
        flows, errors = load_flows([flow_file])
        assert not errors
        [registered] = Registration(api).register_many(flows, "P")
        run = api.flow(name="uses-teamlib", project="P").create_run()
        agent = AgentProcess(sqlite_server.api, tmp_path / "agent", name="local-agent", poll_interval=0.1,
                             command=("agent", "local", "start"), extra=("--import-path", str(lib)))
        try:
            wait_for(lambda: run_state(api, run.id) in ("Success", "Failed"), 60, what="the local agent ran the flow")
        finally:
            agent.stop()
        assert run_state(api, run.id) == "Success", agent.output()
        assert "teamlib says hello from the team library" in [r["message"] for r in run.logs()]
        assert f"labels ['{socket.gethostname()}']" in agent.output()
