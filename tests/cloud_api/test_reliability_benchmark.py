"""``benchmarks/faults.py`` runs end to end at a tiny size (its figures are printed, never asserted here)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "faults.py"


@pytest.mark.slow
def test_the_fault_benchmark_runs_and_prints_its_table(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("headwater_benchmark_faults", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        code = module.main(["--fuzz-examples", "1", "--runs", "2", "--agents", "2", "--log-mb", "0.5", "--skip-partition"])
    finally:
        sys.modules.pop(spec.name, None)
    out = capsys.readouterr().out
    assert "GraphQL fuzz" in out and "Faults injected" in out and "largest log volume that loses nothing" in out
    assert code in (0, 1)  # the figures are the benchmark's business; the smoke test checks it runs
