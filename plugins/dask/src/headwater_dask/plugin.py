"""The plugin's hooks (only): the executors of headwater-dask, registered lazily (no dask import here),
and the flow-run hooks that let a cancelled flow run cancel its Dask work (see ``headwater_dask._cancel``)."""

from __future__ import annotations

from typing import Any

from headwater.plugins import Registrar, hookimpl

__all__ = ["register_executors", "before_flow_run", "after_flow_run"]

HEADWATER_PLUGIN_API = 1


@hookimpl
def register_executors(register: Registrar) -> None:
    register("headwater_dask.executor:DaskExecutor", "DaskExecutor")
    register("headwater_dask.local:LocalDaskExecutor", "LocalDaskExecutor")


@hookimpl
def before_flow_run(flow: Any, parameters: dict[str, Any], context: dict[str, Any]) -> None:
    from headwater_dask._cancel import attach

    attach(flow)


@hookimpl
def after_flow_run(flow: Any, state: Any) -> None:
    from headwater_dask._cancel import detach

    detach(flow)
