"""Restart from failed and Paused/resume through the API, end to end: a real server, a real agent (an OS process) and
flow-run processes; runs are created, restarted and resumed through the CLI and the client.

Each task appends its name to a file in the test's work directory, so "which tasks ran in which attempt" is
read from what really ran, not from the API's answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent_helpers import AgentProcess, agent_stack, wait_for
from headwater.cli.main import cli, load_plugin_commands
from headwater.client import Client

pytestmark = pytest.mark.timeout(300)

FLOWS = '''
import time
from pathlib import Path

from headwater import Flow, Parameter, context, task, unmapped
from headwater.results import Result
from headwater.run_configs import LocalRun
from headwater.signals import PAUSE
from headwater.utilities.tasks import pause_task


def mark(workdir, name):
    with open(Path(workdir) / "ran.txt", "a") as f:
        f.write(name + "\\n")


@task
def extract(workdir):
    mark(workdir, "extract")
    return [1, 2, 3]


@task
def double(x, workdir):
    mark(workdir, f"double-{x}")
    if x == 2 and (Path(workdir) / "fail-child").exists():
        raise ValueError("child 2 fails")
    return 2 * x


@task
def flaky(xs, workdir):
    mark(workdir, "flaky")
    if (Path(workdir) / "fail").exists():
        raise RuntimeError("flaky fails while the marker file exists")
    return sum(xs)


@task
def report(total, workdir):
    mark(workdir, f"report-{total}")
    return f"total={total}"


@task
def approve(total, workdir):
    mark(workdir, "approve")
    pause_task("waiting for a person to approve")
    mark(workdir, "approved")
    return total


@task
def wait_a_bit(total, workdir):
    mark(workdir, "wait")
    if not context.get("resume"):
        raise PAUSE("paused for two seconds", start_time=time.time() + 2)
    return total


def build(name, result, tail=None):
    with Flow(name, result=result, run_config=LocalRun(labels=["resume"])) as flow:
        workdir = Parameter("workdir")
        total = flaky(double.map(extract(workdir), workdir=unmapped(workdir)), workdir)
        report(tail(total, workdir) if tail is not None else total, workdir)
    return flow


persisted = build("persisted", Result())
not_persisted = build("not-persisted", None)
for _task in not_persisted.tasks:  # opt out of the default checkpoint (Prefect 1's checkpoint=False)
    _task.checkpoint = False
approval = build("approval", Result(), approve)
timed_pause = build("timed-pause", Result(), wait_a_bit)
'''


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One server (scheduler on: it resumes timed-out pauses) and one agent for the module, with the flows registered."""
    with agent_stack(tmp_path_factory.mktemp("resume"), FLOWS, "resume", scheduler=True, scheduler_interval=0.5) as stack:
        yield stack


