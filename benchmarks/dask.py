"""headwater on Dask against Dask itself: raw futures, DaskExecutor, LocalDaskExecutor, dask.compute, Prefect 1.

Run ``python benchmarks/dask.py [--sizes 1000,10000] [--repeat 1] [--prefect-python PATH]``.

The workloads of benchmarks/engine.py, built here with this file's own functions (so raw
Dask, headwater and Prefect run exactly the same Python):

- ``chain``  N tasks, each taking the previous task's result;
- ``fan``    N independent tasks plus a reduce over all of them;
- ``map``    one task mapped over N items plus a reduce.

One ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1")`` is
started (or ``--address`` given) and shared by every row. Each measurement is one child
process (the "flow-run process") that connects, runs the workload at N=10 untimed to warm up,
then times one run at N and reports its wall time and its peak RSS (``ru_maxrss``). Rows are
interleaved (every row of a workload and size, then the next), so they share the
machine's load:

- ``raw``            ``client.submit`` / ``client.map`` futures, dependencies as futures: the floor;
- ``hw-dask``        headwater ``flow.run(executor=DaskExecutor(address=...))``;
- ``local-threads``  headwater ``LocalDaskExecutor(scheduler="threads", num_workers=2)``;
- ``dask-compute``   ``dask.compute`` of the same graph as ``dask.delayed`` (threads, 2 workers):
                     the floor for ``local-threads``;
- ``prefect1``       Prefect 1.4.1's ``DaskExecutor`` in a side venv (``--prefect-python``), on
                     its own identical LocalCluster (its workers must import prefect).

The engine of headwater stays in the flow-run process, so every task's result travels back
to it and every downstream task is submitted from it; the raw floor chains futures on the
cluster without that round trip.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# This file is called dask.py: run as a script, its directory would come first on sys.path and
# shadow the real dask package. Drop it before anything imports dask.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

__all__ = ["ROWS", "WORKLOADS", "expected_result", "task_runs", "run_row", "Measurement", "main"]

WORKLOADS = ("chain", "fan", "map")
ROWS = ("raw", "hw-dask", "local-threads", "dask-compute", "prefect1")
FLOOR = {"hw-dask": "raw", "prefect1": "raw", "local-threads": "dask-compute"}
RATIO_TARGET = 1.5
"""DaskExecutor may spend at most this many times the raw futures' time per task."""
DEFAULT_PREFECT = "/tmp/prefect1-venv/bin/python"


# --- the work (the same functions for every row) --------------------------------------------------


def inc(x: int) -> int:
    return x + 1


def value(i: int) -> int:
    return i + 1


def items(n: int) -> list[int]:
    return list(range(n))


def add_all(xs: list[int]) -> int:
    return sum(xs)


