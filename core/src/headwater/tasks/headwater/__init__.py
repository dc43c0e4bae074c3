"""Tasks that talk to the orchestration API (Prefect 1's ``prefect.tasks.prefect``): flow of flows.

``create_flow_run``, ``wait_for_flow_run``, ``get_task_run_result`` and the legacy ``StartFlowRun``;
``headwater.tasks.flow_runs`` is the same module under a plainer name. They need
``headwater-cloud-api`` (the API client) at run time, and say so when it is missing.
"""

from __future__ import annotations

from headwater.tasks.headwater.flow_run import (
    StartFlowRun,
    create_flow_run,
    default_idempotency_key,
    get_task_run_result,
    wait_for_flow_run,
)

__all__ = ["create_flow_run", "wait_for_flow_run", "get_task_run_result", "StartFlowRun", "default_idempotency_key"]
