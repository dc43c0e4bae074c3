"""Agents, flow-run execution, cancellation and the reaper, with real processes on 127.0.0.1.

The server runs in this process (uvicorn thread) unless a test needs to restart it; every agent
and every flow run is its own OS process (``headwater agent start`` / ``headwater execute``).
"""

from __future__ import annotations

import os
import re
import signal
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent_helpers import AgentProcess, ServerProcess, register_flows, run_state, wait_for, write_flows
from headwater.client import Client
from headwater_cloud_api.server.run import ServerThread

FINISHED = {"Success", "Failed", "Cancelled"}


def _states(client: Client, run_id: str) -> list[str]:
    return [s.name for s in client.flow_run(id=run_id).states()]


def _task_states(client: Client, run_id: str) -> dict[str, str]:
    return {t["task_slug"]: t["state"]["type"] for t in client.flow_run(id=run_id).task_runs()}


def _flow_run_pid(client: Client, run_id: str) -> int:
    """The flow-run process's pid, from the agent's deploy log of this run."""
    def find() -> int | None:
        for record in client.flow_run(id=run_id).logs():
            m = re.search(r"deployed flow run \S+ with \w+ \(pid (\d+)\)", record["message"])
            if m:
                return int(m.group(1))
        return None
    return wait_for(find, 30, what=f"the deploy log of {run_id}")


@pytest.fixture
def lease_server(tmp_path: Path):
    """A server with a short heartbeat lease (3 s) and one resurrection, so lost runs are handled within seconds."""
    with ServerThread(database_url=f"sqlite:///{tmp_path / 'api.db'}", scheduler=False, heartbeat_lease=3.0,
                      max_resurrections=1, reaper_interval=0.2) as srv:
        yield srv


@pytest.fixture
def api(lease_server):
    with Client(api=lease_server.api, api_key="") as c:
        yield c


@pytest.fixture
def flows(api, tmp_path):
    return register_flows(api, write_flows(tmp_path / "flows" / "test" / "test.py", ("staging",)))


@pytest.fixture
def agents(tmp_path):
    started: list[AgentProcess] = []

    def start(api_url: str, *labels: str, name: str = "agent", **kw) -> AgentProcess:
        agent = AgentProcess(api_url, tmp_path / f"wd-{name}", labels, name, **kw)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait()


# --- claims and labels (API level, SQLite and PostgreSQL) ------------------------------------------


def _flow_id(client: Client, labels: list[str] | None = None) -> str:
    from headwater import Flow, task

    @task
    def one():
        return 1

    with Flow(f"f{len(labels or [])}") as flow:
        one()
    client.project(name="P").create()
    return client.register(flow, project_name="P")


