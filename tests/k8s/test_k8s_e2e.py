"""End to end: the API server and a k8s agent (OS processes) against the fake Kubernetes API server.

Flows are registered, runs created through the Client, and for every scenario the run's states,
its logs and the Kubernetes events that reached them are checked: success (with the container's
own output, including the image entrypoint's), a failing flow, an image pull that backs off then
succeeds, an image that never pulls (start timeout), OOMKilled, an unschedulable pod, a missing
service account (FailedCreate), a Job deleted from outside, an evicted pod, and a cancellation.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fake_k8s import FakeKubernetes
from headwater.client import Client
from headwater_cloud_api.testing import AgentProcess, ServerProcess, register_flows, wait_for

pytestmark = pytest.mark.slow

FLOWS = '''
import time
from headwater import Flow, Parameter, task
from headwater.run_configs import KubernetesRun
from headwater.storage import Local

STORAGE = "{storage}"   # a directory the pods can read (a volume every pod mounts, in a real cluster)


@task(log_stdout=True)
def hello(name):
    print(f"hello {name} from the pod")
    return name


@task
def plain(value):
    print("a plain print the logger does not see")   # reaches the run's logs through the pod's log
    return value


@task
def boom(value):
    raise ValueError(f"boom on {value}")


@task
def hog(megabytes):
    data = "x" * (megabytes * 2**20)   # touched memory: the container goes over its limit
    time.sleep(30)
    return len(data)


@task
def nap(seconds):
    time.sleep(seconds)
    return seconds


def k8s(**kwargs):
    kwargs = {"image": "headwater/flow:test", "memory_limit": "1Gi", "cpu_request": "100m", **kwargs}
    return KubernetesRun(labels=["k8s"], env={"GREETING": "hi"}, **kwargs)


def storage():
    return Local(directory=STORAGE)


with Flow("k8s-success", storage=storage(), run_config=k8s()) as success:
    plain(hello(Parameter("name", default="world")))

with Flow("k8s-failure", storage=storage(), run_config=k8s()) as failure:
    boom(1)

with Flow("k8s-flaky-pull", storage=storage(), run_config=k8s(image="headwater/flow:flaky")) as flaky:
    hello("flaky")

with Flow("k8s-pull-forever", storage=storage(), run_config=k8s(image="registry.invalid/missing:1", start_timeout=6)) as never:
    hello("never")

with Flow("k8s-oom", storage=storage(), run_config=KubernetesRun(image="headwater/flow:test", labels=["k8s"], memory_limit="200Mi")) as oom:
    hog(400)

with Flow("k8s-unschedulable", storage=storage(), run_config=k8s(cpu_request="64", start_timeout=5)) as unschedulable:
    hello("big")

with Flow("k8s-no-sa", storage=storage(), run_config=k8s(service_account_name="missing-sa", start_timeout=5)) as no_sa:
    hello("sa")

with Flow("k8s-stuck", storage=storage(), run_config=k8s(image="registry.invalid/stuck:1", start_timeout=600)) as stuck:
    hello("stuck")

with Flow("k8s-sleepy", storage=storage(), run_config=k8s()) as sleepy:
    nap(Parameter("seconds", default=60))
'''

RUN_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def stack(fake_cluster: FakeKubernetes, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Server + one k8s agent (real processes) + the registered flows; stopped at the end of the module."""
    fake_cluster.reset()
    tmp = tmp_path_factory.mktemp("k8s-e2e")
    saved = {k: os.environ.get(k) for k in ("HEADWATER_HOME", "HEADWATER__K8S__KUBECONFIG", "HEADWATER__K8S__POLL_INTERVAL",
                                             "HEADWATER__K8S__START_TIMEOUT")}
    os.environ.update(HEADWATER_HOME=str(tmp / "home"), HEADWATER__K8S__KUBECONFIG=str(kubeconfig),
                      HEADWATER__K8S__POLL_INTERVAL="0.3", HEADWATER__K8S__START_TIMEOUT="120")
    server = ServerProcess(f"sqlite:///{tmp / 'api.db'}", tmp, lease=30.0).start()
    agent: AgentProcess | None = None
    try:
        flows = tmp / "repo" / "k8s_flows.py"
        flows.parent.mkdir(parents=True)
        flows.write_text(FLOWS.replace("{storage}", str(tmp / "shared-flows")))
        with Client(api=server.api, api_key="") as client:
            ids = register_flows(client, flows, project="k8s")
            agent = AgentProcess(server.api, tmp / "agent", ("k8s",), "k8s-agent", poll_interval=0.2, cancel_grace_period=1.0)
            yield {"client": client, "flows": ids, "agent": agent, "cluster": fake_cluster, "server": server}
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
        fake_cluster.reset()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _start(stack: dict[str, Any], flow: str, **parameters: Any) -> str:
    return str(stack["client"].flow(id=stack["flows"][flow]).create_run(parameters=parameters or None).id)


