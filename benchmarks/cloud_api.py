"""Benchmarks of the orchestration API (headwater-cloud-api): registration and state writes.

    python benchmarks/cloud_api.py                         # SQLite in a temp dir
    python benchmarks/cloud_api.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
    python benchmarks/cloud_api.py --flows 100 --runs 200  # smaller

Prints: seconds to register N flows, and to register them again unchanged (target: 500 in
under 5 s); state writes per second from 4 concurrent clients moving each run through
Submitted -> Running -> Success with 10 task-run state writes (batched), with p50/p99 request
latency (targets: >= 1000 writes/s on SQLite, p99 < 100 ms).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--flows", type=int, default=500)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    os.environ["HEADWATER_HOME"] = tempfile.mkdtemp(prefix="hw-bench-")
    from headwater import Flow, Parameter, task
    from headwater.client import Client
    from headwater_cloud_api.registration import Registration
    from headwater_cloud_api.server.run import ServerThread

    url = args.database_url or f"sqlite:///{os.environ['HEADWATER_HOME']}/bench.db"

    @task
    def step(x: int, i: int) -> int:
        return x + i

    def flows() -> list[tuple[str, Flow]]:
        out = []
        for n in range(args.flows):
            with Flow(f"flow-{n}") as flow:
                step(Parameter("x", default=n), 1)
            out.append(("bench", flow))
        return out

    with ServerThread(database_url=url, scheduler=False) as server:
        client = Client(api=server.api, api_key="")
        client.project(name="bench").create()
        batch = flows()
        t0 = time.perf_counter()
        first = Registration(client).register_many(batch, "bench")
        t1 = time.perf_counter()
        again = Registration(client).register_many(flows(), "bench")
        t2 = time.perf_counter()
        assert all(r.status == "registered" for r in first) and all(r.status == "skipped" for r in again)
        print(f"register {args.flows} flows: {t1 - t0:.2f} s; again unchanged: {t2 - t1:.2f} s")

        flow = client.flow(name="flow-0", project="bench")
        latencies: list[float] = []
        lock = threading.Lock()
        writes = 0

        def worker(n_runs: int) -> None:
            nonlocal writes
            c = Client(api=server.api, api_key="")
            mine: list[float] = []
            count = 0

            def timed(query: str, variables: dict) -> dict:
                start = time.perf_counter()
                data = c.graphql(query, variables)
                mine.append(time.perf_counter() - start)
                return data

            flow_states = "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { status } }"
            task_states = "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { status } }"
            for _ in range(n_runs):
                run_id = timed("mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { id } }",
                               {"i": {"flow_id": flow_id}})["create_flow_run"]["id"]
                r = timed(flow_states, {"s": [{"flow_run_id": run_id, "version": 1, "state": {"type": "Submitted"}},
                                              {"flow_run_id": run_id, "version": 2, "state": {"type": "Running"}}]})
                t = timed(task_states, {"s": [{"flow_run_id": run_id, "task_slug": f"step-{i}", "state": {"type": "Success"}} for i in range(10)]})
                s = timed(flow_states, {"s": [{"flow_run_id": run_id, "version": 3, "state": {"type": "Success"}}]})
                assert all(x["status"] == "SUCCESS" for x in [*r["set_flow_run_states"], *t["set_task_run_states"], *s["set_flow_run_states"]])
                count += 13
            with lock:
                latencies.extend(mine)
                writes += count

        flow_id = flow.get("id")
        per_client = args.runs // args.clients
        threads = [threading.Thread(target=worker, args=(per_client,)) for _ in range(args.clients)]
        t0 = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - t0
        latencies.sort()
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(
            f"{per_client * args.clients} runs, {writes} state writes from {args.clients} clients in {elapsed:.2f} s: "
            f"{writes / elapsed:.0f} writes/s; request latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"p99 {p99 * 1000:.1f} ms ({server.app.state.db.dialect})"
        )


if __name__ == "__main__":
    main()
