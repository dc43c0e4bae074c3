"""The flow-run process: ``headwater execute flow-run --id ID`` (what an agent's environment starts)."""

from headwater_cloud_api.execution.runner import FlowRunExecution, execute_flow_run

__all__ = ["FlowRunExecution", "execute_flow_run"]
