"""Start-up costs: ``import headwater`` time and RSS, the first ``flow.run()``, ``headwater run`` of a one-task flow.

    python benchmarks/startup.py              # best of 5 fresh processes per figure
    python benchmarks/startup.py --repeat 10

Every figure is measured in fresh subprocesses of this interpreter (the best of ``--repeat`` is
kept, so a busy machine inflates it less), in a temporary, empty ``HEADWATER_HOME``:

* ``python -c pass``: the bare interpreter's start, for scale;
* ``import headwater``: wall time of the import statement inside the process, and the
  process's RSS (``VmRSS``) and peak RSS (``VmHWM``) right after it (targets: < 0.3 s, < 30 MB);
* first ``flow.run()``: a one-task flow built after the import; the first run's wall time, the
  second run's, and the first over the second (config, plugin entry points and logging set up
  on first use; target: < 0.05 s). The entry points come from the cache in
  ``$HEADWATER_HOME/cache/plugins`` (written by the first probe); the next row is the same with
  ``HEADWATER_PLUGIN_CACHE=0``, i.e. what the first process after an install pays;
* ``headwater run flow.py``: the CLI's wall time, process start to exit, for a one-task flow
  file (target: < 0.5 s);
* ``-X importtime``: the 10 modules with the largest cumulative import time under
  ``import headwater`` (one more fresh process).

The line above the table says whether headwater's modules start from cached bytecode: an
editable install under ``PYTHONDONTWRITEBYTECODE=1`` compiles every module in every process,
which doubles the import (``make venv`` compiles the sources once, as installing a wheel does).

Each timed row also shows its CPU seconds (user + system of the measured process), the figure
a machine shared with other work inflates least; the verdict is on the best wall time.

Exits 0 when every measurement ran (whatever the targets say: the PASS/FAIL lines are
informational), 1 when one failed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Figure", "ImportEntry", "import_figures", "first_run_figures", "cli_run_seconds", "importtime_top",
           "bytecode_line", "main"]

IMPORT_PROBE = """
import json, time
t0, c0 = time.perf_counter(), time.process_time()
import headwater
t1, c1 = time.perf_counter(), time.process_time()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
kb = lambda key: int(status[key].split()[0])
print(json.dumps({"import_s": t1 - t0, "import_cpu_s": c1 - c0, "rss_mb": kb("VmRSS") / 1024, "hwm_mb": kb("VmHWM") / 1024}))
"""

FIRST_RUN_PROBE = """
import json, logging, time
from headwater import Flow, task

@task
def one():
    return 1

with Flow("one") as flow:
    one()
logging.getLogger("headwater").setLevel(logging.WARNING)
t0, c0 = time.perf_counter(), time.process_time()
first = flow.run(run_on_schedule=False)
t1, c1 = time.perf_counter(), time.process_time()
second = flow.run(run_on_schedule=False)
t2, c2 = time.perf_counter(), time.process_time()
assert first.is_successful() and second.is_successful(), (first, second)
print(json.dumps({"first_s": t1 - t0, "second_s": t2 - t1, "first_cpu_s": c1 - c0, "second_cpu_s": c2 - c1}))
"""

ONE_TASK_FLOW = """
from headwater import Flow, task


@task
def one():
    return 1


with Flow("one-task") as flow:
    one()
"""


@dataclass
class Figure:
    """One printed row: what was measured, its best value, its unit, and the issue's target (if any)."""

    name: str
    value: float
    unit: str
    target: float | None = None
    cpu_s: float | None = None  # CPU seconds of the same measurement (waiting for a busy CPU does not count)

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "PASS" if self.value < self.target else "FAIL"


@dataclass
class ImportEntry:
    """One ``-X importtime`` line: the module and its self / cumulative microseconds."""

    module: str
    self_us: int
    cumulative_us: int
    depth: int = 0  # nesting level: how many imports up the chain imported this one


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "HEADWATER_HOME": str(home)}
    for key in [k for k in env if k.startswith("HEADWATER__")]:
        env.pop(key)  # the user's settings would change what is loaded
    return env