def test_three_agents_claim_200_runs_and_none_is_claimed_twice(client):
    flow_id = _flow_id(client)
    run_ids = {client.flow(id=flow_id).create_run().id for _ in range(200)}
    claimed: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def agent_loop(name: str) -> None:
        try:
            with Client(api=client.api, api_key="") as own:
                agent = own.agent(name=name, accepts_unlabeled=True)
                agent.register()
                mine = claimed.setdefault(name, [])
                while True:
                    got = agent.claim(7)
                    if not got:
                        return
                    mine.extend(r["id"] for r in got)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=agent_loop, args=(f"agent{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    every = [rid for ids in claimed.values() for rid in ids]
    assert len(every) == len(set(every)) == 200 and set(every) == run_ids
    sample = sorted(run_ids)[:20]
    for rid in sample:
        assert _states(client, rid).count("Submitted") == 1
    assert client.graphql("{ flow_runs(states: [\"Scheduled\"]) { id } }")["flow_runs"] == []


def test_labels_are_a_subset_and_unlabeled_runs_need_an_agent_that_accepts_them(client):
    flow_id = _flow_id(client)
    flow = client.flow(id=flow_id)
    staging = flow.create_run(labels=["staging"]).id
    both = flow.create_run(labels=["staging", "gpu"]).id
    unlabeled = flow.create_run(labels=[]).id
    later = flow.create_run(labels=["staging"], scheduled_start_time=datetime.now(UTC) + timedelta(hours=1)).id

    only_staging = client.agent(name="s", labels=["staging"])  # labelled: refuses unlabeled runs by default
    only_staging.register()
    explained = client.graphql("query($id: String!) { explain_flow_run(id: $id) { reasons agents } }", {"id": both})["explain_flow_run"]
    assert explained["agents"][0]["why"] == "lacks label(s) gpu" and "labels gpu, staging" in explained["reasons"][0]
    assert [r["id"] for r in only_staging.claim(10)] == [staging]  # not `both` (lacks gpu), not unlabeled, not `later`

    gpu = client.agent(name="g", labels=["staging", "gpu", "extra"])
    gpu.register()
    assert [r["id"] for r in gpu.claim(10)] == [both]
    anything = client.agent(name="u")  # no labels: accepts unlabeled runs
    anything.register()
    assert [r["id"] for r in anything.claim(10)] == [unlabeled]
    reasons = client.graphql("query($id: String!) { explain_flow_run(id: $id) { reasons due } }", {"id": later})["explain_flow_run"]
    assert reasons["due"] is False and "agents deploy it then, not before" in reasons["reasons"][0]
    assert client.flow_run(id=staging).cancel().name == "Cancelling"  # claimed (Submitted): the runner must stop
    assert client.flow_run(id=later).cancel().name == "Cancelled"  # scheduled: at once


# --- execution ---------------------------------------------------------------------------------------


def test_agent_runs_flows_reports_states_and_logs_and_respects_start_times(api, flows, agents, lease_server, tmp_path):
    agent = agents(lease_server.api, "staging", name="staging-agent")
    start_at = datetime.now(UTC) + timedelta(seconds=1.5)
    later = api.flow(id=flows["quick"]).create_run(parameters={"x": 10}, scheduled_start_time=start_at)
    now = api.flow(id=flows["quick"]).create_run(parameters={"x": 5})
    assert now.wait(60).name == "Success"
    assert _states(api, now.id) == ["Scheduled", "Submitted", "Running", "Success"]
    assert _task_states(api, now.id) == {"x": "Success", "add-1": "Success", "shout-1": "Success"}
    shout = next(t for t in api.flow_run(id=now.id).task_runs() if t["task_slug"] == "shout-1")
    history = api.graphql("query($r: String!) { task_runs(flow_run_id: $r) { task_slug states { type } } }", {"r": now.id})
    assert [s["type"] for t in history["task_runs"] if t["task_slug"] == "shout-1" for s in t["states"]] == ["Running", "Success"]
    messages = [r["message"] for r in now.logs()]
    assert any("deployed flow run" in m for m in messages) and "value is 7" in messages  # the task's stdout
    assert later.wait(60).name == "Success"
    started = datetime.fromisoformat(later.get("start_time"))
    assert started >= start_at  # not deployed before its scheduled start time
    assert shout["state"]["type"] == "Success"
    assert agent.process.poll() is None


def test_deploy_and_load_failures_end_failed_with_the_reason(api, flows, agents, lease_server, tmp_path):
    serialized = api.flow(id=flows["quick"]).get("serialized")
    broken = dict(serialized, name="no-env", run_config={"type": "NoSuchRunConfig", "labels": ["staging"]})
    flow_id = api.graphql("mutation($i: CreateFlowInput!) { create_flow(input: $i) { id } }",
                          {"i": {"serialized": broken, "project_name": "test", "labels": ["staging"]}})["create_flow"]["id"]
    bad_env = api.flow(id=flow_id).create_run()
    for stored in (tmp_path / "home" / "flows").rglob("*"):  # the Local storage's files (scripts, issue 10 #12) are gone
        if "sleepy" in str(stored) and stored.is_file():
            stored.unlink()
    no_code = api.flow(id=flows["sleepy"]).create_run()
    agents(lease_server.api, "staging", name="a")
    assert bad_env.wait(60).name == "Failed"
    assert "could not deploy" in bad_env.state.message and "NoSuchRunConfig" in bad_env.state.message
    assert no_code.wait(60).name == "Failed"
    assert "cannot load flow 'sleepy'" in no_code.state.message and "does not exist on this machine" in no_code.state.message
    assert "Submitted" in _states(api, no_code.id)


# --- cancellation -------------------------------------------------------------------------------------


def test_cancel_running_run_stops_starting_tasks(api, flows, agents, lease_server):
    agents(lease_server.api, "staging", name="a", cancel_grace_period=30.0)
    run = api.flow(id=flows["steps"]).create_run(parameters={"seconds": 0.3})
    wait_for(lambda: sum(s == "Success" for s in _task_states(api, run.id).values()) >= 3, 60, what="three steps done")
    assert run.cancel().name == "Cancelling"
    assert run.wait(60).name == "Cancelled"
    tasks = _task_states(api, run.id)
    assert "Running" not in tasks.values()
    assert "Cancelled" in tasks.values() and list(tasks.values()).count("Success") < 31  # later steps never started
    assert _states(api, run.id)[-2:] == ["Cancelling", "Cancelled"]


def test_cancel_kills_a_run_that_does_not_stop_within_the_grace_period(api, flows, agents, lease_server):
    agents(lease_server.api, "staging", name="a", cancel_grace_period=1.0)
    run = api.flow(id=flows["sleepy"]).create_run(parameters={"seconds": 120})
    wait_for(lambda: _task_states(api, run.id).get("nap-1") == "Running", 60, what="the nap task to run")
    pid = _flow_run_pid(api, run.id)
    run.cancel()
    assert run.wait(60).name == "Cancelled"
    assert "killed the flow-run process" in run.state.message
    assert _task_states(api, run.id)["nap-1"] == "Cancelled"
    wait_for(lambda: not _alive(pid), 10, what="the flow-run process to be gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


# --- lost runs ------------------------------------------------------------------------------------------


def test_sigkill_of_the_flow_run_process_reschedules_then_fails(api, flows, agents, lease_server):
    agents(lease_server.api, "staging", name="a")
    run = api.flow(id=flows["sleepy"]).create_run(parameters={"seconds": 120})
    killed = set()
    for attempt in (1, 2):
        wait_for(lambda attempt=attempt: len(_deploys(api, run.id)) == attempt and _task_states(api, run.id).get("nap-1") == "Running"
                 and run_state(api, run.id) == "Running", 60, what=f"attempt {attempt} running its task")
        pid = _deploys(api, run.id)[-1]
        os.kill(pid, signal.SIGKILL)
        killed.add(pid)
        if attempt == 1:
            wait_for(lambda: run.get("times_resurrected") == 1, 30, what="the reaper to reschedule")
    assert run.wait(60).name == "Failed"
    message = run.state.message
    assert f"Flow run {run.id} of flow 'sleepy'" in message and "no heartbeat" in message and "max_resurrections=1" in message
    states = _states(api, run.id)
    assert states == ["Scheduled", "Submitted", "Running", "Scheduled", "Submitted", "Running", "Failed"]
    assert _task_states(api, run.id)["nap-1"] == "Failed"


def _deploys(client: Client, run_id: str) -> list[int]:
    return [int(m.group(1)) for r in client.flow_run(id=run_id).logs()
            if (m := re.search(r"deployed flow run \S+ with \w+ \(pid (\d+)\)", r["message"]))]


def test_sigkill_of_the_agent(api, flows, agents, lease_server):
    """Agent alone killed: its flow run (own process) finishes. Agent and its flow run killed (machine gone): rescheduled."""
    first = agents(lease_server.api, "staging", name="first")
    survives = api.flow(id=flows["steps"]).create_run(parameters={"seconds": 0.15})
    lost = api.flow(id=flows["sleepy"]).create_run(parameters={"seconds": 2})
    wait_for(lambda: run_state(api, survives.id) == "Running" and _task_states(api, lost.id).get("nap-1") == "Running",
             60, what="both running")
    lost_pid = _deploys(api, lost.id)[0]
    first.process.kill()
    os.kill(lost_pid, signal.SIGKILL)
    first.process.wait()
    assert survives.wait(60).name == "Success"
    assert _states(api, survives.id) == ["Scheduled", "Submitted", "Running", "Success"]
    wait_for(lambda: lost.get("times_resurrected") == 1, 30, what="the reaper to reschedule")
    agents(lease_server.api, "staging", name="second")
    assert lost.wait(60).name == "Success"
    assert _states(api, lost.id) == ["Scheduled", "Submitted", "Running", "Scheduled", "Submitted", "Running", "Success"]


def test_sigterm_stops_the_agent_cleanly_and_its_run_continues(api, flows, agents, lease_server):
    agent = agents(lease_server.api, "staging", name="polite")
    run = api.flow(id=flows["sleepy"]).create_run(parameters={"seconds": 2})
    wait_for(lambda: run_state(api, run.id) == "Running", 60, what="the run to start")
    assert api.graphql("{ agents { name } }")["agents"] == [{"name": "polite"}]
    assert agent.stop(signal.SIGTERM) == 0
    assert "stopped; 1 flow run(s) still running on their own" in agent.output()
    assert api.graphql("{ agents { name } }")["agents"] == []  # unregistered
    assert run.wait(60).name == "Success"


def test_runner_buffers_while_the_server_restarts(tmp_path, agents):
    server = ServerProcess(f"sqlite:///{tmp_path / 'restart.db'}", tmp_path, lease=5.0).start()
    try:
        with Client(api=server.api, api_key="") as api:
            ids = register_flows(api, write_flows(tmp_path / "flows" / "test.py", ("staging",)))
            agents(server.api, "staging", name="a")
            run = api.flow(id=ids["steps"]).create_run(parameters={"seconds": 0.1})
            wait_for(lambda: run_state(api, run.id) == "Running", 60, what="the run to start")
            server.stop()
            threading.Event().wait(1.5)  # the runner keeps running tasks and buffers their states
            server.start()
            assert run.wait(60).name == "Success"
            history = api.graphql("query($r: String!) { task_runs(flow_run_id: $r) { task_slug states { type } } }", {"r": run.id})
            steps = [t for t in history["task_runs"] if t["task_slug"].startswith("step")]
            assert len(steps) == 30
            for t in steps:  # nothing lost: every step has its Running and its Success
                kinds = [s["type"] for s in t["states"]]
                assert kinds[0] == "Running" and kinds[-1] == "Success" and set(kinds) == {"Running", "Success"}, (t, history)
    finally:
        server.stop()
