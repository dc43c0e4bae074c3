"""benchmarks/docker.py runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from docker_helpers import ROOT, Engine

BENCHMARK = ROOT / "benchmarks" / "docker.py"


@pytest.mark.slow
def test_docker_benchmark_runs_and_prints_its_table(engine: Engine, capsys: pytest.CaptureFixture[str],
                                                    tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("headwater_benchmark_docker", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        figures = module.run(runs=1, flows=2, docker_host=engine.base_url, registry=engine.registry)
    finally:
        sys.modules.pop(spec.name, None)
    out = capsys.readouterr().out
    assert "create_run -> Running, DockerRun, p50 s" in out and "create_run -> Running, LocalRun, p50 s" in out
    assert "re-registration of 2 unchanged Docker flows, s" in figures
    assert all(value >= 0 for value in figures.values())
