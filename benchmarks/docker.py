"""Docker figures: flow-run start latency in a container vs a local process, and re-registration of unchanged flows.

    python benchmarks/docker.py [--runs 10] [--flows 20] [--docker-host unix://...] [--registry 127.0.0.1:5000]

Real processes on 127.0.0.1: a SQLite ``headwater server start``, one ``headwater agent start
--label bench``, podman's Docker API (started here unless ``--docker-host`` is given) and
Debian's docker-registry (started here unless ``--registry`` is given). Needs
scripts/system-deps.d/containers.sh and scripts/podman-base-image.sh to have run (root).

* start latency: ``create_run`` -> Running (server timestamps ``created`` -> ``start_time``), one
  run at a time, for a flow with ``DockerRun`` (Docker storage, image pulled once before) and
  one with ``LocalRun``; p50 / max;
* re-registration: ``N`` flows in one Docker storage registered, then registered again unchanged:
  seconds for the second registration (in-process ``Registration``; target: no build, < 2 s) and
  for the whole ``headwater register`` command (including interpreter start).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# run as a script, this file's directory is sys.path[0], and "import docker" would import this file, not the SDK
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

FLOWS = '''
import os
from headwater import Flow, task
from headwater.run_configs import DockerRun, LocalRun
from headwater.storage import Docker

storage = Docker(registry_url=os.environ["BENCH_REGISTRY"] + "/bench", base_image="localbase", image_name="bench")

@task
def one(i):
    return i

with Flow("in-docker", storage=storage,
          run_config=DockerRun(labels=["bench"], host_config={"network_mode": "host"})) as in_docker:
    one(0)

with Flow("in-process", run_config=LocalRun(labels=["bench"])) as in_process:
    one(0)

storage.add_flow(in_docker)
for i in range(int(os.environ.get("BENCH_EXTRA_FLOWS", "0"))):
    with Flow(f"extra-{i}", storage=storage, run_config=DockerRun(labels=["bench"])) as extra:
        one(i)
    storage.add_flow(extra)
    globals()[f"extra_{i}"] = extra
'''


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # noqa: BLE001 - not up yet
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def _services(work: Path, docker_host: str | None, registry: str | None) -> Iterator[tuple[str, str]]:
    """``(docker_host, registry)``: the given ones, or podman's API and a registry started here."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        if docker_host is None:
            sock = work / "podman.sock"
            started.append(subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            docker_host = f"unix://{sock}"
            import docker

            _wait(lambda: docker.DockerClient(base_url=docker_host).ping(), 60, "podman's API")
        if registry is None:
            port = next(p for p in range(5000, 5020) if _free(p))
            config = work / "registry.yml"
            config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {work / 'reg'}\n"
                              f"http:\n  addr: 127.0.0.1:{port}\n  secret: bench\n")
            started.append(subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL, start_new_session=True))
            registry = f"127.0.0.1:{port}"
            _wait(lambda: urllib.request.urlopen(f"http://{registry}/v2/", timeout=2), 30, "the registry")  # noqa: S310
        yield docker_host, registry
    finally:
        for process in reversed(started):
            _stop(process)


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(runs: int = 10, flows: int = 20, docker_host: str | None = None, registry: str | None = None) -> dict[str, float]:
    """Measure; returns the figures (also printed as a table)."""
    from headwater.client import Client
    from headwater_cloud_api.registration import Registration, load_flows

    work = Path(tempfile.mkdtemp(prefix="headwater-bench-docker-"))
    processes: list[subprocess.Popen[bytes]] = []
    figures: dict[str, float] = {}
    saved = dict(os.environ)
    try:
        with _services(work, docker_host, registry) as (host, reg):
            port = _port()
            api_url = f"http://127.0.0.1:{port}/graphql"
            os.environ.update({"DOCKER_HOST": host, "BENCH_REGISTRY": reg, "HEADWATER_HOME": str(work / "home"),
                               "HEADWATER__CLOUD__API": api_url, "BENCH_EXTRA_FLOWS": str(max(0, flows - 1))})
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "headwater.cli", "server", "start", "--port", str(port), "--database-url",
                 f"sqlite:///{work / 'api.db'}", "--no-scheduler", "--log-level", "warning"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=work))
            _wait(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1), 60, "the server")  # noqa: S310
            project = work / "project"
            project.mkdir()
            (project / "flows.py").write_text(FLOWS)
            with Client(api=api_url, api_key="") as client:
                client.project(name="bench").create()
                found, errors = load_flows([project / "flows.py"])
                assert not errors, errors
                first = time.perf_counter()
                results = Registration(client).register_many(found, "bench")
                figures["first registration (build + push), s"] = time.perf_counter() - first
                assert all(r.status == "registered" for r in results), results
                found, _ = load_flows([project / "flows.py"])
                again = time.perf_counter()
                results = Registration(client).register_many(found, "bench")
                figures[f"re-registration of {flows} unchanged Docker flows, s"] = time.perf_counter() - again
                assert all(r.status == "skipped" for r in results), results
                cli = time.perf_counter()
                done = subprocess.run([sys.executable, "-m", "headwater.cli", "register", "--project", "bench",
                                       "--path", "flows.py"], cwd=project, capture_output=True, text=True, timeout=300)
                figures[f"`headwater register` of {flows} unchanged flows (whole command), s"] = time.perf_counter() - cli
                assert done.returncode == 0, done.stderr
                # 0 unless headwater's own source changed in between (a checkout being edited): then it rebuilds
                figures["images rebuilt by that command (0 = none)"] = float("COPY flows" in done.stdout + done.stderr)
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "headwater.cli", "agent", "start", "--label", "bench", "--name", "bench"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, cwd=work))
                for flow_name, label in (("in-docker", "DockerRun"), ("in-process", "LocalRun")):
                    latencies: list[float] = []
                    for _ in range(runs + 1):  # the first DockerRun run pulls the image: not counted
                        flow_run = client.flow(name=flow_name, project="bench").create_run()
                        state = flow_run.wait(300)
                        assert state.name == "Success", (flow_name, state)
                        info = flow_run.query("created start_time")
                        latencies.append((datetime.fromisoformat(info["start_time"])
                                          - datetime.fromisoformat(info["created"])).total_seconds())
                    latencies = latencies[1:]
                    figures[f"create_run -> Running, {label}, p50 s"] = statistics.median(latencies)
                    figures[f"create_run -> Running, {label}, max s"] = max(latencies)
    finally:
        for process in reversed(processes):
            _stop(process)
        os.environ.clear()
        os.environ.update(saved)
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(k) for k in figures)
    print(f"{'figure'.ljust(width)}  value")
    for key, value in figures.items():
        print(f"{key.ljust(width)}  {value:8.3f}")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="flow runs per run config")
    parser.add_argument("--flows", type=int, default=20, help="flows in the Docker storage to re-register")
    parser.add_argument("--docker-host", default=None, help="an engine to use instead of starting podman's API")
    parser.add_argument("--registry", default=None, help="a registry (host:port, insecure) instead of starting one")
    args = parser.parse_args()
    run(args.runs, args.flows, args.docker_host, args.registry)


if __name__ == "__main__":
    main()