def _wait(stack: dict[str, Any], run_id: str) -> str:
    try:
        return str(stack["client"].flow_run(id=run_id).wait(timeout=RUN_TIMEOUT, poll_interval=0.3).name)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\nagent output:\n{stack['agent'].output()[-4000:]}") from exc


def _logs(stack: dict[str, Any], run_id: str) -> str:
    return "\n".join(f"{r['level']} {r['name']} | {r['message']}" for r in stack["client"].flow_run(id=run_id).logs())


_SETTLED = ("succeeded.", "failed: ", "did not start its container", "deleted outside headwater", "(cancelled)")


def _settled_logs(stack: dict[str, Any], run_id: str) -> str:
    """The run's logs once the agent has seen its Job end too (the run's state can be final a moment before)."""
    def settled() -> str:
        logs = _logs(stack, run_id)
        ours = [line for line in logs.splitlines() if line.split(" | ", 1)[0].endswith(" headwater.k8s")]
        return logs if any(m in line for line in ours for m in _SETTLED) else ""
    try:
        return str(wait_for(settled, 60, 0.3, f"the agent to report the end of the Job of {run_id}"))
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_logs(stack, run_id)}\nagent output:\n{stack['agent'].output()[-3000:]}") from exc


def _states(stack: dict[str, Any], run_id: str) -> list[str]:
    return [type(s).__name__ for s in stack["client"].flow_run(id=run_id).states()]


