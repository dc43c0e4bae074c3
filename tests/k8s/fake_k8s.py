"""A small, honest Kubernetes API server for the tests: Jobs, Pods, pod logs and events on 127.0.0.1.

No real API server can run on the test machines, so this one implements the endpoints
headwater-k8s uses, the way the real one behaves:

* every Job body is validated with ``kubernetes-validate`` (strict, Kubernetes 1.37) plus the
  checks the schemas miss (RFC 1123 names, a Job's ``restartPolicy``, label syntax, resource
  quantities, requests <= limits, an image on every container, the namespace); a refusal is the
  real ``Status`` error shape (``422 Invalid`` with ``details.causes``, ``409 AlreadyExists``,
  ``404 NotFound``, ``400 BadRequest``, ``401 Unauthorized``);
* a controller loop plays what a cluster does with a Job: it creates the pod (``FailedCreate``
  when the service account does not exist), schedules it on one node of 2 CPUs and 4 GiB
  (``FailedScheduling`` when the requests do not fit), pulls the image from its registry
  (:attr:`FakeKubernetes.images`: known images pull, ``pull_failures`` makes an image fail that
  many times first, unknown images fail forever with ``ErrImagePull``/``ImagePullBackOff``), then
  **runs the container for real**: the container's ``command`` (or the image's entrypoint) plus
  its ``args`` as a local process with the container's environment, its output kept as the pod's
  log, its memory watched against ``resources.limits.memory`` (``OOMKilled``, exit 137);
* deletion honours ``propagationPolicy`` (Foreground keeps the Job until its pod is gone) and the
  grace period (SIGTERM, then SIGKILL); ``evict(pod)`` evicts a pod like node pressure does.

Objects are plain dicts in the API's JSON shape; resourceVersions, uids and timestamps are set.
"""

from __future__ import annotations

import copy
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import kubernetes_validate

K8S_VERSION = "1.37.0"
TOKEN = "fake-token-for-tests"
NODE: dict[str, Any] = {"name": "fake-node", "cpu": 2.0, "memory": 4 * 2**30}

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$")
_SUFFIX = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_nano() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def quantity(value: Any) -> float | None:
    """A Kubernetes quantity as a number (``"500m"`` -> 0.5, ``"1Gi"`` -> 1073741824), None when invalid."""
    match = _QUANTITY.match(str(value))
    if not match:
        return None
    number, suffix = match.groups()
    try:
        base = float(number)
    except ValueError:
        return None
    if suffix and suffix.startswith("e"):
        return base * 10 ** int(suffix[1:])
    return base * _SUFFIX[suffix]


