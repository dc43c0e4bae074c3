"""Build and run, per executor, against plain ``concurrent.futures`` and a graphlib loop, in one run.

Run ``python benchmarks/executors.py [--sizes 1000,10000] [--repeat K] [--process-sizes 1000]``.

The workloads are benchmarks/engine.py's (chain, fan + reduce, map + reduce). For each size N:

- ``build``: ``with Flow(...)`` constructing the graph, per task;
- ``run``: ``flow.run(executor=...)`` with full per-task states, per task run;
- ``cpu us``: CPU seconds of this process (all its threads) for the best build plus the best
  run, per task run, and ``cpu ratio`` the same over the baseline's CPU: the figures a shared,
  loaded machine inflates least (not measured for process rows, whose work is in other processes);
- baselines measured in the same process, on the same functions:
  ``graphlib`` (a topological loop calling each function, its graph construction included),
  ``cf threads`` (``ThreadPoolExecutor``: submit every ready call, collect with ``as_completed``),
  ``cf processes`` (``ProcessPoolExecutor.map(chunksize=auto)`` of the mapped function).

Each row prints microseconds per task for build, run and both, and the ratio of build + run to
its baseline; after the table, the load average before and after the run and PASS/FAIL lines
for issue 19's targets (informational: the exit status is 0 whenever every row ran), and the
machine's thread round trip (a hand-off to another thread and back: the floor of a chain's link
on any thread pool). The
process rows come after a warm-up run that starts the pool's forkserver (once per process).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine as workloads  # noqa: E402  (benchmarks/engine.py: the same workloads and task functions)
from headwater.executors import LocalExecutor, ProcessExecutor, ThreadExecutor  # noqa: E402

__all__ = ["Row", "measure_flow", "graphlib_total", "cf_threads_total", "cf_processes_map", "thread_round_trip_us", "verdicts",
           "load_line", "main"]


@dataclass
class Row:
    workload: str
    n: int
    system: str
    build_s: float
    run_s: float
    tasks: int
    baseline: str = ""
    baseline_s: float = 0.0
    cpu_s: float | None = None
    """CPU seconds (every thread of this process) of the best build and the best run, when measured."""
    baseline_cpu_s: float | None = None

    @property
    def total_us(self) -> float:
        return (self.build_s + self.run_s) / self.tasks * 1e6

    @property
    def ratio(self) -> float:
        return (self.build_s + self.run_s) / self.baseline_s if self.baseline_s else float("nan")

    @property
    def cpu_ratio(self) -> float | None:
        if self.cpu_s is None or not self.baseline_cpu_s:
            return None
        return self.cpu_s / self.baseline_cpu_s


LAST_CPU: list[float] = [0.0]
"""CPU seconds of the best runs of the last :func:`measure_flow` (build + run), for the threads and local rows."""


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    best_cpu = float("inf")
    for _ in range(repeat):
        start, cpu = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    _BEST_CPU[0] = best_cpu
    return best, out


_BEST_CPU = [0.0]


def measure_flow(workload: str, n: int, executor: Any, repeat: int) -> tuple[float, float, Any]:
    """(best build seconds, best run seconds, last state) for ``workload`` at ``n`` on ``executor``."""
    build_s, (flow, final) = _best(lambda: workloads.build(workload, n), repeat)
    build_cpu = _BEST_CPU[0]
    run_s, state = _best(lambda: flow.run(executor=executor, run_on_schedule=False), repeat)
    LAST_CPU[0] = build_cpu + _BEST_CPU[0]
    assert state.is_successful(), state
    assert workloads.engine_result(state, final) == workloads.expected_result(workload, n)
    return build_s, run_s, state


def _cpu_of(fn: Callable[[], float], repeat: int) -> tuple[float, float]:
    """(best wall seconds fn reports, best CPU seconds of this process while it ran) over ``repeat`` calls."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu = time.process_time()
        walls.append(fn())
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def graphlib_total(workload: str, n: int) -> float:
    """A topological loop over the same functions, its plain dict graph's construction included (one run)."""
    flow, _ = workloads.build(workload, n)  # the plain graph is read off a flow; that part is not timed
    start, cpu = time.perf_counter(), time.process_time()
    workloads.run_graphlib(workloads.to_plain_graph(flow))
    _GRAPHLIB_CPU[0] = time.process_time() - cpu
    return time.perf_counter() - start


