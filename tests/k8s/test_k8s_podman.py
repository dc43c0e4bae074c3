"""A generated pod spec, run for real: the Job's pod template wrapped in ``kind: Pod`` and run with
``podman kube play`` on the offline base image, with headwater installed from host wheels (a hostPath
volume on ``PYTHONPATH``; nothing is pip-installed inside the container). The flow run inside reports
Success to a headwater server on 127.0.0.1 (``hostNetwork: true``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from fake_k8s import K8S_VERSION
from headwater.client import Client
from headwater.testing.distributions import install_distributions
from headwater_cloud_api.testing import ServerProcess, register_flows

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
IMAGE = "localhost/localbase:latest"
FLOW = '''
from headwater import Flow, Parameter, task
from headwater.run_configs import KubernetesRun
from headwater.storage import Local


@task(log_stdout=True)
def greet(name):
    print(f"hello {name} from podman")
    return name


with Flow("podman-pod", storage=Local(directory="{storage}"),
          run_config=KubernetesRun(image="{image}", labels=["k8s"], memory_limit="512Mi")) as flow:
    greet(Parameter("name", default="kube play"))
'''


def _podman_usable() -> str | None:
    """None when podman can run the base image, else why not."""
    if shutil.which("podman") is None:
        setup = REPO / "scripts" / "system-deps.d" / "containers.sh"
        return f"podman is not installed (run {setup} as root)"
    base = subprocess.run(["podman", "image", "exists", "localbase"], capture_output=True, check=False)
    if base.returncode != 0:
        script = REPO / "scripts" / "podman-base-image.sh"
        built = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False, timeout=600)
        if built.returncode != 0:
            return f"the offline base image could not be built with {script}: {built.stderr[-500:]}"
    return None


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """headwater, headwater-cloud-api and headwater-k8s with their dependencies, ``pip install --target``-ed on the host."""
    reason = _podman_usable()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("podman-site")
    install_distributions({"core": REPO / "core", "cloud-api": REPO / "plugins" / "cloud-api", "k8s": REPO / "plugins" / "k8s"}, root)
    target = root / "site"
    constraints = root / "constraints.txt"  # the pinned versions (pip constraints take no extras)
    pins = [line.split("#")[0].strip() for name in ("dev.txt", "k8s.txt") for line in (REPO / "requirements" / name).read_text().splitlines()]
    constraints.write_text("\n".join(re.sub(r"\[.*?\]", "", pin) for pin in pins if pin) + "\n")
    wheels = sorted(str(w) for w in (root / "_wheels").glob("*.whl"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check", "--target", str(target),
         "-c", str(constraints), *wheels],
        capture_output=True, text=True, check=False, timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return target


@pytest.fixture
def pod_runner(tmp_path: Path) -> Iterator[list[Path]]:
    """Pod files given to ``podman kube play``; their pods are removed at the end, whatever happened."""
    played: list[Path] = []
    yield played
    for path in played:
        subprocess.run(["podman", "kube", "down", str(path)], capture_output=True, check=False, timeout=120,
                       env=_podman_env(path.parent), cwd=path.parent)


PAUSE_IMAGE = "localhost/headwater-k8s-pause:2"
PAUSE_FILE = """FROM localhost/localbase:latest
RUN printf '#!/bin/sh\\ntrap "exit 0" TERM INT\\nwhile :; do sleep 1 & wait $!; done\\n' > /pause && chmod 755 /pause
ENTRYPOINT ["/pause"]
CMD []
"""


def _podman_env(tmp_path: Path) -> dict[str, str]:
    """podman's environment. Without catatonit (podman builds its own pause image with it) the pods' infra
    container is a pause image built offline from the base image, named in a containers.conf that extends
    the machine's (CONTAINERS_CONF)."""
    env = dict(os.environ)
    if shutil.which("catatonit") is not None or Path("/usr/libexec/podman/catatonit").exists():
        return env
    if subprocess.run(["podman", "image", "exists", PAUSE_IMAGE], capture_output=True, check=False).returncode != 0:
        context = tmp_path / "pause-image"
        context.mkdir(exist_ok=True)
        (context / "Containerfile").write_text(PAUSE_FILE)
        built = subprocess.run(["podman", "build", "--network", "none", "-t", PAUSE_IMAGE, str(context)],
                               capture_output=True, text=True, check=False, timeout=300)
        assert built.returncode == 0, built.stdout + built.stderr
    system = Path("/etc/containers/containers.conf")
    text = system.read_text() if system.exists() else ""
    infra = f'infra_image = "{PAUSE_IMAGE}"\ninfra_command = "/pause"\n'
    text = text.replace("[engine]\n", "[engine]\n" + infra) if "[engine]\n" in text else text + "\n[engine]\n" + infra
    conf = tmp_path / "containers.conf"
    conf.write_text(text)
    env["CONTAINERS_CONF"] = str(conf)
    return env


