"""Web UI figures: run-page render time at 100 / 1 000 / 10 000 task runs, bytes per page, state change to browser.

    python benchmarks/ui.py [--sizes 100,1000,10000] [--repeat 30] [--no-browser]

Everything runs against a real server (uvicorn on 127.0.0.1, SQLite in a temporary directory).
The flows are registered metadata (twelve tasks, one of them mapped over N-11 children) and the
task runs are written through the same state-write service the runners use, so the pages read
exactly what a real run leaves.

* render: the server's time to build the run page (database reads, DAG layout, Gantt
  aggregation, template), measured in-process, p50 / p99 over ``--repeat`` cold renders (the
  finished-run cache emptied each time), the p50 served from that cache, and the HTTP GET of the
  page (end to end through uvicorn, one keep-alive connection) p50;
* bytes: the size of each page's HTML (dashboard, flows, flow, run page, one live update, one
  page of logs);
* state change to browser: Chromium (Playwright) has the run page open; a task-run state is
  written through the service; the time until the page shows it (live polling, no reload), p50 / max;
* restart from failed: a finished run of a real flow (ten steps, a map of N-12 children with some
  failed, a collect that did not run) is restarted; the figures are what its next attempt's process
  spends before the engine starts: reading the task runs and their histories from the API (GraphQL,
  pages of 1 000: one query per task run for its history), the same read as one query per page
  (``services.runs.resume_records``, which a ``resume_states`` field serves), deciding what to keep
  (reading the kept children's values back), and how many task runs are kept and run again;
* GraphiQL: bytes sent for ``GET /graphql`` and its vendored assets (gzipped).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _flow(n_children: int) -> dict[str, Any]:
    tasks = [{"slug": f"step-{i}", "name": f"step{i}", "mapped": False} for i in range(10)]
    tasks += [{"slug": "fan-out", "name": "fan_out", "mapped": True}, {"slug": "collect", "name": "collect", "mapped": False}]
    edges = [{"upstream": f"step-{i}", "downstream": f"step-{i + 1}", "key": "x", "mapped": False} for i in range(9)]
    edges += [{"upstream": "step-9", "downstream": "fan-out", "key": "x", "mapped": True},
              {"upstream": "fan-out", "downstream": "collect", "key": "values", "mapped": False}]
    return {"name": f"bench-{n_children}", "tasks": tasks, "edges": edges, "parameters": [{"name": "n", "default": n_children, "required": False}]}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _make_run(db: Any, total: int) -> str:
    """A finished run with ``total`` task runs (11 tasks + a map of total-11 children), written through the services."""
    from headwater_cloud_api.server.services import runs as run_service
    from headwater_cloud_api.server.services.flows import create_flow
    from headwater_cloud_api.server.services.projects import create_project

    children = max(total - 12, 1)
    with db.write() as s:
        try:
            create_project(s, "bench")
        except Exception:  # noqa: BLE001 - it exists already
            pass
    with db.write() as s:
        flow, _ = create_flow(s, serialized=_flow(children), project_name="bench")
        run = run_service.create_flow_run(s, flow_id=flow.id)
        run_service.set_flow_run_states(s, [run_service.StateWrite(run.id, "Submitted"), run_service.StateWrite(run.id, "Running")])
    writes: list[Any] = []
    for i in range(10):
        writes += [run_service.TaskStateWrite(run.id, "Running", task_slug=f"step-{i}"),
                   run_service.TaskStateWrite(run.id, "Success", task_slug=f"step-{i}")]
    writes += [run_service.TaskStateWrite(run.id, "Mapped", task_slug="fan-out")]
    for i in range(children):
        writes += [run_service.TaskStateWrite(run.id, "Running", task_slug="fan-out", map_index=i),
                   run_service.TaskStateWrite(run.id, "Failed" if i % 97 == 3 else "Success", task_slug="fan-out", map_index=i)]
    writes += [run_service.TaskStateWrite(run.id, "TriggerFailed", task_slug="collect")]
    for start in range(0, len(writes), 4000):
        with db.write() as s:
            run_service.set_task_run_states(s, writes[start:start + 4000])
    with db.write() as s:
        run_service.write_logs(s, [{"flow_run_id": run.id, "level": "INFO", "name": "bench", "message": f"record {i}"} for i in range(500)])
        run_service.set_flow_run_states(s, [run_service.StateWrite(run.id, "Failed", "some children failed")])
    return str(run.id)


def render_once(ui: Any, db: Any, run_id: str, cold: bool = True) -> tuple[float, int]:
    """One server-side render of the run page: ``(seconds, bytes)``; ``cold`` empties the finished-run cache first."""
    from headwater_cloud_api.ui import data

    if cold:
        data._RUN_CACHE.clear()
    t0 = time.perf_counter()
    with db.read() as s:
        d = data.flow_run_page(s, run_id)
    html = ui.env.get_template("flow_run.html").render(d=d, csrf="x", path="/", auth=False, query={}, nav="runs")
    return time.perf_counter() - t0, len(html.encode())


def state_change_latency(server_url: str, db: Any, repeat: int) -> list[float]:
    """Seconds from a task-run state write to the open run page showing it, ``repeat`` times."""
    from playwright.sync_api import sync_playwright

    from headwater_cloud_api.server.services import runs as run_service

    latencies: list[float] = []
    with db.write() as s:
        from headwater_cloud_api.server.services.flows import create_flow

        flow, _ = create_flow(s, serialized={"name": "live", "tasks": [{"slug": f"t-{i}", "name": f"t{i}"} for i in range(repeat)],
                                             "edges": [], "parameters": []}, project_name="bench")
        run = run_service.create_flow_run(s, flow_id=flow.id)
        run_service.set_flow_run_states(s, [run_service.StateWrite(run.id, "Submitted"), run_service.StateWrite(run.id, "Running")])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{server_url}/ui/flow-runs/{run.id}")
        page.wait_for_selector("#run-state")
        for i in range(repeat):
            time.sleep(0.37)  # land at a random point of the 1 s polling cycle
            with db.write() as s:
                run_service.set_task_run_states(s, [run_service.TaskStateWrite(run.id, "Running", task_slug=f"t-{i}")])
            t0 = time.perf_counter()
            page.wait_for_selector(f"#task-t-{i} .badge.state-Running", timeout=10000)
            latencies.append(time.perf_counter() - t0)
        browser.close()
    return latencies


def _restartable_run(db: Any, total: int) -> tuple[Any, str]:
    """A real flow (10 steps, a map of total-12 children, a collect) and a Failed run of it: 1 child in 97 failed."""
    from headwater import Flow, task
    from headwater.engine.results import PrefectResult
    from headwater_cloud_api.server.services import runs as run_service
    from headwater_cloud_api.server.services.flows import create_flow

    @task
    def step(x: Any = None) -> Any:
        return x

    @task
    def fan_out(x: Any) -> Any:
        return x

    @task
    def collect(values: Any) -> Any:
        return values

    children = max(total - 12, 1)
    with Flow(f"restart-{total}", result=PrefectResult()) as flow:
        x = None
        for _ in range(10):
            x = step(x)
        collect(fan_out.map(x))
    slugs = {t.slug: t for t in flow.graph.tasks}
    with db.write() as s:
        meta, _ = create_flow(s, serialized={"name": flow.name, "tasks": [{"slug": slug, "name": t.name} for slug, t in slugs.items()],
                                             "edges": [], "parameters": []}, project_name="bench")
        run = run_service.create_flow_run(s, flow_id=meta.id)
        run_service.set_flow_run_states(s, [run_service.StateWrite(run.id, "Submitted"), run_service.StateWrite(run.id, "Running")])
    result = PrefectResult()
    writes: list[Any] = []
    for slug, t in slugs.items():
        if t.name == "step":
            writes.append(run_service.TaskStateWrite(run.id, "Success", task_slug=slug, serialized={"location": result.write(list(range(children))).location}))
        elif t.name == "fan_out":
            writes.append(run_service.TaskStateWrite(run.id, "Mapped", task_slug=slug, message=f"Mapped {children} item(s)."))
            for i in range(children):
                failed = i % 97 == 3
                writes.append(run_service.TaskStateWrite(run.id, "Failed" if failed else "Success", task_slug=slug, map_index=i,
                                                         serialized=None if failed else {"location": result.write(i).location}))
        else:
            writes.append(run_service.TaskStateWrite(run.id, "TriggerFailed", task_slug=slug))
    for start in range(0, len(writes), 4000):
        with db.write() as s:
            run_service.set_task_run_states(s, writes[start:start + 4000])
    with db.write() as s:
        run_service.set_flow_run_states(s, [run_service.StateWrite(run.id, "Failed", "some children failed")])
        run_service.restart_flow_run(s, run.id)
    return flow, str(run.id)


class _OneQueryPerPage:
    """A client answering ``resume_states`` from the service in-process (what a server with that field runs per page)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        from headwater_cloud_api.server.services.runs import resume_records

        with self.db.read() as s:
            return {"resume_states": resume_records(s, variables["id"], variables["o"], 1000)}


