"""Fault-and-fuzz figures for the orchestration API: nothing lost, nobody in (issue 10).

    python benchmarks/faults.py [--fuzz-examples 25] [--runs 100] [--agents 3] [--log-mb 1,8,16]
                                [--postgres-url URL] [--skip-faults]

Real processes on 127.0.0.1, a SQLite server in a temporary directory (and PostgreSQL for the
fuzz when ``--postgres-url`` names an empty database):

* fuzz: GraphQL documents generated from the schema (hypothesis-graphql, as schemathesis does)
  for every query and mutation; counted: requests, HTTP 5xx, errors with code INTERNAL;
* faults, each with the states lost (a task run whose history misses Running or its final state,
  or a run that did not end as it should) and the tasks run twice (a task started again by a
  process whose attempt had been superseded, or a run started twice without a fault):
  - a runner partitioned from the API past its lease, then reconnected;
  - N runs through several agents, one agent SIGKILLed;
  - a run stored with NaN in a batch of normal runs;
  - a task printing M MB of log lines plus one M MB line (the largest M that loses nothing);
  - a run process started while the server is down.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from headwater.testing.processes import PYTHON, AgentProcess, ServerProcess, stop_process, wait_for
from headwater_cloud_api.testing import register_flows, run_state

FLOWS = '''
import os
import time

import headwater
from headwater import Flow, Parameter, task
from headwater.run_configs import LocalRun

MARKS = {marks!r}


@task
def step(previous, seconds):
    with open(MARKS, "a") as out:
        out.write(f"{{os.getpid()}} {{time.time():.3f}} {{headwater.context.get('flow_run_id')}} "
                  f"{{headwater.context.get('task_slug')}}\\n")
    time.sleep(seconds)
    return (previous or 0) + 1


@task(log_stdout=True)
def chatty(megabytes):
    line = "x" * 199
    for _ in range(int(megabytes * 1024 * 1024 / 200)):
        print(line)
    print("y" * int(megabytes * 1024 * 1024))
    return megabytes


with Flow("steps", run_config=LocalRun(labels=["bench"])) as steps:
    seconds = Parameter("seconds", default=0.2)
    value = None
    for i in range(30):
        value = step(value, seconds)

with Flow("quick", run_config=LocalRun(labels=["bench"])) as quick:
    step(Parameter("x", default=1), 0.0)

with Flow("chatty", run_config=LocalRun(labels=["bench"])) as chatty_flow:
    step(chatty(Parameter("megabytes", default=8)), 0.0)
'''

FINISHED = {"Success", "Failed", "Cancelled", "TimedOut"}


_wait = functools.partial(wait_for, error=TimeoutError)  # a benchmark that times out is not a failed assertion


def _agent(api: str, workdir: Path, name: str, max_runs: int = 4) -> AgentProcess:
    """An agent for the benchmark's ``bench`` label, polling every 0.2 s."""
    return AgentProcess(api, workdir, ("bench",), name, poll_interval=0.2, cancel_grace_period=None,
                        max_concurrent_runs=max_runs)


