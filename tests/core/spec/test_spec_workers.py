"""Two `headwater spec worker` processes on one database (SQLite file, PostgreSQL).

Every task of the test flows calls ``spec_helpers.record``, which logs the worker process,
the flow, the task and its start and end time. Flows are chains, so each flow tick runs
exactly one task: the log is a log of flow ticks and who did them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import headwater
from headwater.spec import FlowStore

HERE = Path(__file__).resolve().parent
N_FLOWS = 50
N_TASKS = 3


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'flows.db'}"
    return str(request.getfixturevalue("postgres_db_url"))


class Workers:
    """Worker processes started with `python -m headwater spec worker` (the CLI configures logging), stopped at the end of the test."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, lease: float, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable, "-m", "headwater", "spec", "worker", "--db", self.url, "--worker-id", name,
            "--interval", "0.05", "--max-flows", "5", "--lease", str(lease),
        ]
        environment = {
            **os.environ, **(env or {}),
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
            "HEADWATER__LOGGING__LEVEL": "INFO",
            "PYTHONFAULTHANDLER": "1",  # SIGABRT dumps every thread's stack (see stop)
        }
        with open(self.tmp_path / f"{name}.err", "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=environment)
        self.procs[name] = proc
        return proc

    def stderr(self, name: str) -> str:
        return (self.tmp_path / f"{name}.err").read_text(errors="replace")

    def wait_for(self, what: str, condition: Callable[[], bool], timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                logs = "".join(f"\n--- {n} (exit {p.poll()}) ---\n{self.stderr(n)[-3000:]}" for n, p in self.procs.items())
                raise AssertionError(f"gave up waiting for {what}{logs}")
            for name, proc in self.procs.items():
                if proc.poll() not in (None, -signal.SIGKILL):
                    raise AssertionError(f"worker {name} exited with {proc.returncode}:\n{self.stderr(name)}")
            time.sleep(0.05)

    def stop(self, name: str, timeout: float = 30.0) -> int:
        """SIGTERM, and the exit code; a worker still running after ``timeout`` s fails the test with its stacks."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)  # faulthandler writes where each thread is stuck, then it dies
            proc.wait(timeout=30)
            raise AssertionError(
                f"worker {name} did not stop within {timeout:g} s of SIGTERM; its stderr and stacks:\n"
                f"{self.stderr(name)[-6000:]}"
            ) from None

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(db_url, tmp_path)
    yield w
    w.close()


def submit_flows(store: FlowStore, log: Path) -> list[str]:
    params = {"log": str(log), "flow": "$ctx.flow.key", "task": "$ctx.task.key", "sleep": 0.01}
    keys = []
    for i in range(N_FLOWS):
        spec = {
            "label": f"load-{i}",
            "tasks": [
                {"key": f"t{n}", "task_type": "python", "task_params": {"callable": "spec_helpers:record", "kwargs": params}}
                for n in range(N_TASKS)
            ],
        }
        keys.append(store.save(headwater.Flow.from_flow_spec(spec)))
    return keys


def read_log(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def assert_ticks_never_overlap(records: list[dict[str, Any]]) -> None:
    """Within one flow, every tick starts after the previous one ended, whichever worker did it."""
    by_flow: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_flow[r["flow"]].append(r)
    for flow, ticks in by_flow.items():
        ticks.sort(key=lambda r: r["start"])
        for before, after in zip(ticks, ticks[1:], strict=False):
            assert after["start"] >= before["end"], f"flow {flow} was ticked by {before['pid']} and {after['pid']} at once"


def test_two_workers_share_50_flows_and_never_tick_one_at_the_same_time(
    db_url: str, workers: Workers, tmp_path: Path
) -> None:
    log = tmp_path / "ticks.jsonl"
    store = FlowStore(db_url)
    store.ensure_tables()
    procs = [workers.start("w1", lease=30), workers.start("w2", lease=30)]
    workers.wait_for("both workers to poll", lambda: all("polling" in workers.stderr(n) for n in ("w1", "w2")))
    keys = submit_flows(store, log)
    workers.wait_for("every flow to complete", lambda: store.count(status="COMPLETED") == N_FLOWS)
    assert [workers.stop("w1"), workers.stop("w2")] == [0, 0]

    assert {store.status(k) for k in keys} == {"COMPLETED"}
    records = read_log(log)
    runs = Counter((r["flow"], r["task"]) for r in records)
    assert len(runs) == N_FLOWS * N_TASKS and set(runs.values()) == {1}, "every task ran exactly once"
    by_worker = Counter(r["pid"] for r in records)
    assert set(by_worker) == {p.pid for p in procs}, f"both workers took part: {by_worker}"
    assert_ticks_never_overlap(records)
    for name in ("w1", "w2"):
        assert "Traceback" not in workers.stderr(name)
    store.close()


def test_killing_a_worker_mid_tick_loses_nothing(db_url: str, workers: Workers, tmp_path: Path) -> None:
    log = tmp_path / "ticks.jsonl"
    store = FlowStore(db_url)
    store.ensure_tables()
    lease = 5.0  # long enough for the test to kill w1 before its lease runs out, even on a busy machine
    doomed = workers.start("w1", lease=lease, env={"HW_TEST_HANG_AT": "4"})  # hangs inside its 4th task
    survivor = workers.start("w2", lease=lease)
    workers.wait_for("both workers to poll", lambda: all("polling" in workers.stderr(n) for n in ("w1", "w2")))
    keys = submit_flows(store, log)
    workers.wait_for("worker w1 to hang mid-tick", lambda: any(r["event"] == "hang" for r in read_log(log)))

    t = store.flows_table
    with store.engine.connect() as conn:
        rows = conn.execute(store._sa.select(t.c.key, t.c.claimed_until).where(t.c.claimed_by == "w1")).all()
    held = {row.key for row in rows}
    [hang] = [r for r in read_log(log) if r["event"] == "hang"]
    assert hang["flow"] in held, "the flow w1 was ticking is leased to it"
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=30)
    killed_at = time.time()
    lease_end = min(row.claimed_until for row in rows) - 0.01  # the database clock, to its precision
    assert killed_at < lease_end, "the test could not kill w1 within its lease (a very slow machine?)"

    workers.wait_for("every flow to complete", lambda: store.count(status="COMPLETED") == N_FLOWS)
    assert workers.stop("w2") == 0
    assert {store.status(k) for k in keys} == {"COMPLETED"}

    records = read_log(log)
    ran = [r for r in records if r["event"] == "ran"]
    runs = Counter((r["flow"], r["task"]) for r in ran)
    assert len(runs) == N_FLOWS * N_TASKS and set(runs.values()) == {1}, "nothing lost, nothing left half-done"
    redo = next(r for r in ran if (r["flow"], r["task"]) == (hang["flow"], hang["task"]))
    assert redo["pid"] == survivor.pid and redo["start"] > lease_end, "the hung task ran again after w1's lease ran out"
    # Ticks of w1's flows that w2 ran after w1 hung (w2 may have ticked them before w1 claimed them).
    late = [r for r in ran if r["flow"] in held and r["pid"] == survivor.pid and r["start"] > hang["start"]]
    assert late and min(r["start"] for r in late) > lease_end, "w1's flows came back only when its lease ran out"
    assert_ticks_never_overlap([*ran, {**hang, "end": killed_at}])
    store.close()