@pytest.fixture(scope="module")
def finished(stack: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The scenarios that need no help from the test: started together, waited for together."""
    runs = {name: _start(stack, name) for name in ("k8s-success", "k8s-failure", "k8s-flaky-pull", "k8s-pull-forever",
                                                   "k8s-oom", "k8s-unschedulable", "k8s-no-sa")}
    return {name: {"id": rid, "state": _wait(stack, rid), "logs": _settled_logs(stack, rid), "states": _states(stack, rid)}
            for name, rid in runs.items()}


def test_success_with_the_containers_output(finished: dict[str, dict[str, Any]], stack: dict[str, Any]) -> None:
    run = finished["k8s-success"]
    assert run["state"] == "Success", run["logs"]
    expected = [
        "Created Kubernetes Job",
        "Kubernetes event: Pod/",
        "Started: Started container flow",
        "image entrypoint: preparing the container",  # what the image printed before headwater started
        "a plain print the logger does not see",  # the container's own output
        "hello world from the pod",
        "succeeded",
    ]
    missing = [text for text in expected if text not in run["logs"]]
    assert not missing, f"missing {missing} in:\n{run['logs']}"
    assert "Submitted" in run["states"] and "Running" in run["states"]


def test_a_failing_flow_is_failed_by_its_runner(finished: dict[str, dict[str, Any]]) -> None:
    run = finished["k8s-failure"]
    assert run["state"] == "Failed", run["logs"]
    assert "boom on 1" in run["logs"], run["logs"]
    assert "exit code 1" in run["logs"], run["logs"]


def test_image_pull_backoff_then_success(finished: dict[str, dict[str, Any]]) -> None:
    run = finished["k8s-flaky-pull"]
    assert run["state"] == "Success", run["logs"]
    assert "ImagePullBackOff" in run["logs"] and "ErrImagePull" in run["logs"], run["logs"]
    assert "hello flaky from the pod" in run["logs"], run["logs"]


def test_image_that_never_pulls_fails_after_the_start_timeout(finished: dict[str, dict[str, Any]], stack: dict[str, Any]) -> None:
    run = finished["k8s-pull-forever"]
    assert run["state"] == "Failed", run["logs"]
    assert "Running" not in run["states"], "the run must stay Submitted while the image pull is retried"
    assert "did not start its container within the start timeout of 6 s" in run["logs"], run["logs"]
    assert "Back-off pulling image \"registry.invalid/missing:1\"" in run["logs"], run["logs"]
    assert "Last Kubernetes events" in run["logs"], run["logs"]
    name = run_job_name(run["logs"])
    wait_for(lambda: ("default", name) not in stack["cluster"].jobs, 30, 0.2, "the timed-out Job to be deleted")


def test_oom_killed(finished: dict[str, dict[str, Any]]) -> None:
    run = finished["k8s-oom"]
    assert run["state"] == "Failed", run["logs"]
    assert "OOMKilled (exit code 137)" in run["logs"], run["logs"]
    assert "memory than its limit of 200Mi" in run["logs"], run["logs"]


def test_unschedulable_pod_reports_failed_scheduling(finished: dict[str, dict[str, Any]]) -> None:
    run = finished["k8s-unschedulable"]
    assert run["state"] == "Failed", run["logs"]
    assert "FailedScheduling: 0/1 nodes are available: 1 Insufficient cpu" in run["logs"], run["logs"]
    assert "Running" not in run["states"]


def test_missing_service_account_reports_failed_create(finished: dict[str, dict[str, Any]]) -> None:
    run = finished["k8s-no-sa"]
    assert run["state"] == "Failed", run["logs"]
    assert "FailedCreate" in run["logs"] and 'serviceaccount "missing-sa" not found' in run["logs"], run["logs"]
    assert "no pod was created" in run["logs"], run["logs"]


def run_job_name(logs: str) -> str:
    line = next(line for line in logs.splitlines() if "Created Kubernetes Job" in line)
    return line.split("Created Kubernetes Job default/", 1)[1].split(" ", 1)[0]


def _running(stack: dict[str, Any], run_id: str) -> bool:
    return bool(stack["client"].flow_run(id=run_id).state.name == "Running")


def test_job_deleted_from_outside(stack: dict[str, Any]) -> None:
    from kubernetes import client, config

    rid = _start(stack, "k8s-sleepy")
    wait_for(lambda: _running(stack, rid), RUN_TIMEOUT, 0.3, "the sleepy run to be Running")
    name = run_job_name(_logs(stack, rid))
    batch = client.BatchV1Api(config.new_client_from_config(os.environ["HEADWATER__K8S__KUBECONFIG"]))
    batch.delete_namespaced_job(name, "default", propagation_policy="Background")  # kubectl delete job, by someone else
    assert _wait(stack, rid) == "Failed"
    logs = _settled_logs(stack, rid)
    assert "was deleted outside headwater" in logs, logs


def test_evicted_pod(stack: dict[str, Any]) -> None:
    rid = _start(stack, "k8s-sleepy")
    wait_for(lambda: _running(stack, rid), RUN_TIMEOUT, 0.3, "the sleepy run to be Running")
    cluster: FakeKubernetes = stack["cluster"]
    name = run_job_name(_logs(stack, rid))
    pod = next(p for (ns, p_name), p in list(cluster.pods.items()) if p["metadata"]["labels"].get("job-name") == name)
    cluster.evict("default", pod["metadata"]["name"])
    assert _wait(stack, rid) == "Failed"
    logs = _settled_logs(stack, rid)
    assert "Evicted: The node was low on resource: memory" in logs, logs


def test_cancel_deletes_the_job(stack: dict[str, Any]) -> None:
    rid = _start(stack, "k8s-sleepy")
    wait_for(lambda: _running(stack, rid), RUN_TIMEOUT, 0.3, "the sleepy run to be Running")
    name = run_job_name(_logs(stack, rid))
    stack["client"].flow_run(id=rid).cancel()
    assert _wait(stack, rid) == "Cancelled"
    cluster: FakeKubernetes = stack["cluster"]
    wait_for(lambda: ("default", name) not in cluster.jobs, 30, 0.2, "the cancelled run's Job to be deleted")
    deletes = [path for method, path, _ in cluster.requests if method == "DELETE" and f"/jobs/{name}?" in path]
    assert deletes and all("propagationPolicy=Foreground" in path for path in deletes), deletes
    assert not cluster.rejections, cluster.rejections


def _logged(stack: dict[str, Any], run_id: str, text: str) -> str:
    def found() -> str:
        logs = _logs(stack, run_id)
        return logs if text in logs else ""
    return str(wait_for(found, RUN_TIMEOUT, 0.3, f"{text!r} in the logs of {run_id}"))


def test_a_stale_job_is_deleted_when_its_run_is_over(stack: dict[str, Any]) -> None:
    """The run ends elsewhere (here: like the server's reaper does) while its pod still waits for its image."""
    rid = _start(stack, "k8s-stuck")
    logs = _logged(stack, rid, "ImagePullBackOff")
    assert stack["client"].flow_run(id=rid).state.name == "Submitted", "a run stays Submitted while the image pull is retried"
    name = run_job_name(logs)
    stack["client"].graphql(
        "mutation($r: String!) { end_flow_run(flow_run_id: $r, state: \"Failed\", message: \"lost\", task_state: \"Failed\") { state } }",
        {"r": rid})
    _logged(stack, rid, "deleting the stale Job")
    wait_for(lambda: ("default", name) not in stack["cluster"].jobs, 30, 0.2, "the stale Job to be deleted")
    assert stack["client"].flow_run(id=rid).state.name == "Failed"


def test_cancel_while_the_image_is_pulled(stack: dict[str, Any]) -> None:
    rid = _start(stack, "k8s-stuck")
    name = run_job_name(_logged(stack, rid, "ImagePullBackOff"))
    stack["client"].flow_run(id=rid).cancel()
    assert _wait(stack, rid) == "Cancelled"
    wait_for(lambda: ("default", name) not in stack["cluster"].jobs, 30, 0.2, "the cancelled run's Job to be deleted")
