"""Building a flow run's ``batch/v1`` Job: the default template, the user's template, the run config's fields.

Pure data (no ``kubernetes`` import), so the rules are easy to test and to document.

Merge rules, lowest precedence first:

1. :data:`DEFAULT_JOB_TEMPLATE`: one container named ``flow``.
2. The user's template (``job_template`` dict or YAML text, or ``job_template_path``) is merged
   into it: mappings merge key by key; lists of objects that all have a ``name`` (containers,
   env, volumes, volumeMounts, ports...) merge item by item by ``name``; any other value or list
   replaces the default's. The flow container is the one named ``flow`` or, when none is, the
   first container.
3. The run config's fields: ``image``, ``image_pull_policy``, ``env`` (merged by variable name),
   ``cpu_request``/``cpu_limit``/``memory_request``/``memory_limit``, ``service_account_name``,
   ``image_pull_secrets`` (they replace the template's).
4. What headwater needs, always: the Job's name (DNS-1123, from the flow name and run id), the
   ``headwater.io/*`` labels on the Job and its pod, ``restartPolicy: Never`` and ``backoffLimit: 0``
   (headwater retries, not Kubernetes), ``ttlSecondsAfterFinished`` (when the template has none),
   the container's ``args`` (the flow-run command; the image's entrypoint still runs first unless
   the template sets ``command``) and the run's ``HEADWATER__*`` variables.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_JOB_TEMPLATE",
    "FLOW_CONTAINER",
    "LABEL_FLOW_RUN_ID",
    "LABEL_FLOW_NAME",
    "LABEL_MANAGED_BY",
    "build_job",
    "merge",
    "load_template",
    "job_name",
    "dns1123_label",
    "label_value",
    "flow_container",
    "check_dns1123_label",
    "check_dns1123_subdomain",
]

FLOW_CONTAINER = "flow"
"""The name of the container that runs the flow (the template may add sidecars)."""

LABEL_FLOW_RUN_ID = "headwater.io/flow-run-id"
LABEL_FLOW_NAME = "headwater.io/flow-name"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"

DEFAULT_JOB_TEMPLATE: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"labels": {}},
    "spec": {
        "template": {
            "metadata": {"labels": {}},
            "spec": {
                "containers": [{"name": FLOW_CONTAINER}],
                "restartPolicy": "Never",
            },
        },
    },
}
"""The Job every flow run starts from (the user's template and the run config's fields go on top)."""

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def check_dns1123_label(name: str, what: str = "name") -> str | None:
    """The reason ``name`` is not an RFC 1123 label (Kubernetes' rule for Job/Pod/container names), or None."""
    if not isinstance(name, str) or not name:
        return f"{what} must be a non-empty string"
    if len(name) > 63:
        return f"{what} {name!r} is {len(name)} characters long; an RFC 1123 label has at most 63"
    if not _LABEL.match(name):
        return (f"{what} {name!r} is not a valid RFC 1123 label: use lower-case letters, digits and '-', starting "
                "and ending with a letter or digit (regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    return None


def check_dns1123_subdomain(name: str, what: str = "name") -> str | None:
    """The reason ``name`` is not an RFC 1123 subdomain (most object names), or None."""
    if not isinstance(name, str) or not name:
        return f"{what} must be a non-empty string"
    if len(name) > 253:
        return f"{what} {name!r} is {len(name)} characters long; an RFC 1123 subdomain has at most 253"
    if not _SUBDOMAIN.match(name):
        return (f"{what} {name!r} is not a valid RFC 1123 subdomain: use lower-case letters, digits, '-' and '.', "
                "starting and ending with a letter or digit")
    return None


def dns1123_label(text: str, max_length: int = 63) -> str:
    """``text`` as a valid RFC 1123 label of at most ``max_length`` characters (``"My_Flow!"`` -> ``"my-flow"``)."""
    value = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    value = re.sub(r"-{2,}", "-", value).strip("-")[:max_length].strip("-")
    return value or "flow"


def label_value(text: str) -> str:
    """``text`` as a valid label value (at most 63 of ``[A-Za-z0-9-_.]``, alphanumeric at both ends)."""
    value = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:63]
    value = re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", value)
    return value


def job_name(flow_name: str, flow_run_id: str, attempt: str | None = None) -> str:
    """``headwater-<flow>-<run id prefix>[-<attempt>]``: readable, at most 63 characters (pods get it as a label).

    The full run id is in the ``headwater.io/flow-run-id`` label; ``attempt`` (a short random
    token) keeps the Jobs of a rescheduled run apart.
    """
    run = dns1123_label(flow_run_id, 8)
    if len(run) < 8 or run != flow_run_id.lower()[:8]:  # an id that is not DNS-safe: a hash keeps runs apart
        run = hashlib.sha256(flow_run_id.encode()).hexdigest()[:8]
    tail = f"-{run}" + (f"-{dns1123_label(attempt, 8)}" if attempt else "")
    flow = dns1123_label(flow_name, 63 - len("headwater-") - len(tail))
    return f"headwater-{flow}{tail}"


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) and "name" in v for v in value)


