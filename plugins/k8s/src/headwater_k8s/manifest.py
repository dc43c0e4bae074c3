"""The agent's manifest: Deployment, ServiceAccount, Role and RoleBinding with the least privilege it needs.

``headwater k8s agent-manifest --namespace flows --label k8s --api https://headwater.example/graphql | kubectl apply -f -``
(the equivalent of ``prefect agent kubernetes install``). The Role grants exactly what
``KubernetesRun`` uses, in the agent's namespace only:

* ``batch/jobs``: ``create``, ``get``, ``delete`` (start, follow and stop flow runs), ``list`` (the Jobs
  of earlier attempts of a rescheduled run, by their ``headwater.io/flow-run-id`` label);
* ``pods``: ``list`` (the Job's pod, by its ``job-name`` label); ``pods/log``: ``get``;
* ``events``: ``list`` (what happened to the Job and its pod).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["agent_manifest", "AGENT_RULES", "to_yaml"]

AGENT_RULES: list[dict[str, Any]] = [
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "delete"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
]
"""The Role's rules: every verb KubernetesRun sends, nothing more."""


def agent_manifest(
    *,
    namespace: str = "default",
    labels: Sequence[str] = (),
    api: str,
    image: str = "headwater/headwater:0.1.0",
    name: str = "headwater-agent",
    api_key_secret: str | None = None,
    env: Mapping[str, str] | None = None,
    image_pull_secrets: Sequence[str] = (),
    cpu_request: str = "100m",
    memory_request: str = "128Mi",
    memory_limit: str = "512Mi",
) -> list[dict[str, Any]]:
    """The four objects (ServiceAccount, Role, RoleBinding, Deployment) as dicts, in apply order."""
    from headwater_k8s.job import check_dns1123_label, check_dns1123_subdomain

    for value, what in ((namespace, "namespace"), (name, "name")):
        problem = check_dns1123_label(value, what)
        if problem:
            raise ValueError(f"agent-manifest: {problem}.")
    if api_key_secret is not None and (problem := check_dns1123_subdomain(api_key_secret, "api key secret")):
        raise ValueError(f"agent-manifest: {problem}.")
    meta_labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "agent", "app.kubernetes.io/part-of": "headwater"}
    metadata = {"name": name, "namespace": namespace, "labels": meta_labels}
    args = ["agent", "start", "--name", name]
    for label in labels:
        args += ["--label", str(label)]
    variables: list[dict[str, Any]] = [
        {"name": "HEADWATER__CLOUD__API", "value": api},
        {"name": "HEADWATER__K8S__IN_CLUSTER", "value": "true"},
        {"name": "HEADWATER__K8S__NAMESPACE", "value": namespace},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if api_key_secret:  # the agent reads the key from the Secret, and its flow-run Jobs reference the same Secret
        variables.append({"name": "HEADWATER__CLOUD__API_KEY",
                          "valueFrom": {"secretKeyRef": {"name": api_key_secret, "key": "api-key"}}})
        variables.append({"name": "HEADWATER__K8S__API_KEY_SECRET", "value": api_key_secret})
    variables += [{"name": str(k), "value": str(v)} for k, v in (env or {}).items()]
    pod_spec: dict[str, Any] = {
        "serviceAccountName": name,
        "containers": [{
            "name": "agent",
            "image": image,
            "command": ["headwater"],
            "args": args,
            "env": variables,
            "resources": {"requests": {"cpu": cpu_request, "memory": memory_request}, "limits": {"memory": memory_limit}},
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": False,
                                "capabilities": {"drop": ["ALL"]}},
        }],
    }
    if image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in image_pull_secrets]
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": dict(metadata)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": dict(metadata), "rules": AGENT_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": dict(metadata),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}]},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": dict(metadata),
         "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
                  "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                  "template": {"metadata": {"labels": meta_labels}, "spec": pod_spec}}},
    ]


def to_yaml(objects: Sequence[Mapping[str, Any]]) -> str:
    """Objects as one multi-document YAML stream (``kubectl apply -f -`` reads it)."""
    import yaml

    return yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False, default_flow_style=False)
