"""The guide's scenario end to end: a directory of flows registered with the CLI, two agents (staging and
production) on one machine, label routing, schedules turned into runs by the server and executed, Local
storage read by agents started from other working directories. Server, agents and flow runs are OS processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from agent_helpers import AgentProcess, ServerProcess, wait_for
from headwater.client import Client

FLOW_FILE = '''
from datetime import timedelta

from headwater import Flow, task
from headwater.run_configs import LocalRun
from headwater.schedules import Schedule
from headwater.schedules.clocks import CronClock, IntervalClock


@task(log_stdout=True)
def hello(where):
    print(f"hello from {where}")


with Flow("staging-flow", run_config=LocalRun(labels=["staging"])) as staging_flow:
    hello("staging")

with Flow("nightly", run_config=LocalRun(labels=["production"]),
          schedule=Schedule(clocks=[CronClock("0 3 * * *")])) as nightly:
    hello("cron")

with Flow("every-minute", run_config=LocalRun(labels=["production"]),
          schedule=Schedule(clocks=[CronClock("* * * * *")])) as every_minute:
    hello("cron every minute")

with Flow("heartbeat-check", run_config=LocalRun(labels=["production"]),
          schedule=Schedule(clocks=[IntervalClock(timedelta(seconds=2))])) as frequent:
    hello("schedule")
'''


def _cli(*args: str, cwd: Path, api: str) -> str:
    result = subprocess.run([sys.executable, "-m", "headwater.cli", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "HEADWATER__CLOUD__API": api}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _runs(api: Client, flow_name: str) -> list[dict]:
    return api.graphql(
        "query($f: String!) { flow_runs(flow_name: $f, project: \"test\", limit: 100) { id auto_scheduled scheduled_start_time agent_id state { type } } }",
        {"f": flow_name},
    )["flow_runs"]


def test_two_agents_labels_schedules_and_local_storage(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "flows" / "test").mkdir(parents=True)
    (repo / "flows" / "test" / "test.py").write_text(FLOW_FILE)
    server = ServerProcess(f"sqlite:///{tmp_path / 'api.db'}", tmp_path, lease=5.0, scheduler=True, scheduler_interval=0.5).start()
    agents: list[AgentProcess] = []
    try:
        _cli("project", "create", "test", cwd=repo, api=server.api)
        out = _cli("register", "--project", "test", "--path", "flows/", cwd=repo, api=server.api)
        assert "4 registered, 0 skipped, 0 errors." in out
        elsewhere = tmp_path / "agents"  # not the registration directory: Local storage must still load
        staging = AgentProcess(server.api, elsewhere / "staging", ("staging",), "staging", poll_interval=0.2)
        production = AgentProcess(server.api, elsewhere / "production", ("production",), "production", poll_interval=0.2)
        agents += [staging, production]
        with Client(api=server.api, api_key="") as api:
            def registered() -> list[dict]:
                rows = api.graphql("{ agents { id name } }")["agents"]
                return rows if len(rows) == 2 else []

            ids = {a["name"]: a["id"] for a in wait_for(registered, 30, what="both agents registered")}
            run = api.flow(name="staging-flow", project="test").create_run()
            assert run.wait(60).name == "Success"
            assert run.get("agent_id") == ids["staging"]  # only the staging agent has the label
            assert "hello from staging" in [r["message"] for r in run.logs()]

            scheduled = wait_for(lambda: [r for r in _runs(api, "heartbeat-check") if r["state"]["type"] == "Success"],
                                 60, what="a scheduled run executed")
            assert scheduled[0]["auto_scheduled"] and scheduled[0]["agent_id"] == ids["production"]

            nightly = wait_for(lambda: _runs(api, "nightly"), 30, what="the cron schedule's runs")
            assert all(r["auto_scheduled"] and r["state"]["type"] == "Scheduled" for r in nightly)
            first = min(nightly, key=lambda r: r["scheduled_start_time"])
            when = datetime.fromisoformat(first["scheduled_start_time"])
            assert (when.hour, when.minute, when.second) == (3, 0, 0)
            explained = _cli("flow-run", "explain", first["id"], cwd=repo, api=server.api)
            assert "(not due yet)" in explained and "staging" in explained and "production" in explained
            e = api.graphql("query($id: String!) { explain_flow_run(id: $id) { reasons agents } }", {"id": first["id"]})["explain_flow_run"]
            assert "agents deploy it then, not before" in e["reasons"][0]
            assert {a["name"]: a["why"] for a in e["agents"]} == {"staging": "lacks label(s) production", "production": "can run it"}
            # A cron schedule's run is created by the server and executed by the agent at its time
            # (the next minute boundary: this waits up to a minute).
            cron_done = wait_for(
                lambda: [r for r in _runs(api, "every-minute") if r["state"]["type"] == "Success"],
                90, what="a cron-scheduled run executed",
            )
            assert cron_done[0]["auto_scheduled"] and cron_done[0]["agent_id"] == ids["production"]
            assert datetime.fromisoformat(cron_done[0]["scheduled_start_time"]).second == 0
            cron_logs = api.flow_run(id=cron_done[0]["id"]).logs()
            assert "hello from cron every minute" in [r["message"] for r in cron_logs]
        assert staging.stop() == 0 and production.stop() == 0
    finally:
        for agent in agents:
            if agent.process.poll() is None:
                agent.process.kill()
                agent.process.wait()
        # Agents leave running flow runs alone when they stop (by design), and the scheduler keeps
        # creating runs until the end: a flow-run process deployed just before the agents stopped
        # would outlive the server, retrying it for up to an hour. Let them finish, then end them.
        _stop_flow_run_processes(server.api)
        server.stop()


def _flow_run_processes(api: str) -> list[int]:
    """Pids of live `headwater execute flow-run` processes that talk to the API at ``api``."""
    pids = []
    needle = f"HEADWATER__CLOUD__API={api}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if b"execute\0flow-run" not in cmdline or needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
        except OSError:
            continue
        pids.append(int(entry.name))
    return pids


def _stop_flow_run_processes(api: str, grace: float = 15.0) -> None:
    deadline = time.monotonic() + grace
    while _flow_run_processes(api) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in _flow_run_processes(api):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
