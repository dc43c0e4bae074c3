"""benchmarks/executors.py runs at tiny N and its baselines compute what the flows compute (no timings asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "executors.py"


def test_the_executor_benchmark_runs_and_prints_every_row() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--sizes", "30", "--process-sizes", "30", "--repeat", "1"],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    end = lines.index("")
    rows = [line.split() for line in lines[3:end]]
    assert [(r[0], r[2]) for r in rows] == [
        ("chain", "local"), ("chain", "threads"), ("fan", "local"), ("fan", "threads"),
        ("map", "local"), ("map", "threads"), ("map", "processes"),
    ]
    assert all(float(r[-1]) > 0 for r in rows)
    assert lines[end + 1].startswith("load average before:") and lines[end + 2].startswith("load average after:")
    verdicts, last = lines[end + 3:-1], lines[-1]
    assert verdicts and all(v.split()[0] in ("PASS", "FAIL") for v in verdicts)
    assert last.startswith("thread round trip on this machine") and float(last.split(": ")[-1].split()[0]) > 0
    assert any("threads" in v for v in verdicts) and any("processes" in v for v in verdicts)


def test_the_engine_benchmark_runs_the_executor_rows_in_the_same_run() -> None:
    engine = BENCHMARK.parent / "engine.py"
    done = subprocess.run(
        [sys.executable, str(engine), "--sizes", "20", "--repeat", "1", "--executors", "--process-sizes", ""],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: a timing target failed (timings are not judged here)
    out = done.stdout
    assert "headwater engine overhead" in out and ("PASS map: time ratio" in out or "FAIL map: time ratio" in out)
    rows = [line.split() for line in out.splitlines() if line.split()[:1] in (["chain"], ["fan"], ["map"])]
    systems = {(r[0], r[2]) for r in rows if len(r) > 2 and r[1] == "20"}
    assert {("chain", "local"), ("chain", "threads"), ("map", "threads")} <= systems
