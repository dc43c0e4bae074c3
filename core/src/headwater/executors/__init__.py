"""Executors: where the engine runs task runs. ``LocalExecutor`` (default), ``ThreadExecutor``, ``ProcessExecutor``.

Plugins add more (``headwater-dask`` adds ``DaskExecutor``) by implementing :class:`Executor`.
"""

from typing import Any

from headwater.executors.base import Executor
from headwater.executors.local import LocalExecutor
from headwater.executors.pool import ProcessExecutor, ThreadExecutor

__all__ = ["Executor", "LocalExecutor", "ThreadExecutor", "ProcessExecutor"]


def __getattr__(name: str) -> Any:
    """Plugin-provided executor by exact name (``from headwater.executors import DaskExecutor``), with an install hint."""
    from headwater.plugins._registry import plugin_attribute

    return plugin_attribute("executor", name, __name__)