def expected_result(workload: str, n: int) -> int:
    return {"chain": n, "fan": n * (n + 1) // 2, "map": n * (n + 1) // 2}[workload]


def task_runs(workload: str, n: int) -> int:
    """Task runs of one headwater execution (the per-task figures of every row divide by this)."""
    return {"chain": n, "fan": n + 2, "map": n + 2}[workload]


# --- the rows (each runs in a child process) --------------------------------------------------------


def _raw(workload: str, n: int, address: str) -> Any:
    from distributed import Client

    client = Client(address, set_as_default=False)

    def once() -> int:
        if workload == "chain":
            f = client.submit(inc, 0, pure=False)
            for _ in range(n - 1):
                f = client.submit(inc, f, pure=False)
            return int(f.result())
        if workload == "fan":
            leaves = client.map(value, range(n), pure=False)
            return int(client.submit(add_all, leaves, pure=False).result())
        listed = client.submit(items, n, pure=False).result()
        mapped = client.map(inc, listed, pure=False)
        return int(client.submit(add_all, mapped, pure=False).result())

    return once, client.close


def _headwater_flow(workload: str, n: int) -> tuple[Any, Any]:
    from headwater import Flow, task

    t_inc, t_value, t_items, t_add_all = task(inc), task(value), task(items), task(add_all)
    with Flow(f"{workload}-{n}") as flow:
        if workload == "chain":
            final = t_inc(0)
            for _ in range(n - 1):
                final = t_inc(final)
        elif workload == "fan":
            final = t_add_all([t_value(i) for i in range(n)])
        else:
            final = t_add_all(t_inc.map(t_items(n)))
    return flow, final


def _headwater(workload: str, n: int, executor_factory: Any) -> Any:
    flow, final = _headwater_flow(workload, n)

    def once() -> int:
        state = flow.run(executor=executor_factory(), run_on_schedule=False)
        if not state.is_successful():
            raise RuntimeError(f"headwater {workload} N={n} did not succeed: {state!r}")
        return int(state.result[final].result)

    return once, lambda: None


def _dask_compute(workload: str, n: int) -> Any:
    import dask

    d_inc, d_value, d_items, d_add_all = (dask.delayed(f, pure=False) for f in (inc, value, items, add_all))

    def once() -> int:
        if workload == "chain":
            x = d_inc(0)
            for _ in range(n - 1):
                x = d_inc(x)
        elif workload == "fan":
            x = d_add_all([d_value(i) for i in range(n)])
        else:  # a delayed list cannot be mapped over lazily: the items are known, as in dask.bag
            x = d_add_all([d_inc(i) for i in items(n)])
        (result,) = dask.compute(x, scheduler="threads", num_workers=2)
        return int(result)

    return once, lambda: None


def _prefect1(workload: str, n: int) -> Any:
    from distributed import LocalCluster
    from prefect import Flow, task
    from prefect.executors import DaskExecutor

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
    t_inc, t_value, t_items, t_add_all = task(inc), task(value), task(items), task(add_all)
    with Flow(f"{workload}-{n}") as flow:
        if workload == "chain":
            final = t_inc(0)
            for _ in range(n - 1):
                final = t_inc(final)
        elif workload == "fan":
            final = t_add_all([t_value(i) for i in range(n)])
        else:
            final = t_add_all(t_inc.map(t_items(n)))

    def once() -> int:
        state = flow.run(executor=DaskExecutor(address=cluster.scheduler_address))
        if not state.is_successful():
            raise RuntimeError(f"Prefect 1 {workload} N={n} did not succeed: {state!r}")
        return int(state.result[final].result)

    return once, cluster.close


WARM_UP_N = 10
"""The warm-up runs the same workload at this size (imports, connections, worker caches)."""


def run_row(row: str, workload: str, n: int, address: str | None) -> dict[str, Any]:
    """Warm up (the workload at N=WARM_UP_N), then time one run of ``row`` at ``n``, in this process.

    The ``headwater`` and ``prefect`` loggers are quiet (WARNING) while it runs, and restored after.
    """
    loggers = [logging.getLogger("headwater"), logging.getLogger("prefect")]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        return _run_row(row, workload, n, address)
    finally:
        for lg, level in zip(loggers, saved, strict=True):
            lg.setLevel(level)


def _run_row(row: str, workload: str, n: int, address: str | None) -> dict[str, Any]:
    import resource

    warm_once, warm_close = _make(row, workload, min(n, WARM_UP_N), address)
    try:
        warm = warm_once()
    finally:
        warm_close()
    if warm != expected_result(workload, min(n, WARM_UP_N)):
        raise RuntimeError(f"{row} {workload} warm-up: got {warm!r}")
    once, close = _make(row, workload, n, address)
    cluster = _cluster_processes(address if row in ("raw", "hw-dask") else None)
    try:
        base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cpu_before = time.process_time() + _cpu(cluster)
        start = time.perf_counter()
        got = once()
        seconds = time.perf_counter() - start
        cpu = time.process_time() + _cpu(cluster) - cpu_before
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        close()
    want = expected_result(workload, n)
    if got != want:
        raise RuntimeError(f"{row} {workload} N={n}: got {got!r}, want {want!r}")
    return {"seconds": seconds, "rss_mb": peak, "base_rss_mb": base_rss, "result": got, "cpu_s": cpu,
            "load": os.getloadavg()[0]}


def _cluster_processes(address: str | None) -> list[Any]:
    """The scheduler's and workers' processes (psutil), to add their CPU time to this process's.

    The rows on the shared cluster (raw, hw-dask) are charged the cluster's CPU too, so the CPU
    figures compare the whole work per task; the machine's load changes wall times far more.
    """
    if address is None:
        return []
    import psutil
    from distributed import Client

    with Client(address, set_as_default=False) as client:
        pids = set(client.run(os.getpid).values()) | {client.run_on_scheduler(os.getpid)}
    pids.discard(os.getpid())
    return [psutil.Process(pid) for pid in sorted(pids)]


def _cpu(processes: Sequence[Any]) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
        except Exception:  # a worker that went away: its CPU is not counted
            continue
        total += times.user + times.system
    return total


def _make(row: str, workload: str, n: int, address: str | None) -> tuple[Any, Any]:
    if row == "raw":
        assert address
        once, close = _raw(workload, n, address)
    elif row == "hw-dask":
        from headwater_dask import DaskExecutor

        once, close = _headwater(workload, n, lambda: DaskExecutor(address=address))
    elif row == "local-threads":
        from headwater_dask import LocalDaskExecutor

        once, close = _headwater(workload, n, lambda: LocalDaskExecutor(scheduler="threads", num_workers=2))
    elif row == "dask-compute":
        once, close = _dask_compute(workload, n)
    elif row == "prefect1":
        once, close = _prefect1(workload, n)
    else:
        raise ValueError(f"unknown row {row!r}; rows: {', '.join(ROWS)}")
    return once, close


# --- the benchmark ------------------------------------------------------------------------------------


@dataclass
class Measurement:
    row: str
    workload: str
    n: int
    seconds: float | None
    rss_mb: float | None
    note: str = ""
    cpu_s: float | None = None
    """CPU seconds of the flow-run process, plus the cluster's scheduler and workers for raw and hw-dask."""
    load: float | None = None
    """The machine's 1-minute load average when the timed run ended."""

    @property
    def runs(self) -> int:
        return task_runs(self.workload, self.n)

    @property
    def us_per_task(self) -> float | None:
        return None if self.seconds is None else self.seconds / self.runs * 1e6

    @property
    def cpu_us_per_task(self) -> float | None:
        return None if self.cpu_s is None else self.cpu_s / self.runs * 1e6

    @property
    def tasks_per_s(self) -> float | None:
        return None if not self.seconds else self.runs / self.seconds


def _child(row: str, workload: str, n: int, address: str | None, python: str) -> Measurement:
    cmd = [python, os.path.abspath(__file__), "--_row", row, "--workloads", workload, "--sizes", str(n)]
    if address:
        cmd += ["--address", address]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)} if row != "prefect1" else None
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, timeout=3600)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return Measurement(row, workload, n, None, None, f"failed: {tail[:160]}")
    data = json.loads(done.stdout.strip().splitlines()[-1])
    return Measurement(row, workload, n, data["seconds"], data["rss_mb"], cpu_s=data.get("cpu_s"), load=data.get("load"))


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _table(rows: Sequence[Measurement]) -> str:
    index = {(m.row, m.workload, m.n): m for m in rows}
    head = (f"{'workload':<8} {'N':>6} {'row':<14} {'wall s':>9} {'us/task':>9} {'x floor':>8} {'cpu us/task':>11} "
            f"{'x cpu':>6} {'tasks/s':>8} {'RSS MB':>7} {'load':>5}  note")
    lines = [head, "-" * len(head)]
    for m in rows:
        floor = index.get((FLOOR.get(m.row, ""), m.workload, m.n))
        ratio = cpu_ratio = None
        if floor is not None and m.seconds and floor.seconds:
            ratio = m.seconds / floor.seconds
        if floor is not None and m.cpu_s and floor.cpu_s and m.row != "prefect1":
            cpu_ratio = m.cpu_s / floor.cpu_s
        lines.append(
            f"{m.workload:<8} {m.n:>6} {m.row:<14} {_fmt(m.seconds, '9.3f')} {_fmt(m.us_per_task, '9.0f')} "
            f"{_fmt(ratio, '8.2f')} {_fmt(m.cpu_us_per_task if m.row != 'prefect1' else None, '11.0f')} "
            f"{_fmt(cpu_ratio, '6.2f')} {_fmt(m.tasks_per_s, '8.0f')} {_fmt(m.rss_mb, '7.0f')} {_fmt(m.load, '5.1f')}  {m.note}"
        )
    return "\n".join(lines)


