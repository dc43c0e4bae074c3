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
    verdicts = lines[end + 3:]
    assert verdicts and all(v.split()[0] in ("PASS", "FAIL") for v in verdicts)
    assert any("threads" in v for v in verdicts) and any("processes" in v for v in verdicts)
