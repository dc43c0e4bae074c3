"""benchmarks/dask.py measures what it says: every row computes the workload's expected result.

No timing is asserted here (the ratio target lives in the benchmark itself).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import cloudpickle
import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "dask.py"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("headwater_benchmark_dask", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is created
    try:
        spec.loader.exec_module(module)
        cloudpickle.register_pickle_by_value(module)  # its functions run on the cluster's workers
        yield module
    finally:
        cloudpickle.unregister_pickle_by_value(module)
        sys.modules.pop(spec.name, None)


@pytest.mark.parametrize("row", ["raw", "hw-dask", "local-threads", "dask-compute"])
@pytest.mark.parametrize("workload", ["chain", "fan", "map"])
def test_every_row_computes_the_expected_result(bench: ModuleType, dask_address: str, row: str, workload: str) -> None:
    if row == "raw":  # raw futures pickle functions by reference: run it as the benchmark does, as a script
        m = bench._child(row, workload, 12, dask_address, sys.executable)
        assert m.seconds is not None, m.note  # the child checks the result against expected_result
        assert m.rss_mb and m.rss_mb > 0
        return
    out = bench.run_row(row, workload, 12, dask_address)
    assert out["result"] == bench.expected_result(workload, 12)
    assert out["seconds"] > 0 and out["rss_mb"] >= out["base_rss_mb"] > 0


def test_task_runs_match_the_engine_benchmark(bench: ModuleType) -> None:
    engine = BENCHMARK.with_name("engine.py").read_text()
    assert '{"chain": n, "fan": n + 2, "map": n + 2}' in engine
    assert [bench.task_runs(w, 10) for w in ("chain", "fan", "map")] == [10, 12, 12]


def test_verdicts_compare_against_the_floor_and_check_marginal_cost(bench: ModuleType) -> None:
    m = bench.Measurement
    rows = [m("raw", "map", 1000, 10.0, 1.0), m("hw-dask", "map", 1000, 12.0, 1.0),
            m("raw", "map", 10000, 100.0, 1.0), m("hw-dask", "map", 10000, 200.0, 1.0)]
    lines = {line: ok for ok, line in bench.verdicts(rows)}
    assert lines["map N=1000: DaskExecutor 1.20x the raw futures per task (target <= 1.5x)"] is True
    assert lines["map N=10000: DaskExecutor 2.00x the raw futures per task (target <= 1.5x)"] is False
    assert any(line.startswith("hw-dask map: marginal") for line in lines)
    chain = {line: ok for ok, line in bench.verdicts([m("raw", "chain", 1000, 10.0, 1.0), m("hw-dask", "chain", 1000, 16.0, 1.0)])}
    assert chain == {"chain N=1000: DaskExecutor 1.60x the raw futures per task (a client round trip per link: no target)": None}


@pytest.mark.slow
def test_main_prints_the_table_with_every_row(bench: ModuleType, dask_address: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code = bench.main(["--sizes", "4,8", "--workloads", "map", "--rows", "raw,hw-dask,local-threads,dask-compute,prefect1",
                       "--address", dask_address, "--prefect-python", "/nonexistent/python"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    for row in ("raw", "hw-dask", "local-threads", "dask-compute"):
        assert sum(line.startswith("map ") and f" {row} " in line for line in out.splitlines()) == 2, out
    assert "skipped: no prefect venv" in out
    assert "map N=8: DaskExecutor" in out and "hw-dask map: marginal" in out


def test_main_rejects_an_unknown_row(bench: ModuleType) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--rows", "nope", "--sizes", "10"])
