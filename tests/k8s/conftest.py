"""Fixtures for headwater-k8s: the fake Kubernetes API server (one per session) and its kubeconfig."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_k8s import FakeKubernetes


@pytest.fixture(scope="session")
def fake_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeKubernetes]:
    """The fake API server on 127.0.0.1 (a free port) with its controller loop; containers are killed at the end."""
    fake = FakeKubernetes(tmp_path_factory.mktemp("fake-k8s")).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def kubeconfig(fake_cluster: FakeKubernetes, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_cluster.kubeconfig(tmp_path_factory.mktemp("kube") / "config")


@pytest.fixture
def cluster(fake_cluster: FakeKubernetes, kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKubernetes]:
    """The fake cluster emptied for this test, with ``[k8s] kubeconfig`` pointing at it (fast polling)."""
    fake_cluster.reset()
    monkeypatch.setenv("HEADWATER__K8S__KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("HEADWATER__K8S__POLL_INTERVAL", "0.2")
    from headwater_k8s import run_config

    run_config._clients.clear()
    yield fake_cluster
    fake_cluster.reset()
