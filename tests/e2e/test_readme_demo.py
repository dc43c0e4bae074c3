"""The README's demo, as `make demo` runs it: locally, then through a server, an agent and a run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_orchestrated_demo_registers_runs_and_cleans_up() -> None:
    env = {**os.environ, "BIN": str(Path(sys.executable).parent), "DEMO_KEEP": "0"}
    env.pop("HEADWATER_HOME", None)
    result = subprocess.run(
        ["bash", str(ROOT / "examples" / "orchestrated_demo.sh")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "demo: Registered (version 1)" in out
    assert "state    Submitted" in out and "state    Running" in out
    assert "loaded 8 values (source ok), total 204" in out
    assert "finished: Success" in out
    home = next(line.split("SQLite in ", 1)[1].split(",", 1)[0] for line in out.splitlines() if "SQLite in " in line)
    assert not Path(home).exists(), "the demo removes its throwaway home"
    leftovers = subprocess.run(["pgrep", "-f", home], capture_output=True, text=True)
    assert leftovers.stdout.strip() == "", "server and agent are stopped"


def test_orchestrated_demo_keeps_the_finished_run_for_the_ui() -> None:
    env = {**os.environ, "BIN": str(Path(sys.executable).parent)}
    env.pop("HEADWATER_HOME", None)
    env.pop("DEMO_KEEP", None)
    result = subprocess.run(
        ["bash", str(ROOT / "examples" / "orchestrated_demo.sh")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "the UI is at http://127.0.0.1:" in out and "then open http://127.0.0.1:" in out
    home = next(line.split("SQLite in ", 1)[1].split(",", 1)[0] for line in out.splitlines() if "SQLite in " in line)
    try:
        assert list(Path(home).rglob("*.db")), "the demo keeps the database with the finished run"
        leftovers = subprocess.run(["pgrep", "-f", home], capture_output=True, text=True)
        assert leftovers.stdout.strip() == "", "server and agent are stopped"
    finally:
        import shutil

        shutil.rmtree(home, ignore_errors=True)
