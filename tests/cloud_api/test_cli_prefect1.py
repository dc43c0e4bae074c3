"""The CLI that Prefect 1 teams script: `register -p PATH`, `project create --skip-if-exists`."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cloud_api_helpers import write_flow_file
from headwater.cli.main import cli, load_plugin_commands


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


def test_p_is_path_and_project_create_can_skip_an_existing_project(run_cli, tmp_path) -> None:
    write_flow_file(tmp_path / "flows" / "etl.py", name="etl", y=1)
    assert "Created project 'P'" in run_cli("project", "create", "P", "--skip-if-exists")
    assert "already exists; skipping" in run_cli("project", "create", "P", "--skip-if-exists")
    assert "already exists" in run_cli("project", "create", "P", code=1)  # without the flag it is an error
    out = run_cli("register", "--project", "P", "-p", str(tmp_path / "flows"))
    assert "etl: Registered (version 1)" in out
    out = run_cli("register", "-p", "P", "--path", str(tmp_path / "flows"), code=2)  # -p no longer means --project
    assert "Missing option '--project'" in out or "does not exist" in out
