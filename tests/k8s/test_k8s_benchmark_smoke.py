"""The k8s benchmark runs with tiny numbers and prints its table (its figures are not asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "plugins" / "k8s" / "benchmarks" / "k8s.py"


def test_benchmark_runs(cluster: Any, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("headwater_benchmark_k8s", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        figures = module.main(["--builds", "20", "--runs", "1", "--polls", "3"])
    finally:
        sys.modules.pop(spec.name, None)
    assert set(figures) >= {"builds/s", "ms/status round", "requests/status round", "run p50 s", "requests/run"}
    assert figures["requests/status round"] >= 4, "a status round reads the Job, its pods, their events and the pod log"
    assert "builds/s" in capsys.readouterr().out
