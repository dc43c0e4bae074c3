"""headwater-k8s installs on its own from its wheel into a fresh venv (with the core's wheel) and works there."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from headwater.testing.distributions import install_distributions
from install_helpers import fresh_venv, pip_install

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]

CHECK = """
import json, sys
from headwater.run_configs import KubernetesRun
from headwater.storage import Local
storage = Local(directory=sys.argv[1])
storage.flows["etl"] = "etl/abc.flow"
job = KubernetesRun(image="registry/etl:1", cpu_request="500m").build_job(storage, "etl/abc.flow", flow_run_id="abc12345")
import kubernetes, headwater_k8s
print(json.dumps({"name": job["metadata"]["name"], "kubernetes": kubernetes.__version__, "k8s": headwater_k8s.__version__,
                  "module": KubernetesRun.__module__}))
"""


def test_wheel_installs_into_a_fresh_venv(tmp_path: Path) -> None:
    install_distributions({"core": REPO / "core", "k8s": REPO / "plugins" / "k8s"}, tmp_path / "build")
    wheels = tmp_path / "build" / "_wheels"
    env_dir = tmp_path / "venv"
    python = fresh_venv(env_dir)
    constraints = tmp_path / "constraints.txt"  # the project's pins (constraints take no extras)
    pins = [line.split("#")[0].strip() for name in ("dev.txt", "k8s.txt") for line in (REPO / "requirements" / name).read_text().splitlines()]
    constraints.write_text("\n".join(re.sub(r"\[.*?\]", "", pin) for pin in pins if pin) + "\n")
    done = pip_install(python, "--find-links", str(wheels), "-c", str(constraints), "headwater-k8s")
    assert done.returncode == 0, done.stdout + done.stderr
    clean = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "HEADWATER_HOME": str(tmp_path / "home")}
    listed = subprocess.run([str(env_dir / "bin" / "headwater"), "plugins", "--json"], capture_output=True, text=True, check=False,
                            env=clean, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["k8s"]["distribution"] == "headwater-k8s" and rows["k8s"]["status"] == "loaded", rows
    ran = subprocess.run([str(python), "-c", CHECK, str(tmp_path / "flows")], capture_output=True, text=True, check=False,
                         env=clean, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    facts = json.loads(ran.stdout)
    assert facts["module"] == "headwater_k8s.run_config" and facts["k8s"] == "0.1.0"
    assert facts["kubernetes"].startswith("37.") and facts["name"].startswith("headwater-etl-abc12345-")
    manifest = subprocess.run([str(env_dir / "bin" / "headwater"), "k8s", "agent-manifest", "--api", "http://x:4200/graphql"],
                              capture_output=True, text=True, check=False, env=clean, cwd=tmp_path)
    assert manifest.returncode == 0 and "kind: Deployment" in manifest.stdout, manifest.stderr
