"""A Job's watch ends its run and logs to it only for the attempt the agent claimed (a real API server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.client import Client
from headwater.testing import ServerProcess
from headwater_k8s.config import K8sSection
from headwater_k8s.run_config import JobWatch

FLOW = {"name": "k8s-fenced", "tasks": [], "edges": [], "parameters": [], "run_config": None, "schedule": None,
        "storage": None}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(f"sqlite:///{tmp_path / 'api.db'}", tmp_path) as started:
        yield started


def _run(api: Client) -> str:
    api.project(name="P").create()
    api.graphql("mutation($i: CreateFlowInput!) { create_flow(input: $i) { id } }", {"i": {"serialized": FLOW, "project_name": "P"}})
    return str(api.flow(name="k8s-fenced", project="P").create_run().id)


def _watch(server: ServerProcess, run_id: str, attempt: int | None) -> JobWatch:
    return JobWatch(namespace="default", job_name="headwater-k8s-fenced", flow_run_id=run_id, settings=K8sSection(),
                    start_timeout=1.0, api=server.api, api_key="", attempt=attempt)


def test_a_stale_watch_neither_ends_nor_logs_to_a_newer_attempt(server: ServerProcess) -> None:
    with Client(api=server.api, api_key="") as api:
        run_id = _run(api)
        current = int(api.flow_run(id=run_id).get("attempt") or 0)
        stale = _watch(server, run_id, current + 2)
        stale.report("from a Job of an old attempt", "ERROR")
        stale.end_run_failed("the old attempt's pod failed")
        assert api.flow_run(id=run_id).query("state { type }")["state"]["type"] == "Scheduled"  # left alone
        messages = [r["message"] for r in api.flow_run(id=run_id).all_logs()]
        assert "from a Job of an old attempt" not in messages
        owner = _watch(server, run_id, current)
        owner.report("from the Job of this attempt", "ERROR")
        owner.end_run_failed("this attempt's pod failed")
        assert api.flow_run(id=run_id).query("state { type }")["state"]["type"] == "Failed"
        assert "from the Job of this attempt" in [r["message"] for r in api.flow_run(id=run_id).all_logs()]
