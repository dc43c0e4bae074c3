"""Test helpers for code that runs against the orchestration API (other plugins' tests use them too).

The server and agent processes are the core's (:mod:`headwater.testing.processes`);
:func:`register_flows` registers a flow file's flows the way ``headwater register`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headwater.testing import AgentProcess, ServerProcess, free_port, wait_for

__all__ = ["ServerProcess", "AgentProcess", "free_port", "wait_for", "register_flows", "run_state"]


def register_flows(client: Any, path: Path, project: str = "test") -> dict[str, str]:
    """Register every flow in ``path`` (creating ``project`` if needed); returns ``{name: flow id}``."""
    from headwater_cloud_api.registration import Registration, load_flows

    try:
        client.project(name=project).create()
    except Exception:  # it exists already
        pass
    flows, errors = load_flows([path])
    assert not errors, errors
    results = Registration(client).register_many(flows, project)
    assert all(r.status in ("registered", "skipped") for r in results), results
    return {r.name: str(r.id) for r in results}


def run_state(client: Any, run_id: str) -> str:
    """The flow run's state type (``Success``, ``Running``, ...)."""
    return str(client.flow_run(id=run_id).query("state { type }")["state"]["type"])
