"""The engine-overhead benchmark measures what it says: engine and graphlib baseline compute the same results.

No timing is asserted here (timing targets live in benchmarks/engine.py itself).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from headwater.states import Mapped

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "engine.py"


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("headwater_benchmark_engine", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is created
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


@pytest.mark.parametrize("workload", ["chain", "fan", "map"])
def test_engine_and_baseline_agree_on_every_task(bench: ModuleType, workload: str) -> None:
    flow, final = bench.build(workload, 50)
    state = bench.run_engine(flow)
    baseline = bench.run_graphlib(bench.to_plain_graph(flow))

    assert state.is_successful()
    assert set(baseline) == set(flow.tasks)
    for t in flow.tasks:
        assert state.result[t].result == baseline[t], t
    assert bench.engine_result(state, final) == bench.expected_result(workload, 50)
    assert baseline[final] == bench.expected_result(workload, 50)


def test_task_runs_counts_what_the_engine_runs(bench: ModuleType) -> None:
    for workload in bench.WORKLOADS:
        flow, _ = bench.build(workload, 50)
        seen: list[tuple[object, int | None]] = []
        state = flow.run(on_task_state=lambda t, s, i, seen=seen: seen.append((t, i)), run_on_schedule=False)
        runs = sum(len(s.map_states) if isinstance(s, Mapped) else 1 for s in state.result.values())
        assert runs == bench.task_runs(workload, 50), workload
        assert len(set(seen)) == runs + sum(isinstance(s, Mapped) for s in state.result.values())


def test_baseline_calls_the_mapped_function_once_per_item(bench: ModuleType) -> None:
    calls: list[int] = []

    def double(x: int) -> int:
        calls.append(x)
        return 2 * x

    graph = {"items": (lambda: [1, 2, 3], {}, []), "double": (double, {}, [("x", "items", True)])}
    assert bench.run_graphlib(graph)["double"] == [2, 4, 6]
    assert calls == [1, 2, 3]


def test_engine_result_refuses_a_failed_run(bench: ModuleType) -> None:
    from headwater.states import Failed

    with pytest.raises(RuntimeError, match="did not succeed"):
        bench.engine_result(Failed("boom"), None)


def test_main_prints_the_table_and_a_verdict_per_target(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    code = bench.main(["--sizes", "10,20", "--repeat", "1"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    for workload in ("chain", "fan", "map"):
        assert f"{workload}: time ratio" in out
        assert f"{workload}: memory per task" in out
    verdict_lines = [line for line in out.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert len(verdict_lines) == 6
    assert "us/task" in out and "peak MB" in out and "ratio" in out


def test_main_rejects_an_unknown_workload(bench: ModuleType) -> None:
    with pytest.raises(SystemExit):
        bench.main(["--workloads", "nope", "--sizes", "10"])


def test_engine_runs_a_long_chain_without_recursing(bench: ModuleType) -> None:
    flow, final = bench.build("chain", 2000)
    bench.run_engine(flow)  # warm up imports outside the shallow stack
    state = bench.run_shallow(lambda: bench.run_engine(flow), frames=100)
    assert bench.engine_result(state, final) == 2000


def test_run_shallow_really_limits_the_stack(bench: ModuleType) -> None:
    def recurse(n: int) -> int:
        return 0 if n == 0 else 1 + recurse(n - 1)

    with pytest.raises(RecursionError):
        bench.run_shallow(lambda: recurse(500), frames=100)
    assert bench.run_shallow(lambda: recurse(50), frames=100) == 50
