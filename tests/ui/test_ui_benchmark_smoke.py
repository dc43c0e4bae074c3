"""benchmarks/ui.py runs end to end at a tiny size and prints its tables (no timing is asserted here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "ui.py"


def test_ui_benchmark_runs_at_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("headwater_benchmark_ui", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        assert module.main(["--sizes", "20,40", "--repeat", "2", "--no-browser"]) == 0
    finally:
        sys.modules.pop(spec.name, None)
    out = capsys.readouterr().out
    assert "render p50" in out and "run page, 40 task runs" in out and "live update (unchanged: 204)" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("20 ", "40 "))]
    assert len(rows) == 2 and all(int(r[5].replace(",", "")) > 5000 for r in rows)  # page bytes
    restarts = [line.split() for line in out.splitlines() if line.startswith("restart, ")]
    assert [(r[1], r[-2], r[-1]) for r in restarts] == [("20", "18", "2"), ("40", "38", "2")]  # 1 failed child + collect
    assert "GraphiQL (page + gzipped assets)" in out
