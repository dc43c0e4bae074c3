"""Environments: where a flow run executes. Built-ins run it in this process or a child process.

:class:`LocalEnvironment` runs the flow in the current process; :class:`SubprocessEnvironment`
(and the run configs ``LocalRun`` / ``UniversalRun``) start ``python -m
headwater.environments.run_from_env`` in a new process group. Plugins add Docker containers
and Kubernetes Jobs through the ``register_environments`` hook.
"""

from headwater.environments.base import Environment, RunHandle
from headwater.environments.local import LocalEnvironment
from headwater.environments.subprocess import SubprocessEnvironment

__all__ = ["Environment", "RunHandle", "LocalEnvironment", "SubprocessEnvironment"]
