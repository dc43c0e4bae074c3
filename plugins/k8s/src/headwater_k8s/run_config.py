"""``KubernetesRun``: a flow run as a Kubernetes ``batch/v1`` Job, every pod failure in the run's logs.

The agent calls :meth:`KubernetesRun.execute`, which builds the Job (see :mod:`headwater_k8s.job`)
and creates it through the API; :meth:`~KubernetesRun.status` then follows the Job, its pod and
their events on every agent pass (at most once per ``[k8s] poll_interval`` seconds):

* every new event of the Job or its pod (ImagePullBackOff, ErrImagePull, FailedScheduling,
  FailedCreate, Evicted...) and every container failure (OOMKilled, exit codes) becomes a log of
  the flow run (and a line of the agent's output file for the run) as it happens;
* the container's output reaches the run's logs too, including what the image printed before
  headwater started (lines in headwater's own log format are skipped: the flow-run process in
  the pod sent those to the API itself);
* while the pod has not started its container (an image still being pulled, a pod not yet
  scheduled) the run stays Submitted and its status ``running``; after ``start_timeout``
  seconds the Job is deleted and the run ends Failed with the last events;
* a failed Job (a non-zero exit, OOMKilled, an eviction, a deadline) ends the run Failed with
  the reason and the last events, even when the flow-run process never got to say so;
* a Job deleted from outside ends the run Failed; a Job whose run is already over elsewhere
  (cancelled, failed by the server's reaper) is deleted;
* :meth:`~KubernetesRun.kill` deletes the Job with foreground propagation (its pod first).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from headwater.plugins import Environment, RunHandle, env_converter, env_runner_variables
from headwater.states import FINISHED_STATE_NAMES
from headwater_k8s.config import K8sSection, k8s_settings
from headwater_k8s.job import FLOW_CONTAINER, LABEL_FLOW_RUN_ID, build_job, label_value, load_template

__all__ = ["KubernetesRun", "JobWatch", "kubernetes_clients", "KubernetesError", "event_record"]

_log = logging.getLogger("headwater.k8s")
_FINAL = ("success", "failed", "cancelled")
_RUN_FINISHED = FINISHED_STATE_NAMES | {"Finished"}
_HEADWATER_LINE = re.compile(r"^\S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+headwater[\w.]* \| ")
_NOT_A_FAILURE = {"ContainerCreating", "PodInitializing"}
_STALE_GRACE = 15.0
"""Seconds a run may be over (by the API) while its pod still runs before the Job counts as stale."""


class KubernetesError(RuntimeError):
    """The Kubernetes API refused a request (the message names the object, the API's reason and a fix)."""


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _template(value: Any) -> dict[str, Any] | None:
    """A job template given as YAML/JSON text is kept as the dict it describes (it round-trips as JSON)."""
    if value is None:
        return None
    return load_template(value) or None


def _python_command(command: Sequence[str], python: str) -> list[str]:
    """The agent's command line with its interpreter path replaced by the image's ``python``."""
    argv = [str(part) for part in command]
    if argv and (argv[0] == sys.executable or re.match(r"^python[0-9.]*$", Path(argv[0]).name)):
        argv[0] = python
    return argv


# --- the Kubernetes client ---------------------------------------------------------------------

_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


def kubernetes_clients(settings: K8sSection | None = None) -> tuple[Any, Any]:
    """``(BatchV1Api, CoreV1Api)`` for the ``[k8s]`` settings (kubeconfig, context or in-cluster), cached."""
    settings = settings or k8s_settings()
    key = (settings.in_cluster, settings.kubeconfig, settings.context)
    with _clients_lock:
        if key in _clients:
            return _clients[key]
        from kubernetes import client, config

        try:
            if settings.in_cluster:
                configuration = client.Configuration()
                config.load_incluster_config(client_configuration=configuration)
                api_client = client.ApiClient(configuration)
            else:
                path = os.path.expanduser(settings.kubeconfig) if settings.kubeconfig else None
                api_client = config.new_client_from_config(config_file=path, context=settings.context)
        except config.ConfigException as exc:
            where = "in-cluster service account" if settings.in_cluster else (
                f"kubeconfig {settings.kubeconfig!r}" if settings.kubeconfig else "the default kubeconfig ($KUBECONFIG or ~/.kube/config)")
            raise KubernetesError(
                f"headwater-k8s cannot configure the Kubernetes client from the {where}: {exc}. Set [k8s] kubeconfig "
                "(HEADWATER__K8S__KUBECONFIG) to a kubeconfig file, or [k8s] in_cluster = true when the agent runs in a pod."
            ) from exc
        pair = (client.BatchV1Api(api_client), client.CoreV1Api(api_client))
        _clients[key] = pair
        return pair


def _api_error(exc: Exception, action: str, fix: str = "") -> KubernetesError:
    """A KubernetesError from an ``ApiException``, with the Status' reason and message."""
    status, reason, message = getattr(exc, "status", None), getattr(exc, "reason", ""), str(exc)
    body = getattr(exc, "body", None)
    if body:
        try:
            data = json.loads(body)
            reason, message = data.get("reason", reason), data.get("message", message)
        except (ValueError, TypeError, AttributeError):
            pass
    text = f"Kubernetes refused to {action}: {status} {reason}: {message}"
    return KubernetesError(text + (f". {fix}" if fix else ""))


def _status_of(exc: Exception) -> int | None:
    return getattr(exc, "status", None)


# --- following one Job ----------------------------------------------------------------------------


@attrs.define
class JobWatch:
    """What :meth:`KubernetesRun.status` knows about one flow run's Job (kept in ``RunHandle.process``)."""

    namespace: str
    job_name: str
    flow_run_id: str | None
    settings: K8sSection
    start_timeout: float
    output: str | None = None
    api: str | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    attempt: int | None = None
    """The run attempt the agent claimed: this watch's logs and its end of the run are fenced with it."""
    created: float = attrs.field(factory=time.monotonic)
    last_poll: float = 0.0
    started: bool = False
    killed: bool = False
    final_reported: bool = False
    run_finished_at: float | None = None
    seen_events: dict[str, int] = attrs.field(factory=dict)
    event_lines: list[str] = attrs.field(factory=list)
    last_log_ts: str = ""
    waiting: dict[str, str] = attrs.field(factory=dict)
    pods_reported: set[str] = attrs.field(factory=set)
    exit_code: int | None = None
    last_error: str | None = None
    _client: Any = attrs.field(default=None, repr=False)

    # --- where reports go ---------------------------------------------------------------------

    def client(self) -> Any:
        """The headwater API client for the run's logs and state (None outside an agent)."""
        if self._client is None and self.api and self.flow_run_id:
            from headwater import Client

            self._client = Client(api=self.api, api_key=self.api_key or "")
        return self._client

    def report(self, message: str, level: str = "INFO", name: str = "headwater.k8s", event: bool = False) -> None:
        """One line to the run's logs (API), the run's output file and the agent's logger."""
        self.report_many([(level, message)], name=name, event=event)

    def report_many(self, records: Sequence[tuple[str, str]], name: str = "headwater.k8s", event: bool = False) -> None:
        if not records:
            return
        if event:
            self.event_lines += [message for _, message in records]
            del self.event_lines[:-20]
        if self.output:
            try:
                with open(self.output, "a", encoding="utf-8") as fh:
                    fh.writelines(f"{message}\n" for _, message in records)
            except OSError:
                pass
        for level, message in records:
            _log.log(logging.getLevelName(level), "%s: %s", self.job_name, message)
        client = self.client()
        if client is None:
            return
        now = datetime.now(UTC).isoformat()
        logs = [{"flow_run_id": self.flow_run_id, "message": m, "level": lv, "name": name, "timestamp": now,
                 **({"attempt": self.attempt} if self.attempt is not None else {})} for lv, m in records]
        try:
            client.graphql("mutation($l: [LogInput!]!) { write_logs(logs: $l) }", {"l": logs})
        except Exception as exc:  # the API being down must not break following the Job
            _log.warning("Could not send %d log(s) of flow run %s to the API: %s", len(logs), self.flow_run_id, exc)

    def run_state(self) -> str | None:
        client = self.client()
        if client is None:
            return None
        try:
            data = client.graphql("query($i: String!) { flow_run(id: $i) { state { type } } }", {"i": self.flow_run_id})
        except Exception:
            return None
        run = data.get("flow_run") or {}
        return (run.get("state") or {}).get("type")

    def end_run_failed(self, message: str) -> None:
        client = self.client()
        if client is None:
            return
        try:
            client.graphql(
                "mutation($r: String!, $s: String!, $m: String!, $t: String, $a: Int) { end_flow_run(flow_run_id: $r, "
                "state: $s, message: $m, task_state: $t, attempt: $a) { state } }",
                {"r": self.flow_run_id, "s": "Failed", "m": message, "t": "Failed", "a": self.attempt},
            )
        except Exception as exc:  # SUPERSEDED: a newer attempt owns the run now, which is not this Job's to end
            _log.warning("Could not end flow run %s Failed: %s", self.flow_run_id, exc)

    # --- reading Kubernetes -------------------------------------------------------------------

    def _events(self, core: Any, names: Sequence[str]) -> None:
        timeout = self.settings.request_timeout
        events: list[Any] = []
        for name in names:
            try:
                events += core.list_namespaced_event(
                    self.namespace, field_selector=f"involvedObject.name={name}", _request_timeout=timeout).items or []
            except Exception as exc:  # events are a help, not a requirement (RBAC may hide them)
                if name == names[0]:
                    _log.debug("Listing events of %s failed: %s", name, exc)
        def when(ev: Any) -> str:
            stamp = ev.last_timestamp or ev.event_time or ev.first_timestamp or ev.metadata.creation_timestamp
            return stamp.isoformat() if stamp else ""
        records = []
        for ev in sorted(events, key=when):
            uid = ev.metadata.uid or f"{ev.metadata.name}"
            count = _event_count(ev)
            if self.seen_events.get(uid, 0) >= count:
                continue
            self.seen_events[uid] = count
            records.append(event_record(ev))
        self.report_many(records, event=True)

    def _pod_logs(self, core: Any, pod: Any) -> None:
        kwargs: dict[str, Any] = {"container": FLOW_CONTAINER if _has_container(pod, FLOW_CONTAINER) else None,
                                  "timestamps": True, "_request_timeout": self.settings.request_timeout}
        if self.last_log_ts:
            try:
                last = datetime.fromisoformat(self.last_log_ts.replace("Z", "+00:00"))
                kwargs["since_seconds"] = max(1, int((datetime.now(UTC) - last).total_seconds()) + 2)
            except ValueError:
                pass
        if kwargs["container"] is None:
            kwargs.pop("container")
        try:
            text = core.read_namespaced_pod_log(pod.metadata.name, self.namespace, **kwargs)
        except Exception as exc:
            _log.debug("Reading the logs of pod %s failed: %s", pod.metadata.name, exc)
            return
        records = []
        for line in (text or "").splitlines():
            stamp, _, content = line.partition(" ")
            if stamp <= self.last_log_ts:
                continue
            self.last_log_ts = stamp
            if _HEADWATER_LINE.match(content):
                continue
            records.append(("INFO", content))
        self.report_many(records, name=f"headwater.k8s.pod.{pod.metadata.name}")

    def poll(self, batch: Any, core: Any) -> tuple[str, str | None]:
        """One look at the Job, its pod and events: ``(status, failure message or None)``."""
        from kubernetes.client.exceptions import ApiException

        timeout = self.settings.request_timeout
        try:
            job = batch.read_namespaced_job(self.job_name, self.namespace, _request_timeout=timeout)
        except ApiException as exc:
            if exc.status != 404:
                raise _api_error(exc, f"read Job {self.namespace}/{self.job_name}") from exc
            if self.killed:
                return "cancelled", None
            self._events(core, [self.job_name])
            return "failed", (f"The Kubernetes Job {self.namespace}/{self.job_name} of the flow run was deleted outside "
                              "headwater (kubectl delete, a namespace deletion or a cluster cleanup) before the run finished.")
        pods = core.list_namespaced_pod(self.namespace, label_selector=f"job-name={self.job_name}", _request_timeout=timeout).items or []
        pods.sort(key=lambda p: p.metadata.creation_timestamp.isoformat() if p.metadata.creation_timestamp else "")
        self._events(core, [self.job_name, *(p.metadata.name for p in pods)])
        pod = pods[-1] if pods else None
        failure: str | None = None
        pod_done = False
        if pod is not None:
            failure, pod_done = self.inspect_pod(pod)
            if self.started:
                self._pod_logs(core, pod)
        conditions = {c.type: c for c in (job.status.conditions or []) if c.status == "True"} if job.status else {}
        if "Complete" in conditions or "SuccessCriteriaMet" in conditions or (pod is not None and pod.status.phase == "Succeeded"):
            return "success", None
        if "Failed" in conditions or "FailureTarget" in conditions or (pod is not None and pod.status.phase == "Failed" and pod_done):
            condition = conditions.get("Failed") or conditions.get("FailureTarget")
            reason = failure or (f"{condition.reason}: {condition.message}" if condition is not None else "the pod failed")
            return "failed", f"The Kubernetes Job {self.namespace}/{self.job_name} failed: {reason}"
        if not self.started and time.monotonic() - self.created > self.start_timeout:
            waiting = "; ".join(f"{k}: {v}" for k, v in self.waiting.items()) or (
                "no pod was created" if pod is None else f"the pod is {pod.status.phase}")
            return "failed", (f"The pod of Kubernetes Job {self.namespace}/{self.job_name} did not start its container within "
                              f"the start timeout of {self.start_timeout:g} s ({waiting}); the Job was deleted. Raise "
                              "[k8s] start_timeout or KubernetesRun(start_timeout=...) if it only needs longer.")
        return "running", None

    def inspect_pod(self, pod: Any) -> tuple[str | None, bool]:
        """Report what is new in the pod's status (waiting reasons, failed containers, eviction).

        Returns ``(failure or None, whether the flow container or the pod has terminated)``.
        """
        name = pod.metadata.name
        status = pod.status
        failure: str | None = None
        terminated_any = False
        records: list[tuple[str, str]] = []
        for cs in (status.container_statuses or []) if status else []:
            state = cs.state
            if state is None:
                continue
            if state.running is not None or state.terminated is not None:
                self.started = True
            if state.waiting is not None and state.waiting.reason and state.waiting.reason not in _NOT_A_FAILURE:
                text = f"{state.waiting.reason}: {state.waiting.message or ''}".rstrip(": ")
                if self.waiting.get(cs.name) != text:
                    self.waiting[cs.name] = text
                    records.append(("WARNING", f"Pod {name}: container {cs.name} is waiting: {text}"))
            if state.terminated is not None and cs.name == (FLOW_CONTAINER if _has_container(pod, FLOW_CONTAINER) else cs.name):
                terminated_any = True
                term = state.terminated
                key = f"{name}/{cs.name}/terminated"
                self.exit_code = term.exit_code
                if term.exit_code != 0 or term.reason not in (None, "Completed"):
                    failure = f"container {cs.name} of pod {name} terminated: {term.reason or 'Error'} (exit code {term.exit_code})"
                    if term.reason == "OOMKilled":
                        limit = _memory_limit(pod, cs.name)
                        failure += f": it used more memory than its limit{f' of {limit}' if limit else ''}; raise memory_limit"
                    if term.message:
                        failure += f": {term.message.strip()}"
                    if key not in self.pods_reported:
                        self.pods_reported.add(key)
                        records.append(("ERROR", f"Pod {name}: {failure}"))
        if status is not None and status.phase == "Failed" and status.reason:
            key = f"{name}/{status.reason}"
            failure = failure or f"pod {name} {status.reason}: {status.message or ''}".rstrip(": ")
            terminated_any = True
            if key not in self.pods_reported:
                self.pods_reported.add(key)
                records.append(("ERROR", f"Pod {name} failed: {status.reason}: {status.message or ''}".rstrip(": ")))
        self.report_many(records, event=True)
        return failure, terminated_any


def _event_count(ev: Any) -> int:
    series = getattr(ev, "series", None)
    return int(ev.count or (series.count if series is not None and series.count else 1))


def event_record(ev: Any) -> tuple[str, str]:
    """``(level, message)`` of a ``V1Event`` for the run's logs: Warning events are WARNING, others INFO."""
    obj = ev.involved_object
    count = _event_count(ev)
    repeat = f" (x{count})" if count > 1 else ""
    level = "WARNING" if ev.type == "Warning" else "INFO"
    return level, f"Kubernetes event: {obj.kind}/{obj.name}: {ev.reason}: {ev.message}{repeat}"


def _has_container(pod: Any, name: str) -> bool:
    return any(c.name == name for c in (pod.spec.containers or [])) if pod.spec else False


def _memory_limit(pod: Any, container: str) -> str | None:
    for c in pod.spec.containers or []:
        if c.name == container and c.resources is not None and c.resources.limits:
            return c.resources.limits.get("memory")
    return None


# --- the run config ---------------------------------------------------------------------------------


@attrs.define
class KubernetesRun(Environment):
    """Run each flow run as a Kubernetes Job (Prefect 1's ``KubernetesRun`` arguments).

    ``job_template`` (a dict or YAML text) or ``job_template_path`` (a file the agent reads) is
    merged over the default Job; ``image``, ``env``, the cpu/memory requests and limits,
    ``service_account_name``, ``image_pull_secrets`` and ``image_pull_policy`` go on top.
    ``namespace`` and ``start_timeout`` override ``[k8s]``; ``python`` is the image's interpreter.
    """

    job_template_path: str | None = attrs.field(default=None, converter=_str_or_none)
    job_template: dict[str, Any] | None = attrs.field(default=None, converter=_template)
    image: str | None = attrs.field(default=None, converter=_str_or_none)
    env: dict[str, str] = attrs.field(factory=dict, converter=env_converter)
    cpu_limit: str | None = attrs.field(default=None, converter=_str_or_none)
    cpu_request: str | None = attrs.field(default=None, converter=_str_or_none)
    memory_limit: str | None = attrs.field(default=None, converter=_str_or_none)
    memory_request: str | None = attrs.field(default=None, converter=_str_or_none)
    service_account_name: str | None = attrs.field(default=None, converter=_str_or_none)
    image_pull_secrets: list[str] = attrs.field(factory=list, converter=_names)
    image_pull_policy: str | None = attrs.field(default=None, converter=_str_or_none)
    namespace: str | None = attrs.field(default=None, kw_only=True, converter=_str_or_none)
    start_timeout: float | None = attrs.field(default=None, kw_only=True)
    python: str = attrs.field(default="python3", kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.job_template is not None and self.job_template_path is not None:
            raise ValueError("KubernetesRun takes job_template or job_template_path, not both.")
        if self.image_pull_policy not in (None, "Always", "IfNotPresent", "Never"):
            raise ValueError(f"KubernetesRun image_pull_policy must be Always, IfNotPresent or Never, got {self.image_pull_policy!r}.")

    # --- building the Job ---------------------------------------------------------------------

    def template(self) -> dict[str, Any]:
        """The user's Job template (from ``job_template`` or the file at ``job_template_path``), or ``{}``."""
        return load_template(self.job_template, self.job_template_path)

    def build_job(self, storage: Any, flow_location: str, settings: K8sSection | None = None, **run_context: Any) -> dict[str, Any]:
        """The Job manifest ``execute`` would create for this run (a dict, camelCase like ``kubectl``)."""
        settings = settings or k8s_settings()
        flow_run_id = str(run_context.get("flow_run_id") or uuid.uuid4())
        flow_name = next((name for name, loc in (getattr(storage, "flows", None) or {}).items() if loc == flow_location), "flow")
        command = run_context.get("command")
        if command is None:
            from headwater.plugins import RUN_FROM_ENV_MODULE

            args = [self.python, "-m", RUN_FROM_ENV_MODULE]
        elif isinstance(command, (str, bytes)) or not isinstance(command, Sequence):
            raise TypeError(f"run context 'command' must be a list of arguments, got {command!r}.")
        else:
            args = _python_command(command, self.python)
        context = dict(run_context.get("context") or {})
        context.setdefault("flow_run_id", flow_run_id)
        run_env = {
            "PYTHONUNBUFFERED": "1",
            **env_converter(run_context.get("env")),
            **env_runner_variables(storage, flow_location, run_context.get("parameters"), context),
        }
        job = build_job(
            flow_run_id=flow_run_id, flow_name=flow_name, args=args, run_env=run_env, template=self.template(),
            image=self.image, image_pull_policy=self.image_pull_policy, env=self.env, cpu_request=self.cpu_request,
            cpu_limit=self.cpu_limit, memory_request=self.memory_request, memory_limit=self.memory_limit,
            service_account_name=self.service_account_name, image_pull_secrets=self.image_pull_secrets,
            namespace=self.namespace_for(settings), ttl_seconds_after_finished=settings.ttl_seconds_after_finished,
            attempt=secrets.token_hex(3)[:5],  # one Job per attempt: a rescheduled run gets a new Job next to a stale one
        )
        if settings.api_key_secret:  # the key stays in its Secret, never in the Job's spec
            for container in job["spec"]["template"]["spec"]["containers"]:
                for var in container.get("env") or []:
                    if var["name"] == "HEADWATER__CLOUD__API_KEY":
                        var.pop("value", None)
                        var["valueFrom"] = {"secretKeyRef": {"name": settings.api_key_secret, "key": "api-key"}}
        return job

    def namespace_for(self, settings: K8sSection | None = None) -> str:
        return self.namespace or (settings or k8s_settings()).namespace

    # --- the Environment interface --------------------------------------------------------------

    def execute(self, storage: Any, flow_location: str, **run_context: Any) -> RunHandle:
        """Create the run's Job and return at once; ``status``/``kill`` follow it through the API."""
        from kubernetes import client as k8s
        from kubernetes.client.exceptions import ApiException

        settings = k8s_settings()
        job = self.build_job(storage, flow_location, settings=settings, **run_context)
        namespace = job["metadata"].get("namespace") or self.namespace_for(settings)
        name = job["metadata"]["name"]
        batch, _ = kubernetes_clients(settings)
        earlier = self._earlier_attempts(batch, namespace, run_context.get("flow_run_id"), settings)
        try:
            batch.create_namespaced_job(namespace, k8s.V1Job.from_dict(job), _request_timeout=settings.request_timeout)
        except ApiException as exc:
            raise _api_error(exc, f"create Job {namespace}/{name}",
                             "Check the job template and the run config's fields (the message names the field), and that "
                             "the agent's service account may create Jobs in that namespace.") from exc
        env = env_converter(run_context.get("env"))
        watch = JobWatch(
            namespace=namespace, job_name=name, flow_run_id=run_context.get("flow_run_id"), settings=settings,
            start_timeout=float(self.start_timeout or settings.start_timeout),
            output=str(run_context["stdout"]) if isinstance(run_context.get("stdout"), (str, os.PathLike)) else None,
            api=env.get("HEADWATER__CLOUD__API"), api_key=env.get("HEADWATER__CLOUD__API_KEY"),
            attempt=int(env["HEADWATER_FLOW_RUN_ATTEMPT"]) if str(env.get("HEADWATER_FLOW_RUN_ATTEMPT", "")).isdigit() else None,
        )
        image = job["spec"]["template"]["spec"]["containers"][0].get("image")
        for stale in earlier:
            watch.report(f"Deleted the Kubernetes Job {namespace}/{stale} of an earlier attempt of this flow run.", "WARNING")
        watch.report(f"Created Kubernetes Job {namespace}/{name} (image {image}).")
        return RunHandle(environment="KubernetesRun", id=f"{namespace}/{name}", process=watch)

    @staticmethod
    def _earlier_attempts(batch: Any, namespace: str, flow_run_id: str | None, settings: K8sSection) -> list[str]:
        """Delete the Jobs of earlier attempts of this run (a rescheduled run gets one Job at a time); their names."""
        if not flow_run_id:
            return []
        from kubernetes.client.exceptions import ApiException

        try:
            jobs = batch.list_namespaced_job(namespace, label_selector=f"{LABEL_FLOW_RUN_ID}={label_value(flow_run_id)}",
                                             _request_timeout=settings.request_timeout).items or []
        except ApiException as exc:
            _log.warning("%s", _api_error(exc, f"list the Jobs of flow run {flow_run_id} in namespace {namespace}"))
            return []
        names = [j.metadata.name for j in jobs if not j.metadata.deletion_timestamp]
        for name in names:
            watch = JobWatch(namespace=namespace, job_name=name, flow_run_id=None, settings=settings, start_timeout=1.0)
            _delete_job(batch, watch, "Foreground", None)
        return names

    def _watch(self, handle: RunHandle) -> JobWatch:
        if isinstance(handle.process, JobWatch):
            return handle.process
        namespace, _, name = str(handle.id).partition("/")
        settings = k8s_settings()
        handle.process = JobWatch(namespace=namespace, job_name=name, flow_run_id=None, settings=settings,
                                  start_timeout=float(self.start_timeout or settings.start_timeout))
        return handle.process

    def status(self, handle: RunHandle) -> str:
        """``running`` until the Job succeeded (``success``), failed or hung before starting (``failed``), or was killed."""
        if handle.status in _FINAL:
            return handle.status
        watch = self._watch(handle)
        now = time.monotonic()
        if now - watch.last_poll < watch.settings.poll_interval:
            return handle.status
        watch.last_poll = now
        batch, core = kubernetes_clients(watch.settings)
        try:
            status, failure = watch.poll(batch, core)
        except Exception as exc:  # the API server is unreachable or refuses: try again next pass
            message = str(exc) if isinstance(exc, KubernetesError) else f"Following Kubernetes Job {handle.id} failed: {exc}"
            if message != watch.last_error:
                watch.last_error = message
                watch.report(message, "WARNING")
            if watch.started or now - watch.created <= watch.start_timeout:
                return handle.status  # a running pod goes on without us; an unstarted one gets its start timeout
            status, failure = "failed", (f"headwater could not follow Kubernetes Job {handle.id} within the start timeout "
                                         f"of {watch.start_timeout:g} s: {message}")
        else:
            watch.last_error = None
        handle.exit_code = watch.exit_code
        if status == "running":
            status = self._check_stale(watch, batch)
        elif status == "failed" and watch.run_state() == "Cancelled":  # the flow-run process stopped on a cancel request
            watch.report(f"Kubernetes Job {watch.namespace}/{watch.job_name} ended (exit code {watch.exit_code}) after the "
                         "flow run was cancelled.")
            status, failure = "cancelled", None
        if status in _FINAL:
            self._finish(watch, batch, status, failure)
            handle.status = status
        return handle.status

    def _check_stale(self, watch: JobWatch, batch: Any) -> str:
        """Delete the Job of a run that is already over in the API (the reaper failed it, it was cancelled)."""
        state = watch.run_state()
        if state not in _RUN_FINISHED:
            watch.run_finished_at = None
            return "running"
        now = time.monotonic()
        if watch.run_finished_at is None:
            watch.run_finished_at = now
        if watch.started and now - watch.run_finished_at < _STALE_GRACE:
            return "running"  # the flow-run process reported its end and is exiting
        watch.report(f"The flow run is {state} but its Kubernetes Job {watch.namespace}/{watch.job_name} is still active: "
                     "deleting the stale Job.", "WARNING")
        watch.killed = True
        _delete_job(batch, watch, "Foreground", 0)
        return {"Success": "success", "Cancelled": "cancelled"}.get(state, "failed")

    def _finish(self, watch: JobWatch, batch: Any, status: str, failure: str | None) -> None:
        if watch.final_reported:
            return
        watch.final_reported = True
        if status == "failed" and failure:
            last = "\n".join(watch.event_lines[-8:])
            message = failure + (f"\nLast Kubernetes events:\n{last}" if last else "")
            watch.report(message, "ERROR")
            watch.end_run_failed(message)
        elif status == "success":
            watch.report(f"Kubernetes Job {watch.namespace}/{watch.job_name} succeeded.")
        if not watch.killed and (watch.settings.delete_finished_jobs or (failure is not None and not watch.started)):
            _delete_job(batch, watch, "Background", None)

    def kill(self, handle: RunHandle, grace_period: float = 10.0) -> None:
        """Delete the Job with foreground propagation (its pod goes first) and wait until it is gone."""
        if handle.status in ("success", "failed"):
            return
        watch = self._watch(handle)
        if handle.status == "running":
            watch.last_poll = 0.0
            if self.status(handle) in ("success", "failed"):
                return
        watch.killed = True
        handle.status = "cancelled"
        batch, _ = kubernetes_clients(watch.settings)
        _delete_job(batch, watch, "Foreground", max(0, int(grace_period)))
        deadline = time.monotonic() + max(grace_period, 0) + 30
        from kubernetes.client.exceptions import ApiException

        while time.monotonic() < deadline:
            try:
                batch.read_namespaced_job(watch.job_name, watch.namespace, _request_timeout=watch.settings.request_timeout)
            except ApiException as exc:
                if exc.status == 404:
                    break
            except Exception:
                pass
            time.sleep(0.2)
        watch.report(f"Deleted Kubernetes Job {watch.namespace}/{watch.job_name} (cancelled).")
        watch.final_reported = True


def _delete_job(batch: Any, watch: JobWatch, propagation: str, grace: int | None) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        batch.delete_namespaced_job(watch.job_name, watch.namespace, propagation_policy=propagation,
                                    grace_period_seconds=grace, _request_timeout=watch.settings.request_timeout)
    except ApiException as exc:
        if exc.status != 404:
            _log.warning("%s", _api_error(exc, f"delete Job {watch.namespace}/{watch.job_name}"))
    except Exception as exc:
        _log.warning("Deleting Kubernetes Job %s/%s failed: %s", watch.namespace, watch.job_name, exc)

