"""Run configs: where and how an agent runs a flow run (``LocalRun``, ``UniversalRun``).

In headwater a run config *is* an environment (see :mod:`headwater.environments`): both are
:class:`~headwater.environments.SubprocessEnvironment` subclasses, so an agent runs them as a
child process with ``env`` added to its environment. These names keep the Prefect-1 spelling
that flows in the wild use::

    Flow("etl", run_config=LocalRun(labels=["prod"], working_dir="/srv/etl"))
"""

from __future__ import annotations

from typing import Any

import attrs

from headwater.environments.subprocess import SubprocessEnvironment

__all__ = ["RunConfig", "LocalRun", "UniversalRun"]


@attrs.define
class RunConfig(SubprocessEnvironment):
    """Base of the Prefect-1 style run configs: ``labels``, ``env``, ``working_dir``, ``python``."""


@attrs.define
class LocalRun(RunConfig):
    """Run as a local process on the agent's machine, optionally in ``working_dir``, with ``env`` added."""


@attrs.define
class UniversalRun(RunConfig):
    """Run on any agent with matching labels; a local agent runs it as a child process with ``env`` added."""


def __getattr__(name: str) -> Any:
    """Plugin-provided environment by exact name (``from headwater.run_configs import DockerRun``), with an install hint."""
    from headwater.plugins._registry import plugin_attribute

    return plugin_attribute("environment", name, __name__)
