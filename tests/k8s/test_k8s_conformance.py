"""``KubernetesRun`` passes the environment conformance kit against the fake cluster (its pods really run)."""

from __future__ import annotations

from typing import Any

import pytest

from fake_k8s import FakeKubernetes
from headwater.plugins import EnvironmentConformance


class TestKubernetesRunConformance(EnvironmentConformance):
    @pytest.fixture
    def environment(self, cluster: FakeKubernetes) -> Any:
        from headwater.run_configs import KubernetesRun

        return KubernetesRun(image="headwater/flow:test", labels=["k8s"], memory_limit="1Gi", cpu_request="100m")
