"""Benchmarks of the orchestration API (headwater-cloud-api): registration and state writes.

    python benchmarks/cloud_api.py                          # SQLite in a temp dir
    python benchmarks/cloud_api.py --postgres               # a throwaway PostgreSQL 15 (tests/pg.py)
    python benchmarks/cloud_api.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
    python benchmarks/cloud_api.py --flows 100 --runs 200   # smaller
    python benchmarks/cloud_api.py --batch 1                # every request carries the writes of one run only

The server runs in its own process (uvicorn, as ``headwater server start`` does) and each client
in its own process, so the server's interpreter does not share a GIL with the load.

Prints:

1. seconds to register N flows, and to register them again unchanged (target: 500 in under 5 s);
2. state writes per second from C concurrent clients creating runs and moving each through
   Submitted -> Running -> Success with 10 task-run state writes (13 writes per run), with
   p50/p99 request latency (targets on SQLite: >= 1000 writes/s, p99 < 100 ms).

Each client handles its runs in groups of ``--batch`` (as an agent that deploys several runs at
once): one ``create_flow_run`` request per run, then three ``set_states`` requests per group —
every run's Submitted; every run's Running; every run's 10 task states and its Success. Every
write is version-checked (the version the writer last saw) and must succeed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SET_STATES = (
    "mutation($f: [FlowRunStateInput!], $t: [TaskRunStateInput!]) "
    "{ set_states(flow_runs: $f, task_runs: $t) { written stale { id version state } } }"
)
CREATE_RUN = "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { id } }"
TASKS_PER_RUN = 10
WRITES_PER_RUN = 3 + TASKS_PER_RUN


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(database_url: str, home: str) -> tuple[subprocess.Popen[bytes], str]:
    """The API server in its own process (uvicorn, scheduler off); returns it and its GraphQL address."""
    import httpx

    port = _free_port()
    code = (
        "from headwater_cloud_api.server.run import serve; "
        f"serve(port={port}, log_level='warning', database_url={database_url!r}, scheduler=False)"
    )
    args = [sys.executable, "-c", code]
    env = {**os.environ, "HEADWATER_HOME": home}
    proc = subprocess.Popen(args, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, f"http://127.0.0.1:{port}/graphql"
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"The API server did not start (exit code {proc.poll()}).")
        time.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process and its living children have used (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            total += sum(cpu_seconds(int(child)) for child in children.read_text().split())
        return total
    except (OSError, IndexError, ValueError):
        return 0.0


def client_process(api: str, flow_id: str, n_runs: int, batch: int, barrier: Any, out: Any) -> None:
    """One client: create ``n_runs`` runs and move them through their states, ``batch`` runs per request."""
    from headwater.client import Client

    client = Client(api=api, api_key="")
    latencies: list[float] = []

    def timed(query: str, variables: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        data = client.graphql(query, variables)
        latencies.append(time.perf_counter() - start)
        return data

    def states(flow_runs: list[dict[str, Any]], task_runs: list[dict[str, Any]] | None = None) -> None:
        result = timed(SET_STATES, {"f": flow_runs, "t": task_runs or []})["set_states"]
        assert result["written"] == len(flow_runs) + len(task_runs or []) and not result["stale"], result

    client.graphql("{ projects { name } }")  # connect before the clock starts
    barrier.wait()
    t0 = time.perf_counter()
    done = 0
    while done < n_runs:
        group = min(batch, n_runs - done)
        ids = [timed(CREATE_RUN, {"i": {"flow_id": flow_id}})["create_flow_run"]["id"] for _ in range(group)]
        states([{"flow_run_id": i, "version": 1, "state": {"type": "Submitted"}} for i in ids])
        states([{"flow_run_id": i, "version": 2, "state": {"type": "Running"}} for i in ids])
        states(
            [{"flow_run_id": i, "version": 3, "state": {"type": "Success"}} for i in ids],
            [{"flow_run_id": i, "task_slug": f"step-{n}", "version": 0, "state": {"type": "Success", "message": "ok"}}
             for i in ids for n in range(TASKS_PER_RUN)],
        )
        done += group
    out.put((t0, time.perf_counter(), n_runs * WRITES_PER_RUN, latencies))


def bench_registration(api: str, n_flows: int) -> None:
    from headwater import Flow, Parameter, task
    from headwater.client import Client
    from headwater_cloud_api.registration import Registration

    @task
    def step(x: int, i: int) -> int:
        return x + i

    def flows() -> list[tuple[str, Flow]]:
        out = []
        for n in range(n_flows):
            with Flow(f"flow-{n}") as flow:
                step(Parameter("x", default=n), 1)
            out.append(("bench", flow))
        return out

    client = Client(api=api, api_key="")
    batch = flows()
    t0 = time.perf_counter()
    first = Registration(client).register_many(batch, "bench")
    t1 = time.perf_counter()
    again = Registration(client).register_many(flows(), "bench")
    t2 = time.perf_counter()
    assert all(r.status == "registered" for r in first), [r for r in first if r.status != "registered"][:3]
    assert all(r.status == "skipped" for r in again)
    target = "PASS" if t2 - t1 < 5 else "FAIL"
    print(f"register {n_flows} flows: {t1 - t0:.2f} s; again unchanged: {t2 - t1:.2f} s  [{target}: unchanged < 5 s]")


def bench_state_writes(api: str, runs: int, clients: int, batch: int, dialect: str, server_pid: int) -> None:
    from headwater.client import Client

    flow_id = Client(api=api, api_key="").flow(name="flow-0", project="bench").get("id")
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(clients), ctx.Queue()
    per_client = runs // clients
    procs = [ctx.Process(target=client_process, args=(api, flow_id, per_client, batch, barrier, out)) for _ in range(clients)]
    for p in procs:
        p.start()
    cpu0 = cpu_seconds(server_pid)
    results = [out.get(timeout=900) for _ in procs]
    server_cpu = cpu_seconds(server_pid) - cpu0
    for p in procs:
        p.join()
    elapsed = max(r[1] for r in results) - min(r[0] for r in results)
    writes = sum(r[2] for r in results)
    latencies = sorted(x for r in results for x in r[3])
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    rate = writes / elapsed
    verdict = "PASS" if rate >= 1000 and p99 < 0.1 else "FAIL"
    print(
        f"{dialect}: {per_client * clients} runs, {writes} state writes, {len(latencies)} requests from {clients} client "
        f"processes (batch {batch}) in {elapsed:.2f} s: {rate:.0f} writes/s, {len(latencies) / elapsed:.0f} requests/s; "
        f"latency p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; "
        f"server CPU {server_cpu / len(latencies) * 1000:.1f} ms/request, {server_cpu / writes * 1e6:.0f} us/write"
        + (f"  [{verdict}: >= 1000 writes/s, p99 < 100 ms]" if dialect == "sqlite" else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    parser.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL 15 (as the test suite does)")
    parser.add_argument("--flows", type=int, default=500)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=10, help="runs a client moves together (per state-write request)")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="hw-bench-")
    os.environ["HEADWATER_HOME"] = home
    pg = None
    url = args.database_url or f"sqlite:///{home}/bench.db"
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from pg import PostgresServer

        pg = PostgresServer().start()
        url = pg.create_database("bench")
    server, api = start_server(url, home)
    try:
        from headwater.client import Client

        Client(api=api, api_key="").project(name="bench").create()
        bench_registration(api, args.flows)
        bench_state_writes(api, args.runs, args.clients, args.batch, url.split(":")[0].split("+")[0], server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
