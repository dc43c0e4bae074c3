"""Engine-overhead benchmark: headwater's flow runner against a plain graphlib loop.

Run ``python benchmarks/engine.py [--sizes 100,1000,10000] [--repeat K]``.

Three workloads, each built once per size N (graph construction is timed separately):

- ``chain``  N tasks, each taking the previous task's result (``inc(inc(...inc(0)))``);
- ``fan``    N independent tasks plus a reduce over all of them (``add_all([value(i) ...])``);
- ``map``    one task mapped over N items plus a reduce (``add_all(inc.map(items(N)))``).

Each is first run once with a recursion limit a hundred frames above the caller's (the
engine must not recurse along the graph) and checked against the expected result. Then
``flow.run()`` on the :class:`~headwater.executors.LocalExecutor` is timed (best
of K), and the same graph is run by :func:`run_graphlib`, a plain topological loop over
:class:`graphlib.TopologicalSorter` that calls the same ``run`` functions with the same
arguments. The ratio of the two is the engine's overhead. Peak memory is measured with
:mod:`tracemalloc` in a separate, untimed run (tracemalloc slows Python down), as the peak
of Python allocations during ``flow.run()`` above what was allocated before it.
"""

from __future__ import annotations

import argparse
import gc
import graphlib
import logging
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headwater import Flow, task
from headwater.executors import LocalExecutor

__all__ = [
    "WORKLOADS",
    "Measurement",
    "build",
    "expected_result",
    "to_plain_graph",
    "run_graphlib",
    "run_engine",
    "run_shallow",
    "engine_result",
    "task_runs",
    "measure",
    "verdicts",
    "main",
]

RATIO_TARGET = 20.0
"""The engine may spend at most this many times the graphlib loop's time per task at the largest N."""
MEMORY_GROWTH_TARGET = 2.0
"""Peak memory per task at the largest N may be at most this many times that at the next size."""


# --- the trivial task functions (shared by the engine and the baseline) ------------------


@task
def inc(x: int) -> int:
    """x + 1."""
    return x + 1


@task
def value(i: int) -> int:
    """A leaf task: returns i + 1."""
    return i + 1


@task
def items(n: int) -> list[int]:
    """The list to map over."""
    return list(range(n))


@task
def add_all(xs: list[int]) -> int:
    """The reduce: the sum of the results."""
    return sum(xs)


# --- the workloads -------------------------------------------------------------------------


def _chain(n: int) -> tuple[Flow, Any]:
    with Flow(f"chain-{n}") as flow:
        x = inc(0)
        for _ in range(n - 1):
            x = inc(x)
    return flow, x


def _fan(n: int) -> tuple[Flow, Any]:
    with Flow(f"fan-{n}") as flow:
        total = add_all([value(i) for i in range(n)])
    return flow, total


def _map(n: int) -> tuple[Flow, Any]:
    with Flow(f"map-{n}") as flow:
        total = add_all(inc.map(items(n)))
    return flow, total


WORKLOADS: dict[str, Callable[[int], tuple[Flow, Any]]] = {"chain": _chain, "fan": _fan, "map": _map}


def build(workload: str, n: int) -> tuple[Flow, Any]:
    """The flow of ``workload`` at size ``n`` and its final task (the one whose result we check)."""
    return WORKLOADS[workload](n)