class ApiError(Exception):
    """A refusal, rendered as a Kubernetes ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def invalid(kind: str, group: str, name: str, causes: list[tuple[str, str, str]]) -> ApiError:
    """``422 Invalid`` like the API server: ``Job.batch "x" is invalid: field: message``."""
    text = "; ".join(f"{field}: {message}" for _, field, message in causes)
    return ApiError(422, "Invalid", f'{kind}.{group} "{name}" is invalid: [{text}]' if len(causes) > 1 else f'{kind}.{group} "{name}" is invalid: {text}',
                    {"name": name, "group": group, "kind": kind.lower(),
                     "causes": [{"reason": r, "message": m, "field": f} for r, f, m in causes]})


def not_found(resource: str, group: str, name: str) -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(404, "NotFound", f'{qualified} "{name}" not found', {"name": name, "group": group, "kind": resource})


# --- validation -------------------------------------------------------------------------------------


def _check_labels(labels: Any, field: str, causes: list[tuple[str, str, str]]) -> None:
    for key, value in (labels or {}).items():
        name = key.rsplit("/", 1)[-1]
        prefix = key.rsplit("/", 1)[0] if "/" in key else None
        if len(name) > 63 or not _LABEL_NAME.match(name) or (prefix is not None and not _SUBDOMAIN.match(prefix)):
            causes.append(("FieldValueInvalid", f"{field}", f'Invalid value: "{key}": name part must consist of alphanumeric '
                           "characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
        if len(str(value)) > 63 or not _LABEL_VALUE.match(str(value)):
            causes.append(("FieldValueInvalid", f"{field}", f'Invalid value: "{value}": a valid label must be an empty string or '
                           "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                           "character, and at most 63 characters"))


def validate_job(body: Any, namespace: str) -> None:
    """Refuse what a 1.37 API server refuses for a Job (schema first, then the semantic checks)."""
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the body of the request was in an unknown format - accepted media types include: application/json")
    if body.get("kind") != "Job" or body.get("apiVersion") != "batch/v1":
        raise ApiError(400, "BadRequest", f"the API version in the data ({body.get('apiVersion')}) and kind ({body.get('kind')}) "
                       "do not match the endpoint batch/v1 Job")
    name = (body.get("metadata") or {}).get("name") or ""
    try:
        kubernetes_validate.validate(body, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = ".".join(str(p) for p in exc.path) or "<root>"
        raise invalid("Job", "batch", name, [("FieldValueInvalid", path, exc.message)]) from exc
    meta = body["metadata"]
    if meta.get("namespace") not in (None, namespace):
        raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request")
    causes: list[tuple[str, str, str]] = []
    if not name:
        causes.append(("FieldValueRequired", "metadata.name", "Required value: name or generateName is required"))
    elif not _SUBDOMAIN.match(name) or len(name) > 253:
        causes.append(("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist '
                       "of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"))
    elif len(name) > 63:
        causes.append(("FieldValueInvalid", "metadata.name", f'Invalid value: "{name}": must be no more than 63 characters '
                       "(the job-name label of its pods)"))
    _check_labels(meta.get("labels"), "metadata.labels", causes)
    spec = body.get("spec") or {}
    template = spec.get("template") or {}
    _check_labels((template.get("metadata") or {}).get("labels"), "spec.template.metadata.labels", causes)
    pod = template.get("spec") or {}
    restart = pod.get("restartPolicy")
    if restart not in ("OnFailure", "Never"):
        causes.append(("FieldValueRequired" if restart is None else "FieldValueNotSupported", "spec.template.spec.restartPolicy",
                       f'Unsupported value: "{restart or ""}": supported values: "OnFailure", "Never"'))
    if spec.get("backoffLimit", 6) < 0:
        causes.append(("FieldValueInvalid", "spec.backoffLimit", "must be greater than or equal to 0"))
    containers = pod.get("containers") or []
    if not containers:
        causes.append(("FieldValueRequired", "spec.template.spec.containers", "Required value"))
    seen: set[str] = set()
    for i, c in enumerate(containers):
        cname = c.get("name", "")
        where = f"spec.template.spec.containers[{i}]"
        if not _LABEL.match(cname) or len(cname) > 63:
            causes.append(("FieldValueInvalid", f"{where}.name", f'Invalid value: "{cname}": a lowercase RFC 1123 label must consist '
                           "of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"))
        if cname in seen:
            causes.append(("FieldValueDuplicate", f"{where}.name", f'Duplicate value: "{cname}"'))
        seen.add(cname)
        if not c.get("image"):
            causes.append(("FieldValueRequired", f"{where}.image", "Required value"))
        resources = c.get("resources") or {}
        for section in ("requests", "limits"):
            for key, value in (resources.get(section) or {}).items():
                if quantity(value) is None:
                    causes.append(("FieldValueInvalid", f"{where}.resources.{section}[{key}]",
                                   f'Invalid value: "{value}": quantities must match the regular expression '
                                   "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"))
        for key, request in (resources.get("requests") or {}).items():
            limit = (resources.get("limits") or {}).get(key)
            if limit is not None and quantity(request) is not None and quantity(limit) is not None and quantity(request) > quantity(limit):  # type: ignore[operator]
                causes.append(("FieldValueInvalid", f"{where}.resources.requests", f'Invalid value: "{request}": must be less than '
                               f"or equal to {key} limit of {limit}"))
        for j, var in enumerate(c.get("env") or []):
            if not var.get("name") or "=" in var["name"]:
                causes.append(("FieldValueInvalid", f"{where}.env[{j}].name", f'Invalid value: "{var.get("name")}": a valid environment variable name must not contain "="'))
    sa = pod.get("serviceAccountName")
    if sa is not None and not _SUBDOMAIN.match(sa):
        causes.append(("FieldValueInvalid", "spec.template.spec.serviceAccountName", f'Invalid value: "{sa}": a lowercase RFC 1123 subdomain'))
    if causes:
        raise invalid("Job", "batch", name, causes)


# --- selectors --------------------------------------------------------------------------------------------


def match_labels(selector: str | None, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        term = term.strip()
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


_EVENT_FIELDS = {"involvedObject.name", "involvedObject.kind", "involvedObject.uid", "involvedObject.namespace", "reason", "type"}


def check_field_selector(selector: str | None) -> None:
    """Refuse a field selector with an unknown field (400, like the API server)."""
    for term in (selector or "").split(","):
        if not term.strip():
            continue
        key = re.split(r"!=|==|=", term, maxsplit=1)[0].strip()
        if key not in _EVENT_FIELDS:
            raise ApiError(400, "BadRequest", f'"{key}" is not a known field selector: only "{", ".join(sorted(_EVENT_FIELDS))}"')


def match_fields(selector: str | None, event: dict[str, Any]) -> bool:
    if not selector:
        return True
    for term in selector.split(","):
        negate = "!=" in term
        key, value = re.split(r"!=|==|=", term, maxsplit=1)
        key = key.strip()
        if key not in _EVENT_FIELDS:
            raise ApiError(400, "BadRequest", f'"{key}" is not a known field selector: only "{", ".join(sorted(_EVENT_FIELDS))}"')
        obj: Any = event
        for part in key.split("."):
            obj = (obj or {}).get(part)
        if (obj == value.strip()) == negate:
            return False
    return True


# --- the cluster --------------------------------------------------------------------------------------------


class Container:
    """One running container: a local process, its log lines and exit."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, memory_limit: float | None) -> None:
        self.lines: list[tuple[str, str]] = []
        self.memory_limit = memory_limit
        self.oom_killed = False
        self.started_at = now_iso()
        self.process = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in iter(self.process.stdout.readline, b""):
            self.lines.append((now_nano(), raw.decode(errors="replace").rstrip("\n")))

    def rss(self) -> int:
        """Resident memory of the container's processes (its process group), in bytes."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.process.pid:  # pgrp
                    total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, IndexError, ValueError):
                continue
        return total

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def done(self) -> bool:
        if self.process.poll() is None:
            return False
        self._reader.join(timeout=2)
        return True


class FakeKubernetes:
    """The API server (``start()``/``stop()``, ``url``, ``kubeconfig(path)``) and its controller loop."""

    def __init__(self, workdir: Path, tick: float = 0.1, backoff: float = 0.4) -> None:
        self.workdir = workdir
        self.tick = tick
        self.backoff = backoff
        self.token = TOKEN
        """The bearer token the server accepts (a test may revoke it)."""
        self.namespaces = {"default", "flows"}
        self.secrets: dict[tuple[str, str], dict[str, str]] = {("default", "headwater-api-key"): {"api-key": "key-from-secret"}}
        self.service_accounts = {("default", "default"), ("flows", "default"), ("default", "etl"), ("flows", "etl")}
        python_bin = str(Path(sys.executable).parent)
        shell = ["/bin/sh", "-c", 'echo "image entrypoint: preparing the container"; exec "$@"', "--"]
        self.images: dict[str, dict[str, Any]] = {
            "headwater/flow:test": {"entrypoint": shell, "pull_failures": 0},
            "headwater/flow:flaky": {"entrypoint": shell, "pull_failures": 2},
        }
        self.image_path = python_bin  # the image's python is the test environment's
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, Any]] = []
        self.rejections: list[dict[str, Any]] = []
        self._containers: dict[tuple[str, str], Container] = {}
        self._runtime: dict[tuple[str, ...], dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._rv = 1000
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeKubernetes:
        fake = self

        class Handler(_Handler):
            cluster = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._threads = [threading.Thread(target=self._server.serve_forever, daemon=True),
                         threading.Thread(target=self._controller, daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        with self._lock:
            for container in self._containers.values():
                container.signal(signal.SIGKILL)
            for container in self._containers.values():
                try:
                    container.process.wait(5)
                except subprocess.TimeoutExpired:
                    pass
        for t in self._threads:
            t.join(timeout=5)

    def kubeconfig(self, path: Path, namespace: str = "default", token: str = TOKEN) -> Path:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake", "preferences": {},
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": token}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester", "namespace": namespace}}],
        }))
        return path

    def reset(self) -> None:
        """Delete everything (between tests), killing running containers."""
        with self._lock:
            for container in self._containers.values():
                container.signal(signal.SIGKILL)
            self.jobs.clear()
            self.pods.clear()
            self.events.clear()
            self.requests.clear()
            self.rejections.clear()
            self._containers.clear()
            self._runtime.clear()
            self.token = TOKEN

    # --- helpers ----------------------------------------------------------------------------------------

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def event(self, obj: dict[str, Any], reason: str, message: str, type_: str = "Normal", component: str = "kubelet") -> None:
        """Record an event on ``obj``, aggregated like the API server does (same reason and message: count + 1)."""
        meta = obj["metadata"]
        with self._lock:
            for ev in self.events:
                inv = ev["involvedObject"]
                if inv["uid"] == meta["uid"] and ev["reason"] == reason and ev["message"] == message:
                    ev["count"] += 1
                    ev["lastTimestamp"] = now_iso()
                    ev["metadata"]["resourceVersion"] = self._next_rv()
                    return
            self.events.append({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"],
                             "uid": str(uuid.uuid4()), "resourceVersion": self._next_rv(), "creationTimestamp": now_iso()},
                "involvedObject": {"kind": obj["kind"], "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
                                   "apiVersion": obj["apiVersion"], "resourceVersion": meta.get("resourceVersion")},
                "reason": reason, "message": message, "type": type_, "count": 1,
                "firstTimestamp": now_iso(), "lastTimestamp": now_iso(),
                "source": {"component": component, **({"host": NODE["name"]} if component == "kubelet" else {})},
                "reportingComponent": component, "reportingInstance": NODE["name"] if component == "kubelet" else "",
            })

    # --- the API ------------------------------------------------------------------------------------------

    def create_job(self, namespace: str, body: Any) -> dict[str, Any]:
        if namespace not in self.namespaces:
            raise not_found("namespaces", "", namespace)
        validate_job(body, namespace)
        name = body["metadata"]["name"]
        with self._lock:
            if (namespace, name) in self.jobs:
                raise ApiError(409, "AlreadyExists", f'jobs.batch "{name}" already exists', {"name": name, "group": "batch", "kind": "jobs"})
            job = copy.deepcopy(body)
            uid = str(uuid.uuid4())
            meta = job["metadata"]
            meta.update(namespace=namespace, uid=uid, resourceVersion=self._next_rv(), creationTimestamp=now_iso(), generation=1)
            spec = job["spec"]
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            spec.setdefault("completionMode", "NonIndexed")
            spec.setdefault("suspend", False)
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
            labels.update({"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                           "batch.kubernetes.io/job-name": name, "job-name": name})
            pod_spec = spec["template"]["spec"]
            pod_spec.setdefault("terminationGracePeriodSeconds", 30)
            pod_spec.setdefault("dnsPolicy", "ClusterFirst")
            pod_spec.setdefault("schedulerName", "default-scheduler")
            job["status"] = {"active": 0, "ready": 0, "terminating": 0, "startTime": now_iso(), "uncountedTerminatedPods": {}}
            self.jobs[(namespace, name)] = job
            self._runtime[(namespace, name)] = {"created": time.monotonic(), "next": time.monotonic(), "phase": "creating"}
            return job

    def get_job(self, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            job = self.jobs.get((namespace, name))
            if job is None:
                raise not_found("jobs", "batch", name)
            return copy.deepcopy(job)

    def list_jobs(self, namespace: str, selector: str | None) -> dict[str, Any]:
        with self._lock:
            items = [copy.deepcopy(j) for (ns, _), j in self.jobs.items() if ns == namespace and match_labels(selector, j["metadata"].get("labels") or {})]
        return {"apiVersion": "batch/v1", "kind": "JobList", "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def delete_job(self, namespace: str, name: str, propagation: str | None, grace: int | None) -> dict[str, Any]:
        if propagation not in (None, "Foreground", "Background", "Orphan"):
            raise ApiError(400, "BadRequest", f'propagationPolicy: Unsupported value: "{propagation}": supported values: "Foreground", "Background", "Orphan"')
        with self._lock:
            job = self.jobs.get((namespace, name))
            if job is None:
                raise not_found("jobs", "batch", name)
            propagation = propagation or "Background"  # batch/v1 Jobs default to orphan in kubectl, background through the API
            pods = [p for (ns, _), p in self.pods.items() if ns == namespace and p["metadata"]["labels"].get("job-name") == name]
            if propagation != "Orphan":
                for pod in pods:
                    self._terminate_pod(pod, grace)
            if propagation == "Foreground" and pods:
                job["metadata"]["deletionTimestamp"] = now_iso()
                job["metadata"]["finalizers"] = ["foregroundDeletion"]
                self._runtime[(namespace, name)]["deleting"] = True
                return copy.deepcopy(job)
            del self.jobs[(namespace, name)]
            self._runtime.pop((namespace, name), None)
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": "batch", "kind": "jobs", "uid": job["metadata"]["uid"]}}

    def get_pod(self, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            pod = self.pods.get((namespace, name))
            if pod is None:
                raise not_found("pods", "", name)
            return copy.deepcopy(pod)

    def list_pods(self, namespace: str, selector: str | None) -> dict[str, Any]:
        with self._lock:
            items = [copy.deepcopy(p) for (ns, _), p in self.pods.items() if ns == namespace and match_labels(selector, p["metadata"]["labels"])]
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    def pod_log(self, namespace: str, name: str, query: dict[str, str]) -> str:
        with self._lock:
            pod = self.pods.get((namespace, name))
            if pod is None:
                raise not_found("pods", "", name)
            names = [c["name"] for c in pod["spec"]["containers"]]
            container = query.get("container")
            if container is None:
                if len(names) > 1:
                    raise ApiError(400, "BadRequest", f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")
                container = names[0]
            if container not in names:
                raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
            running = self._containers.get((namespace, name))
            if running is None or container != self._runtime_of_pod(pod).get("container"):
                status = next((s for s in pod["status"].get("containerStatuses", []) if s["name"] == container), None)
                waiting = (status or {}).get("state", {}).get("waiting") or {}
                reason = waiting.get("reason", "ContainerCreating")
                detail = {"ImagePullBackOff": "trying and failing to pull image", "ErrImagePull": "trying and failing to pull image"}.get(reason, "")
                raise ApiError(400, "BadRequest", f'container "{container}" in pod "{name}" is waiting to start: {detail or reason}')
            lines = list(running.lines)
        if "sinceSeconds" in query:
            cutoff = datetime.now(UTC).timestamp() - int(query["sinceSeconds"])
            lines = [(ts, text) for ts, text in lines if datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() >= cutoff]
        if "tailLines" in query:
            lines = lines[-int(query["tailLines"]):]
        stamp = query.get("timestamps") in ("true", "True", "1")
        return "".join(f"{ts} {text}\n" if stamp else f"{text}\n" for ts, text in lines)

    def list_events(self, namespace: str, field_selector: str | None) -> dict[str, Any]:
        check_field_selector(field_selector)  # refused even when no event would be compared with it
        with self._lock:
            items = [copy.deepcopy(e) for e in self.events if e["metadata"]["namespace"] == namespace and match_fields(field_selector, e)]
        return {"apiVersion": "v1", "kind": "EventList", "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    # --- what a cluster does ------------------------------------------------------------------------------

    def evict(self, namespace: str, pod_name: str, message: str = "The node was low on resource: memory. Threshold quantity: 100Mi, available: 90Mi.") -> None:
        """Evict a pod the way the kubelet does under node pressure."""
        with self._lock:
            pod = self.pods[(namespace, pod_name)]
            container = self._containers.get((namespace, pod_name))
            if container is not None:
                container.signal(signal.SIGKILL)
            self.event(pod, "Evicted", message, "Warning")
            pod["status"].update(phase="Failed", reason="Evicted", message=message)
            self._runtime_of_pod(pod)["evicted"] = True

    def _runtime_of_pod(self, pod: dict[str, Any]) -> dict[str, Any]:
        return self._runtime.setdefault(("pod", pod["metadata"]["namespace"], pod["metadata"]["name"]), {})

    def _terminate_pod(self, pod: dict[str, Any], grace: int | None) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            return
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        meta["deletionTimestamp"] = now_iso()
        meta["deletionGracePeriodSeconds"] = grace
        container = self._containers.get((meta["namespace"], meta["name"]))
        rt = self._runtime_of_pod(pod)
        rt["kill_at"] = time.monotonic() + grace
        if container is not None:
            self.event(pod, "Killing", f"Stopping container {rt.get('container')}")
            container.signal(signal.SIGTERM)

    def _controller(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                with self._lock:
                    for key in list(self.jobs):
                        if key in self.jobs:
                            self._reconcile_job(key)
                    for key in list(self.pods):
                        self._reconcile_terminating(key)
            except Exception as exc:  # pragma: no cover - a bug in the fake: make it visible
                print(f"fake kubernetes controller: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def _reconcile_terminating(self, key: tuple[str, str]) -> None:
        pod = self.pods[key]
        if not pod["metadata"].get("deletionTimestamp"):
            return
        container = self._containers.get(key)
        rt = self._runtime_of_pod(pod)
        if container is not None and not container.done():
            if time.monotonic() >= rt.get("kill_at", 0):
                container.signal(signal.SIGKILL)
            return
        del self.pods[key]
        self._containers.pop(key, None)
        # a Job waiting for its pods (foreground deletion) goes once they are gone
        job_name = pod["metadata"]["labels"].get("job-name")
        job = self.jobs.get((key[0], job_name)) if job_name else None
        if job is not None and job["metadata"].get("deletionTimestamp"):
            if not any(p["metadata"]["labels"].get("job-name") == job_name for (ns, _), p in self.pods.items() if ns == key[0]):
                del self.jobs[(key[0], job_name)]
                self._runtime.pop((key[0], job_name), None)

    def _reconcile_job(self, key: tuple[str, str]) -> None:
        job = self.jobs[key]
        rt = self._runtime[key]
        namespace, name = key
        now = time.monotonic()
        if rt.get("deleting"):
            return
        if rt["phase"] == "finished":
            ttl = job["spec"].get("ttlSecondsAfterFinished")
            if ttl is not None and now - rt["finished"] >= ttl:
                self.delete_job(namespace, name, "Background", None)
            return
        deadline = job["spec"].get("activeDeadlineSeconds")
        if deadline is not None and now - rt["created"] > deadline:
            for pod in self._job_pods(namespace, name):
                self._terminate_pod(pod, 0)
            self._finish_job(job, rt, False, "DeadlineExceeded", "Job was active longer than specified deadline")
            return
        if rt["phase"] == "creating":
            if now < rt["next"]:
                return
            sa = job["spec"]["template"]["spec"].get("serviceAccountName") or "default"
            pod_name = f"{name[:57]}-{secrets.token_hex(3)[:5]}"
            if (namespace, sa) not in self.service_accounts:
                self.event(job, "FailedCreate", f'Error creating: pods "{pod_name}" is forbidden: error looking up service account '
                           f"{namespace}/{sa}: serviceaccount \"{sa}\" not found", "Warning", "job-controller")
                rt["next"] = now + self.backoff * 2
                return
            self._create_pod(job, pod_name)
            rt["phase"] = "pod"
            rt["pod"] = pod_name
            return
        found = self.pods.get((namespace, rt["pod"]))
        if found is None:  # deleted from outside: counts as a failure with backoffLimit 0
            if job["spec"].get("backoffLimit", 6) == 0:
                self._finish_job(job, rt, False, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
            else:
                rt["phase"] = "creating"
            return
        self._step_pod(job, found, rt)

    def _job_pods(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [p for (ns, _), p in self.pods.items() if ns == namespace and p["metadata"]["labels"].get("job-name") == name]

    def _create_pod(self, job: dict[str, Any], pod_name: str) -> None:
        namespace = job["metadata"]["namespace"]
        template = copy.deepcopy(job["spec"]["template"])
        spec = template["spec"]
        spec.setdefault("serviceAccountName", "default")
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name, "namespace": namespace, "uid": str(uuid.uuid4()), "resourceVersion": self._next_rv(),
                         "creationTimestamp": now_iso(), "labels": template["metadata"]["labels"],
                         "annotations": template["metadata"].get("annotations") or {},
                         "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
                                              "uid": job["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]},
            "spec": spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort", "conditions": []},
        }
        self.pods[(namespace, pod_name)] = pod
        job["status"]["active"] = 1
        self.event(job, "SuccessfulCreate", f"Created pod: {pod_name}", "Normal", "job-controller")
        self._runtime_of_pod(pod).update(step="schedule", next=time.monotonic(), pulls=0)

    def _fits(self, pod: dict[str, Any]) -> str | None:
        cpu = memory = 0.0
        for c in pod["spec"]["containers"]:
            requests = (c.get("resources") or {}).get("requests") or {}
            cpu += quantity(requests.get("cpu", "0")) or 0
            memory += quantity(requests.get("memory", "0")) or 0
        missing = [what for what, need, have in (("cpu", cpu, NODE["cpu"]), ("memory", memory, NODE["memory"])) if need > have]
        if not missing:
            return None
        return (f"0/1 nodes are available: {', '.join(f'1 Insufficient {m}' for m in missing)}. preemption: 0/1 nodes are "
                "available: 1 No preemption victims found for incoming pod.")

    def _step_pod(self, job: dict[str, Any], pod: dict[str, Any], jrt: dict[str, Any]) -> None:
        rt = self._runtime_of_pod(pod)
        now = time.monotonic()
        status = pod["status"]
        container_spec = pod["spec"]["containers"][0]
        cname = container_spec["name"]
        image = container_spec["image"]
        if pod["metadata"].get("deletionTimestamp") or rt.get("evicted"):
            if rt.get("evicted") and jrt["phase"] != "finished":
                container = self._containers.get((pod["metadata"]["namespace"], pod["metadata"]["name"]))
                if container is None or container.done():
                    self._set_terminated(pod, cname, 137, "Error", rt)
                    self._finish_job(job, jrt, False, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
            return
        step = rt.get("step")
        if step == "schedule":
            problem = self._fits(pod)
            if problem:
                if now >= rt["next"]:
                    self.event(pod, "FailedScheduling", problem, "Warning", "default-scheduler")
                    status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": problem,
                                             "lastTransitionTime": now_iso()}]
                    rt["next"] = now + self.backoff * 2
                return
            self.event(pod, "Scheduled", f"Successfully assigned {pod['metadata']['namespace']}/{pod['metadata']['name']} to {NODE['name']}",
                       "Normal", "default-scheduler")
            pod["spec"]["nodeName"] = NODE["name"]
            status.update(conditions=[{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_iso()}],
                          hostIP="127.0.0.1", podIP="127.0.0.1", startTime=now_iso())
            self._set_waiting(pod, cname, image, "ContainerCreating", None)
            rt.update(step="pull", next=now + self.tick)
            return
        if step == "pull":
            if now < rt["next"]:
                return
            known = self.images.get(image)
            self.event(pod, "Pulling", f'Pulling image "{image}"')
            if known is None or rt["pulls"] < known.get("pull_failures", 0):
                rt["pulls"] += 1
                why = (f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": not found' if known is None
                       else f'rpc error: code = Unknown desc = failed to pull image "{image}": 503 Service Unavailable')
                self.event(pod, "Failed", f'Failed to pull image "{image}": {why}', "Warning")
                self.event(pod, "Failed", "Error: ErrImagePull", "Warning")
                self.event(pod, "BackOff", f'Back-off pulling image "{image}"', "Normal")
                self.event(pod, "Failed", "Error: ImagePullBackOff", "Warning")
                self._set_waiting(pod, cname, image, "ImagePullBackOff", f'Back-off pulling image "{image}": ErrImagePull: {why}')
                rt["next"] = now + self.backoff * min(rt["pulls"], 4)
                return
            self.event(pod, "Pulled", f'Successfully pulled image "{image}" in 412ms (412ms including waiting). Image size: 52428800 bytes.')
            self._start_container(pod, container_spec, known, rt)
            return
        if step == "running":
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            container = self._containers[key]
            if container.memory_limit is not None and not container.done() and container.rss() > container.memory_limit:
                container.oom_killed = True
                container.signal(signal.SIGKILL)
            if not container.done():
                return
            code = container.process.returncode
            exit_code = 137 if container.oom_killed else (128 - code if code < 0 else code)
            reason = "OOMKilled" if container.oom_killed else ("Completed" if exit_code == 0 else "Error")
            self._set_terminated(pod, cname, exit_code, reason, rt)
            if exit_code == 0:
                status["phase"] = "Succeeded"
                self._finish_job(job, jrt, True, "Completed", "Job completed")
            else:
                status["phase"] = "Failed"
                self._finish_job(job, jrt, False, "BackoffLimitExceeded", "Job has reached the specified backoff limit")

    def _set_waiting(self, pod: dict[str, Any], cname: str, image: str, reason: str, message: str | None) -> None:
        waiting = {"reason": reason, **({"message": message} if message else {})}
        pod["status"]["containerStatuses"] = [{"name": cname, "image": image, "imageID": "", "ready": False, "restartCount": 0,
                                               "started": False, "state": {"waiting": waiting}}]
        pod["metadata"]["resourceVersion"] = self._next_rv()

    def _set_terminated(self, pod: dict[str, Any], cname: str, exit_code: int, reason: str, rt: dict[str, Any]) -> None:
        statuses = pod["status"].get("containerStatuses") or [{"name": cname, "image": pod["spec"]["containers"][0]["image"],
                                                                 "imageID": "", "restartCount": 0}]
        started = rt.get("started_at", now_iso())
        statuses[0].update(ready=False, started=False, state={"terminated": {
            "exitCode": exit_code, "reason": reason, "startedAt": started, "finishedAt": now_iso(),
            "containerID": rt.get("container_id", "")}})
        pod["status"]["containerStatuses"] = statuses
        pod["metadata"]["resourceVersion"] = self._next_rv()
        rt["step"] = "terminated"

    def _start_container(self, pod: dict[str, Any], spec: dict[str, Any], image: dict[str, Any], rt: dict[str, Any]) -> None:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        command: list[str] = spec.get("command") or image.get("entrypoint") or []
        args: list[str] = spec["args"] if spec.get("args") is not None else (image.get("cmd") or [])
        argv = [*command, *args]
        home = Path(tempfile.mkdtemp(prefix=f"pod-{name[:20]}-", dir=self.workdir))
        env = {"PATH": f"{self.image_path}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "HOSTNAME": name,
               "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
        for var in spec.get("env") or []:
            ref = (var.get("valueFrom") or {}).get("secretKeyRef")
            if ref is not None:
                data = self.secrets.get((namespace, ref["name"]))
                if data is None or ref["key"] not in data:
                    what = f'secret "{ref["name"]}" not found' if data is None else f"couldn't find key {ref['key']} in Secret {namespace}/{ref['name']}"
                    self.event(pod, "Failed", f"Error: {what}", "Warning")
                    self._set_waiting(pod, spec["name"], spec["image"], "CreateContainerConfigError", what)
                    rt["next"] = time.monotonic() + self.backoff * 2
                    return
                env[var["name"]] = data[ref["key"]]
            elif "value" in var:
                env[var["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), str(var["value"]))
            elif (var.get("valueFrom") or {}).get("fieldRef"):
                path = var["valueFrom"]["fieldRef"]["fieldPath"]
                env[var["name"]] = {"metadata.name": name, "metadata.namespace": namespace, "spec.nodeName": NODE["name"]}.get(path, "")
        limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
        cid = f"containerd://{secrets.token_hex(32)}"
        try:
            container = Container(argv, env, spec.get("workingDir") or str(home), quantity(limit) if limit else None)
        except OSError as exc:
            message = f'failed to create containerd task: exec: "{argv[0] if argv else ""}": {exc.strerror}'
            self.event(pod, "Failed", f"Error: {message}", "Warning")
            rt["container_id"] = cid
            self._set_terminated(pod, spec["name"], 128, "StartError", rt)
            pod["status"]["phase"] = "Failed"
            return
        self._containers[(namespace, name)] = container
        self.event(pod, "Created", f"Created container: {spec['name']}")
        self.event(pod, "Started", f"Started container {spec['name']}")
        rt.update(step="running", started_at=container.started_at, container=spec["name"], container_id=cid)
        pod["status"].update(phase="Running", conditions=[{"type": t, "status": "True", "lastTransitionTime": now_iso()}
                                                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")])
        pod["status"]["containerStatuses"] = [{"name": spec["name"], "image": spec["image"], "imageID": f"{spec['image']}@sha256:{'0' * 64}",
                                               "containerID": cid, "ready": True, "started": True, "restartCount": 0,
                                               "state": {"running": {"startedAt": container.started_at}}}]
        pod["metadata"]["resourceVersion"] = self._next_rv()

    def _finish_job(self, job: dict[str, Any], rt: dict[str, Any], succeeded: bool, reason: str, message: str) -> None:
        if rt["phase"] == "finished":
            return
        rt.update(phase="finished", finished=time.monotonic())
        stamp = now_iso()
        status = job["status"]
        status["active"] = 0
        if succeeded:
            status.update(succeeded=1, completionTime=stamp, conditions=[
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods",
                 "lastProbeTime": stamp, "lastTransitionTime": stamp},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods",
                 "lastProbeTime": stamp, "lastTransitionTime": stamp}])
            self.event(job, "Completed", message, "Normal", "job-controller")
        else:
            status.update(failed=1, conditions=[
                {"type": "FailureTarget", "status": "True", "reason": reason, "message": message, "lastProbeTime": stamp, "lastTransitionTime": stamp},
                {"type": "Failed", "status": "True", "reason": reason, "message": message, "lastProbeTime": stamp, "lastTransitionTime": stamp}])
            self.event(job, reason, message, "Warning", "job-controller")
        job["metadata"]["resourceVersion"] = self._next_rv()


# --- HTTP -------------------------------------------------------------------------------------------------

_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs$"), "create_job"),
    ("GET", re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs$"), "list_jobs"),
    ("GET", re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)$"), "get_job"),
    ("DELETE", re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs/([^/]+)$"), "delete_job"),
    ("GET", re.compile(r"^/api/v1/namespaces/([^/]+)/pods$"), "list_pods"),
    ("GET", re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)$"), "get_pod"),
    ("GET", re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$"), "pod_log"),
    ("GET", re.compile(r"^/api/v1/namespaces/([^/]+)/events$"), "list_events"),
]


class _Handler(BaseHTTPRequestHandler):
    cluster: FakeKubernetes
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall per request

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        parsed = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if self.headers.get("Authorization") != f"Bearer {self.cluster.token}":
                raise ApiError(401, "Unauthorized", "Unauthorized")
            route = next(((action, m) for verb, pattern, action in _ROUTES
                          if verb == method and (m := pattern.match(parsed.path))), None)
            if route is None:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            action, match = route
            body: Any = None
            if raw:
                content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                if content_type not in ("", "application/json"):  # empty means the first serializer: JSON (like the apiserver)
                    raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json")
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise ApiError(400, "BadRequest", f"the object provided is unrecognized (must be of type Job): couldn't get version/kind; json parse error: {exc}") from exc
            self.cluster.requests.append((method, parsed.path if not parsed.query else f"{parsed.path}?{parsed.query}", body))
            result = self._dispatch(action, match.groups(), query, body)
            if action == "pod_log":
                self._send(200, result, "text/plain")
            else:
                self._send(201 if action == "create_job" else 200, result)
        except ApiError as exc:
            if exc.code in (400, 422):
                self.cluster.rejections.append(exc.status())
            self._send(exc.code, exc.status())
        except Exception as exc:  # a bug in the fake: a 500 Status the test sees, never a dropped connection
            self._send(500, ApiError(500, "InternalError", f"fake API server: {type(exc).__name__}: {exc}").status())

    def _dispatch(self, action: str, groups: tuple[str, ...], query: dict[str, str], body: Any) -> Any:
        c = self.cluster
        calls: dict[str, Callable[[], Any]] = {
            "create_job": lambda: c.create_job(groups[0], body),
            "list_jobs": lambda: c.list_jobs(groups[0], query.get("labelSelector")),
            "get_job": lambda: c.get_job(*groups),
            "delete_job": lambda: c.delete_job(groups[0], groups[1], query.get("propagationPolicy") or (body or {}).get("propagationPolicy"),
                                               _int(query.get("gracePeriodSeconds", (body or {}).get("gracePeriodSeconds")))),
            "list_pods": lambda: c.list_pods(groups[0], query.get("labelSelector")),
            "get_pod": lambda: c.get_pod(*groups),
            "pod_log": lambda: c.pod_log(groups[0], groups[1], query),
            "list_events": lambda: c.list_events(groups[0], query.get("fieldSelector")),
        }
        return calls[action]()

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle("DELETE")


def _int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ApiError(400, "BadRequest", f'gracePeriodSeconds: Invalid value: "{value}": must be an integer') from None
