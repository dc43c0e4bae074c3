"""benchmarks/s3.py runs end to end at a tiny size and measures what it says (no timing is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "s3.py"


@pytest.mark.slow
def test_benchmark_runs_and_reports_every_figure(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(BENCHMARK), "--small-n", "3", "--large-mb", "6", "--json"],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = json.loads(done.stdout)
    assert [(r["workload"], r["op"]) for r in rows] == [
        ("3 small results", "upload"), ("3 small results", "download"),
        ("one 6 MB result", "upload"), ("one 6 MB result", "download"),
    ]
    for row in rows:
        for key in ("headwater_s", "boto3_s", "headwater_rss_mb", "boto3_rss_mb"):
            assert row[key] > 0, (key, row)
        assert row["time_ratio"] == row["headwater_s"] / row["boto3_s"]
