"""Agent reliability figures: pickup latency, throughput through two agents, faults survived.

    python benchmarks/agents.py [--latency-runs 100] [--throughput-runs 500] [--skip-faults]

Everything runs as real processes on 127.0.0.1 against a SQLite server in a temporary
directory: the server (``headwater server start``), agents (``headwater agent start``, default
poll interval) and one ``headwater execute flow-run`` process per run.

* pickup latency: ``create_run`` -> Running (server timestamps: ``created`` -> ``start_time``),
  one run at a time, p50 / p99;
* throughput: N short runs through 2 agents; runs/min and that every run ends Success with
  exactly one Submitted and one Running state (started once);
* faults: server restarted mid-run, agent SIGKILL (agent and its flow-run process: rescheduled),
  flow-run SIGKILL until the resurrection limit (Failed); lost states = task runs of the run whose
  history misses Running or its final state.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

FLOWS = '''
import time
from headwater import Flow, Parameter, task
from headwater.run_configs import LocalRun

@task
def add(x, y):
    return x + y

@task
def step(previous, seconds):
    time.sleep(seconds)
    return (previous or 0) + 1

with Flow("short", run_config=LocalRun(labels=["bench"])) as short:
    add(Parameter("x", default=1), 2)

with Flow("steps", run_config=LocalRun(labels=["bench"])) as steps:
    seconds = Parameter("seconds", default=0.1)
    value = None
    for i in range(20):
        value = step(value, seconds)
'''


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, workdir: Path, lease: float, max_resurrections: int) -> None:
        self.workdir, self.lease, self.max_resurrections = workdir, lease, max_resurrections
        self.port = _port()
        self.db = f"sqlite:///{workdir / 'bench.db'}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "headwater.cli", "server", "start", "--port", str(self.port), "--database-url", self.db,
             "--no-scheduler", "--log-level", "warning", "--heartbeat-lease", str(self.lease),
             "--max-resurrections", str(self.max_resurrections)],
            stdout=subprocess.DEVNULL, stderr=open(self.workdir / "server.log", "ab"), cwd=self.workdir)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(15)
            self.proc = None


def _agent(api: str, workdir: Path, name: str) -> subprocess.Popen[bytes]:
    (workdir / name).mkdir(exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "headwater.cli", "agent", "start", "--label", "bench", "--name", name,
                             "--max-concurrent-runs", "4"],
                            cwd=workdir / name, env={**os.environ, "HEADWATER__CLOUD__API": api},
                            stdout=open(workdir / f"{name}.log", "ab"), stderr=subprocess.STDOUT)


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _history(client, run_id: str) -> tuple[list[str], dict[str, list[str]]]:
    data = client.graphql("query($r: String!) { flow_run(id: $r) { states { type } task_runs { task_slug states { type } } } }",
                          {"r": run_id})["flow_run"]
    return [s["type"] for s in data["states"]], {t["task_slug"]: [s["type"] for s in t["states"]] for t in data["task_runs"]}


def _lost_states(tasks: dict[str, list[str]], final: str, expected_tasks: int) -> int:
    """Task runs missing from the API, or whose history lacks Running or ends in a non-final state."""
    lost = max(0, expected_tasks - len(tasks))
    for kinds in tasks.values():
        if final == "Success" and (kinds[-1] != "Success" or "Running" not in kinds):
            lost += 1
    return lost


def _pid(client, run_id: str, attempt: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [int(m.group(1)) for r in client.flow_run(id=run_id).logs()
                if (m := re.search(r"\(pid (\d+)\)", r["message"]))]
        states = {t["state"]["type"] for t in client.flow_run(id=run_id).task_runs()}
        if len(pids) >= attempt and "Running" in states:
            return pids[-1]
        time.sleep(0.05)
    raise TimeoutError(run_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--throughput-runs", type=int, default=500)
    parser.add_argument("--skip-faults", action="store_true")
    args = parser.parse_args()
    from headwater.client import Client
    from headwater_cloud_api.registration import Registration, load_flows

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["HEADWATER_HOME"] = str(work / "home")
        (work / "flows.py").write_text(FLOWS)
        server = Server(work, lease=4.0, max_resurrections=1)
        server.start()
        agents: list[subprocess.Popen[bytes]] = []
        try:
            client = Client(api=server.api, api_key="")
            client.project(name="bench").create()
            flows, _ = load_flows([work / "flows.py"])
            ids = {r.name: r.id for r in Registration(client).register_many(flows, "bench")}
            agents.append(_agent(server.api, work, "a1"))
            time.sleep(1.0)

            latencies = []
            for _ in range(args.latency_runs):
                run = client.flow(id=ids["short"]).create_run()
                run.wait(60, poll_interval=0.05)
                info = run.query("created start_time")
                latencies.append((datetime.fromisoformat(info["start_time"]) - datetime.fromisoformat(info["created"])).total_seconds())
            print(f"pickup latency over {len(latencies)} runs (poll interval 0.5 s): p50 {_pct(latencies, 0.5):.2f} s, "
                  f"p99 {_pct(latencies, 0.99):.2f} s, max {max(latencies):.2f} s")

            agents.append(_agent(server.api, work, "a2"))
            time.sleep(1.0)
            t0 = time.monotonic()
            runs = [client.flow(id=ids["short"]).create_run().id for _ in range(args.throughput_runs)]
            while True:
                left = client.graphql("{ flow_runs(states: [\"Scheduled\", \"Submitted\", \"Running\"], limit: 1) { id } }")["flow_runs"]
                if not left:
                    break
                time.sleep(0.2)
            elapsed = time.monotonic() - t0
            once = ok = 0
            for rid in runs:
                states, _ = _history(client, rid)
                ok += states[-1] == "Success"
                once += states.count("Submitted") == 1 and states.count("Running") == 1
            print(f"throughput: {len(runs)} runs through 2 agents in {elapsed:.1f} s = {len(runs) / elapsed * 60:.0f} runs/min; "
                  f"Success {ok}/{len(runs)}, started exactly once {once}/{len(runs)}")

            if not args.skip_faults:
                # server restarted mid-run
                run = client.flow(id=ids["steps"]).create_run(parameters={"seconds": 0.1})
                _pid(client, run.id, 1)
                server.stop()
                time.sleep(1.5)
                server.start()
                final = run.wait(120).name
                states, tasks = _history(client, run.id)
                print(f"fault server restart mid-run: final {final}, lost states {_lost_states(tasks, final, 21)}")

                # agent SIGKILL together with its flow-run process (machine gone): rescheduled and rerun by the other agent
                run = client.flow(id=ids["steps"]).create_run(parameters={"seconds": 0.2})
                pid = _pid(client, run.id, 1)
                owner = client.flow_run(id=run.id).get("agent_id")
                names = {a["id"]: a["name"] for a in client.graphql("{ agents { id name } }")["agents"]}
                victim = agents[0] if names.get(owner) == "a1" else agents[1]
                victim.kill()
                os.kill(pid, signal.SIGKILL)
                final = run.wait(120).name
                states, tasks = _history(client, run.id)
                print(f"fault agent SIGKILL: final {final} after {states.count('Submitted')} deploys "
                      f"(times_resurrected {run.get('times_resurrected')}), lost states {_lost_states(tasks, final, 21)}")

                # flow-run SIGKILL until the resurrection limit
                run = client.flow(id=ids["steps"]).create_run(parameters={"seconds": 5})
                for attempt in (1, 2):
                    os.kill(_pid(client, run.id, attempt), signal.SIGKILL)
                final = run.wait(120)
                states, tasks = _history(client, run.id)
                missing = sum(1 for kinds in tasks.values() if kinds and kinds[-1] not in ("Failed", "Success", "Cancelled"))
                print(f"fault flow-run SIGKILL x2 (max_resurrections=1): final {final.name} "
                      f"({states.count('Scheduled') - 1} reschedule), task runs left unfinished {missing}; "
                      f"message: {final.message[:120]}")
        finally:
            for a in agents:
                if a.poll() is None:
                    a.terminate()
                    a.wait(15)
            server.stop()


if __name__ == "__main__":
    main()