def _pod_from_job(job: dict[str, Any]) -> dict[str, Any]:
    template = job["spec"]["template"]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": job["metadata"]["name"], "labels": template["metadata"]["labels"]},
            "spec": template["spec"]}


def test_generated_pod_runs_under_podman_and_reports_success(site: Path, tmp_path: Path, pod_runner: list[Path]) -> None:
    from headwater_cloud_api.agent.agent import flow_run_command
    from headwater_k8s.run_config import KubernetesRun

    storage_dir = tmp_path / "flows"
    flow_file = tmp_path / "repo" / "podman_flow.py"
    flow_file.parent.mkdir()
    flow_file.write_text(FLOW.replace("{storage}", str(storage_dir)).replace("{image}", IMAGE))
    server = ServerProcess(f"sqlite:///{tmp_path / 'api.db'}", tmp_path, lease=60.0).start()
    try:
        with Client(api=server.api, api_key="") as client:
            ids = register_flows(client, flow_file, project="podman")
            run_id = str(client.flow(id=ids["podman-pod"]).create_run(parameters={"name": "kube play"}).id)
            flow = client.graphql("query($i: String!) { flow_run(id: $i) { flow { storage } } }", {"i": run_id})
            from headwater.plugins import from_dict

            storage = from_dict(flow["flow_run"]["flow"]["storage"], "storage")
            # what the agent would create, plus what this machine needs: host network, host wheels, the storage
            mounts = {"site": (str(site), "/opt/headwater/site"), "flows": (str(storage_dir), str(storage_dir))}
            template = {"spec": {"template": {"spec": {
                "hostNetwork": True,
                "volumes": [{"name": k, "hostPath": {"path": host, "type": "Directory"}} for k, (host, _) in mounts.items()],
                "containers": [{"name": "flow", "env": [{"name": "PYTHONPATH", "value": "/opt/headwater/site"},
                                                         {"name": "HOME", "value": "/tmp"}],
                                "volumeMounts": [{"name": k, "mountPath": path, "readOnly": k == "site"}
                                                 for k, (_, path) in mounts.items()]}],
            }}}}
            config = KubernetesRun(image=IMAGE, memory_limit="512Mi", job_template=template)
            job = config.build_job(storage, storage.flows["podman-pod"], flow_run_id=run_id, command=flow_run_command(run_id),
                                   env={"HEADWATER__CLOUD__API": server.api})
            kubernetes_validate.validate(job, K8S_VERSION, strict=True)
            pod = _pod_from_job(job)
            kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
            path = tmp_path / "pod.yaml"
            path.write_text(yaml.safe_dump(pod, sort_keys=False))
            pod_runner.append(path)
            # cwd: podman's conmon writes an empty file "oom" into its working directory when a container is
            # OOM-killed; never into the checkout
            played = subprocess.run(["podman", "kube", "play", "--replace", str(path)], capture_output=True, text=True,
                                    check=False, timeout=300, env=_podman_env(tmp_path), cwd=tmp_path)
            assert played.returncode == 0, played.stdout + played.stderr
            try:
                state = client.flow_run(id=run_id).wait(timeout=240, poll_interval=0.5)
            except TimeoutError as exc:
                out = subprocess.run(["podman", "logs", f"{pod['metadata']['name']}-flow"], capture_output=True, text=True,
                                     check=False)
                raise AssertionError(f"{exc}\npod output:\n{out.stdout}{out.stderr}") from exc
            logs = "\n".join(r["message"] for r in client.flow_run(id=run_id).logs())
            assert state.name == "Success", logs
            assert "hello kube play from podman" in logs
    finally:
        server.stop()
