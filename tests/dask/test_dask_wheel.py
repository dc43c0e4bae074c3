"""headwater-dask installs on its own from its wheel into a fresh venv (with the core's wheel), and works there."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from install_helpers import fresh_venv, pip_install

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = '''
import json, logging
from headwater import Flow, task
from headwater.plugins import registry
from headwater_dask import DaskExecutor, LocalDaskExecutor

@task
def inc(x):
    return x + 1

@task
def total(xs):
    return sum(xs)

with Flow("wheel-check") as flow:
    result = total(inc.map([1, 2, 3]))

out = {"registry": sorted(n for n in ("DaskExecutor", "LocalDaskExecutor") if n in registry("executor"))}
for name, executor in [
    ("threads", LocalDaskExecutor(scheduler="threads", num_workers=2)),
    ("cluster", DaskExecutor(cluster_kwargs={"processes": False, "n_workers": 1, "threads_per_worker": 2})),
]:
    state = flow.run(executor=executor, run_on_schedule=False)
    out[name] = state.result[result].result
print(json.dumps(out))
'''


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs_a_flow(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    sources = tmp_path / "src"
    for name, source in (("core", ROOT / "core"), ("dask", ROOT / "plugins" / "dask")):
        shutil.copytree(source, sources / name, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--wheel-dir", str(wheels), str(sources / "core"), str(sources / "dask")],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    assert len(list(wheels.glob("headwater_dask-0.1.0-*.whl"))) == 1
    env_dir = tmp_path / "venv"
    python = fresh_venv(env_dir)
    constraints = tmp_path / "constraints.txt"  # the project's pins, without extras (pip refuses those there)
    pins = [re.sub(r"\[.*?\]", "", line.split("#")[0]).strip()
            for name in ("dev.txt", "dask.txt") for line in (ROOT / "requirements" / name).read_text().splitlines()]
    constraints.write_text("\n".join(p for p in pins if p) + "\n")
    installed = pip_install(python, "--find-links", str(wheels), "-c", str(constraints), "headwater-dask")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    listed = subprocess.run([str(env_dir / "bin" / "headwater"), "plugins", "--json"], capture_output=True, text=True,
                            check=False, timeout=120, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    [row] = [r for r in json.loads(listed.stdout) if r["distribution"] == "headwater-dask"]
    assert (row["name"], row["status"]) == ("dask", "loaded")
    assert row["tags"]["executor"] == ["DaskExecutor", "LocalDaskExecutor"]
    ran = subprocess.run([str(python), "-c", SCRIPT], capture_output=True, text=True, check=False, timeout=300,
                         cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = json.loads(ran.stdout.strip().splitlines()[-1])
    assert out == {"registry": ["DaskExecutor", "LocalDaskExecutor"], "threads": 9, "cluster": 9}
