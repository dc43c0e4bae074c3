"""headwater-k8s figures: Job building, the cost of following a Job, and run latency against the fake cluster.

    python plugins/k8s/benchmarks/k8s.py [--builds 2000] [--runs 10] [--polls 200]

* ``build_job``: Job manifests built per second (template merge included), pure Python;
* one ``status()`` round (read Job, list pods, events of the Job and pod, pod logs): milliseconds
  and HTTP requests per round, against the fake API server of ``tests/k8s`` (real client, real HTTP);
* runs: ``KubernetesRun.execute`` of a trivial command -> ``success``, p50/max seconds (pod process
  start included) and API requests per run.

Figures depend on the machine (2 shared cores here); nothing is asserted on them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tests" / "k8s"))

TEMPLATE = {
    "metadata": {"labels": {"team": "data"}},
    "spec": {"template": {"spec": {"nodeSelector": {"pool": "batch"}, "containers": [
        {"name": "flow", "env": [{"name": "A", "value": "t"}], "resources": {"limits": {"cpu": "2"}}},
        {"name": "proxy", "image": "proxy:1"}]}}},
}


def bench_build(n: int) -> dict[str, float]:
    from headwater.storage import Local
    from headwater_k8s.run_config import KubernetesRun

    storage = Local(directory="unused")  # build_job reads nothing from it
    storage.flows["etl"] = "etl/abc.flow"
    run = KubernetesRun(image="registry/etl:1", env={"A": "1"}, cpu_request="500m", memory_limit="1Gi", job_template=TEMPLATE)
    from headwater_k8s.config import K8sSection

    settings = K8sSection()
    start = time.perf_counter()
    for i in range(n):
        run.build_job(storage, "etl/abc.flow", settings=settings, flow_run_id=f"run-{i:08d}", command=["python", "-m", "x"])
    elapsed = time.perf_counter() - start
    return {"builds/s": n / elapsed, "us/build": elapsed / n * 1e6}


_VARIABLES = ("HEADWATER__K8S__KUBECONFIG", "HEADWATER__K8S__POLL_INTERVAL")


def _settings(kubeconfig: Path) -> dict[str, str | None]:
    """Point [k8s] at the benchmark's cluster; returns the previous values for :func:`_restore`."""
    saved = {name: os.environ.get(name) for name in _VARIABLES}
    os.environ["HEADWATER__K8S__KUBECONFIG"] = str(kubeconfig)
    os.environ["HEADWATER__K8S__POLL_INTERVAL"] = "0.05"
    return saved


def _restore(saved: dict[str, str | None]) -> None:
    from headwater_k8s import run_config

    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    run_config._clients.clear()  # the cached client points at the stopped cluster


def bench_cluster(runs: int, polls: int) -> dict[str, Any]:
    from fake_k8s import FakeKubernetes
    from headwater.storage import Local
    from headwater_k8s.run_config import KubernetesRun

    work = Path(tempfile.mkdtemp(prefix="k8s-bench-"))
    fake = FakeKubernetes(work).start()
    saved = _settings(fake.kubeconfig(work / "kubeconfig"))
    try:
        storage = Local(directory=str(work / "flows"))
        storage.flows["bench"] = "bench/x.flow"
        env = KubernetesRun(image="headwater/flow:test")
        # following a long-running Job: one status() round costs what?
        handle = env.execute(storage, "bench/x.flow", command=["python3", "-c", "import time; print('up'); time.sleep(600)"])
        watch = handle.process
        while not watch.started:
            watch.last_poll = 0.0
            env.status(handle)
            time.sleep(0.05)
        before = len(fake.requests)
        start = time.perf_counter()
        for _ in range(polls):
            watch.last_poll = 0.0
            env.status(handle)
        per_poll = (time.perf_counter() - start) / polls
        requests_per_poll = (len(fake.requests) - before) / polls
        env.kill(handle, grace_period=0)
        # short runs end to end
        latencies, requests = [], []
        for _ in range(runs):
            before = len(fake.requests)
            start = time.perf_counter()
            handle = env.execute(storage, "bench/x.flow", command=["python3", "-c", "print('done')"])
            status = env.wait(handle, timeout=120)
            latencies.append(time.perf_counter() - start)
            requests.append(len(fake.requests) - before)
            assert status == "success", status
        return {"ms/status round": per_poll * 1000, "requests/status round": requests_per_poll,
                "run p50 s": statistics.median(latencies), "run max s": max(latencies),
                "requests/run": statistics.mean(requests)}
    finally:
        _restore(saved)
        fake.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--builds", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--polls", type=int, default=200)
    args = parser.parse_args(argv)
    figures = {**bench_build(args.builds), **bench_cluster(args.runs, args.polls)}
    print(f"{'figure':<26} {'value':>12}")
    print(f"{'-' * 26} {'-' * 12}")
    for name, value in figures.items():
        print(f"{name:<26} {value:>12.2f}")
    return figures


if __name__ == "__main__":
    main()
