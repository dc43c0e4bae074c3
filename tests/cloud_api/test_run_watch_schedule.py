"""``headwater run --name`` (through the API), ``headwater register --watch``, and the scheduler inside running servers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from agent_helpers import ServerProcess, wait_for
from cloud_api_helpers import write_flow_file
from headwater import Flow, task
from headwater.cli.main import cli, load_plugin_commands
from headwater.client import Client
from headwater.schedules import IntervalClock, Schedule
from headwater_cloud_api import registration
from headwater_cloud_api.cli.run import run_registered_flow
from headwater_cloud_api.server.run import ServerThread
from headwater_cloud_api.server.services.scheduler import MAX_SCHEDULED_RUNS

SQLITE_ONLY = pytest.mark.parametrize("shared_server", ["sqlite"], indirect=True)  # client-side behaviour: one database is enough


@pytest.fixture
def api(clean_server, tmp_path, monkeypatch):
    """A client of a clean server with project P and flow ``etl`` (parameters x=1, y) registered; the CLI points at it."""
    monkeypatch.setenv("HEADWATER__CLOUD__API", clean_server.api)
    load_plugin_commands()
    with Client(api=clean_server.api, api_key="") as client:
        client.project(name="P").create()
        write_flow_file(tmp_path / "etl.py")
        assert CliRunner().invoke(cli, ["register", "--project", "P", "--path", str(tmp_path / "etl.py")]).exit_code == 0
        yield client


def runs_of(client, flow="etl"):
    return client.graphql('query($f: String!) { flow_runs(flow_name: $f) { id labels parameters state { type } } }',
                          {"f": flow})["flow_runs"]


def drive(client, outcome: str) -> threading.Thread:
    """In a thread: wait for the run the CLI creates, then write its states and logs as a runner would."""

    def work() -> None:
        [run] = wait_for(lambda: runs_of(client), 30, 0.02, "the CLI to create a run")
        batch = client.state_batch()
        batch.flow_run(run["id"], "Submitted", version=1).flow_run(run["id"], "Running", version=2)
        batch.task_run(run["id"], "add-1", "Running", version=0)
        batch.send()
        client.graphql("mutation($l: [LogInput!]!) { write_logs(logs: $l) }",
                       {"l": [{"flow_run_id": run["id"], "message": f"log line {i}", "name": "runner"} for i in range(3)]})
        client.state_batch().task_run(run["id"], "add-1", outcome, version=1).flow_run(
            run["id"], outcome, version=3, message=f"the run is {outcome}").send()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@SQLITE_ONLY
def test_headwater_run_creates_a_run_of_the_registered_flow(api):
    result = CliRunner().invoke(cli, ["run", "--name", "etl", "--project", "P", "--param", "x=5", "--label", "gpu", "-l", "eu"])
    assert result.exit_code == 0, result.output
    [run] = runs_of(api)
    assert f"Created flow run {run['id']}" in result.output and f"headwater flow-run inspect {run['id']}" in result.output
    assert run["parameters"] == {"x": 5} and run["labels"] == ["eu", "gpu"] and run["state"] == {"type": "Scheduled"}

    missing = CliRunner().invoke(cli, ["run", "--name", "nope", "--project", "P"])
    assert missing.exit_code == 1 and "has no unarchived flow named 'nope'" in missing.output
    half = CliRunner().invoke(cli, ["run", "--name", "etl"])
    assert half.exit_code == 2 and "needs both --name FLOW and --project PROJECT" in half.output


@SQLITE_ONLY
@pytest.mark.parametrize(("outcome", "code"), [("Success", 0), ("Failed", 1)])
def test_headwater_run_watch_follows_states_and_logs_to_the_end(api, outcome, code):
    writer = drive(api, outcome)
    result = CliRunner().invoke(cli, ["run", "--name", "etl", "--project", "P", "--watch"])
    writer.join(10)
    assert result.exit_code == code, result.output
    lines = result.output.splitlines()
    states = [line.split("state    ")[1] for line in lines if "state    " in line]
    assert states == ["Scheduled", "Submitted", "Running", f"{outcome}: the run is {outcome}"]
    assert [line.split("| ")[1] for line in lines if "runner |" in line] == ["log line 0", "log line 1", "log line 2"]
    assert lines[-1].endswith(f"finished: {outcome} (the run is {outcome})")


@SQLITE_ONLY
def test_following_gives_up_after_the_timeout(api):
    output: list[str] = []
    with pytest.raises(TimeoutError, match="is still Scheduled after 0.2 s"):
        run_registered_flow("etl", "P", watch=True, client=api, poll_interval=0.05, timeout=0.2, echo=output.append)
    assert output[0].startswith("Created flow run") and any(line.endswith("state    Scheduled") for line in output[1:3])


@SQLITE_ONLY
def test_register_watch_registers_again_after_a_file_changes(api, tmp_path, monkeypatch):
    flow_file = tmp_path / "etl.py"
    checks: list[int] = []

    def sleep(seconds: float) -> None:  # between checks: change the code once, then leave it alone
        checks.append(1)
        if len(checks) == 2:
            write_flow_file(flow_file, y=100)

    monkeypatch.setattr(registration, "_sleep", sleep)
    result = CliRunner().invoke(cli, ["register", "--project", "P", "--path", str(flow_file), "--watch", "--max-checks", "4"])
    assert result.exit_code == 0, result.output
    assert len(checks) == 4
    assert result.output.count("Change detected") == 1
    assert "etl: Skipped (metadata unchanged)" in result.output  # the first pass: registered by the fixture
    assert "etl: Registered (version 2)" in result.output
    assert api.flow(name="etl", project="P").get("version") == 2


def test_watch_sources_sees_new_and_deleted_files_and_stops_when_told(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\n")
    calls: list[int] = []
    steps = iter([lambda: (tmp_path / "b.py").write_text("y = 2\n"), lambda: None, lambda: (tmp_path / "a.py").unlink()])

    def sleep(seconds: float) -> None:
        next(steps)()

    done = registration.watch_sources(lambda: calls.append(1), [tmp_path], sleep=sleep, stop=lambda: len(calls) >= 2)
    assert done == 2 and len(calls) == 2  # b.py appeared (1), nothing (-), a.py went away (2), then stop()


@task
def noop():
    return 1


def daily_flow() -> Flow:
    start = datetime(2020, 1, 1, tzinfo=UTC)
    with Flow("daily", schedule=Schedule(clocks=[IntervalClock(timedelta(days=1), start_date=start)])) as flow:
        noop()
    return flow


def scheduled_runs(client):
    runs = client.graphql('{ flow_runs(flow_name: "daily", limit: 100) { scheduled_start_time auto_scheduled state { type } } }')["flow_runs"]
    assert all(r["auto_scheduled"] and r["state"]["type"] == "Scheduled" for r in runs)
    return sorted(datetime.fromisoformat(r["scheduled_start_time"]) for r in runs)


def test_the_running_server_schedules_upcoming_runs_in_the_background(tmp_path):
    with ServerThread(database_url=f"sqlite:///{tmp_path / 'api.db'}", scheduler=True, scheduler_interval=0.05) as srv:
        with Client(api=srv.api, api_key="") as client:
            client.project(name="P").create()
            client.register(daily_flow(), project_name="P")
            times = wait_for(lambda: len(scheduled_runs(client)) == MAX_SCHEDULED_RUNS and scheduled_runs(client), 30, 0.05,
                             "the scheduler to create the upcoming runs")
    now = datetime.now(UTC)
    assert times[0] > now - timedelta(minutes=1) and times[0] - now <= timedelta(days=1)
    assert [t - times[0] for t in times] == [timedelta(days=d) for d in range(MAX_SCHEDULED_RUNS)]


@pytest.mark.postgres
def test_two_server_processes_on_one_postgres_database_never_duplicate_a_scheduled_run(postgres_server, tmp_path):
    url = postgres_server.create_database()
    servers = [ServerProcess(url, tmp_path, scheduler=True, scheduler_interval=0.05) for _ in range(2)]
    try:
        for server in servers:
            server.start()
        with Client(api=servers[0].api, api_key="") as first, Client(api=servers[1].api, api_key="") as second:
            first.project(name="P").create()
            first.register(daily_flow(), project_name="P")
            wait_for(lambda: len(scheduled_runs(second)) >= MAX_SCHEDULED_RUNS, 30, 0.05, "the schedulers to create the runs")
            # both schedulers keep passing over the flow (every 50 ms each); nothing may be added twice
            for _ in range(10):
                times = scheduled_runs(first)
                assert len(times) == len(set(times)) == MAX_SCHEDULED_RUNS
                threading.Event().wait(0.05)
    finally:
        for server in servers:
            server.stop()


def test_without_the_plugin_headwater_run_name_asks_to_install_it():
    import os
    import subprocess
    import sys

    env = {**os.environ, "HEADWATER_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-m", "headwater", "run", "--name", "etl", "--project", "P"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "`headwater run --name` comes from the plugin headwater-cloud-api" in done.stderr
    assert "pip install headwater-cloud-api" in done.stderr