def _python_json(code: str, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"the probe process failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wall_cpu(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, the process and its waited-for children) of one command."""
    cpu0, start = _children_cpu(), time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu0
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed (exit {done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed, cpu


def _best_wall_cpu(args: list[str], env: dict[str, str], cwd: Path, repeat: int) -> tuple[float, float]:
    samples = [_wall_cpu(args, env, cwd) for _ in range(repeat)]
    return min(w for w, _ in samples), min(c for _, c in samples)


def bare_python_seconds(env: dict[str, str], cwd: Path, repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds of ``python -c pass`` (interpreter start and exit)."""
    return _best_wall_cpu([sys.executable, "-c", "pass"], env, cwd, repeat)


def import_figures(env: dict[str, str], repeat: int) -> dict[str, float]:
    """Best ``import headwater`` seconds, and the smallest RSS / peak RSS (MB) right after it, over fresh processes."""
    samples = [_python_json(IMPORT_PROBE, env) for _ in range(repeat)]
    return {key: min(s[key] for s in samples) for key in ("import_s", "import_cpu_s", "rss_mb", "hwm_mb")}


def first_run_figures(env: dict[str, str], repeat: int) -> dict[str, float]:
    """Best first and second ``flow.run()`` seconds of a one-task flow in fresh processes."""
    samples = [_python_json(FIRST_RUN_PROBE, env) for _ in range(repeat)]
    return {key: min(s[key] for s in samples) for key in ("first_s", "second_s", "first_cpu_s", "second_cpu_s")}


def headwater_command() -> list[str]:
    """The ``headwater`` console script next to this interpreter (what a user runs), else ``python -m headwater.cli``."""
    script = Path(sys.executable).parent / "headwater"
    return [str(script)] if script.exists() else [sys.executable, "-m", "headwater.cli"]


def cli_run_seconds(env: dict[str, str], cwd: Path, repeat: int) -> tuple[float, float]:
    """Best wall and CPU seconds of ``headwater run flow.py --quiet`` for a one-task flow file."""
    path = cwd / "one_task_flow.py"
    path.write_text(ONE_TASK_FLOW)
    return _best_wall_cpu([*headwater_command(), "run", str(path), "--quiet"], env, cwd, repeat)


def parse_importtime(stderr: str) -> list[ImportEntry]:
    """The entries of ``-X importtime`` output (``import time: self [us] | cumulative | imported package``)."""
    entries = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        parts = line[len("import time:"):].split("|")
        if len(parts) != 3:
            continue
        try:
            name = parts[2].rstrip()
            depth = (len(name) - len(name.lstrip()) - 1) // 2
            entries.append(ImportEntry(name.strip(), int(parts[0]), int(parts[1]), max(0, depth)))
        except ValueError:
            continue
    return entries


def importtime_top(env: dict[str, str], top: int = 10) -> list[ImportEntry]:
    """The ``top`` modules by cumulative import time under ``import headwater`` (one fresh process)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import headwater"], capture_output=True, text=True,
                          env=env, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"python -X importtime -c 'import headwater' failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    entries = parse_importtime(done.stderr)
    if not any(e.module == "headwater" for e in entries):
        raise RuntimeError("-X importtime printed no line for headwater: is the interpreter the project's venv?")
    return sorted(entries, key=lambda e: e.cumulative_us, reverse=True)[:top]


def measure(repeat: int, work: Path) -> tuple[list[Figure], list[ImportEntry]]:
    """Every figure, in fresh subprocesses with ``work/home`` as an empty ``HEADWATER_HOME``."""
    home = work / "home"
    home.mkdir(exist_ok=True)
    env = _env(home)
    bare = bare_python_seconds(env, work, repeat)
    imported = import_figures(env, repeat)
    runs = first_run_figures(env, repeat)  # the first probe writes the entry-point cache, the others read it
    cold = first_run_figures({**env, "HEADWATER_PLUGIN_CACHE": "0"}, repeat)
    cli = cli_run_seconds(env, work, repeat)
    figures = [
        Figure("python -c pass (wall)", bare[0], "s", cpu_s=bare[1]),
        Figure("import headwater", imported["import_s"], "s", 0.3, imported["import_cpu_s"]),
        Figure("RSS after import", imported["rss_mb"], "MB", 30.0),
        Figure("peak RSS after import", imported["hwm_mb"], "MB"),
        Figure("first flow.run() (one task)", runs["first_s"], "s", cpu_s=runs["first_cpu_s"]),
        Figure("second flow.run()", runs["second_s"], "s", cpu_s=runs["second_cpu_s"]),
        Figure("first flow.run() over a warm run", runs["first_s"] - runs["second_s"], "s", 0.05,
               runs["first_cpu_s"] - runs["second_cpu_s"]),
        Figure("  the same, entry points scanned", cold["first_s"] - cold["second_s"], "s", None,
               cold["first_cpu_s"] - cold["second_cpu_s"]),
        Figure("headwater run flow.py (wall)", cli[0], "s", 0.5, cli[1]),
    ]
    return figures, importtime_top(env)


def format_figures(figures: Sequence[Figure]) -> str:
    head = f"{'measure':<34} {'best':>10} {'unit':<4} {'CPU s':>8} {'target':>8}  verdict"
    lines = [head, "-" * len(head)]
    for f in figures:
        target = f"< {f.target:g}" if f.target is not None else ""
        cpu = f"{f.cpu_s:.4f}" if f.cpu_s is not None else ""
        lines.append(f"{f.name:<34} {f.value:>10.4f} {f.unit:<4} {cpu:>8} {target:>8}  {f.verdict}")
    return "\n".join(lines)


def format_importtime(entries: Sequence[ImportEntry]) -> str:
    head = f"{'module':<44} {'depth':>5} {'cumulative ms':>13} {'self ms':>8}"
    lines = [head, "-" * len(head)]
    for e in entries:
        lines.append(f"{e.module[:44]:<44} {e.depth:>5} {e.cumulative_us / 1000:>13.1f} {e.self_us / 1000:>8.1f}")
    return "\n".join(lines)


def bytecode_line() -> str:
    """Whether headwater's modules start from cached bytecode, as an installed wheel's do.

    An editable install under ``PYTHONDONTWRITEBYTECODE=1`` (set on some CI machines) has none,
    so every process compiles each module from source: about half the import time and of the
    first ``flow.run()``'s. ``make venv`` compiles the sources once, as ``pip install`` compiles a wheel.
    """
    import importlib.util

    spec = importlib.util.find_spec("headwater")
    origin = spec.origin if spec is not None else None
    if origin is None:
        return "bytecode: headwater not found"
    cached = Path(importlib.util.cache_from_source(origin))
    if cached.exists():
        return f"bytecode: cached ({cached.parent})"
    return ("bytecode: NOT cached; every process compiles headwater from source (PYTHONDONTWRITEBYTECODE="
            f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}); run `python -m compileall -q core/src plugins` "
            "(make venv does) for an installed wheel's figures")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per figure; the best is kept (default 5)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    with tempfile.TemporaryDirectory(prefix="hw-startup-") as tmp:
        try:
            figures, top = measure(args.repeat, Path(tmp))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"startup benchmark failed: {exc}", file=sys.stderr)
            return 1
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; best of {args.repeat} fresh processes")
    print(bytecode_line())
    print(format_figures(figures))
    one, five, fifteen = os.getloadavg()
    print(f"load average after the run: {one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min)")
    print()
    print("python -X importtime -c 'import headwater': top 10 by cumulative time")
    print(format_importtime(top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