@pytest.fixture(autouse=True)
def _api(stack: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER__CLOUD__API", stack["server"].api)


def _state(client: Client, run_id: str) -> str:
    return str(client.flow_run(id=run_id).query("state { type }")["state"]["type"])


def _wait(client: Client, run_id: str, states: tuple[str, ...], agent: AgentProcess, timeout: float = 90) -> str:
    return str(wait_for(lambda: (s := _state(client, run_id)) in states and s, timeout, 0.2,
                        f"flow run {run_id} to become one of {states} (agent log:\n{agent.output()[-3000:]})"))


def _start(stack: dict[str, Any], flow: str, workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    run = stack["client"].flow(name=flow, project="resume").create_run(parameters={"workdir": str(workdir)})
    return str(run.id)


def _ran(workdir: Path) -> list[str]:
    path = workdir / "ran.txt"
    return path.read_text().split() if path.exists() else []


def _tasks(client: Client, run_id: str) -> dict[str, str]:
    out = {}
    for t in client.flow_run(id=run_id).task_runs():
        name = t["task_slug"].rsplit("-", 1)[0] + ("" if t["map_index"] < 0 else f"[{t['map_index']}]")
        out[name] = t["state"]["type"]
    return out


def _cli(*args: str) -> str:
    load_plugin_commands()
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _logs(client: Client, run_id: str) -> str:
    return "\n".join(r["message"] for r in client.flow_run(id=run_id).all_logs())


def test_restart_from_failed_reruns_only_the_failed_task_and_what_follows(stack: dict[str, Any], tmp_path: Path) -> None:
    client, agent = stack["client"], stack["agent"]
    work = tmp_path / "w"
    work.mkdir()
    (work / "fail").touch()
    run_id = _start(stack, "persisted", work)
    assert _wait(client, run_id, ("Failed", "Success"), agent) == "Failed"
    first = _ran(work)
    assert sorted(first) == ["double-1", "double-2", "double-3", "extract", "flaky"]
    (work / "fail").unlink()
    out = _cli("flow-run", "restart", run_id)
    assert f"Flow run {run_id} restarted from its failed task runs: Scheduled" in out
    assert _wait(client, run_id, ("Failed", "Success"), agent) == "Success", _logs(client, run_id)
    assert _ran(work)[len(first):] == ["flaky", "report-12"]  # extract and double's children were kept, with their values
    tasks = _tasks(client, run_id)
    assert tasks["flaky"] == "Success" and tasks["report"] == "Success" and tasks["double[1]"] == "Success", tasks
    logs = _logs(client, run_id)
    assert "Picking up the earlier attempt's task states: kept" in logs
    assert "flaky" in logs.split("running again:")[1]


def test_a_failed_mapped_child_reruns_alone(stack: dict[str, Any], tmp_path: Path) -> None:
    client, agent = stack["client"], stack["agent"]
    work = tmp_path / "w"
    work.mkdir()
    (work / "fail-child").touch()
    run_id = _start(stack, "persisted", work)
    assert _wait(client, run_id, ("Failed", "Success"), agent) == "Failed"
    first = _ran(work)
    assert "flaky" not in first  # TriggerFailed: did not run
    (work / "fail-child").unlink()
    client.flow_run(id=run_id).restart()
    assert _wait(client, run_id, ("Failed", "Success"), agent) == "Success"
    assert _ran(work)[len(first):] == ["double-2", "flaky", "report-12"]
    assert "1 child run(s) again (1)" in _logs(client, run_id)


def test_values_that_were_not_persisted_are_recomputed_and_the_log_says_why(stack: dict[str, Any], tmp_path: Path) -> None:
    client, agent = stack["client"], stack["agent"]
    work = tmp_path / "w"
    work.mkdir()
    (work / "fail").touch()
    run_id = _start(stack, "not-persisted", work)
    assert _wait(client, run_id, ("Failed", "Success"), agent) == "Failed"
    first = _ran(work)
    (work / "fail").unlink()
    client.flow_run(id=run_id).restart()
    assert _wait(client, run_id, ("Failed", "Success"), agent) == "Success"
    assert sorted(_ran(work)[len(first):]) == ["double-1", "double-2", "double-3", "extract", "flaky", "report-12"]
    logs = _logs(client, run_id)
    assert "recomputed because their results were not persisted" in logs
    assert "no result was persisted" in logs


def test_restart_all_runs_every_task_again(stack: dict[str, Any], tmp_path: Path) -> None:
    client, agent = stack["client"], stack["agent"]
    work = tmp_path / "w"
    run_id = _start(stack, "persisted", work)
    assert _wait(client, run_id, ("Failed", "Success"), agent) == "Success"
    first = _ran(work)
    out = _cli("flow-run", "restart", run_id, "--all")
    assert "restarted from the beginning" in out
    assert _wait(client, run_id, ("Failed", "Success"), agent) == "Success"
    assert sorted(_ran(work)[len(first):]) == sorted(first)


def test_a_paused_task_waits_for_resume_then_the_run_finishes(stack: dict[str, Any], tmp_path: Path) -> None:
    client, agent = stack["client"], stack["agent"]
    work = tmp_path / "w"
    run_id = _start(stack, "approval", work)
    assert _wait(client, run_id, ("Paused", "Failed", "Success"), agent) == "Paused"
    tasks = _tasks(client, run_id)
    assert tasks["approve"] == "Paused" and "report" not in tasks, tasks
    assert _ran(work)[-1] == "approve"
    message = client.flow_run(id=run_id).query("state { message }")["state"]["message"]
    assert f"headwater flow-run resume {run_id}" in message
    first = _ran(work)
    assert "resumed: Scheduled" in _cli("flow-run", "resume", run_id)
    assert _wait(client, run_id, ("Paused", "Failed", "Success"), agent) == "Success"
    assert _ran(work)[len(first):] == ["approve", "approved", "report-12"]  # only the resumed task and what follows
    history = [s["type"] for s in client.flow_run(id=run_id).query("states { type }")["states"]]
    assert history[history.index("Paused"):][:2] == ["Paused", "Scheduled"], history
    approve = next(t for t in client.flow_run(id=run_id).task_runs() if t["task_slug"].startswith("approve"))
    rows = client.graphql('query($id: String!) { task_runs(flow_run_id: $id) { task_slug states { type } } }', {"id": run_id})
    states = [s["type"] for s in next(r for r in rows["task_runs"] if r["task_slug"] == approve["task_slug"])["states"]]
    assert states[-4:] == ["Paused", "Resume", "Running", "Success"], states
    logs = "\n".join(r["message"] for r in client.flow_run(id=run_id).all_logs())
    assert "reaper reschedules" not in logs, logs  # a paused run's process exits on purpose: the agent says nothing


def test_a_pause_with_a_timeout_is_resumed_by_the_scheduler(stack: dict[str, Any], tmp_path: Path) -> None:
    client, agent = stack["client"], stack["agent"]
    work = tmp_path / "w"
    run_id = _start(stack, "timed-pause", work)
    assert _wait(client, run_id, ("Paused", "Failed", "Success"), agent) == "Paused"
    assert _wait(client, run_id, ("Failed", "Success"), agent) == "Success"  # nobody resumed it: its timeout did
    assert _ran(work).count("wait") == 2 and _ran(work)[-1] == "report-12"
    history = [s["message"] or "" for s in client.flow_run(id=run_id).query("states { message }")["states"]]
    assert any("Resumed 1 paused task run(s)" in m for m in history), history


def test_the_state_machine_guards_restart_and_resume(stack: dict[str, Any], tmp_path: Path) -> None:
    client, agent = stack["client"], stack["agent"]
    work = tmp_path / "w"
    run_id = _start(stack, "approval", work)
    assert _wait(client, run_id, ("Paused", "Failed", "Success"), agent) == "Paused"
    load_plugin_commands()
    result = CliRunner().invoke(cli, ["flow-run", "restart", run_id])
    assert result.exit_code != 0 and "not finished" in result.output and "resume" in result.output
    bad = client.graphql  # a paused task run cannot jump to Running without being resumed
    approve = next(t for t in client.flow_run(id=run_id).task_runs() if t["state"]["type"] == "Paused")
    with pytest.raises(Exception, match="Paused and cannot become Running"):
        bad('mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { status } }',
            {"s": [{"flow_run_id": run_id, "task_run_id": approve["id"], "state": {"type": "Running"}}]})
    client.flow_run(id=run_id).cancel()
    assert _state(client, run_id) == "Cancelled"
    with pytest.raises(Exception, match="finished state: there is nothing to resume"):
        client.flow_run(id=run_id).resume()
