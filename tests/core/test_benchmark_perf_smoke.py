"""benchmarks/startup.py runs with one process per figure and prints every row (no timing is asserted)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "startup.py"
ROWS = [
    "python -c pass (wall)", "import headwater", "RSS after import", "peak RSS after import",
    "first flow.run() (one task)", "second flow.run()", "first flow.run() over a warm run", "headwater run flow.py (wall)",
]


@pytest.fixture(scope="module")
def bench() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("headwater_benchmark_startup", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is created
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_the_startup_benchmark_runs_and_prints_every_figure(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(BENCHMARK), "--repeat", "1"], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for name in ROWS:
        row = next((line for line in lines if line.startswith(name + " ")), None)
        assert row is not None, f"no row {name!r} in:\n{done.stdout}"
        assert float(row[len(name):].split()[0]) >= 0 or name.endswith("warm run"), row
    assert lines[1].startswith("bytecode: "), done.stdout  # cached or not: the figures depend on it
    top = lines[lines.index("python -X importtime -c 'import headwater': top 10 by cumulative time") + 3:]
    assert len(top) == 10, done.stdout
    assert top[0].split()[0] == "headwater"  # the package's own import includes every other line
    assert all(float(line.split()[-2]) > 0 for line in top)


def test_parse_importtime_reads_modules_depths_and_times(bench: ModuleType) -> None:
    stderr = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |     _abc\n"
        "import time:       447 |       9000 |   headwater.states\n"
        "import time:     11046 |      20000 | headwater\n"
        "some other line\n"
    )
    entries = bench.parse_importtime(stderr)
    assert [(e.module, e.self_us, e.cumulative_us, e.depth) for e in entries] == [
        ("_abc", 120, 120, 2), ("headwater.states", 447, 9000, 1), ("headwater", 11046, 20000, 0),
    ]


def test_a_failing_probe_names_the_process_and_its_error(bench: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="(?s)probe process failed.*ZeroDivisionError"):
        bench._python_json("1 / 0", {"PATH": "/usr/bin:/bin"})


def test_the_one_task_flow_file_runs(bench: ModuleType, tmp_path: Path) -> None:
    wall, cpu = bench.cli_run_seconds(bench._env(tmp_path / "home"), tmp_path, 1)
    assert wall > 0 and cpu > 0  # the CPU of the waited-for child is counted
    assert "one-task" in (tmp_path / "one_task_flow.py").read_text()


def test_the_bytecode_line_says_whether_headwater_starts_from_cached_bytecode(bench: ModuleType,
                                                                             monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    source = tmp_path / "headwater" / "__init__.py"
    source.parent.mkdir()
    source.write_text("")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: importlib.machinery.ModuleSpec(name, None, origin=str(source)))
    assert bench.bytecode_line().startswith("bytecode: NOT cached")
    import py_compile

    py_compile.compile(str(source))
    assert bench.bytecode_line().startswith("bytecode: cached")