def verdicts(rows: Sequence[Measurement]) -> list[tuple[bool | None, str]]:
    """DaskExecutor within RATIO_TARGET of raw futures at every size (fan, map; chain is reported: ``None``);
    marginal cost 1k -> 10k per row."""
    index = {(m.row, m.workload, m.n): m for m in rows}
    out: list[tuple[bool | None, str]] = []
    sizes = sorted({m.n for m in rows})
    for workload in WORKLOADS:
        for n in sizes:
            mine, floor = index.get(("hw-dask", workload, n)), index.get(("raw", workload, n))
            if mine and floor and mine.seconds and floor.seconds:
                ratio = mine.seconds / floor.seconds
                if workload == "chain":  # every link's state comes back to the engine: a round trip raw futures skip
                    out.append((None, f"{workload} N={n}: DaskExecutor {ratio:.2f}x the raw futures per task "
                                      "(a client round trip per link: no target)"))
                    continue
                out.append((ratio <= RATIO_TARGET, f"{workload} N={n}: DaskExecutor {ratio:.2f}x the raw futures per task "
                                                   f"(target <= {RATIO_TARGET:g}x)"))
    if len(sizes) >= 2:
        small, large = sizes[-2], sizes[-1]
        for row in ROWS:
            for workload in WORKLOADS:
                a, b = index.get((row, workload, small)), index.get((row, workload, large))
                if not (a and b and a.seconds and b.seconds):
                    continue
                marginal = (b.seconds - a.seconds) / (b.runs - a.runs) * 1e6
                average = a.seconds / a.runs * 1e6
                flat = marginal <= 2.0 * average
                out.append((flat, f"{row} {workload}: marginal {marginal:.0f} us/task from N={small} to N={large} "
                                  f"vs {average:.0f} us/task at N={small} ({'flat' if flat else 'grows'})"))
    return out


