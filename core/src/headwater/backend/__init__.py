"""``headwater.backend`` (Prefect 1's ``prefect.backend``): the orchestration API from inside flows and tasks.

* :mod:`headwater.backend.kv_store` — ``set_key_value``, ``get_key_value`` (mappings as attribute-accessible
  :class:`~headwater.backend.kv_store.Box`), ``delete_key``, ``list_keys``;
* :mod:`headwater.backend.artifacts` — ``create_link_artifact``, ``create_markdown_artifact``, ``update_*``,
  ``delete_artifact``: published by a task run, listed on its flow run;
* :mod:`headwater.backend.flow_run` — ``FlowView``, ``FlowRunView``, ``TaskRunView``, ``watch_flow_run``
  (also at Prefect 1's ``backend.flow.FlowView`` and ``backend.task_run.TaskRunView``).

All of them go through ``headwater.Client()``, whose nouns come from ``headwater-cloud-api``;
without it they raise an ``ImportError`` that says what to install. Names are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headwater.backend.artifacts import (
        create_link_artifact,
        create_markdown_artifact,
        delete_artifact,
        update_link_artifact,
        update_markdown_artifact,
    )
    from headwater.backend.flow_run import FlowRunLog, FlowRunView, FlowView, TaskRunView, watch_flow_run
    from headwater.backend.kv_store import Box, KeyNotFoundError, delete_key, get_key_value, list_keys, set_key_value

_LAZY = {
    "set_key_value": "kv_store", "get_key_value": "kv_store", "delete_key": "kv_store", "list_keys": "kv_store",
    "Box": "kv_store", "KeyNotFoundError": "kv_store",
    "create_link_artifact": "artifacts", "update_link_artifact": "artifacts", "create_markdown_artifact": "artifacts",
    "update_markdown_artifact": "artifacts", "delete_artifact": "artifacts",
    "FlowView": "flow_run", "FlowRunView": "flow_run", "TaskRunView": "flow_run", "FlowRunLog": "flow_run",
    "watch_flow_run": "flow_run",
}

__all__ = [
    "set_key_value", "get_key_value", "delete_key", "list_keys", "Box", "KeyNotFoundError",
    "create_link_artifact", "update_link_artifact", "create_markdown_artifact", "update_markdown_artifact", "delete_artifact",
    "FlowView", "FlowRunView", "TaskRunView", "FlowRunLog", "watch_flow_run",
    "kv_store", "artifacts", "flow_run", "flow", "task_run",
]


def __getattr__(name: str) -> Any:
    if name in ("kv_store", "artifacts", "flow_run", "flow", "task_run"):
        return importlib.import_module(f"headwater.backend.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'headwater.backend' has no attribute {name!r}")
    return getattr(importlib.import_module(f"headwater.backend.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
