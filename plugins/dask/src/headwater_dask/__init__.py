"""headwater-dask: run headwater task runs on Dask.

- :class:`DaskExecutor`: a Dask ``distributed`` cluster, existing (``address=``) or temporary
  (``cluster_class=``, ``cluster_kwargs=``, ``adapt_kwargs=``);
- :class:`LocalDaskExecutor`: dask's local schedulers (threads, processes, synchronous).

Both are also importable as ``from headwater.executors import DaskExecutor, LocalDaskExecutor``.
Names are imported lazily, so importing this package does not import dask.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "DaskExecutor": "headwater_dask.executor",
    "DaskConnectionError": "headwater_dask.executor",
    "DaskTaskFuture": "headwater_dask.executor",
    "LocalDaskExecutor": "headwater_dask.local",
    "UnpicklableArgumentError": "headwater_dask.worker",
    "UnpicklableResultError": "headwater_dask.worker",
}

__all__ = [
    "__version__",
    "DaskExecutor",
    "DaskConnectionError",
    "DaskTaskFuture",
    "LocalDaskExecutor",
    "UnpicklableArgumentError",
    "UnpicklableResultError",
]

if TYPE_CHECKING:  # pragma: no cover
    from headwater_dask.executor import DaskConnectionError, DaskExecutor, DaskTaskFuture
    from headwater_dask.local import LocalDaskExecutor
    from headwater_dask.worker import UnpicklableArgumentError, UnpicklableResultError


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater_dask' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
