"""Issue 10 #13 and #16: registering a folder imports only flow files (.headwaterignore, --ignore, --pattern);
two flows with one name in a file are an error."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater_cloud_api.registration import discover_flow_files, load_flows

FLOW = '''
from headwater import Flow, task

@task
def one():
    return 1

with Flow("{name}") as flow:
    one()
'''

SIDE_EFFECT = '''
from pathlib import Path
Path({marker!r}).write_text("I ran")
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "scripts").mkdir()
    (root / "etl.py").write_text(FLOW.format(name="etl"))
    (root / "sub" / "report.py").write_text(FLOW.format(name="report"))
    (root / "helper.py").write_text(SIDE_EFFECT.format(marker=str(tmp_path / "helper-ran")))  # never mentions the class
    (root / "scripts" / "deploy.py").write_text("# builds a Flow image\n" + SIDE_EFFECT.format(marker=str(tmp_path / "deploy-ran")))
    (root / "sub" / "scratch.py").write_text("# Flow experiments\n" + SIDE_EFFECT.format(marker=str(tmp_path / "scratch-ran")))
    (root / ".headwaterignore").write_text("# helper scripts\nscripts/\n")
    (root / "sub" / ".headwaterignore").write_text("scratch.py\n")
    return root


def test_only_files_mentioning_flow_and_not_ignored_are_imported(project: Path, tmp_path: Path) -> None:
    files = discover_flow_files([project])
    assert sorted(f.relative_to(project).as_posix() for f in files) == ["etl.py", "sub/report.py"]
    flows, errors = load_flows([project])
    assert not errors and sorted(f.name for _, f in flows) == ["etl", "report"]
    assert not any((tmp_path / m).exists() for m in ("helper-ran", "deploy-ran", "scratch-ran"))


def test_ignore_option_adds_patterns(project: Path) -> None:
    files = discover_flow_files([project], ignore=["sub/"])
    assert [f.relative_to(project).as_posix() for f in files] == ["etl.py"]
    negated = discover_flow_files([project], ignore=["*.py", "!etl.py"])
    assert [f.relative_to(project).as_posix() for f in negated] == ["etl.py"]


def test_pattern_selects_files_instead_of_the_flow_mention(project: Path) -> None:
    files = discover_flow_files([project], pattern="sub/*.py")
    assert [f.relative_to(project).as_posix() for f in files] == ["sub/report.py"]  # scratch.py stays ignored


def test_a_file_named_explicitly_is_always_imported(project: Path, tmp_path: Path) -> None:
    flows, errors = load_flows([project / "helper.py"])
    assert flows == [] and not errors
    assert (tmp_path / "helper-ran").exists()


def test_two_flows_with_one_name_in_a_file_are_an_error(tmp_path: Path) -> None:
    path = tmp_path / "twice.py"
    path.write_text(FLOW.format(name="etl") + "\nwith Flow('etl') as again:\n    one()\n")
    flows, errors = load_flows([path])
    assert flows == []
    [error] = errors
    assert error.status == "error" and "defines flow 'etl' 2 times" in (error.error or "") and "lines 8, 11" in (error.error or "")


def test_cli_register_honours_ignore_and_reports_duplicates(project: Path, tmp_path: Path, sqlite_server,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from headwater.client import Client
    from headwater_cloud_api.cli.register import register

    monkeypatch.setenv("HEADWATER__CLOUD__API", sqlite_server.api)
    with Client(api=sqlite_server.api, api_key="") as api:
        api.project(name="P").create()
    result = CliRunner().invoke(register, ["--project", "P", "--path", str(project), "--ignore", "sub/"])
    assert result.exit_code == 0, result.output
    assert "etl: Registered" in result.output and "report" not in result.output
    (project / "dupes.py").write_text(FLOW.format(name="a") + "\nwith Flow('a') as b:\n    one()\n")
    result = CliRunner().invoke(register, ["--project", "P", "--path", str(project)])
    assert result.exit_code == 1 and "defines flow 'a' 2 times" in result.output
