"""The reaper works for Kubernetes runs as for local ones: a run whose agent and pod are both gone is
rescheduled by the server when its heartbeat lease expires, and the next agent runs it in a new Job."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from fake_k8s import FakeKubernetes
from headwater.client import Client
from headwater_cloud_api.testing import AgentProcess, ServerProcess, register_flows, wait_for

pytestmark = pytest.mark.slow

FLOW = '''
import os, time
from headwater import Flow, task
from headwater.run_configs import KubernetesRun
from headwater.storage import Local

MARKER = "{marker}"


@task(log_stdout=True)
def first_attempt_hangs():
    if os.path.exists(MARKER):
        print("second attempt: done")
        return 2
    open(MARKER, "w").close()
    print("first attempt: hanging")
    time.sleep(120)
    return 1


with Flow("k8s-lost", storage=Local(directory="{storage}"),
          run_config=KubernetesRun(image="headwater/flow:test", labels=["k8s-reaper"])) as flow:
    first_attempt_hangs()
'''


def _job_names(client: Client, run_id: str) -> list[str]:
    lines = [r["message"] for r in client.flow_run(id=run_id).logs() if r["message"].startswith("Created Kubernetes Job")]
    return [line.split("Created Kubernetes Job default/", 1)[1].split(" ", 1)[0] for line in lines]


def test_lost_run_is_rescheduled_into_a_new_job(fake_cluster: FakeKubernetes, kubeconfig: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from kubernetes import client as k8s
    from kubernetes import config

    fake_cluster.reset()
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HEADWATER__K8S__KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("HEADWATER__K8S__POLL_INTERVAL", "0.3")
    flows = tmp_path / "repo" / "lost.py"
    flows.parent.mkdir()
    flows.write_text(FLOW.replace("{marker}", str(tmp_path / "marker")).replace("{storage}", str(tmp_path / "flows")))
    server = ServerProcess(f"sqlite:///{tmp_path / 'api.db'}", tmp_path, lease=10.0, max_resurrections=2).start()
    agents: list[AgentProcess] = []
    try:
        with Client(api=server.api, api_key="") as client:
            ids = register_flows(client, flows, project="reaper")
            agents.append(AgentProcess(server.api, tmp_path / "a", ("k8s-reaper",), "first", poll_interval=0.2))
            run = client.flow(id=ids["k8s-lost"]).create_run()
            wait_for(lambda: "first attempt: hanging" in str(client.flow_run(id=run.id).logs()), 120, 0.3,
                     "the first attempt to run its task")
            agents[0].stop(signal.SIGKILL)  # the agent dies...
            resurrected = client.flow_run(id=run.id).get("times_resurrected")
            batch = k8s.BatchV1Api(config.new_client_from_config(str(kubeconfig)))
            for job in batch.list_namespaced_job("default", label_selector=f"headwater.io/flow-run-id={run.id}").items:
                assert job.metadata is not None and job.metadata.name is not None
                batch.delete_namespaced_job(job.metadata.name, "default", propagation_policy="Background")  # ...then its pod
            wait_for(lambda: client.flow_run(id=run.id).get("times_resurrected") == resurrected + 1, 90, 0.3,
                     "the reaper to reschedule the run")
            agents.append(AgentProcess(server.api, tmp_path / "b", ("k8s-reaper",), "second", poll_interval=0.2))
            state = client.flow_run(id=run.id).wait(timeout=120, poll_interval=0.3)
            logs = "\n".join(r["message"] for r in client.flow_run(id=run.id).logs())
            assert state.name == "Success", logs + agents[1].output()
            assert "second attempt: done" in logs
            names = _job_names(client, run.id)
            assert len(names) >= 2 and len(set(names)) == len(names), names
            assert len({name.rsplit("-", 1)[0] for name in names}) == 1, "one name per run, one suffix per attempt"
    finally:
        for agent in agents:
            if agent.process.poll() is None:
                agent.stop()
        server.stop()
        fake_cluster.reset()
