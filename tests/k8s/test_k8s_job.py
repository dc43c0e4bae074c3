"""Building the Job: merge rules, names and labels, the run config's fields; every built Job is valid for 1.37."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from fake_k8s import K8S_VERSION, ApiError, validate_job
from headwater.storage import Local
from headwater_k8s.job import (
    LABEL_FLOW_NAME,
    LABEL_FLOW_RUN_ID,
    build_job,
    check_dns1123_label,
    dns1123_label,
    job_name,
    label_value,
    load_template,
    merge,
)
from headwater_k8s.run_config import KubernetesRun

RUN_ID = "0b7cbd6e-9d35-4f5c-8d2c-1a5b3e0e9f11"


def _valid(job: dict[str, Any]) -> dict[str, Any]:
    kubernetes_validate.validate(job, K8S_VERSION, strict=True)
    validate_job(job, job["metadata"].get("namespace", "default"))
    return job


def _container(job: dict[str, Any], name: str = "flow") -> dict[str, Any]:
    return next(c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def test_names_are_dns1123_and_unique_per_run() -> None:
    name = job_name("My ETL_flow: nightly!", RUN_ID)
    assert check_dns1123_label(name) is None
    assert name == "headwater-my-etl-flow-nightly-0b7cbd6e"
    long = job_name("x" * 200, RUN_ID, "a1b2c")
    assert len(long) == 63 and check_dns1123_label(long) is None and long.endswith("-0b7cbd6e-a1b2c")
    assert job_name("a", "Not/A_DNS id") != job_name("a", "Not/A_DNS id2")
    assert dns1123_label("---") == "flow"
    assert label_value("ETL flow (v2)") == "ETL-flow-v2"


def test_merge_rules() -> None:
    base: dict[str, Any] = {"a": {"b": 1, "c": [1, 2]}, "containers": [{"name": "flow", "image": "x", "env": [{"name": "A", "value": "1"}]}]}
    override: dict[str, Any] = {"a": {"c": [3]}, "containers": [{"name": "flow", "env": [{"name": "B", "value": "2"}]}, {"name": "sidecar", "image": "s"}]}
    merged = merge(base, override)
    assert merged["a"] == {"b": 1, "c": [3]}, "plain lists are replaced"
    flow, sidecar = merged["containers"]
    assert flow["image"] == "x" and [e["name"] for e in flow["env"]] == ["A", "B"], "named lists merge by name"
    assert sidecar == {"name": "sidecar", "image": "s"}
    assert base["containers"][0]["env"] == [{"name": "A", "value": "1"}], "merge copies, never mutates"


def test_template_then_fields_then_headwater(tmp_path: Path) -> None:
    template = """
apiVersion: batch/v1
kind: Job
metadata:
  labels: {team: data}
  generateName: ignored-
spec:
  backoffLimit: 6
  ttlSecondsAfterFinished: 60
  activeDeadlineSeconds: 3600
  template:
    spec:
      restartPolicy: OnFailure
      serviceAccountName: from-template
      nodeSelector: {pool: batch}
      containers:
        - name: flow
          image: from/template:1
          env: [{name: A, value: template}, {name: T, value: kept}]
          resources: {limits: {cpu: "2"}}
        - name: sidecar
          image: proxy:1