_GRAPHLIB_CPU = [0.0]


def _fn(name: str) -> Callable[..., Any]:
    return getattr(workloads, name).run  # type: ignore[no-any-return]


def cf_threads_total(workload: str, n: int, workers: int) -> float:
    """The same dependencies with plain futures on a thread pool (submission in dependency order)."""
    inc, value, add_all, items = _fn("inc"), _fn("value"), _fn("add_all"), _fn("items")
    start = time.perf_counter()
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        if workload == "chain":
            x = 0
            for _ in range(n):
                x = pool.submit(inc, x).result()
        elif workload == "fan":
            futures = [pool.submit(value, i) for i in range(n)]
            pool.submit(add_all, [f.result() for f in cf.as_completed(futures)]).result()
        else:
            xs = pool.submit(items, n).result()
            pool.submit(add_all, list(pool.map(inc, xs))).result()
    return time.perf_counter() - start


def plain_inc(x: int) -> int:
    """The mapped function as a plain, picklable function (what ``inc`` runs)."""
    return x + 1


def cf_processes_map(n: int, workers: int) -> float:
    """``ProcessPoolExecutor.map`` of the mapped function with an automatic chunk size, pool start included."""
    inc = plain_inc
    start = time.perf_counter()
    with cf.ProcessPoolExecutor(max_workers=workers) as pool:
        chunksize = max(1, n // (workers * 4))
        sum(pool.map(inc, range(n), chunksize=chunksize))
    return time.perf_counter() - start


def _rows(sizes: Sequence[int], process_sizes: Sequence[int], repeat: int) -> list[Row]:
    workers = min(os.cpu_count() or 1, 4)
    rows: list[Row] = []
    measure_flow("fan", 10, LocalExecutor(), 1)  # warm up: plugin loading and logging set-up happen once

    for n in sizes:
        for workload in workloads.WORKLOADS:
            tasks = workloads.task_runs(workload, n)
            walls, cpus = [], []
            for _ in range(repeat):
                walls.append(graphlib_total(workload, n))
                cpus.append(_GRAPHLIB_CPU[0])
            base, base_cpu = min(walls), min(cpus)
            build_s, run_s, _ = measure_flow(workload, n, LocalExecutor(), repeat)
            rows.append(Row(workload, n, "local", build_s, run_s, tasks, "graphlib", base, LAST_CPU[0], base_cpu))
            threads, threads_cpu = _cpu_of(functools.partial(cf_threads_total, workload, n, workers), repeat)
            build_s, run_s, _ = measure_flow(workload, n, ThreadExecutor(max_workers=workers), repeat)
            rows.append(Row(workload, n, f"threads x{workers}", build_s, run_s, tasks, "cf threads", threads,
                            LAST_CPU[0], threads_cpu))
    for n in process_sizes:
        tasks = workloads.task_runs("map", n)
        # Warm up the pool's forkserver (started once per process, stopped after 2 s without a run).
        measure_flow("map", 10, ProcessExecutor(max_workers=2), 1)
        procs = min(cf_processes_map(n, 2) for _ in range(repeat))
        build_s, run_s, _ = measure_flow("map", n, ProcessExecutor(max_workers=2), repeat)
        rows.append(Row("map", n, "processes x2", build_s, run_s, tasks, "cf processes map", procs))
    return rows


def _local_total(rows: Sequence[Row], row: Row) -> float | None:
    for other in rows:
        if other.system == "local" and other.workload == row.workload and other.n == row.n:
            return other.build_s + other.run_s
    return None


def verdicts(rows: Sequence[Row]) -> list[str]:
    """PASS/FAIL lines for issue 19's targets that these rows can judge (informational: the exit status is 0)."""
    lines = []
    for r in rows:
        total = r.build_s + r.run_s
        if r.system == "local" and r.n >= 10_000 and r.workload in ("chain", "fan"):
            cpu = f", by CPU {r.cpu_ratio:.2f}x" if r.cpu_ratio is not None else ""
            lines.append(f"{'PASS' if r.ratio <= 3 else 'FAIL'} {r.workload} N={r.n}: local build+run {r.ratio:.2f}x graphlib"
                         f"{cpu} (target <= 3x)")
        if r.system == "local" and r.workload != "map":
            ok = r.build_s <= r.run_s * 1.0
            lines.append(f"{'PASS' if ok else 'FAIL'} {r.workload} N={r.n}: build {r.build_s / r.tasks * 1e6:.1f} us vs run "
                         f"{r.run_s / r.tasks * 1e6:.1f} us per task (target: build <= run)")
        if r.system.startswith("threads"):
            local = _local_total(rows, r)
            local_cpu = next((o.cpu_s for o in rows if o.system == "local" and o.workload == r.workload and o.n == r.n), None)
            if local:
                cpu = f", by CPU {r.cpu_s / local_cpu:.2f}x" if r.cpu_s is not None and local_cpu else ""
                lines.append(f"{'PASS' if total <= 2 * local else 'FAIL'} {r.workload} N={r.n}: threads {total / local:.2f}x "
                             f"local, build+run{cpu} (target <= 2x)")
        if r.system.startswith("processes"):
            lines.append(f"{'PASS' if r.ratio <= 1.5 else 'FAIL'} map N={r.n}: processes {r.ratio:.2f}x cf "
                         "ProcessPoolExecutor.map(chunksize=auto) (target <= 1.5x)")
    return lines


def thread_round_trip_us(trips: int = 2000) -> float:
    """Median microseconds for one hand-off to another thread and back (two ``SimpleQueue``s, no work).

    The floor of any executor that runs a chain's links on other threads: each link is one
    such round trip. On a virtual machine whose idle cores must be woken, it is far above the
    cost of running a trivial task.
    """
    import queue
    import statistics
    import threading

    there: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    back: queue.SimpleQueue[int] = queue.SimpleQueue()

    def echo() -> None:
        while (item := there.get()) is not None:
            back.put(item)

    thread = threading.Thread(target=echo, daemon=True)
    thread.start()
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(trips // 5):
            there.put(i)
            back.get()
        rounds.append((time.perf_counter() - start) / (trips // 5) * 1e6)
    there.put(None)
    thread.join()
    return statistics.median(rounds)


def load_line(when: str) -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {when}: {one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min) on {os.cpu_count()} cores"


def _table(rows: Sequence[Row]) -> str:
    head = (f"{'workload':<8} {'N':>6} {'system':<13} {'build us':>9} {'run us':>8} {'total us':>9} {'baseline':<17} "
            f"{'base us':>8} {'cpu us':>8} {'cpu ratio':>9} {'ratio':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        cpu = f"{r.cpu_s / r.tasks * 1e6:.1f}" if r.cpu_s is not None else "-"
        cpu_ratio = f"{r.cpu_ratio:.2f}" if r.cpu_ratio is not None else "-"
        lines.append(
            f"{r.workload:<8} {r.n:>6} {r.system:<13} {r.build_s / r.tasks * 1e6:>9.1f} {r.run_s / r.tasks * 1e6:>8.1f} "
            f"{r.total_us:>9.1f} {r.baseline:<17} {r.baseline_s / r.tasks * 1e6:>8.1f} {cpu:>8} {cpu_ratio:>9} {r.ratio:>6.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="N for local and thread rows (default 1000,10000)")
    parser.add_argument("--process-sizes", default="1000,10000", help="N for the process rows (map only)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the best is kept (default 3)")
    args = parser.parse_args(argv)
    logging.getLogger("headwater").setLevel(logging.WARNING)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    process_sizes = [int(s) for s in args.process_sizes.split(",") if s]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; microseconds per task run; ratio = (build + run) / baseline")
    before = load_line("before")
    rows = _rows(sizes, process_sizes, args.repeat)
    print(_table(rows))
    print()
    print(before)
    print(load_line("after"))
    for line in verdicts(rows):
        print(line)
    print(f"thread round trip on this machine (a hand-off to another thread and back, no work): "
          f"{thread_round_trip_us():.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
