"""Flow metadata: what a flow is (tasks, edges, parameters, schedule, storage, run config), never its code.

The output is deterministic — same flow, same bytes, in any process — so its sha256 decides
"unchanged" at registration. No timestamps and no absolute paths of the author's machine.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from headwater.serialization.converter import canonical_json, to_dict

__all__ = ["serialize_flow", "flow_hash", "task_type_name"]


def task_type_name(task: Any) -> str:
    """``module:qualname`` of the task's class, or of its function for ``@task`` tasks."""
    fn = getattr(task, "__wrapped__", None)
    target = fn if fn is not None else type(task)
    module = getattr(target, "__module__", None) or "?"
    if module.startswith("__"):  # __main__ or a flow file run by path: not importable anyway
        module = "<flow file>"
    return f"{module}:{getattr(target, '__qualname__', type(target).__name__)}"


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value, sort_keys=True)
        return value
    except (TypeError, ValueError):
        return {"__repr__": repr(value)}


def _trigger_name(trigger: Any) -> str:
    return f"{getattr(trigger, '__module__', '?')}:{getattr(trigger, '__qualname__', repr(trigger))}"


def serialize_flow(flow: Any) -> dict[str, Any]:
    """The flow's metadata as JSON-ready data (deterministic)."""
    from headwater.core.parameter import Parameter

    tasks = []
    for t in sorted(flow._tasks, key=lambda t: t.slug or ""):
        entry: dict[str, Any] = {
            "slug": t.slug,
            "name": t.name,
            "type": task_type_name(t),
            "tags": sorted(t.tags),
            "max_retries": t.max_retries,
            "retry_delay": t.retry_delay,
            "timeout": t.timeout,
            "trigger": _trigger_name(t.trigger),
            "skip_on_upstream_skip": t.skip_on_upstream_skip,
            "cache_for": t.cache_for,
            "cache_key": t.cache_key,
            "checkpoint": t.checkpoint,
            "mapped": any(e.mapped for e in flow._upstream.get(t, ())),
            "inputs": sorted(t.inputs()),
        }
        if t.result is not None:
            entry["result"] = to_dict(t.result)
        if isinstance(t, Parameter):
            entry["parameter"] = {"default": _jsonable(t.default), "required": t.required}
        tasks.append(entry)
    edges = sorted(
        (
            {
                "upstream": e.upstream_task.slug,
                "downstream": e.downstream_task.slug,
                "key": e.key,
                "mapped": e.mapped,
                "flattened": e.flattened,
            }
            for e in flow._edges
        ),
        key=lambda e: (e["upstream"], e["downstream"], e["key"] or ""),
    )
    parameters = sorted(
        ({"name": p.name, "default": _jsonable(p.default), "required": p.required} for p in flow.parameters()),
        key=lambda p: p["name"],
    )
    return {
        "name": flow.name,
        "tasks": tasks,
        "edges": edges,
        "parameters": parameters,
        "reference_tasks": sorted(t.slug for t in flow.reference_tasks()),
        "schedule": to_dict(flow.schedule) if flow.schedule is not None else None,
        "storage": to_dict(flow.storage) if flow.storage is not None else None,
        "run_config": to_dict(flow.run_config) if flow.run_config is not None else None,
        "result": to_dict(flow.result) if flow.result is not None else None,
    }


def flow_hash(flow: Any) -> str:
    """sha256 of the flow's canonical metadata JSON."""
    return hashlib.sha256(canonical_json(serialize_flow(flow)).encode()).hexdigest()