"""
    path = tmp_path / "job.yaml"
    path.write_text(template)
    job = _valid(build_job(
        flow_run_id=RUN_ID, flow_name="etl", args=["python3", "-m", "x"], run_env={"HEADWATER__RUN__X": "1", "A": "run"},
        template=load_template(job_template_path=str(path)), image="registry/etl:1", env={"A": "config", "B": "2"},
        cpu_request="500m", memory_limit="1Gi", service_account_name="etl", image_pull_secrets=["regcred"],
        namespace="flows", ttl_seconds_after_finished=600,
    ))
    assert job["metadata"]["name"] == "headwater-etl-0b7cbd6e" and "generateName" not in job["metadata"]
    assert job["metadata"]["namespace"] == "flows"
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels[LABEL_FLOW_RUN_ID] == RUN_ID and labels[LABEL_FLOW_NAME] == "etl"
    assert job["metadata"]["labels"]["team"] == "data"
    spec = job["spec"]
    assert spec["backoffLimit"] == 0, "headwater retries, not Kubernetes"
    assert spec["ttlSecondsAfterFinished"] == 60, "the template's TTL is kept"
    assert spec["activeDeadlineSeconds"] == 3600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert pod["serviceAccountName"] == "etl" and pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"pool": "batch"}
    flow = _container(job)
    assert flow["image"] == "registry/etl:1"
    assert flow["resources"] == {"limits": {"cpu": "2", "memory": "1Gi"}, "requests": {"cpu": "500m"}}
    assert {e["name"]: e["value"] for e in flow["env"]} == {"A": "run", "T": "kept", "B": "2", "HEADWATER__RUN__X": "1"}
    assert flow["args"] == ["python3", "-m", "x"] and "command" not in flow, "the image's entrypoint still runs"
    assert _container(job, "sidecar") == {"name": "sidecar", "image": "proxy:1"}


def test_default_template_needs_an_image() -> None:
    with pytest.raises(ValueError, match="has no image"):
        build_job(flow_run_id=RUN_ID, flow_name="etl", args=["x"], run_env={})


def test_bad_templates_are_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="kind 'Deployment'"):
        load_template({"kind": "Deployment"})
    with pytest.raises(ValueError, match="not valid YAML"):
        load_template("a: [")
    with pytest.raises(FileNotFoundError, match="cannot be read on this machine"):
        load_template(job_template_path=str(tmp_path / "missing.yaml"))
    with pytest.raises(ValueError, match="not both"):
        KubernetesRun(job_template={"kind": "Job"}, job_template_path="x.yaml")
    with pytest.raises(ValueError, match="image_pull_policy"):
        KubernetesRun(image_pull_policy="Sometimes")


def test_run_config_builds_the_agents_command_and_variables(tmp_path: Path) -> None:
    import sys

    storage = Local(directory=str(tmp_path))
    storage.flows["etl"] = "etl/abc.flow"
    run = KubernetesRun(image="registry/etl:1", env={"A": "1"}, job_template={"spec": {"template": {"spec": {"containers": [{"name": "flow"}]}}}})
    job = _valid(run.build_job(storage, "etl/abc.flow", flow_run_id=RUN_ID, parameters={"x": 1},
                               command=[sys.executable, "-m", "headwater.cli", "execute", "flow-run", "--id", RUN_ID],
                               env={"HEADWATER__CLOUD__API": "http://127.0.0.1:4200/graphql"}))
    flow = _container(job)
    assert flow["args"] == ["python3", "-m", "headwater.cli", "execute", "flow-run", "--id", RUN_ID]
    env = {e["name"]: e["value"] for e in flow["env"]}
    assert env["A"] == "1" and env["HEADWATER__CLOUD__API"] == "http://127.0.0.1:4200/graphql"
    assert env["HEADWATER__RUN__FLOW_LOCATION"] == "etl/abc.flow"
    assert json.loads(env["HEADWATER__RUN__PARAMETERS"]) == {"x": 1}
    assert json.loads(env["HEADWATER__RUN__CONTEXT"])["flow_run_id"] == RUN_ID
    assert job["metadata"]["name"].startswith("headwater-etl-") and len(job["metadata"]["name"]) <= 63
    assert check_dns1123_label(job["metadata"]["name"]) is None


def test_prefect_arguments_round_trip() -> None:
    from headwater.plugins import from_dict

    run = KubernetesRun("job.yaml", None, "registry/etl:1", {"A": 1}, cpu_limit=2, cpu_request="500m", memory_limit="1Gi",
                        service_account_name="etl", image_pull_secrets="regcred", labels=["k8s"], image_pull_policy="Always")
    assert run.job_template_path == "job.yaml" and run.cpu_limit == "2" and run.image_pull_secrets == ["regcred"]
    assert from_dict(run.serialize(), "environment") == run


# --- the fake refuses what the API server refuses ------------------------------------------------------------


def _job(**pod: Any) -> dict[str, Any]:
    spec = {"restartPolicy": "Never", "containers": [{"name": "flow", "image": "i"}], **pod}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "ok"}, "spec": {"template": {"spec": spec}}}


@pytest.mark.parametrize(("body", "field", "text"), [
    ({**_job(), "metadata": {"name": "Not_DNS"}}, "metadata.name", "RFC 1123 subdomain"),
    ({**_job(), "metadata": {"name": "x" * 64}}, "metadata.name", "no more than 63"),
    (_job(restartPolicy="Always"), "spec.template.spec.restartPolicy", 'supported values: "OnFailure", "Never"'),
    (_job(containers=[{"name": "Flow", "image": "i"}]), "spec.template.spec.containers[0].name", "RFC 1123 label"),
    (_job(containers=[{"name": "flow"}]), "spec.template.spec.containers[0].image", "Required value"),
    (_job(containers=[{"name": "flow", "image": "i", "resources": {"requests": {"cpu": "lots"}}}]),
     "spec.template.spec.containers[0].resources.requests[cpu]", "quantities must match"),
    (_job(containers=[{"name": "flow", "image": "i", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]),
     "spec.template.spec.containers[0].resources.requests", "less than or equal to cpu limit"),
    (_job(containers=[{"name": "flow", "image": "i", "bogus": 1}]), "spec.template.spec.containers.0", "'bogus' was unexpected"),
    ({**_job(), "metadata": {"name": "ok", "labels": {"a": "not valid!"}}}, "metadata.labels", "valid label"),
])
def test_fake_refuses_invalid_jobs_with_the_status_shape(body: dict[str, Any], field: str, text: str) -> None:
    with pytest.raises(ApiError) as caught:
        validate_job(body, "default")
    status = caught.value.status()
    assert status["kind"] == "Status" and status["status"] == "Failure" and status["code"] == 422 and status["reason"] == "Invalid"
    causes = status["details"]["causes"]
    assert any(c["field"] == field and text in c["message"] for c in causes), causes


def _refusal(call: Any) -> tuple[int, dict[str, Any]]:
    from kubernetes.client.exceptions import ApiException

    try:
        call()
    except ApiException as exc:
        return int(exc.status), json.loads(str(exc.body))
    raise AssertionError("the API server accepted the request")


def test_the_real_client_gets_the_refusal(cluster: Any) -> None:
    """Through the real client: 422 Invalid with the Status' message, 409 AlreadyExists, 404 NotFound, 400 BadRequest."""
    from kubernetes import client

    from headwater_k8s.run_config import kubernetes_clients

    batch, core = kubernetes_clients()
    code, status = _refusal(lambda: batch.create_namespaced_job("default", client.V1Job.from_dict({**_job(), "metadata": {"name": "Bad_Name"}})))
    assert code == 422 and status["reason"] == "Invalid" and "RFC 1123" in status["message"], status
    duplicate = {**_job(containers=[{"name": "flow", "image": "i", "args": ["true"]}]), "metadata": {"name": "dup-check"}}
    batch.create_namespaced_job("default", client.V1Job.from_dict(duplicate))
    assert ("default", "dup-check") in cluster.jobs, sorted(cluster.jobs)
    code, status = _refusal(lambda: batch.create_namespaced_job("default", client.V1Job.from_dict(duplicate)))
    assert code == 409 and status["reason"] == "AlreadyExists", status
    code, status = _refusal(lambda: batch.read_namespaced_job("missing", "default"))
    assert code == 404 and status["message"] == 'jobs.batch "missing" not found', status
    code, status = _refusal(lambda: batch.create_namespaced_job("nope", client.V1Job.from_dict(_job())))
    assert code == 404 and status["details"]["kind"] == "namespaces", status
    code, status = _refusal(lambda: core.list_namespaced_event("default", field_selector="metadata.bogus=1"))
    assert code == 400 and "not a known field selector" in status["message"], status


