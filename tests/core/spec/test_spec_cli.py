"""`headwater spec worker|submit|show` and `run_spec_file` (what `headwater run FILE.yaml` calls)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from headwater.cli.spec import run_spec_file, spec
from headwater.spec import FlowStore

SPEC_YAML = """\
label: cli_flow
tasks:
  - key: hello
    task_type: print
    task_params: {msg: "hello from a spec"}
  - key: count
    task_type: spread
    task_params:
      items: [1, 2]
      item_param: msg
      skeleton: {task_type: print}
"""

FAILING_YAML = """\
label: failing
cfg: {fail_fast: false}
tasks:
  - {key: bad, task_type: shell, task_params: {command: "echo nope >&2; exit 4"}}
  - {key: after, task_type: print, task_params: {msg: unreachable}}
  - {key: other, task_type: print, task_params: {msg: "[other branch]"}, precursors: []}
"""


@click.group()
def cli() -> None:
    """A stand-in for the root `headwater` group."""


cli.add_command(spec)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "flow.yaml").write_text(SPEC_YAML)
    (tmp_path / "failing.yaml").write_text(FAILING_YAML)
    (tmp_path / "bad.yaml").write_text("tasks: [{key: a, task_type: teleport}]\n")
    return tmp_path


def test_run_spec_file_runs_and_prints_a_table(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_spec_file(str(files / "flow.yaml")) == 0
    out = capsys.readouterr().out
    assert out.startswith("hello from a spec\n1\n2\n")
    assert "cli_flow" in out
    for row in (("hello", "print", "COMPLETED"), ("count", "spread", "COMPLETED")):
        assert any(all(cell in line for cell in row) for line in out.splitlines()), row
    assert "Flow COMPLETED: All tasks finished." in out


def test_run_spec_file_returns_1_and_shows_why_when_the_flow_fails(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_spec_file(str(files / "failing.yaml")) == 1
    out = capsys.readouterr().out
    assert "[other branch]" in out, "the other branch ran; brackets are not rich markup"
    lines = out.splitlines()
    assert any("bad" in line and "FAILED" in line for line in lines)
    assert any("after" in line and "SKIPPED" in line for line in lines)
    assert "Flow FAILED" in out and "exited with code 4" in out


def test_run_spec_file_reports_an_invalid_spec(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_spec_file(str(files / "bad.yaml")) == 2  # invalid spec: 2, like a flow file that cannot load (issue 10 #16)
    captured = capsys.readouterr()
    assert "Unknown task_type 'teleport'" in captured.err and captured.out == ""


def test_submit_worker_show(files: Path) -> None:
    db = f"sqlite:///{files / 'flows.db'}"
    runner = CliRunner()
    submitted = runner.invoke(cli, ["spec", "submit", str(files / "flow.yaml"), "--db", db])
    assert submitted.exit_code == 0, submitted.output
    key = submitted.output.strip()
    assert key.startswith("flow:")

    shown = runner.invoke(cli, ["spec", "show", key, "--db", db])
    assert shown.exit_code == 0 and "PENDING" in shown.output and "COMPLETED" not in shown.output

    worked = runner.invoke(cli, ["spec", "worker", "--db", db, "--interval", "0.01", "--until-done"])
    assert worked.exit_code == 0, worked.output
    assert "hello from a spec" in worked.output

    shown = runner.invoke(cli, ["spec", "show", key, "--db", db])
    assert shown.exit_code == 0
    assert any("hello" in line and "COMPLETED" in line for line in shown.output.splitlines())
    assert "Flow COMPLETED" in shown.output

    as_json = runner.invoke(cli, ["spec", "show", key, "--db", db, "--json"])
    d = json.loads(as_json.output)
    assert d["key"] == key and d["status"] == "COMPLETED" and d["graph"]["tasks"]["count"]["data"]["results"] == [{}, {}]
    store = FlowStore(db)
    assert [f.label for f in store.query(parent_key=key)] == ["cli_flow.count"]
    store.close()


def test_the_db_url_can_come_from_the_environment(files: Path) -> None:
    db = f"sqlite:///{files / 'env.db'}"
    result = CliRunner().invoke(cli, ["spec", "submit", str(files / "flow.yaml")], env={"HEADWATER__SPEC__DB": db})
    assert result.exit_code == 0 and FlowStore(db).count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["spec", "show", "flow:nope"], "No flow with key 'flow:nope'"),
        (["spec", "submit", "{bad}"], "Unknown task_type 'teleport'"),
        (["spec", "submit", "{missing}"], "does not exist"),
        (["spec", "worker", "--max-flows", "0"], "--max-flows"),
        (["spec", "worker", "--lease", "0"], "--lease"),
    ],
)
def test_cli_errors_are_clear(files: Path, args: list[str], message: str) -> None:
    args = [a.format(bad=files / "bad.yaml", missing=files / "missing.yaml") for a in args]
    result = CliRunner().invoke(cli, [*args, "--db", f"sqlite:///{files / 'flows.db'}"])
    assert result.exit_code != 0
    assert message in result.output


def test_an_unreachable_database_is_named(files: Path) -> None:
    result = CliRunner().invoke(cli, ["spec", "show", "flow:x", "--db", "sqlite:////nonexistent-dir/x.db"])
    assert result.exit_code == 1 and "Cannot open the flow store 'sqlite:////nonexistent-dir/x.db'" in result.output
