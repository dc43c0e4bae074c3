"""Flow of flows under a plain name: the same tasks as ``headwater.tasks.headwater`` (Prefect 1's ``prefect.tasks.prefect``)."""

from __future__ import annotations

from headwater.tasks.headwater.flow_run import (
    StartFlowRun,
    create_flow_run,
    default_idempotency_key,
    get_task_run_result,
    wait_for_flow_run,
)

__all__ = ["create_flow_run", "wait_for_flow_run", "get_task_run_result", "StartFlowRun", "default_idempotency_key"]
