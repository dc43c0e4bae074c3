"""Executors: where the engine runs task runs. ``LocalExecutor`` (default), ``ThreadExecutor``, ``ProcessExecutor``.

Plugins add more (``headwater-dask`` adds ``DaskExecutor``) by implementing :class:`Executor`.
"""

from headwater.executors.base import Executor
from headwater.executors.local import LocalExecutor
from headwater.executors.pool import ProcessExecutor, ThreadExecutor

__all__ = ["Executor", "LocalExecutor", "ThreadExecutor", "ProcessExecutor"]
