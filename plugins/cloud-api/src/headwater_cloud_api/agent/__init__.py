"""The agent: ``headwater agent start --label L`` claims flow runs and deploys them with their environments."""

from headwater_cloud_api.agent.agent import Agent, flow_run_command

__all__ = ["Agent", "flow_run_command"]