class Proxy:
    """A TCP forwarder that can be cut (a partition) and restored."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.sockets: set[socket.socket] = set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            self.sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while self.up.is_set():
                chunk = src.recv(65536)
                if not chunk:
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
        self.up.clear()
        for s in list(self.sockets):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.sockets.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()


# --- helpers over the API -----------------------------------------------------------------------


def _client(api: str) -> Any:
    from headwater.client import Client

    return Client(api=api, api_key="")


def _history(api: Any, run_id: str) -> dict[str, list[str]]:
    runs = api.graphql("query($r: String!) { task_runs(flow_run_id: $r) { task_slug states { type } } }", {"r": run_id})
    return {t["task_slug"]: [s["type"] for s in t["states"]] for t in runs["task_runs"]}


def _lost_states(api: Any, run_id: str, expected_tasks: int) -> int:
    """Task runs missing (fewer than expected) or whose history lacks Running or ends other than Success."""
    history = _history(api, run_id)
    bad = sum(1 for states in history.values() if "Running" not in states or states[-1] != "Success")
    return bad + max(0, expected_tasks - len(history))


def _finished(api: Any, run_id: str) -> bool:
    """The flow run is in a final state."""
    return run_state(api, run_id) in FINISHED


def _marks(path: Path) -> list[tuple[int, float, str, str]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        pid, ts, run, slug = line.split()
        out.append((int(pid), float(ts), run, slug))
    return out


def _logs(api: Any, run_id: str) -> list[str]:
    out: list[str] = []
    while True:
        page = api.graphql("query($r: String!, $o: Int!) { logs(flow_run_id: $r, limit: 1000, offset: $o) { message } }",
                           {"r": run_id, "o": len(out)})["logs"]
        out.extend(r["message"] for r in page)
        if len(page) < 1000:
            return out


# --- fuzz ---------------------------------------------------------------------------------------


def fuzz(examples: int, database_url: str) -> dict[str, int]:
    """``examples`` generated documents per query/mutation field against a fresh server on ``database_url``."""
    from graphql import build_client_schema, get_introspection_query
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from hypothesis_graphql import mutations, queries

    from headwater_cloud_api.server.run import ServerThread
    from headwater_cloud_api.server.schema import schema as hw_schema

    gql_schema = build_client_schema(hw_schema.execute_sync(get_introspection_query()).data)  # type: ignore[arg-type]
    counts = {"requests": 0, "5xx": 0, "internal": 0}
    custom = {"JSON": st.integers(0, 5).map(lambda i: __import__("graphql").IntValueNode(value=str(i))),
              "DateTime": st.sampled_from(["2030-01-01T00:00:00+00:00", "0001-01-01T00:00:00+14:00", "nope"]).map(
                  lambda s: __import__("graphql").StringValueNode(value=s))}
    with ServerThread(database_url=database_url, scheduler=False, reaper=False) as srv, httpx.Client(timeout=60) as http:
        fields = [*gql_schema.query_type.fields, *(gql_schema.mutation_type.fields if gql_schema.mutation_type else [])]
        for name in fields:
            is_mutation = gql_schema.mutation_type is not None and name in gql_schema.mutation_type.fields
            strategy = (mutations if is_mutation else queries)(gql_schema, fields=[name], custom_scalars=custom)

            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(strategy)
            def one(document: str) -> None:
                response = http.post(srv.api, json={"query": document})
                counts["requests"] += 1
                if response.status_code >= 500:
                    counts["5xx"] += 1
                    return
                errors = response.json().get("errors") or []
                counts["internal"] += sum((e.get("extensions") or {}).get("code") == "INTERNAL" for e in errors)

            one()
    return counts


# --- faults -------------------------------------------------------------------------------------


def partition(root: Path) -> dict[str, Any]:
    from headwater_cloud_api.server.run import ServerThread

    marks = root / "marks-partition.txt"
    flows = root / "flows-partition.py"
    flows.write_text(FLOWS.format(marks=str(marks)))
    with ServerThread(database_url=f"sqlite:///{root / 'partition.db'}", scheduler=False, heartbeat_lease=2.0,
                      max_resurrections=3, reaper_interval=0.2) as srv, _client(srv.api) as api:
        ids = register_flows(api, flows, "bench")
        proxy = Proxy(srv.port)
        agents = [_agent(f"http://127.0.0.1:{proxy.port}/graphql", root / "wd-cut", "cut-off")]
        try:
            run = api.flow(id=ids["steps"]).create_run(parameters={"seconds": 0.2})
            _wait(lambda: len(_marks(marks)) >= 5, 120, 0.2, "the first steps")
            zombie = _marks(marks)[0][0]
            proxy.cut()
            cut_at = time.time()
            _wait(lambda: api.flow_run(id=run.id).get("times_resurrected") >= 1, 60, 0.2, "the reschedule")
            agents.append(_agent(srv.api, root / "wd-healthy", "healthy"))
            _wait(lambda: _finished(api, run.id), 180, 0.2, "the rerun")
            proxy.up.set()
            time.sleep(3)
            late = sum(1 for m in _marks(marks) if m[0] == zombie and m[1] > cut_at + 2.5)
            lost = _lost_states(api, run.id, 31) + (run_state(api, run.id) != "Success")
            return {"fault": "runner partitioned past its lease", "injected": 1, "lost": lost, "twice": late}
        finally:
            proxy.close()
            for agent in agents:
                agent.stop(signal.SIGKILL)


def many_runs(root: Path, runs: int, agent_count: int, lease: float = 30.0) -> dict[str, Any]:
    """``runs`` short runs through ``agent_count`` agents, the first SIGKILLed; ``lease``: the server's heartbeat lease.

    With a lease shorter than a flow-run process needs to start on a loaded machine, the reaper
    reschedules live runs (their tasks then run twice; the first process is fenced off).
    """
    from headwater_cloud_api.server.run import ServerThread

    marks = root / "marks-many.txt"
    flows = root / "flows-many.py"
    flows.write_text(FLOWS.format(marks=str(marks)))
    with ServerThread(database_url=f"sqlite:///{root / 'many.db'}", scheduler=False, heartbeat_lease=lease,
                      max_resurrections=3, reaper_interval=0.5) as srv, _client(srv.api) as api:
        ids = register_flows(api, flows, "bench")
        agents = [_agent(srv.api, root / f"wd-many-{i}", f"a{i}") for i in range(agent_count)]
        try:
            created = [api.flow(id=ids["quick"]).create_run(parameters={"x": i}).id for i in range(runs)]
            _wait(lambda: len(_marks(marks)) >= max(1, runs // 4), 600, 0.2, "a quarter of the runs")
            agents[0].stop(signal.SIGKILL)

            def done() -> bool:
                rows = api.graphql("{ flow_runs(limit: 1000) { state { type } } }")["flow_runs"]
                return sum(r["state"]["type"] in FINISHED for r in rows) >= runs

            _wait(done, 3600, 1.0, "every run")
            lost = sum(run_state(api, r) != "Success" for r in created)
            lost += sum(_lost_states(api, r, 2) for r in created)
            starts: dict[tuple[str, str], int] = {}
            for _, _, run, slug in _marks(marks):
                starts[(run, slug)] = starts.get((run, slug), 0) + 1
            twice = sum(n > 1 for n in starts.values())
            resurrected = sum(1 for r in created if api.flow_run(id=r).get("times_resurrected"))
            return {"fault": f"{runs} runs, {agent_count} agents, one SIGKILL (lease {lease:g} s)", "injected": 1,
                    "lost": lost, "twice": twice, "note": f"{resurrected} run(s) rescheduled by the reaper"}
        finally:
            for agent in agents:
                agent.stop(signal.SIGKILL)


def nan_batch(root: Path) -> dict[str, Any]:
    from sqlalchemy import update

    from headwater_cloud_api.server.db.models import FlowRun
    from headwater_cloud_api.server.run import ServerThread

    flows = root / "flows-nan.py"
    flows.write_text(FLOWS.format(marks=str(root / "marks-nan.txt")))
    with ServerThread(database_url=f"sqlite:///{root / 'nan.db'}", scheduler=False) as srv, _client(srv.api) as api:
        ids = register_flows(api, flows, "bench")
        runs = [api.flow(id=ids["quick"]).create_run(parameters={"x": i}).id for i in range(6)]
        with srv.app.state.db.write() as s:
            s.execute(update(FlowRun).where(FlowRun.id == runs[2]).values(parameters={"x": float("nan")}))
        agent = _agent(srv.api, root / "wd-nan", "nan", max_runs=10)
        try:
            _wait(lambda: all(_finished(api, r) for r in runs), 300, 0.2, "the batch")
            lost = sum(run_state(api, r) != "Success" for i, r in enumerate(runs) if i != 2) + (run_state(api, runs[2]) != "Failed")
            return {"fault": "a stored NaN in a batch of 6 runs", "injected": 1, "lost": lost, "twice": 0}
        finally:
            agent.stop(signal.SIGKILL)


def chatty(root: Path, sizes: list[float]) -> tuple[dict[str, Any], float]:
    from headwater_cloud_api.server.run import ServerThread

    flows = root / "flows-chatty.py"
    flows.write_text(FLOWS.format(marks=str(root / "marks-chatty.txt")))
    largest, lost_total = 0.0, 0
    with ServerThread(database_url=f"sqlite:///{root / 'chatty.db'}", scheduler=False) as srv, _client(srv.api) as api:
        ids = register_flows(api, flows, "bench")
        agent = _agent(srv.api, root / "wd-chatty", "chatty")
        try:
            for mb in sizes:
                run = api.flow(id=ids["chatty"]).create_run(parameters={"megabytes": mb})
                _wait(functools.partial(_finished, api, run.id), 900, 1.0, f"the {mb} MB run")
                lost = _lost_states(api, run.id, 3) + (run_state(api, run.id) != "Success")
                lines = sum(1 for m in _logs(api, run.id) if m.startswith("xxxx"))
                lost += max(0, int(mb * 1024 * 1024 / 200) - lines)  # every printed line must arrive
                lost_total += lost
                if lost == 0:
                    largest = max(largest, mb)
        finally:
            agent.stop(signal.SIGKILL)
    return ({"fault": f"tasks printing {', '.join(f'{s:g}' for s in sizes)} MB", "injected": len(sizes), "lost": lost_total,
             "twice": 0}, largest)


def start_during_restart(root: Path) -> dict[str, Any]:
    workdir = root / "restart"
    server = ServerProcess(f"sqlite:///{workdir / 'api.db'}", workdir, lease=10.0, max_resurrections=3,
                           log_name="server.log").start()
    process = None
    flows = root / "flows-restart.py"
    flows.write_text(FLOWS.format(marks=str(root / "marks-restart.txt")))
    try:
        with _client(server.api) as api:
            ids = register_flows(api, flows, "bench")
            run = api.flow(id=ids["quick"]).create_run(parameters={"x": 1})
            server.stop()
            env = {**os.environ, "HEADWATER__CLOUD__API": server.api}
            process = subprocess.Popen([PYTHON, "-m", "headwater.cli", "execute", "flow-run", "--id", run.id], env=env,
                                       cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(3)
            server.start()
            process.wait(180)
            lost = (run_state(api, run.id) != "Success") + _lost_states(api, run.id, 2)
            return {"fault": "run process started while the server is down", "injected": 1, "lost": lost, "twice": 0}
    finally:
        stop_process(process, signal.SIGKILL)
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fuzz-examples", type=int, default=25, help="examples per GraphQL field and database")
    parser.add_argument("--runs", type=int, default=100, help="runs in the several-agents-one-SIGKILL fault")
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--lease", type=float, default=30.0, help="heartbeat lease (s) of the many-runs server")
    parser.add_argument("--log-mb", default="1,8,16", help="comma-separated log volumes (MB) for the chatty task")
    parser.add_argument("--postgres-url", default=None, help="an empty PostgreSQL database to fuzz too")
    parser.add_argument("--skip-faults", action="store_true")
    parser.add_argument("--skip-partition", action="store_true", help="(smoke tests) skip the slowest fault")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="headwater-faults-") as tmp:
        root = Path(tmp)
        os.environ["HEADWATER_HOME"] = str(root / "home")  # Local storage of registered flows, shared with the agents
        started = time.monotonic()
        databases = [("SQLite", f"sqlite:///{root / 'fuzz.db'}")] + ([("PostgreSQL", args.postgres_url)] if args.postgres_url else [])
        fuzz_rows = [(name, fuzz(args.fuzz_examples, url)) for name, url in databases]
        fault_rows: list[dict[str, Any]] = []
        largest = 0.0
        if not args.skip_faults:
            if not args.skip_partition:
                fault_rows.append(partition(root))
            fault_rows.append(many_runs(root, args.runs, args.agents, args.lease))
            fault_rows.append(nan_batch(root))
            row, largest = chatty(root, [float(s) for s in args.log_mb.split(",") if s])
            fault_rows.append(row)
            fault_rows.append(start_during_restart(root))
        elapsed = time.monotonic() - started

    print("\nGraphQL fuzz")
    print(f"{'database':<12} {'requests':>9} {'5xx':>5} {'INTERNAL':>9}")
    for name, counts in fuzz_rows:
        print(f"{name:<12} {counts['requests']:>9} {counts['5xx']:>5} {counts['internal']:>9}")
    if fault_rows:
        print("\nFaults injected (real processes)")
        print(f"{'fault':<48} {'injected':>8} {'states lost':>11} {'tasks run twice':>15}")
        for row in fault_rows:
            print(f"{row['fault']:<48} {row['injected']:>8} {row['lost']:>11} {row['twice']:>15}  {row.get('note', '')}")
        print(f"\nlargest log volume that loses nothing: {largest:g} MB (lines) + one {largest:g} MB line (truncated with a marker)")
    print(f"total time: {elapsed:.0f} s")
    bad = sum(c["5xx"] + c["internal"] for _, c in fuzz_rows) + sum(r["lost"] + r["twice"] for r in fault_rows)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
