"""Environments: where a flow run executes. Built-ins run it in this process or a child process."""

from headwater.environments.base import Environment, RunHandle

__all__ = ["Environment", "RunHandle"]
