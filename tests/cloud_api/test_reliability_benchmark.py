"""``benchmarks/faults.py`` runs end to end at a tiny size (its figures are printed, never asserted here)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from headwater.testing import wait_for

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "faults.py"


@pytest.fixture
def faults() -> Iterator[ModuleType]:
    """The benchmark script, imported as a module."""
    spec = importlib.util.spec_from_file_location("headwater_benchmark_faults", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_the_benchmark_times_out_with_timeout_error_and_tests_with_assertion_error(faults: ModuleType) -> None:
    with pytest.raises(TimeoutError, match="timed out after 0.05 s waiting for the nothing"):
        faults._wait(lambda: False, 0.05, 0.01, "the nothing")
    with pytest.raises(AssertionError, match="timed out after 0.05 s waiting for the nothing"):
        wait_for(lambda: False, 0.05, 0.01, "the nothing")
    assert faults._wait(lambda: "here", 0.05, 0.01, "a value") == "here"


@pytest.mark.slow
def test_the_fault_benchmark_runs_and_prints_its_table(faults: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code = faults.main(["--fuzz-examples", "1", "--runs", "2", "--agents", "2", "--log-mb", "0.5", "--skip-partition"])
    out = capsys.readouterr().out
    assert "GraphQL fuzz" in out and "Faults injected" in out and "largest log volume that loses nothing" in out
    assert code in (0, 1)  # the figures are the benchmark's business; the smoke test checks it runs
