"""What users see when an orchestrated run goes wrong: tracebacks in every place they look, retries,
`--watch` explaining a waiting run, agents backing off on a refused key, one-line driver hints.

Real components: the API server (uvicorn on 127.0.0.1), `headwater agent start` as an OS process,
flow-run processes it deploys, the `headwater` CLI.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent_helpers import AgentProcess, free_port, register_flows, run_state, wait_for
from headwater.cli.main import cli, load_plugin_commands
from headwater.client import Client
from headwater_cloud_api.cli.run import follow_flow_run, run_registered_flow
from headwater_cloud_api.server.run import ServerThread

FAILING = '''
from datetime import timedelta

import headwater
from headwater import Flow, task
from headwater.run_configs import LocalRun


@task
def boom(x):
    raise ValueError("x was " + str(x))


@task(max_retries=1, retry_delay=timedelta(seconds=0.1))
def flaky():
    if headwater.context.get("task_run_count") == 1:
        raise ConnectionError("not yet")
    return "ok"


@task
def after(y):
    return y


@task
def double(x):
    return 2 * x


with Flow("failing", run_config=LocalRun(labels=["obs"])) as failing:
    after(boom(41))
    flaky()
    double.map([1, 2])
'''


class StatusCounter:
    """ASGI middleware in front of the real app: records (monotonic time, HTTP status) of every response."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.responses: list[tuple[float, int]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.responses.append((time.monotonic(), int(message["status"])))
            await send(message)

        await self.app(scope, receive, counting_send)

    def count(self, status: int, since: float = 0.0) -> int:
        return sum(1 for at, code in list(self.responses) if code == status and at >= since)


@pytest.fixture
def counted_server(tmp_path: Path) -> Iterator[tuple[ServerThread, StatusCounter, str]]:
    url = f"sqlite:///{tmp_path / 'obs.db'}"
    srv = ServerThread(database_url=url, scheduler=False)
    counter = StatusCounter(srv.app)
    srv.config.app = counter
    srv.start()
    try:
        yield srv, counter, url
    finally:
        srv.stop()


@pytest.fixture
def agent_procs() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        if agent.process.poll() is None:
            agent.process.kill()
        agent.process.wait(15)