def expected_result(workload: str, n: int) -> int:
    """What the final task of ``workload`` at size ``n`` must return."""
    return {"chain": n, "fan": n * (n + 1) // 2, "map": n * (n + 1) // 2}[workload]


# --- the baseline: a plain graphlib loop ---------------------------------------------------

PlainGraph = dict[Any, tuple[Callable[..., Any], dict[str, Any], list[tuple[str | None, Any, bool]]]]


def to_plain_graph(flow: Flow) -> PlainGraph:
    """The flow as ``{node: (function, constant kwargs, [(key, upstream node, mapped)])}`` (not timed)."""
    graph: PlainGraph = {}
    for t in flow.sorted_tasks():
        if any(e.flattened for e in flow._upstream[t]):
            raise ValueError(f"Task {t.slug!r} has a flattened edge; the baseline does not flatten: use plain edges.")
        edges = [(e.key, e.upstream_task, e.mapped) for e in flow._upstream[t]]
        graph[t] = (t.run, dict(flow.constants.get(t, {})), edges)
    return graph


def run_graphlib(graph: PlainGraph) -> dict[Any, Any]:
    """Run ``graph`` in topological order with graphlib; returns every node's result."""
    sorter = graphlib.TopologicalSorter({node: [up for _, up, _ in edges] for node, (_, _, edges) in graph.items()})
    sorter.prepare()
    results: dict[Any, Any] = {}
    while sorter.is_active():
        for node in sorter.get_ready():
            fn, constants, edges = graph[node]
            kwargs = dict(constants)
            mapped_keys = []
            for key, upstream, is_mapped in edges:
                if key is not None:
                    kwargs[key] = results[upstream]
                    if is_mapped:
                        mapped_keys.append(key)
            if mapped_keys:  # one call per item, like the engine's mapped children
                n = len(kwargs[mapped_keys[0]])
                results[node] = [fn(**{**kwargs, **{k: kwargs[k][i] for k in mapped_keys}}) for i in range(n)]
            else:
                results[node] = fn(**kwargs)
            sorter.done(node)
    return results


# --- the engine ----------------------------------------------------------------------------


def run_engine(flow: Flow) -> Any:
    """``flow.run()`` on a LocalExecutor, once; returns the flow's final state."""
    return flow.run(executor=LocalExecutor(), run_on_schedule=False)


def engine_result(state: Any, final: Any) -> Any:
    """The result of ``final`` in a finished flow ``state`` (raises if the run did not succeed)."""
    if not state.is_successful():
        raise RuntimeError(f"The benchmark flow did not succeed: {state!r}")
    return state.result[final].result


def task_runs(workload: str, n: int) -> int:
    """How many task runs one execution of ``workload`` makes (mapped children count one each)."""
    return {"chain": n, "fan": n + 2, "map": n + 2}[workload]


# --- measuring -----------------------------------------------------------------------------


@dataclass
class Measurement:
    """The figures for one workload at one size."""

    workload: str
    n: int
    runs: int
    build_s: float
    engine_s: float
    baseline_s: float
    engine_peak_mb: float
    baseline_peak_mb: float

    @property
    def engine_us(self) -> float:
        return self.engine_s / self.runs * 1e6

    @property
    def baseline_us(self) -> float:
        return self.baseline_s / self.runs * 1e6

    @property
    def ratio(self) -> float:
        return self.engine_s / self.baseline_s

    @property
    def engine_kb_per_task(self) -> float:
        return self.engine_peak_mb * 1024 / self.runs


def _best_times(fns: Sequence[Callable[[], Any]], repeat: int) -> list[float]:
    """The best wall time of each of ``fns`` over ``repeat`` rounds, interleaved so both see the same load."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            gc.collect()
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def _peak_mb(fn: Callable[[], Any]) -> float:
    """Peak Python allocations while ``fn`` runs, above those before it, in MiB (tracemalloc)."""
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
        del result
    finally:
        tracemalloc.stop()
    return (peak - before) / 2**20


STACK_FRAMES = 100
"""Frames the engine may use above the caller's while running a graph of any size (no recursion per task)."""


def run_shallow(fn: Callable[[], Any], frames: int = STACK_FRAMES) -> Any:
    """Call ``fn`` with the recursion limit ``frames`` above the current stack depth.

    A RecursionError here means the engine recursed along the graph, which a 10 000-task
    chain would turn into a crash at the default limit.
    """
    depth = 0
    frame = sys._getframe()
    while frame is not None:
        depth, frame = depth + 1, frame.f_back
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + frames)
    try:
        return fn()
    finally:
        sys.setrecursionlimit(old)


def measure(workload: str, n: int, repeat: int = 5) -> Measurement:
    """Build, check, time and memory-profile ``workload`` at size ``n`` for the engine and the baseline."""
    start = time.perf_counter()
    flow, final = build(workload, n)
    build_s = time.perf_counter() - start
    graph = to_plain_graph(flow)
    expected = expected_result(workload, n)
    run_engine(flow)  # warm up (first imports, plugin loading) with the usual recursion limit
    got_engine = engine_result(run_shallow(lambda: run_engine(flow)), final)
    got_baseline = run_graphlib(graph)[final]
    if got_engine != expected or got_baseline != expected:
        raise RuntimeError(f"{workload} N={n}: engine {got_engine!r}, baseline {got_baseline!r}, want {expected!r}")
    engine_s, baseline_s = _best_times([lambda: run_engine(flow), lambda: run_graphlib(graph)], repeat)
    engine_peak = _peak_mb(lambda: run_engine(flow))
    baseline_peak = _peak_mb(lambda: run_graphlib(graph))
    return Measurement(workload, n, task_runs(workload, n), build_s, engine_s, baseline_s, engine_peak, baseline_peak)


