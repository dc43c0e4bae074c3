"""The plugin's hooks (only): the executors of headwater-dask, registered lazily (no dask import here)."""

from __future__ import annotations

from headwater.plugins import Registrar, hookimpl

__all__ = ["register_executors"]

HEADWATER_PLUGIN_API = 1


@hookimpl
def register_executors(register: Registrar) -> None:
    register("headwater_dask.executor:DaskExecutor", "DaskExecutor")
    register("headwater_dask.local:LocalDaskExecutor", "LocalDaskExecutor")
