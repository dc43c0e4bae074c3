"""``headwater execute flow-run --id ID``: run one flow run of the API in this process (environments start this)."""

from __future__ import annotations

import sys

import click

__all__ = ["execute"]


@click.group()
def execute() -> None:
    """Execute work from the orchestration API in this process."""


@execute.command("flow-run")
@click.option("--id", "flow_run_id", required=True, help="The flow run to execute.")
def flow_run(flow_run_id: str) -> None:
    """Load the run's flow from its storage, run it, report states, logs and heartbeats to the API."""
    from headwater_cloud_api.execution import execute_flow_run

    sys.exit(execute_flow_run(flow_run_id))
