"""Issue 10 #16: the smaller defects — spec exit status and --param, no password on store errors, labels
given as a string, secret values redacted from what a run sends to the API."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from headwater.client import Client
from headwater_cloud_api.server.run import ServerThread

SPEC = """\
label: with_params
tasks:
  - key: hello
    task_type: print
    task_params: {msg: "$ctx.flow.data.greeting"}
"""


def test_an_invalid_spec_exits_2_and_a_failed_flow_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from headwater.cli.spec import EXIT_INVALID_SPEC, run_spec_file

    (tmp_path / "bad.yaml").write_text("tasks: [{key: a, task_type: teleport}]\n")
    assert run_spec_file(str(tmp_path / "bad.yaml")) == EXIT_INVALID_SPEC == 2
    assert run_spec_file(str(tmp_path / "missing.yaml")) == 2
    assert "Error" in capsys.readouterr().err


def test_spec_parameters_reach_the_flow(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from headwater.cli.spec import run_spec_file

    (tmp_path / "p.yaml").write_text(SPEC)
    assert run_spec_file(str(tmp_path / "p.yaml"), {"greeting": "hi from --param"}) == 0
    assert "hi from --param" in capsys.readouterr().out
    assert run_spec_file(str(tmp_path / "p.yaml"), {"greeting": float("nan")}) == 2


def test_headwater_run_passes_param_to_a_spec(tmp_path: Path) -> None:
    from headwater.cli.main import cli

    (tmp_path / "p.yaml").write_text(SPEC)
    result = CliRunner().invoke(cli, ["run", str(tmp_path / "p.yaml"), "--param", "greeting=hello there"])
    assert result.exit_code == 0, result.output
    assert "hello there" in result.output


def test_spec_store_errors_never_print_the_password() -> None:
    from headwater.cli.spec import spec

    result = CliRunner().invoke(spec, ["show", "flow:x", "--db", "postgresql+psycopg://alice:hunter2secret@127.0.0.1:1/db"])
    assert result.exit_code == 1
    assert "hunter2secret" not in result.output and "alice:***@" in result.output


def test_redact_url_handles_urls_and_messages() -> None:
    from headwater.spec.store import redact_url

    url = "postgresql://u:p%40ss@h/db"
    assert redact_url(url) == "postgresql://u:***@h/db"
    assert redact_url(url, "auth failed for p@ss and p%40ss") == "auth failed for *** and ***"
    assert redact_url("sqlite:///x.db") == "sqlite:///x.db"


def test_labels_given_as_a_string_are_one_label_or_an_error(sqlite_server: ServerThread) -> None:
    import attrs

    from headwater import Flow, task
    from headwater.run_configs import LocalRun

    @task
    def one() -> int:
        return 1

    with Flow("word", run_config=LocalRun(labels="staging")) as flow:  # type: ignore[arg-type]
        one()
    with Flow("letters", run_config=LocalRun(labels=["x"])) as split:
        one()
    split.run_config = attrs.evolve(split.run_config, labels=list("staging"))  # a run config that split the string
    with Client(api=sqlite_server.api, api_key="") as api:
        api.project(name="P").create()
        api.register(flow, project_name="P")
        assert api.flow(name="word", project="P").get("labels") == ["staging"]
        with pytest.raises(RuntimeError, match=r"look like a string split into letters; pass a list of labels"):
            api.register(split, project_name="P")


def test_secret_values_are_redacted_from_task_states_and_logs(sqlite_server: ServerThread, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from cloud_api_helpers import write_flow_file  # noqa: F401  (keeps the helper module importable here)
    from headwater_cloud_api.execution.runner import FlowRunExecution
    from headwater_cloud_api.registration import Registration, load_flows

    secret = "tok-9f8e7d6c5b4a"
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__API_TOKEN", secret)
    path = tmp_path / "leaky.py"
    path.write_text('''
from headwater import Flow, task
from headwater.plugins import Secret
import logging

@task
def leak():
    token = Secret("API_TOKEN").get()
    logging.getLogger("headwater.leak").info("connecting with %s", token)
    raise RuntimeError(f"cannot connect to https://user:{token}@api.example.com")

with Flow("leaky") as flow:
    leak()
''')
    with Client(api=sqlite_server.api, api_key="") as api:
        api.project(name="P").create()
        flows, errors = load_flows([path])
        assert not errors
        [result] = Registration(api).register_many(flows, "P")
        run = api.flow(id=result.id).create_run()
    assert FlowRunExecution(run.id, lambda: Client(api=sqlite_server.api, api_key="")).run() == 1
    with Client(api=sqlite_server.api, api_key="") as api:
        info = api.graphql('query($r: String!) { flow_run(id: $r) { state { message } task_runs { states { message } } '
                           'logs { message } } }', {"r": run.id})["flow_run"]
    texts = [info["state"]["message"] or ""] + [s["message"] or "" for t in info["task_runs"] for s in t["states"]]
    texts += [r["message"] for r in info["logs"]]
    import re

    assert any(re.search(r"cannot connect to https://user:\*{3,}@api\.example\.com", t) for t in texts), texts
    assert any(re.search(r"connecting with \*{3,}", t) for t in texts), texts
    assert not any(secret in t for t in texts)