def _table(rows: Sequence[Measurement]) -> str:
    head = (
        f"{'workload':<8} {'N':>6} {'runs':>6} {'build s':>8} {'wall s':>8} {'us/task':>8} "
        f"{'peak MB':>8} {'KB/task':>8} {'base us':>8} {'base MB':>8} {'ratio':>6}"
    )
    lines = [head, "-" * len(head)]
    for m in rows:
        lines.append(
            f"{m.workload:<8} {m.n:>6} {m.runs:>6} {m.build_s:>8.3f} {m.engine_s:>8.4f} {m.engine_us:>8.1f} "
            f"{m.engine_peak_mb:>8.2f} {m.engine_kb_per_task:>8.2f} {m.baseline_us:>8.2f} "
            f"{m.baseline_peak_mb:>8.2f} {m.ratio:>6.1f}"
        )
    return "\n".join(lines)


def verdicts(rows: Sequence[Measurement]) -> list[tuple[bool, str]]:
    """PASS/FAIL lines: the time ratio at the largest N, and linear memory between the two largest N."""
    out: list[tuple[bool, str]] = []
    for workload in WORKLOADS:
        mine = sorted((m for m in rows if m.workload == workload), key=lambda m: m.n)
        if not mine:
            continue
        top = mine[-1]
        ok = top.ratio <= RATIO_TARGET
        out.append((ok, f"{workload}: time ratio {top.ratio:.1f}x at N={top.n} (target <= {RATIO_TARGET:g}x)"))
        if len(mine) >= 2:
            prev = mine[-2]
            growth = top.engine_kb_per_task / prev.engine_kb_per_task
            ok = growth <= MEMORY_GROWTH_TARGET
            out.append((ok, (
                f"{workload}: memory per task {top.engine_kb_per_task:.2f} KB at N={top.n} vs "
                f"{prev.engine_kb_per_task:.2f} KB at N={prev.n} ({growth:.2f}x, target <= {MEMORY_GROWTH_TARGET:g}x)"
            )))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000", help="comma-separated N (default 100,1000,10000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per figure; the best is kept (default 5)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of chain,fan,map")
    parser.add_argument("--log-level", default="WARNING", help="level of the headwater logger (default WARNING)")
    parser.add_argument("--executors", action="store_true",
                        help="then run benchmarks/executors.py at the same sizes: build and run on the local, thread "
                             "and process executors against graphlib and concurrent.futures, in this run")
    parser.add_argument("--process-sizes", default="1000,10000", help="with --executors: N of the process rows")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    headwater_logger = logging.getLogger("headwater")
    old_level = headwater_logger.level
    headwater_logger.setLevel(args.log_level.upper())
    try:
        status = _run(workloads, sizes, args.repeat)
    finally:
        headwater_logger.setLevel(old_level)
    if args.executors:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import executors  # benchmarks/executors.py (it imports this module for the workloads)

        print()
        executors.main(["--sizes", ",".join(str(n) for n in sizes), "--process-sizes", args.process_sizes,
                        "--repeat", str(max(1, min(args.repeat, 3)))])
    return status


def _run(workloads: Sequence[str], sizes: Sequence[int], repeat: int) -> int:
    """Measure every workload at every size, print the table and the verdicts; 0 when all pass."""
    print(f"headwater engine overhead: Python {sys.version.split()[0]}, LocalExecutor, best of {repeat} runs.")
    print("wall s / us/task: flow.run() only (graph construction is 'build s'); base: the graphlib loop;")
    print("peak MB: tracemalloc peak during one separate run; ratio: engine time / baseline time.", flush=True)
    rows = []
    for workload in workloads:
        for n in sizes:
            print(f"  measuring {workload} N={n} ...", file=sys.stderr, flush=True)
            rows.append(measure(workload, n, repeat))
    print()
    print(_table(rows))
    print()
    results = verdicts(rows)
    for ok, line in results:
        print(("PASS " if ok else "FAIL ") + line)
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
