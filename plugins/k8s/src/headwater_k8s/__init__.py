"""headwater-k8s: run flow runs as Kubernetes Jobs and report every pod failure to the flow run's logs.

``from headwater.run_configs import KubernetesRun`` (or ``from headwater_k8s import KubernetesRun``)
is the run config; ``headwater k8s agent-manifest`` prints the agent's Deployment and RBAC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["KubernetesRun", "K8sSection", "build_job", "agent_manifest", "__version__"]

_LAZY = {
    "KubernetesRun": "headwater_k8s.run_config",
    "K8sSection": "headwater_k8s.config",
    "build_job": "headwater_k8s.job",
    "agent_manifest": "headwater_k8s.manifest",
}

if TYPE_CHECKING:  # pragma: no cover
    from headwater_k8s.config import K8sSection
    from headwater_k8s.job import build_job
    from headwater_k8s.manifest import agent_manifest
    from headwater_k8s.run_config import KubernetesRun


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater_k8s' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