def merge(base: Any, override: Any) -> Any:
    """``override`` merged into ``base`` (copies): mappings by key, lists of named objects by ``name``, others replaced."""
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        merged = {k: copy.deepcopy(v) for k, v in base.items()}
        for key, value in override.items():
            merged[key] = merge(merged[key], value) if key in merged else copy.deepcopy(value)
        return merged
    if _named_list(base) and _named_list(override):
        items = [copy.deepcopy(v) for v in base]
        index = {item["name"]: i for i, item in enumerate(items)}
        for item in override:
            if item["name"] in index:
                items[index[item["name"]]] = merge(items[index[item["name"]]], item)
            else:
                index[item["name"]] = len(items)
                items.append(copy.deepcopy(item))
        return items
    return copy.deepcopy(override)


def load_template(job_template: Any = None, job_template_path: str | None = None) -> dict[str, Any]:
    """The user's Job template as a dict: ``job_template`` (a dict or YAML/JSON text) or the file at ``job_template_path``."""
    import yaml

    if job_template is not None and job_template_path is not None:
        raise ValueError("KubernetesRun takes job_template or job_template_path, not both.")
    source = "job_template"
    if job_template_path is not None:
        path = Path(str(job_template_path).removeprefix("file://")).expanduser()
        try:
            job_template = path.read_text()
        except OSError as exc:
            raise FileNotFoundError(
                f"KubernetesRun job_template_path {job_template_path!r} cannot be read on this machine ({exc}); the "
                "agent reads it, so give a path that exists where the agent runs, or pass job_template instead."
            ) from exc
        source = f"job_template_path {job_template_path!r}"
    if job_template is None:
        return {}
    if isinstance(job_template, str):
        try:
            job_template = yaml.safe_load(job_template)
        except yaml.YAMLError as exc:
            raise ValueError(f"KubernetesRun {source} is not valid YAML: {exc}") from exc
    if job_template is None:
        return {}
    if not isinstance(job_template, Mapping):
        raise TypeError(f"KubernetesRun {source} must be a mapping (a Job manifest), got {type(job_template).__name__}.")
    kind = job_template.get("kind", "Job")
    if kind != "Job":
        raise ValueError(f"KubernetesRun {source} must be a batch/v1 Job manifest, got kind {kind!r}.")
    return dict(job_template)


def flow_container(job: Mapping[str, Any]) -> dict[str, Any]:
    """The container running the flow: the one named ``flow``, else the first (a KeyError names what is missing)."""
    containers = job.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    if not containers:
        raise KeyError("the Job template has no containers under spec.template.spec.containers")
    for container in containers:
        if container.get("name") == FLOW_CONTAINER:
            return dict(container) if not isinstance(container, dict) else container
    return containers[0]


def _env_list(env: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"name": str(k), "value": str(v)} for k, v in env.items()]


def build_job(
    *,
    flow_run_id: str,
    flow_name: str,
    args: Sequence[str],
    run_env: Mapping[str, str],
    template: Mapping[str, Any] | None = None,
    image: str | None = None,
    image_pull_policy: str | None = None,
    env: Mapping[str, str] | None = None,
    cpu_request: str | None = None,
    cpu_limit: str | None = None,
    memory_request: str | None = None,
    memory_limit: str | None = None,
    service_account_name: str | None = None,
    image_pull_secrets: Sequence[str] | None = None,
    namespace: str | None = None,
    ttl_seconds_after_finished: int | None = 600,
    extra_labels: Mapping[str, str] | None = None,
    attempt: str | None = None,
) -> dict[str, Any]:
    """The complete Job manifest for one flow run (see the module docstring for the merge rules)."""
    job = merge(DEFAULT_JOB_TEMPLATE, dict(template or {}))
    job["apiVersion"], job["kind"] = "batch/v1", "Job"
    name = job_name(flow_name, flow_run_id, attempt)
    labels = {
        **{str(k): str(v) for k, v in (extra_labels or {}).items()},
        LABEL_FLOW_RUN_ID: label_value(flow_run_id),
        LABEL_FLOW_NAME: label_value(flow_name),
        LABEL_MANAGED_BY: "headwater",
    }
    metadata = job.setdefault("metadata", {})
    metadata.pop("generateName", None)
    metadata["name"] = name
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    spec = job.setdefault("spec", {})
    spec["backoffLimit"] = 0
    if ttl_seconds_after_finished is not None:
        spec.setdefault("ttlSecondsAfterFinished", int(ttl_seconds_after_finished))
    pod = spec.setdefault("template", {})
    pod_meta = pod.setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), **labels}
    pod_spec = pod.setdefault("spec", {})
    pod_spec["restartPolicy"] = "Never"
    if service_account_name:
        pod_spec["serviceAccountName"] = service_account_name
    if image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": str(s)} for s in image_pull_secrets]
    container = flow_container(job)
    if image:
        container["image"] = image
    if not container.get("image"):
        raise ValueError(
            f"KubernetesRun for flow {flow_name!r} has no image: set KubernetesRun(image=...) or an image on the "
            f"{FLOW_CONTAINER!r} container of the job template."
        )
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    resources = container.setdefault("resources", {})
    for section, key, value in (("requests", "cpu", cpu_request), ("limits", "cpu", cpu_limit),
                                ("requests", "memory", memory_request), ("limits", "memory", memory_limit)):
        if value:
            resources.setdefault(section, {})[key] = str(value)
    if not resources:
        container.pop("resources")
    variables = {item["name"]: dict(item) for item in container.get("env") or []}
    for extra in (env or {}, run_env):  # a variable replaces the template's entry of the same name (value or valueFrom)
        variables.update({item["name"]: item for item in _env_list(extra)})
    if variables:
        container["env"] = list(variables.values())
    container["args"] = [str(a) for a in args]
    return job
