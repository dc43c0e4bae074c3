"""benchmarks/orchestrated.py at N = 20 on SQLite: it runs, counts N + 1 task runs in the API, leaves no process behind.

No timing is asserted (the figures are for docs/benchmarks.md).
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from headwater.client import Client
from headwater_cloud_api.server.run import ServerThread

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "orchestrated.py"
SET_STATES = (
    "mutation($f: [FlowRunStateInput!], $t: [TaskRunStateInput!]) "
    "{ set_states(flow_runs: $f, task_runs: $t) { written stale { id } } }"
)


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("headwater_benchmark_orchestrated", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is created
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def _processes_mentioning(text: str) -> list[str]:
    """Living processes whose command line or environment mentions ``text`` (this test's temporary directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline or text in environ:
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.mark.slow
def test_the_orchestrated_benchmark_counts_every_task_run_and_stops_everything(tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}  # everything the benchmark creates lives under scratch
    done = subprocess.run([sys.executable, str(BENCHMARK), "--sizes", "20", "--databases", "sqlite", "--repeat", "1"],
                          capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("sqlite ")]
    assert len(rows) == 1, done.stdout
    row = rows[0]
    assert row[1] == "20"
    assert row[2] == "21/21", done.stdout  # every task run of the N + 1 is persisted
    assert int(row[3]) >= 2 * 21  # at least Running and Success for each task run
    assert "LOST" not in done.stdout
    assert _processes_mentioning(str(scratch)) == []
    assert list(scratch.iterdir()) == []  # its temporary directory is removed


def test_the_flow_file_has_n_plus_one_tasks_that_succeed(bench: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "fanout.py"
    path.write_text(bench.flow_source(7))
    flow = runpy.run_path(str(path))["flow"]
    assert flow.name == "fanout-7" and len(flow.tasks) == 8
    state = flow.run(run_on_schedule=False)
    assert state.is_successful()
    assert len(state.result) == 8


def test_count_task_runs_reads_every_page(bench: ModuleType, tmp_path: Path) -> None:
    """More task runs than one 1 000-row page: all of them are counted."""
    from headwater import Flow, task
    from headwater_cloud_api.registration import Registration

    @task
    def step() -> int:
        return 1

    with Flow("paged") as flow:
        step()
    with ServerThread(database_url=f"sqlite:///{tmp_path / 'api.db'}", scheduler=False) as server:
        with Client(api=server.api, api_key="") as client:
            client.project(name="p").create()
            flow_id = Registration(client).register_many([("p", flow)], "p")[0].id
            run_id = client.flow(id=flow_id).create_run().id
            writes: list[dict[str, Any]] = [
                {"flow_run_id": run_id, "task_slug": f"step-{n}", "version": 0, "state": {"type": "Success"}} for n in range(1234)
            ]
            result = client.graphql(SET_STATES, {"f": [], "t": writes})["set_states"]
            assert result["written"] == 1234 and not result["stale"], result
            runs = bench.count_task_runs(client, run_id)
    assert len({(r["task_slug"], r["map_index"]) for r in runs}) == 1234


def test_cpu_seconds_reads_a_living_process(bench: ModuleType) -> None:
    sum(i * i for i in range(200_000))
    assert bench.cpu_seconds(os.getpid()) > 0
    with pytest.raises(OSError):
        bench.cpu_seconds(2**22 + 12345)  # above pid_max: no such process


@pytest.mark.slow
def test_the_server_profile_covers_the_request_threads_of_the_measured_run(tmp_path: Path) -> None:
    """``--server-profile``: one cProfile profiler per server thread (GraphQL runs in worker threads), the run's window only."""
    import pstats

    profile = tmp_path / "server.prof"
    done = subprocess.run([sys.executable, str(BENCHMARK), "--sizes", "20", "--databases", "sqlite", "--repeat", "1",
                           "--server-profile", str(profile)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    functions = {name for _, _, name in pstats.Stats(str(profile)).stats}  # type: ignore[attr-defined]
    assert {"write_run_batch", "create_flow_run", "claim_flow_runs"} <= functions  # the resolvers, run in worker threads
    assert "create_flow" not in functions  # the registration before the window is not in it


def test_cluster_cpu_seconds_sums_the_postmaster_and_its_children(bench: ModuleType, tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; sum(i * i for i in range(3_000_000)); time.sleep(30)"])
    try:
        data = tmp_path / "data"
        data.mkdir()
        (data / "postmaster.pid").write_text(f"{os.getpid()}\n{data}\n")  # this process stands for the postmaster
        deadline = 50
        while bench.cpu_seconds(child.pid) < 0.05 and deadline:
            deadline -= 1
            subprocess.run(["sleep", "0.1"])
        assert bench.cluster_cpu_seconds(data) >= bench.cpu_seconds(os.getpid()) + bench.cpu_seconds(child.pid) - 0.01
    finally:
        child.kill()
        child.wait()