def test_execute_names_the_refusal(cluster: Any, tmp_path: Path) -> None:
    from headwater_k8s.run_config import KubernetesError

    storage = Local(directory=str(tmp_path))
    storage.flows["etl"] = "etl/abc.flow"
    run = KubernetesRun(image="i", cpu_request="2", cpu_limit="1")
    with pytest.raises(KubernetesError, match=r"refused to create Job default/headwater-etl-.*422 Invalid.*less than or equal"):
        run.execute(storage, "etl/abc.flow", flow_run_id=RUN_ID)


def test_the_api_key_stays_in_its_secret(cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With [k8s] api_key_secret the Job references the Secret; the pod gets the key, the Job's spec never has it."""
    storage = Local(directory=str(tmp_path))
    storage.flows["etl"] = "etl/abc.flow"
    monkeypatch.setenv("HEADWATER__K8S__API_KEY_SECRET", "headwater-api-key")
    run = KubernetesRun(image="headwater/flow:test")
    command = ["python3", "-c", "import os; print('key:', os.environ['HEADWATER__CLOUD__API_KEY'])"]
    out = tmp_path / "out.log"
    handle = run.execute(storage, "etl/abc.flow", command=command, env={"HEADWATER__CLOUD__API_KEY": "agent-key"}, stdout=str(out))
    assert run.wait(handle, timeout=120) == "success", out.read_text()
    assert "key: key-from-secret" in out.read_text()
    body = next(b for m, p, b in cluster.requests if m == "POST")
    env = {e["name"]: e for e in body["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HEADWATER__CLOUD__API_KEY"] == {"name": "HEADWATER__CLOUD__API_KEY",
                                                "valueFrom": {"secretKeyRef": {"name": "headwater-api-key", "key": "api-key"}}}
    assert "agent-key" not in json.dumps(body)


def test_a_missing_secret_is_reported_and_times_out(cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = Local(directory=str(tmp_path))
    storage.flows["etl"] = "etl/abc.flow"
    monkeypatch.setenv("HEADWATER__K8S__API_KEY_SECRET", "no-such-secret")
    run = KubernetesRun(image="headwater/flow:test", start_timeout=3)
    out = tmp_path / "out.log"
    handle = run.execute(storage, "etl/abc.flow", command=["python3", "-c", "print(1)"],
                         env={"HEADWATER__CLOUD__API_KEY": "k"}, stdout=str(out))
    assert run.wait(handle, timeout=120) == "failed"
    text = out.read_text()
    assert 'container flow is waiting: CreateContainerConfigError: secret "no-such-secret" not found' in text, text
    assert "did not start its container within the start timeout of 3 s" in text, text


def test_the_fake_serves_valid_objects(cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the fake answers is real data: its Jobs, Pods and Events are valid 1.37 objects (strict)."""
    monkeypatch.setenv("HEADWATER__K8S__DELETE_FINISHED_JOBS", "false")
    storage = Local(directory=str(tmp_path))
    storage.flows["etl"] = "etl/abc.flow"
    run = KubernetesRun(image="headwater/flow:flaky", memory_limit="1Gi", cpu_request="100m")
    handle = run.execute(storage, "etl/abc.flow", command=["python3", "-c", "print('ok')"])
    assert run.wait(handle, timeout=120) == "success"
    objects = [*cluster.jobs.values(), *cluster.pods.values(), *cluster.events]
    assert {o["kind"] for o in objects} == {"Job", "Pod", "Event"}
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert {e["reason"] for e in cluster.events} >= {"SuccessfulCreate", "Scheduled", "Pulling", "Failed", "BackOff", "Pulled",
                                                     "Created", "Started", "Completed"}


def test_an_earlier_attempts_job_is_deleted(cluster: Any, tmp_path: Path) -> None:
    storage = Local(directory=str(tmp_path))
    storage.flows["etl"] = "etl/abc.flow"
    run = KubernetesRun(image="registry.invalid/never:1")  # both attempts wait for their image forever
    first = run.execute(storage, "etl/abc.flow", flow_run_id=RUN_ID)
    out = tmp_path / "second.log"
    second = run.execute(storage, "etl/abc.flow", flow_run_id=RUN_ID, stdout=str(out))
    old, new = (str(h.id).split("/", 1)[1] for h in (first, second))
    assert old != new
    assert f"Deleted the Kubernetes Job default/{old} of an earlier attempt of this flow run." in out.read_text()
    deadline = time.monotonic() + 30  # foreground deletion: the Job goes once its pod is gone
    while ("default", old) in cluster.jobs and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ("default", old) not in cluster.jobs and ("default", new) in cluster.jobs
    run.kill(second, grace_period=0)
    assert run.status(second) == "cancelled"


def test_a_job_that_cannot_be_followed_fails_after_the_start_timeout(cluster: Any, tmp_path: Path) -> None:
    """The agent loses access (credentials revoked): reported once, then the unstarted run fails at its start timeout."""
    storage = Local(directory=str(tmp_path))
    storage.flows["etl"] = "etl/abc.flow"
    run = KubernetesRun(image="registry.invalid/never:1", start_timeout=2)
    out = tmp_path / "out.log"
    handle = run.execute(storage, "etl/abc.flow", flow_run_id=RUN_ID, stdout=str(out))
    cluster.token = "revoked"
    assert run.wait(handle, timeout=60) == "failed"
    text = out.read_text()
    assert text.count("401 Unauthorized") >= 1 and "could not follow Kubernetes Job" in text, text
    assert text.count("Kubernetes refused to read Job") == 2, "the same error is reported once, then in the final message"
