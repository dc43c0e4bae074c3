"""benchmarks/github.py runs end to end on a tiny repository (its figures are not asserted, only that it measures)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "github.py"


def test_the_benchmark_runs_and_reports_every_figure(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("headwater_benchmark_github", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        cwd = os.getcwd()
        rows = dict(module.main(["--files", "3", "--repeats", "1", "--concurrent", "4"]))
        assert os.getcwd() == cwd
    finally:
        sys.modules.pop(spec.name, None)
    assert rows["GitHub: downloads for those 4 runs"] == "1"
    assert {k for k in rows if "cold load" in k} == {"GitHub: cold load (3 files), median ms", "Git file://: cold load (3 files), median ms"}
    assert all(float(v) >= 0 for v in rows.values())
    assert "figure" in capsys.readouterr().out