def _cli(*args: str, code: int = 0) -> str:
    load_plugin_commands()
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_a_failing_task_traceback_is_in_logs_inspect_watch_and_the_agent_log(
    counted_server: tuple[ServerThread, StatusCounter, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    agent_procs: list[AgentProcess], _headwater_home: Path,
) -> None:
    srv, _, _ = counted_server
    monkeypatch.setenv("HEADWATER__CLOUD__API", srv.api)
    flows = tmp_path / "flows" / "failing.py"
    flows.parent.mkdir()
    flows.write_text(FAILING)
    with Client(api=srv.api, api_key="") as api:
        register_flows(api, flows, project="obs")
        agent_procs.append(AgentProcess(srv.api, tmp_path / "agent", labels=("obs",), name="obs-agent"))
        output: list[str] = []
        code = run_registered_flow("failing", "obs", watch=True, client=api, poll_interval=0.2, timeout=120,
                                   echo=output.append)
        assert code == 1, "\n".join(output)
        run_id = output[0].split()[3]
        text = "\n".join(output)

        # --watch: the traceback and the retry, in time order, the final state after the run's last log line
        assert "headwater.boom | Task 'boom': exception encountered during task execution\nTraceback" in text
        assert "ValueError: x was 41" in text
        assert "headwater.flaky | Task 'flaky': attempt 1 of 2 failed (ConnectionError('not yet')); retrying at" in text
        stamped = [line for line in output if line[:4].isdigit()]
        assert [line[:24] for line in stamped] == sorted(line[:24] for line in stamped)
        last_log = max(i for i, line in enumerate(output) if " | " in line)
        final_state = max(i for i, line in enumerate(output) if " state    Failed" in line)
        assert final_state > last_log
        assert output[-1] == (f"Flow run {run_id} finished: Failed (boom-1 raised ValueError('x was 41'); "
                              "1 downstream task did not run)")

        # flow-run logs: the same lines in the one format
        logs = _cli("flow-run", "logs", run_id)
        assert "Task 'boom': exception encountered during task execution\nTraceback (most recent call last):" in logs
        assert '.py", line 11, in boom' in logs and "ValueError: x was 41" in logs  # the stored script's path
        assert "Task 'flaky': attempt 1 of 2 failed" in logs
        first = logs.splitlines()[0]
        assert first[10] == "T" and first[23] == "Z", first  # 2026-12-01T21:35:58.123Z

        # inspect: names as written, no internal constant task, map index only for mapped children, the traceback
        inspect = _cli("flow-run", "inspect", run_id)
        rows = {line.split("│")[1].strip(): line for line in inspect.split("Task runs", 1)[1].splitlines()
                if line.startswith("│")}
        assert set(rows) == {"boom", "after", "flaky", "double", "double[0]", "double[1]"}, inspect
        assert "Constant" not in inspect
        assert inspect.count("Traceback (most recent call last):") == 1  # flaky recovered: only boom's is shown
        assert "Error during execution of task: ValueError('x was 41')" in rows["boom"]
        assert "Traceback (most recent call last):" in inspect and "ValueError: x was 41" in inspect
        with_constants = _cli("flow-run", "inspect", run_id, "--all-tasks")
        assert "Constant[list]" in with_constants

        # the agent's per-run log file holds the flow-run process's output, traceback included
        log_file = _headwater_home / "agent-logs" / f"{run_id}.log"
        wait_for(lambda: "ValueError: x was 41" in log_file.read_text(errors="replace"), 30, what="the agent's run log")
        assert "Task 'boom': exception encountered during task execution" in log_file.read_text()
        assert run_state(api, run_id) == "Failed"


def test_watch_explains_a_run_that_no_agent_can_take(counted_server: tuple[ServerThread, StatusCounter, str],
                                                      tmp_path: Path) -> None:
    srv, _, _ = counted_server
    flows = tmp_path / "failing.py"
    flows.write_text(FAILING)
    with Client(api=srv.api, api_key="") as api:
        register_flows(api, flows, project="obs")
        output: list[str] = []
        with pytest.raises(TimeoutError, match="is still Scheduled after 10"):
            run_registered_flow("failing", "obs", labels=["obs"], watch=True, client=api, poll_interval=0.2,
                                timeout=10, echo=output.append)
    text = "\n".join(output)
    assert "is still Scheduled after 5 s:" in text
    assert "No agent has been seen in the last 60 s: start one with `headwater agent start --label obs`." in text
    assert text.count("No agent has been seen") == 1  # said once while the answer stays the same
    assert "(still watching" in text


def test_follow_prints_new_states_and_logs_of_one_poll_in_time_order() -> None:
    class Api:
        calls = 0

        def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
            self.calls += 1
            return {
                "flow_run": {"states": [
                    {"type": "Running", "message": None, "timestamp": "2026-01-01T00:00:01+00:00", "version": 2},
                    {"type": "Success", "message": "done", "timestamp": "2026-01-01T00:00:05+00:00", "version": 3},
                ]},
                "log_page": {"logs": [
                    {"timestamp": "2026-01-01T00:00:02.5+00:00", "level": "INFO", "name": "headwater.t", "message": "a"},
                    {"timestamp": "2026-01-01T00:00:04+00:00", "level": "INFO", "name": "headwater.t", "message": "b"},
                ], "end_cursor": "l2", "has_more": False},
            }

    output: list[str] = []
    final = follow_flow_run(Api(), "r", echo=output.append)
    assert final.name == "Success"
    assert output == [
        "2026-01-01T00:00:01.000Z state    Running",
        "2026-01-01T00:00:02.500Z INFO    headwater.t | a",
        "2026-01-01T00:00:04.000Z INFO    headwater.t | b",
        "2026-01-01T00:00:05.000Z state    Success: done",
    ]


def test_agents_back_off_on_401_and_log_each_error_once_per_step(
    counted_server: tuple[ServerThread, StatusCounter, str], tmp_path: Path, agent_procs: list[AgentProcess],
) -> None:
    srv, counter, url = counted_server
    agent = AgentProcess(srv.api, tmp_path / "agent", labels=("obs",), name="locked-out", poll_interval=0.1,
                         extra=("--max-backoff", "30"))
    agent_procs.append(agent)
    wait_for(lambda: counter.count(200) >= 5, 60, what="the agent to poll")
    key = subprocess.run([sys.executable, "-m", "headwater", "server", "api-key", "create", "first", "--database-url", url],
                         capture_output=True, text=True, timeout=60)
    assert key.returncode == 0, key.stderr
    assert "Warning: agents and flow runs already running without a key are refused from now on" in key.stderr
    assert "Create keys before starting agents." in key.stderr
    first = wait_for(lambda: next((at for at, code in list(counter.responses) if code == 401), None), 30,
                     what="the first 401")
    time.sleep(10)
    refused = counter.count(401, since=first)
    # without backoff: 1 request per 0.1 s poll = ~100; with it: 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 6.4 s apart
    assert 3 <= refused <= 8, refused
    assert agent.stop(signal.SIGTERM, timeout=40) == 0
    out = agent.output()
    warnings = [line for line in out.splitlines() if "refused the request (HTTP 401)" in line and "retrying in" in line]
    assert len(warnings) <= refused + 1, out  # once per step (the stop may add one refused request)
    assert 3 <= len(warnings) <= 8, out
    assert all("Agents need an API key once the server has one" in line for line in warnings)
    delays = [float(line.split("retrying in ")[1].split(" s")[0]) for line in warnings]
    assert delays == sorted(delays) and delays[0] < delays[-1]  # exponential, not every poll
    assert "could not unregister: the API refuses this agent's key" in out
    assert "Traceback" not in out


def test_an_agent_started_with_a_refused_key_stops_with_one_line(
    counted_server: tuple[ServerThread, StatusCounter, str], tmp_path: Path,
) -> None:
    srv, _, url = counted_server
    subprocess.run([sys.executable, "-m", "headwater", "server", "api-key", "create", "k", "--database-url", url],
                   capture_output=True, text=True, timeout=60, check=True)
    result = subprocess.run([sys.executable, "-m", "headwater", "agent", "start", "--name", "nokey"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "HEADWATER__CLOUD__API": srv.api})
    assert result.returncode == 1
    assert result.stderr.startswith("Error: Agent nokey cannot register: ")
    assert "HTTP 401" in result.stderr and "HEADWATER__CLOUD__API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_psycopg_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker" / "psycopg"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text(textwrap.dedent('''
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")
    '''))
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    result = subprocess.run([sys.executable, "-m", "headwater", "server", "start", "--port", "1",
                             "--database-url", "postgresql+psycopg://user:pw@127.0.0.1:1/db"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == ("Error: The database URL postgresql+psycopg://... needs the Python package psycopg, "
                                     "which is not installed: pip install 'headwater-cloud-api[postgres]'")
    assert "headwater API on" not in result.stdout  # nothing claims to serve before the check


def test_the_server_logs_in_the_one_headwater_format(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "headwater", "server", "start", "--port", str(port), "--no-scheduler",
                                 "--database-url", f"sqlite:///{tmp_path / 'fmt.db'}"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Uvicorn running on" in log.read_text(errors="replace") or proc.poll() is not None, 60,
                 what="uvicorn's startup line")
    finally:
        proc.terminate()
        proc.wait(30)
    lines = [line for line in log.read_text().splitlines() if "uvicorn" in line]
    assert any("Uvicorn running on" in line for line in lines), log.read_text()
    assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR)\s+uvicorn\.error \| ", line)
               for line in lines), lines


def test_the_orchestrated_demo_shows_the_retry_in_order_without_escape_codes() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "BIN": str(Path(sys.executable).parent)}
    env.pop("HEADWATER_HOME", None)
    result = subprocess.run(["bash", str(root / "examples" / "orchestrated_demo.sh")], cwd=root, env=env,
                            capture_output=True, text=True, timeout=180)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "\x1b[" not in out
    lines = out.splitlines()
    retry = next(i for i, line in enumerate(lines) if "Task 'check_source': attempt 1 of 3 failed" in line)
    loaded = next(i for i, line in enumerate(lines) if "loaded 8 values (source ok), total 204" in line)
    final = next(i for i, line in enumerate(lines) if line.endswith("state    Success: All reference tasks succeeded."))
    assert retry < loaded < final