def restart_figures(api: str, db: Any, sizes: list[int]) -> list[tuple[int, float, float, float, int, int]]:
    """``(task runs, read seconds, read seconds by resume_records, plan seconds, kept, run again)`` per size."""
    from headwater.client import Client
    from headwater_cloud_api.execution.task_states import fetch_records, plan_task_states

    out = []
    with Client(api=api, api_key="") as client:
        for n in sizes:
            flow, run_id = _restartable_run(db, n)
            t0 = time.perf_counter()
            records = fetch_records(client, run_id)
            t1 = time.perf_counter()
            fast = fetch_records(_OneQueryPerPage(db), run_id)
            t2 = time.perf_counter()
            assert sorted(fast, key=lambda r: (r.task_slug, r.map_index)) == sorted(records, key=lambda r: (r.task_slug, r.map_index))
            plan = plan_task_states(flow, records)
            t3 = time.perf_counter()
            again = sum(len(v) for v in plan.mapped_rerun.values()) + len(plan.rerun)
            out.append((len(records), t1 - t0, t2 - t1, t3 - t2, len(records) - again, again))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="task runs per flow run (comma-separated)")
    parser.add_argument("--repeat", type=int, default=30, help="renders per size")
    parser.add_argument("--no-browser", action="store_true", help="skip the state-change-to-browser figure")
    parser.add_argument("--live-repeat", type=int, default=10)
    args = parser.parse_args(argv)
    from headwater_cloud_api.server.run import ServerThread
    from headwater_cloud_api.ui.routes import UI

    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, \
            ServerThread(database_url=f"sqlite:///{Path(tmp) / 'api.db'}", scheduler=False, reaper=False) as srv:
        db = srv.app.state.db
        ui = UI(db, False)
        runs = {n: _make_run(db, n) for n in sizes}
        http_client = httpx.Client(timeout=60)  # one keep-alive connection, as a browser has (a new client costs ~100 ms)
        print(f"{'task runs':>10} {'render p50':>11} {'render p99':>11} {'cached p50':>11} {'HTTP p50':>10} {'page bytes':>11} "
              f"{'live bytes':>11}")
        for n, run_id in runs.items():
            render_once(ui, db, run_id)  # warm the template and statement caches
            timings, size = [], 0
            for _ in range(args.repeat):
                seconds, size = render_once(ui, db, run_id)
                timings.append(seconds)
            cached = [render_once(ui, db, run_id, cold=False)[0] for _ in range(args.repeat)]
            http_client.get(f"{srv.url}/ui/flow-runs/{run_id}")
            http = []
            for _ in range(max(3, args.repeat // 5)):
                t0 = time.perf_counter()
                r = http_client.get(f"{srv.url}/ui/flow-runs/{run_id}")
                http.append(time.perf_counter() - t0)
                assert r.status_code == 200, r.text[:500]
            live = httpx.get(f"{srv.url}/ui/flow-runs/{run_id}/live", timeout=60)
            print(f"{n:>10} {_percentile(timings, .5) * 1000:>9.1f}ms {_percentile(timings, .99) * 1000:>9.1f}ms "
                  f"{_percentile(cached, .5) * 1000:>9.1f}ms {_percentile(http, .5) * 1000:>8.1f}ms {size:>11,} {len(live.content):>11,}")
            rows.append((f"run page, {n} task runs", f"{len(httpx.get(f'{srv.url}/ui/flow-runs/{run_id}').content):,} B"))
        some_run = runs[sizes[0]]
        with db.read() as s:
            from headwater_cloud_api.server.db.models import FlowRun

            flow_id = s.get(FlowRun, some_run).flow_id
        pages = {"dashboard": "/ui/", "flows": "/ui/flows", "flow": f"/ui/flows/{flow_id}", "agents": "/ui/agents",
                 "logs (200 records)": f"/ui/flow-runs/{some_run}/logs?tail=1",
                 "live update (unchanged: 204)": f"/ui/flow-runs/{some_run}/live?token=" +
                 httpx.get(f"{srv.url}/ui/flow-runs/{some_run}/live").json()["token"]}
        print(f"\n{'page':<32} {'bytes':>10}")
        for name, path in pages.items():
            r = httpx.get(srv.url + path)
            print(f"{name:<32} {len(r.content):>10,}")
        for name, text in rows:
            print(f"{name:<32} {text:>10}")
        gq_page = httpx.get(srv.api, headers={"Accept": "text/html"})
        from headwater_cloud_api.ui.routes import GRAPHIQL_ASSETS, STATIC

        for name in GRAPHIQL_ASSETS.values():  # served as stored: the gzipped file is what goes over the wire
            assert httpx.get(f"{srv.url}/ui/static/vendor/{name}").headers.get("content-encoding") == "gzip"
        sent = len(gq_page.content) + sum((STATIC / f"{name}.gz").stat().st_size for name in GRAPHIQL_ASSETS.values())
        print(f"{'GraphiQL (page + gzipped assets)':<32} {sent:>10,}")
        print(f"\n{'restart from failed':<26} {'read (API)':>11} {'read (1 query/page)':>20} {'plan':>9} {'kept':>7} {'run again':>10}")
        for count, read, fast, plan_s, kept, again in restart_figures(srv.api, db, sizes):
            print(f"{f'restart, {count} task runs':<26} {read * 1000:>9.0f}ms {fast * 1000:>18.0f}ms {plan_s * 1000:>7.1f}ms "
                  f"{kept:>7} {again:>10}")
        if not args.no_browser and Path(CHROMIUM).exists():
            lat = state_change_latency(srv.url, db, args.live_repeat)
            print(f"\nstate change -> browser (live polling, {len(lat)} changes): p50 {statistics.median(lat) * 1000:.0f} ms, "
                  f"max {max(lat) * 1000:.0f} ms")
        elif not args.no_browser:
            print(f"\nstate change -> browser: skipped ({CHROMIUM} missing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