def _start_cluster() -> Any:
    from distributed import LocalCluster

    return LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000", help="comma-separated N (default 1000,10000)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated subset of chain,fan,map")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds; the best time is kept (default 1)")
    parser.add_argument("--address", default=None, help="use this Dask scheduler instead of starting a LocalCluster")
    parser.add_argument("--prefect-python", default=DEFAULT_PREFECT,
                        help=f"python of a venv with prefect==1.4.1 (default {DEFAULT_PREFECT}); the row is skipped without it")
    parser.add_argument("--prefect-max-n", type=int, default=1000, help="largest N for the Prefect 1 row")
    parser.add_argument("--_row", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    bad = [w for w in workloads if w not in WORKLOADS] + [r for r in rows if r not in ROWS]
    if bad:
        parser.error(f"unknown workload(s)/row(s) {', '.join(bad)}; workloads: {', '.join(WORKLOADS)}; rows: {', '.join(ROWS)}")
    if args._row:  # a child: one measurement, JSON on the last line
        print(json.dumps(run_row(args._row, workloads[0], sizes[0], args.address)))
        return 0
    cluster = None
    address = args.address
    if address is None:
        cluster = _start_cluster()
        address = cluster.scheduler_address
    print(f"headwater on Dask: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, LocalCluster(n_workers=2, "
          f"threads_per_worker=1, processes=True) at {address}; {args.repeat} interleaved round(s), best kept.")
    print("wall s: one timed run after a warm-up at N=10, in a fresh flow-run process; x floor: hw-dask and prefect1 vs raw, "
          "local-threads vs dask-compute; cpu us/task: CPU of that process, plus the shared cluster's scheduler and "
          "workers for raw and hw-dask (x cpu: the same ratio in CPU); RSS MB: peak RSS of that process; load: the "
          f"machine's 1-minute load average after the run (load at start: {os.getloadavg()[0]:.1f}).", flush=True)
    prefect_ok = os.path.exists(args.prefect_python)
    best: dict[tuple[str, str, int], Measurement] = {}
    plan = [(row, workload, n) for n in sizes for workload in workloads for row in rows if row != "prefect1"]
    plan += [("prefect1", workload, n) for n in sizes for workload in workloads if "prefect1" in rows]  # slowest last
    try:
        for _ in range(args.repeat):
            for row, workload, n in plan:
                if row == "prefect1" and (not prefect_ok or n > args.prefect_max_n):
                    why = "no prefect venv" if not prefect_ok else f"N > --prefect-max-n {args.prefect_max_n}"
                    best.setdefault((row, workload, n), Measurement(row, workload, n, None, None, f"skipped: {why}"))
                    continue
                python = args.prefect_python if row == "prefect1" else sys.executable
                m = _child(row, workload, n, None if row in ("prefect1", "dask-compute") else address, python)
                print(f"  {row} {workload} N={n}: {_fmt(m.seconds, '.3f')} s, {_fmt(m.rss_mb, '.0f')} MB, "
                      f"load {_fmt(m.load, '.1f')} {m.note}",
                      file=sys.stderr, flush=True)
                old = best.get((row, workload, n))
                if old is None or old.seconds is None or (m.seconds is not None and m.seconds < old.seconds):
                    best[(row, workload, n)] = m
    finally:
        if cluster is not None:
            cluster.close()
    ordered = [best[(r, w, n)] for w in workloads for n in sizes for r in rows if (r, w, n) in best]
    print()
    print(_table(ordered))
    print()
    results = verdicts(ordered)
    for ok, line in results:
        print(("INFO " if ok is None else "PASS " if ok else "FAIL ") + line)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} (1, 5, 15 min) on "
          f"{os.cpu_count()} CPUs")
    return 0 if all(ok is not False for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
