"""Issue 10: real faults injected into real processes — nothing lost, nothing run twice by a zombie.

* a runner partitioned from the API past its lease (the run is rescheduled and run elsewhere);
* many runs, several agents, one agent SIGKILLed;
* a run with a stored NaN in a batch of normal runs;
* a task printing 8 MB;
* a run process started while the API is down (its first heartbeat is retried);
* classification of errors, batch splitting and bisection in the outbox (against a real server).
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_helpers import AgentProcess, ServerProcess, register_flows, run_state, wait_for
from headwater.client import Client
from headwater_cloud_api.server.run import ServerThread

FINISHED = {"Success", "Failed", "Cancelled", "TimedOut"}

FAULT_FLOWS = '''
import os
import time

import headwater
from headwater import Flow, Parameter, task
from headwater.run_configs import LocalRun

MARKS = {marks!r}


@task
def step(previous, seconds):
    with open(MARKS, "a") as out:  # which process started which task when: the test counts double starts
        out.write(f"{{os.getpid()}} {{time.time():.3f}} {{headwater.context.get('task_slug')}}\\n")
    time.sleep(seconds)
    return (previous or 0) + 1


@task(log_stdout=True)
def chatty(megabytes, line_chars):
    line = "x" * (line_chars - 1)
    for _ in range(int(megabytes * 1024 * 1024 / line_chars)):
        print(line)
    return megabytes


@task(log_stdout=True)
def one_huge_line(megabytes):
    print("y" * int(megabytes * 1024 * 1024))
    return megabytes


with Flow("steps", run_config=LocalRun(labels=["fault"])) as steps:
    seconds = Parameter("seconds", default=0.2)
    value = None
    for i in range(30):
        value = step(value, seconds)

with Flow("quick", run_config=LocalRun(labels=["fault"])) as quick:
    x = Parameter("x", default=1)
    step(x, 0.0)

with Flow("chatty", run_config=LocalRun(labels=["fault"])) as chatty_flow:
    mb = Parameter("megabytes", default=8)
    a = chatty(mb, 200)
    b = one_huge_line(mb)
    step(a, 0.0)
    step(b, 0.0)
'''


def write_fault_flows(path: Path, marks: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FAULT_FLOWS.format(marks=str(marks)))
    return path


def marks(path: Path) -> list[tuple[int, float, str]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        pid, ts, slug = line.split()
        out.append((int(pid), float(ts), slug))
    return out


def task_history(client: Client, run_id: str) -> dict[str, list[str]]:
    runs = client.graphql("query($r: String!) { task_runs(flow_run_id: $r) { task_slug map_index states { type } } }",
                          {"r": run_id})["task_runs"]
    return {t["task_slug"]: [s["type"] for s in t["states"]] for t in runs}


def all_log_messages(client: Client, run_id: str) -> list[str]:
    out: list[str] = []
    while True:
        page = client.graphql("query($r: String!, $o: Int!) { logs(flow_run_id: $r, limit: 1000, offset: $o) { message } }",
                              {"r": run_id, "o": len(out)})["logs"]
        out.extend(r["message"] for r in page)
        if len(page) < 1000:
            return out


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 that can be cut (every connection dropped, new ones refused) and restored: a partition."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.connected = threading.Event()
        self.connected.set()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.connected.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk or not self.connected.is_set():
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def cut(self) -> None:
        self.connected.clear()
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self._sockets.clear()

    def restore(self) -> None:
        self.connected.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()


@pytest.fixture
def agents(tmp_path: Path) -> Iterator[Any]:
    started: list[AgentProcess] = []

    def start(api_url: str, *labels: str, name: str = "agent", **kw: Any) -> AgentProcess:
        agent = AgentProcess(api_url, tmp_path / f"wd-{name}", labels, name, **kw)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        if agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait()


@pytest.fixture
def lease_server(tmp_path: Path) -> Iterator[ServerThread]:
    with ServerThread(database_url=f"sqlite:///{tmp_path / 'faults.db'}", scheduler=False, heartbeat_lease=2.0,
                      max_resurrections=3, reaper_interval=0.2) as srv:
        yield srv


@pytest.fixture
def api(lease_server: ServerThread) -> Iterator[Client]:
    with Client(api=lease_server.api, api_key="") as c:
        yield c


@pytest.fixture
def fault_flows(api: Client, tmp_path: Path) -> tuple[dict[str, str], Path]:
    mark_file = tmp_path / "marks.txt"
    return register_flows(api, write_fault_flows(tmp_path / "flows" / "faults.py", mark_file)), mark_file


# --- a partitioned runner ---------------------------------------------------------------------------


def test_a_partitioned_runner_starts_no_task_after_its_lease_and_its_late_writes_do_not_land(
        lease_server: ServerThread, api: Client, fault_flows: tuple[dict[str, str], Path], agents: Any) -> None:
    ids, mark_file = fault_flows
    proxy = TcpProxy(lease_server.port)
    try:
        agents(proxy.api, "fault", name="cut-off")
        run = api.flow(id=ids["steps"]).create_run(parameters={"seconds": 0.2})
        wait_for(lambda: len(marks(mark_file)) >= 5, 60, what="the first steps to run")
        zombie = marks(mark_file)[0][0]
        proxy.cut()
        cut_at = time.time()
        wait_for(lambda: api.flow_run(id=run.id).get("times_resurrected") == 1, 30, what="the reaper to reschedule")
        agents(lease_server.api, "fault", name="healthy")
        wait_for(lambda: run_state(api, run.id) in FINISHED, 120, what="the rerun to finish")
        proxy.restore()  # the zombie reaches the API again: its buffered writes are refused as SUPERSEDED
        time.sleep(3)
        assert run_state(api, run.id) == "Success"
        history = task_history(api, run.id)
        assert len(history) == 31 and all(states[-1] == "Success" for states in history.values()), history  # 30 steps + the parameter
        assert not any("Cancelled" in states for states in history.values())
        late = [m for m in marks(mark_file) if m[0] == zombie and m[1] > cut_at + 2.0 + 0.5]  # lease + one step in flight
        assert late == [], f"the zombie started {len(late)} task(s) after its lease expired"
        flow_states = [s.name for s in api.flow_run(id=run.id).states()]
        assert flow_states[-1] == "Success" and flow_states.count("Success") == 1
    finally:
        proxy.close()


# --- many runs, several agents, one SIGKILL ----------------------------------------------------------


@pytest.mark.slow
def test_many_runs_three_agents_one_sigkill_lose_nothing(lease_server: ServerThread, api: Client,
                                                         fault_flows: tuple[dict[str, str], Path], agents: Any) -> None:
    n = int(os.environ.get("HEADWATER_FAULT_RUNS", "30"))
    ids, mark_file = fault_flows
    started = [agents(lease_server.api, "fault", name=f"a{i}", max_concurrent_runs=4) for i in range(3)]
    runs = [api.flow(id=ids["quick"]).create_run(parameters={"x": i}) for i in range(n)]
    wait_for(lambda: len(marks(mark_file)) >= n // 4, 120, what="a quarter of the runs to run")
    started[0].process.send_signal(signal.SIGKILL)
    started[0].process.wait()

    def done() -> bool:
        states = api.graphql("{ flow_runs(limit: 1000) { state { type } } }")["flow_runs"]
        return sum(s["state"]["type"] in FINISHED for s in states) == n

    wait_for(done, 600, 0.5, what="every run to finish")
    for run in runs:
        assert run_state(api, run.id) == "Success"
        assert task_history(api, run.id)["step-1"][-1] == "Success"


# --- a stored NaN in a batch --------------------------------------------------------------------------


def test_a_run_with_nan_in_a_batch_of_normal_runs(lease_server: ServerThread, api: Client,
                                                  fault_flows: tuple[dict[str, str], Path], agents: Any) -> None:
    from sqlalchemy import update

    from headwater_cloud_api.client.transport import APIClientError
    from headwater_cloud_api.server.db.models import FlowRun

    ids, _ = fault_flows
    with pytest.raises((APIClientError, ValueError)):  # the client (httpx) or the server's door refuses NaN
        api.flow(id=ids["quick"]).create_run(parameters={"x": float("nan")})
    runs = [api.flow(id=ids["quick"]).create_run(parameters={"x": i}) for i in range(6)]
    with lease_server.app.state.db.write() as s:  # a row stored before the door existed
        s.execute(update(FlowRun).where(FlowRun.id == runs[3].id).values(parameters={"x": float("inf")}))
    agents(lease_server.api, "fault", name="batch", extra=("--max-concurrent-runs", "10"))
    wait_for(lambda: all(run_state(api, r.id) in FINISHED for r in runs), 120, what="the batch to finish")
    assert [run_state(api, r.id) for r in runs] == ["Success"] * 3 + ["Failed"] + ["Success"] * 2


# --- a chatty task ------------------------------------------------------------------------------------


def test_a_task_printing_8_mb_keeps_all_its_states_and_its_truncated_logs(
        lease_server: ServerThread, api: Client, fault_flows: tuple[dict[str, str], Path], agents: Any) -> None:
    ids, _ = fault_flows
    agents(lease_server.api, "fault", name="chatty")
    run = api.flow(id=ids["chatty"]).create_run(parameters={"megabytes": 8})
    wait_for(lambda: run_state(api, run.id) in FINISHED, 300, 0.5, what="the chatty run to finish")
    assert run_state(api, run.id) == "Success"
    history = task_history(api, run.id)
    assert {"chatty-1", "one_huge_line-1", "step-1", "step-2"} <= set(history), history
    assert all(states == ["Running", "Success"] for states in history.values()), history
    messages = all_log_messages(api, run.id)
    lines = sum(1 for m in messages if m.startswith("xxxx"))
    assert lines >= 8 * 1024 * 1024 // 200 - 5, lines  # every printed line arrived
    assert any("characters of this log message were truncated" in m and m.startswith("yyyy") for m in messages)


# --- a run process started while the API is down -------------------------------------------------------


def test_a_run_process_started_while_the_server_restarts_runs(tmp_path: Path) -> None:
    import subprocess

    server = ServerProcess(f"sqlite:///{tmp_path / 'restart.db'}", tmp_path, lease=10.0).start()
    process = None
    try:
        with Client(api=server.api, api_key="") as api:
            ids = register_flows(api, write_fault_flows(tmp_path / "flows" / "faults.py", tmp_path / "marks.txt"))
            run = api.flow(id=ids["quick"]).create_run(parameters={"x": 1})
            server.stop()
            env = {**os.environ, "HEADWATER__CLOUD__API": server.api, "PYTHONUNBUFFERED": "1"}
            process = subprocess.Popen([sys.executable, "-m", "headwater.cli", "execute", "flow-run", "--id", run.id],
                                       env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            time.sleep(3)  # it starts, cannot reach the API, and backs off
            assert process.poll() is None
            server.start()
            out, _ = process.communicate(timeout=120)
            assert process.returncode == 0, out.decode(errors="replace")
            assert run_state(api, run.id) == "Success"
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        server.stop()


def test_the_first_heartbeat_is_retried_like_every_send(sqlite_server: ServerThread, tmp_path: Path) -> None:
    """The API goes away exactly between reading the run and the first heartbeat (the probe's failure)."""
    from headwater_cloud_api.client.transport import APIConnectionError
    from headwater_cloud_api.execution.runner import FlowRunExecution

    with Client(api=sqlite_server.api, api_key="") as api:
        api.project(name="test").create()
        ids = register_flows(api, write_fault_flows(tmp_path / "flows" / "faults.py", tmp_path / "marks.txt"))
        run = api.flow(id=ids["quick"]).create_run(parameters={"x": 1})
    failures = {"left": 3}

    class FlakyClient:
        def __init__(self) -> None:
            self.inner = Client(api=sqlite_server.api, api_key="")

        def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
            if "flow_run_heartbeat" in query and failures["left"]:
                failures["left"] -= 1
                raise APIConnectionError("Cannot reach the headwater API (injected: the server is restarting)", "CONNECTION")
            return self.inner.graphql(query, variables)

    assert FlowRunExecution(run.id, FlakyClient).run() == 0
    assert failures["left"] == 0
    with Client(api=sqlite_server.api, api_key="") as api:
        assert run_state(api, run.id) == "Success"


# --- the outbox: classification, splitting, bisection ---------------------------------------------------


def test_errors_are_classified() -> None:
    from headwater_cloud_api.client.transport import APIClientError, APIConnectionError
    from headwater_cloud_api.execution.runner import classify

    assert classify(APIConnectionError("down", "CONNECTION")) == "unreachable"
    assert classify(APIClientError("The API at x answered HTTP 503.", "HTTP_ERROR")) == "unreachable"
    assert classify(APIClientError("non-JSON", "BAD_RESPONSE")) == "unreachable"
    assert classify(APIClientError("boom", "INTERNAL")) == "server"
    assert classify(APIClientError("The API at x answered HTTP 500.", "HTTP_ERROR")) == "server"
    for code in ("BAD_INPUT", "PAYLOAD_TOO_LARGE", "SUPERSEDED", "INVALID_TRANSITION", "NOT_FOUND"):
        assert classify(APIClientError("no", code)) == "rejected"


def test_server_errors_are_retried_a_bounded_number_of_times() -> None:
    from headwater_cloud_api.client.transport import APIClientError
    from headwater_cloud_api.execution.runner import MAX_SERVER_ERROR_RETRIES, retrying

    calls = []

    def fails() -> None:
        calls.append(1)
        raise APIClientError("Internal server error", "INTERNAL")

    with pytest.raises(APIClientError):
        retrying(fails, "test", backoff=(0.01, 0.02))
    assert len(calls) == MAX_SERVER_ERROR_RETRIES + 1
    calls.clear()

    def rejected() -> None:
        calls.append(1)
        raise APIClientError("bad", "BAD_INPUT")

    with pytest.raises(APIClientError):
        retrying(rejected, "test")
    assert len(calls) == 1


def test_truncate_log_keeps_head_tail_and_a_marker() -> None:
    from headwater_cloud_api.execution.runner import MAX_LOG_CHARS, truncate_log

    assert truncate_log("short") == "short"
    assert truncate_log("a\x00b") == "a\ufffdb"
    long = "h" * 1000 + "m" * (2 * MAX_LOG_CHARS) + "t" * 1000
    cut = truncate_log(long)
    assert len(cut) == MAX_LOG_CHARS and cut.startswith("h" * 1000) and cut.endswith("t" * 1000)
    assert f"{len(long) - MAX_LOG_CHARS} characters of this log message were truncated" in cut


def _run_for_outbox(api: Client, tmp_path: Path) -> str:
    api.project(name="test").create()
    ids = register_flows(api, write_fault_flows(tmp_path / "flows" / "faults.py", tmp_path / "marks.txt"))
    return api.flow(id=ids["quick"]).create_run().id


def test_outbox_splits_batches_to_fit_the_request_limit_and_loses_nothing(sqlite_client: Client, tmp_path: Path) -> None:
    from headwater_cloud_api.execution.runner import MAX_LOG_CHARS, Outbox

    run = _run_for_outbox(sqlite_client, tmp_path)
    outbox = Outbox(sqlite_client, run)
    for i in range(40):  # 40 x 256 KiB of logs (10 MiB, twice the server's 5 MiB limit) and 50 states in between
        outbox.log("INFO", "headwater.task", f"{i:03d}" + "z" * (3 * MAX_LOG_CHARS), time.time())
        outbox.task_state(f"t{i}", None, "Running", None)
        if i % 4 == 0:
            outbox.task_state(f"t{i}", None, "Success", "done\x00")
    outbox.flush()
    assert outbox.rejected == 0 and outbox.requests >= 3
    history = task_history(sqlite_client, run)
    assert len(history) == 40 and all(h[0] == "Running" for h in history.values())
    assert sum(h == ["Running", "Success"] for h in history.values()) == 10
    logs = sqlite_client.graphql("query($r: String!) { logs(flow_run_id: $r, limit: 1000) { message } }", {"r": run})["logs"]
    assert sorted(m["message"][:3] for m in logs) == [f"{i:03d}" for i in range(40)]


def test_outbox_drops_only_the_item_the_api_refuses(sqlite_client: Client, tmp_path: Path) -> None:
    from headwater_cloud_api.execution.runner import Outbox

    run = _run_for_outbox(sqlite_client, tmp_path)
    outbox = Outbox(sqlite_client, run)
    for i in range(20):
        outbox.task_state(f"t{i}", None, "Running" if i != 7 else "Finished", None)  # an abstract state: refused
        outbox.log("INFO" if i != 11 else "LOUD", "headwater.task", f"line {i}", time.time())  # an unknown level: refused
    outbox.flush()
    assert outbox.rejected == 2
    history = task_history(sqlite_client, run)
    assert sorted(history) == sorted(f"t{i}" for i in range(20) if i != 7)
    logs = sqlite_client.graphql("query($r: String!) { logs(flow_run_id: $r) { message } }", {"r": run})["logs"]
    assert len(logs) == 19


def test_outbox_stops_for_good_when_superseded(sqlite_client: Client, tmp_path: Path, sqlite_server: ServerThread) -> None:
    from headwater_cloud_api.execution.runner import Outbox
    from headwater_cloud_api.server.services.runs import restart_flow_run

    run = _run_for_outbox(sqlite_client, tmp_path)
    sqlite_client.graphql("mutation($r: String!) { set_flow_run_states(states: [{flow_run_id: $r, state: {type: \"Failed\"}}]) "
                          "{ status } }", {"r": run})
    with sqlite_server.app.state.db.write() as s:
        restart_flow_run(s, run)  # attempt 0 -> 1
    outbox = Outbox(sqlite_client, run, attempt=0)
    outbox.task_state("old", None, "Running", None)
    outbox.flush()
    assert outbox.lost.is_set() and outbox.pending() == 0
    assert task_history(sqlite_client, run) == {}
