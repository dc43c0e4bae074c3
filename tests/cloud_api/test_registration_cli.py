"""``headwater register`` and the other CLI commands, against the real server (SQLite)."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from cloud_api_helpers import write_flow_file
from headwater.cli.main import cli, load_plugin_commands
from headwater.plugins import registry
from headwater_cloud_api.registration import Registration, load_flows


@pytest.fixture
def run_cli(sqlite_server, monkeypatch):
    monkeypatch.setenv("HEADWATER__CLOUD__API", sqlite_server.api)
    load_plugin_commands()
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    return run


def test_register_a_directory_then_skip_unchanged_in_one_request(run_cli, tmp_path, sqlite_client):
    flows = tmp_path / "flows"
    for i in range(5):
        write_flow_file(flows / f"team{i % 2}" / f"flow{i}.py", name=f"flow{i}", y=i)
    out = run_cli("register", "--project", "P", "--path", str(flows), code=1)
    assert "Project 'P' does not exist. Create it with `headwater project create P`" in out
    run_cli("project", "create", "P")
    out = run_cli("register", "--project", "P", "--path", str(flows))
    assert out.count("Registered (version 1)") == 5 and "5 registered, 0 skipped, 0 errors." in out

    loaded, errors = load_flows([flows])
    assert not errors and len(loaded) == 5
    before = sqlite_client.transport.request_count
    results = Registration(sqlite_client).register_many(loaded, "P")
    assert [r.status for r in results] == ["skipped"] * 5
    assert sqlite_client.transport.request_count == before + 1  # one request for the whole batch

    write_flow_file(flows / "team0" / "flow0.py", name="flow0", y=100)  # a code change
    (flows / "broken.py").write_text("# a Flow file that fails at import\nraise RuntimeError('boom')\n")  # mentions Flow: imported
    out = run_cli("register", "--project", "P", "--path", str(flows), "--label", "extra", code=1)
    assert "flow0: Registered (version 2)" in out
    assert "Error" in out and "boom" in out
    assert re.search(r"5 registered, 0 skipped, 1 errors", out)  # --label changed every flow's runs
    out = run_cli("register", "--project", "P", "--path", str(flows / "team1"), "--label", "extra")
    assert "0 registered, 2 skipped, 0 errors." in out
    assert sqlite_client.flow(name="flow1", project="P").get("labels") == ["extra", "staging"]


def test_register_warns_when_no_agent_could_load_local_storage(run_cli, tmp_path):
    run_cli("project", "create", "P")
    (tmp_path / "f.py").write_text(
        "import attrs\nfrom headwater import Flow, task\nfrom headwater.run_configs import RunConfig\n"
        "from headwater.plugins import registry\n"
        "@attrs.frozen\nclass DockerRun(RunConfig):\n    image: str = 'x'\n"
        "registry('environment').register(DockerRun, 'DockerRun')\n"
        "@task\ndef t():\n    return 1\n"
        "with Flow('boxed', run_config=DockerRun()) as flow:\n    t()\n"
    )
    try:
        out = run_cli("register", "--project", "P", "--path", str(tmp_path / "f.py"))
    finally:
        registry("environment").unregister("DockerRun")
    assert "Warning" in out and "uses Local storage" in out and "DockerRun" in out
    assert "boxed: Registered (version 1)" in out


def test_cli_projects_get_flow_run_and_kv(run_cli, tmp_path, sqlite_client):
    run_cli("project", "create", "MDS")
    assert "MDS" in run_cli("project", "list")
    write_flow_file(tmp_path / "etl.py")
    run_cli("register", "--project", "MDS", "--path", str(tmp_path / "etl.py"))
    assert "etl" in run_cli("get", "flows", "--project", "MDS")
    run = sqlite_client.flow(name="etl", project="MDS").create_run(parameters={"x": 3})
    sqlite_client.graphql(
        "mutation($id: String!) { write_logs(logs: [{flow_run_id: $id, message: \"hello from the run\"}]) }", {"id": run.id}
    )
    assert run.id in run_cli("get", "flow-runs", "--project", "MDS")
    assert "hello from the run" in run_cli("flow-run", "logs", run.id)
    info = json.loads(run_cli("flow-run", "inspect", run.id, "--json"))
    assert info["parameters"] == {"x": 3} and info["states"][0]["type"] == "Scheduled"
    assert "Scheduled" in run_cli("flow-run", "inspect", run.id)
    assert f"Flow run {run.id} is Cancelled." in run_cli("flow-run", "cancel", run.id)
    assert "does not exist" in run_cli("flow-run", "cancel", "nope", code=1)
    run_cli("kv", "set", "threshold", '{"a": 1}')
    run_cli("kv", "set", "greeting", "hello world")
    assert run_cli("kv", "get", "threshold").strip() == '{"a": 1}'
    assert run_cli("kv", "get", "greeting").strip() == '"hello world"'
    assert run_cli("kv", "list").split() == ["greeting", "threshold"]
    run_cli("kv", "delete", "greeting")
    assert "not in the key-value store" in run_cli("kv", "get", "greeting", code=1)
    assert "Agents" in run_cli("get", "agents")
