"""The ``[k8s]`` configuration section: which cluster and namespace, how long a pod may take to start.

::

    [k8s]
    namespace = "flows"
    kubeconfig = "~/.kube/config"     # or in_cluster = true inside a pod
    start_timeout = 300               # seconds a pod may stay unstarted (image pulls, scheduling)

Every key can also come from ``HEADWATER__K8S__<KEY>`` variables. A ``KubernetesRun`` may
override ``namespace`` and ``start_timeout`` per flow.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["K8sSection", "k8s_settings"]


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"'{attribute.name}' must be a positive number of seconds, got {value}")


@attrs.define
class K8sSection:
    """``[k8s]``: the cluster connection and the Job defaults of ``KubernetesRun``."""

    namespace: str = "default"
    """Namespace of the flow-run Jobs (a run config's ``namespace`` wins)."""
    kubeconfig: str | None = None
    """Path of the kubeconfig file (default: ``$KUBECONFIG`` or ``~/.kube/config``)."""
    context: str | None = None
    """The kubeconfig context to use (default: its current context)."""
    in_cluster: bool = False
    """Use the pod's service account (the agent runs inside the cluster) instead of a kubeconfig."""
    start_timeout: float = attrs.field(default=300.0, validator=_positive)
    """Seconds a flow-run pod may take to start its container before the run ends Failed with the last events."""
    poll_interval: float = attrs.field(default=1.0, validator=_positive)
    """At most one round of Job/Pod/event requests per run every this many seconds."""
    ttl_seconds_after_finished: int = 600
    """Set on every Job: Kubernetes deletes a finished Job (and its pod) this many seconds after it ended."""
    delete_finished_jobs: bool = True
    """Delete a flow run's Job as soon as the run is over (its events and logs are in the run's logs by then)."""
    request_timeout: float = attrs.field(default=30.0, validator=_positive)
    """Seconds per Kubernetes API request."""
    api_key_secret: str | None = None
    """A Kubernetes Secret (in the Jobs' namespace) whose ``api-key`` key holds the API key: the Jobs then reference
    it (``secretKeyRef``) instead of carrying the agent's key in their spec."""


def k8s_settings() -> K8sSection:
    """The effective ``[k8s]`` section (defaults when the configuration has none)."""
    from headwater.plugins import get_config

    try:
        section = get_config().section("k8s")
    except KeyError:
        return K8sSection()
    return section if isinstance(section, K8sSection) else K8sSection()
