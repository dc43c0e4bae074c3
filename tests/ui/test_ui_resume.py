"""Restart from failed and Resume from the run page, in Chromium, against a real server, agent and flow-run processes.

The run page shows a Resume button while a task waits (Paused); pressing it resumes the run and the page follows
it to Success without a reload. "Restart from failed" reruns only the failed task: the task that succeeded before
does not run again (each task appends its name to a file, read here).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.client import Client
from ui_helpers import AgentProcess, ServerProcess, cli, png_stats, run_state, screenshot, wait_finished, wait_for

pytestmark = pytest.mark.timeout(300)

FLOWS = '''
from pathlib import Path

from headwater import Flow, Parameter, task
from headwater.results import Result
from headwater.run_configs import LocalRun
from headwater.utilities.tasks import pause_task


def mark(workdir, name):
    with open(Path(workdir) / "ran.txt", "a") as f:
        f.write(name + "\\n")


@task
def prepare(workdir):
    mark(workdir, "prepare")
    return 21


@task
def approve(value, workdir):
    mark(workdir, "approve")
    pause_task("A person approves the numbers before they are published.")
    return value


@task
def publish(value, workdir):
    mark(workdir, "publish")
    if (Path(workdir) / "fail").exists():
        raise RuntimeError("the publishing target is down")
    return value * 2


with Flow("approval", result=Result(), run_config=LocalRun(labels=["ui-resume"])) as approval:
    workdir = Parameter("workdir")
    publish(approve(prepare(workdir), workdir), workdir)

with Flow("publishing", result=Result(), run_config=LocalRun(labels=["ui-resume"])) as publishing:
    workdir = Parameter("workdir")
    publish(prepare(workdir), workdir)
'''


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("ui-resume")
    home = work / "home"
    home.mkdir()
    env = {"HEADWATER_HOME": str(home), "HEADWATER__CLOUD__API_KEY": ""}
    server = ServerProcess(f"sqlite:///{work / 'api.db'}", work, env=env).start()
    env["HEADWATER__CLOUD__API"] = server.api
    agent: AgentProcess | None = None
    try:
        repo = work / "repo"
        (repo / "flows").mkdir(parents=True)
        (repo / "flows" / "resumable.py").write_text(FLOWS)
        cli("project", "create", "resume", cwd=repo, env=env)
        assert "2 registered" in cli("register", "--project", "resume", "--path", "flows/", cwd=repo, env=env).stdout
        agent = AgentProcess(server.api, work / "agent", ("ui-resume",), name="ui-resume-agent", env=env)
        client = Client(api=server.api, api_key="")
        yield {"server": server, "client": client, "agent": agent, "work": work}
        client.close()
    finally:
        if agent is not None:
            agent.stop()
        server.stop()


def _run(stack: dict[str, Any], flow: str, workdir: Path) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    return str(stack["client"].flow(name=flow, project="resume").create_run(parameters={"workdir": str(workdir)}).id)


def _ran(workdir: Path) -> list[str]:
    return (workdir / "ran.txt").read_text().split()


def test_resume_button_resumes_a_paused_run_and_the_page_follows_it(stack: dict[str, Any], page: Any, shots: Path,
                                                                     tmp_path: Path) -> None:
    from playwright.sync_api import expect

    client = stack["client"]
    work = tmp_path / "w"
    run_id = _run(stack, "approval", work)
    wait_for(lambda: run_state(client, run_id) == "Paused", 90, 0.2, f"the run to pause ({stack['agent'].output()[-2000:]})")
    page.goto(f"{stack['server'].url}/ui/flow-runs/{run_id}")
    expect(page.locator("#run-state")).to_contain_text("Paused")
    expect(page.locator("#run-message")).to_contain_text(f"headwater flow-run resume {run_id}")
    expect(page.locator("#resume-run")).to_be_visible()
    expect(page.locator("#restart-run")).to_have_count(0)  # not finished: nothing to restart
    path = screenshot(page, shots, "flow-run-paused")
    assert png_stats(page, path)[2] > 20  # not blank: many colors (png_stats leaves the page: open it again)
    page.goto(f"{stack['server'].url}/ui/flow-runs/{run_id}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#resume-run")
    assert wait_finished(client, run_id) == "Success", stack["agent"].output()[-3000:]
    expect(page.locator("#run-state")).to_contain_text("Success", timeout=15000)  # followed live, no reload needed
    expect(page.locator("#resume-run")).to_have_count(0)
    assert _ran(work) == ["prepare", "approve", "approve", "publish"]  # prepare was kept; approve resumed once
    history = [s["message"] or "" for s in client.flow_run(id=run_id).query("states { message }")["states"]]
    assert any("Resumed 1 paused task run(s)" in m for m in history), history


def test_restart_from_failed_in_the_browser_keeps_what_succeeded(stack: dict[str, Any], page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    client = stack["client"]
    work = tmp_path / "w"
    work.mkdir()
    (work / "fail").touch()
    run_id = _run(stack, "publishing", work)
    assert wait_finished(client, run_id) == "Failed"
    page.goto(f"{stack['server'].url}/ui/flow-runs/{run_id}")
    expect(page.locator("#restart-all")).to_be_visible()
    (work / "fail").unlink()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#restart-run")
    wait_for(lambda: len([s for s in client.flow_run(id=run_id).query("states { type }")["states"]
                          if s["type"] == "Running"]) == 2 and run_state(client, run_id) == "Success", 90, 0.3,
             "the restarted run to succeed")
    assert _ran(work) == ["prepare", "publish", "publish"]  # prepare's result was read back, not recomputed
    expect(page.locator("#run-state")).to_contain_text("Success", timeout=15000)
    expect(page.locator("#restart-run")).to_have_count(0)  # nothing failed any more


def test_a_paused_task_run_is_resumed_from_its_own_page(stack: dict[str, Any], page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    client = stack["client"]
    run_id = _run(stack, "approval", tmp_path / "w")
    wait_for(lambda: run_state(client, run_id) == "Paused", 90, 0.2, "the run to pause")
    paused = next(t for t in client.flow_run(id=run_id).task_runs() if t["state"]["type"] == "Paused")
    page.goto(f"{stack['server'].url}/ui/flow-runs/{run_id}")
    page.locator(f"#task-{paused['task_slug']} a").first.click()  # the task runs table links to the task run's page
    expect(page).to_have_url(f"{stack['server'].url}/ui/task-runs/{paused['id']}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#resume-task-run")
    expect(page.locator("#task-history")).to_contain_text("Resume")
    assert wait_finished(client, run_id) == "Success", stack["agent"].output()[-3000:]
