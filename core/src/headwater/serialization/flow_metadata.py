"""Flow metadata: what a flow is (tasks, edges, parameters, schedule, storage, run config), never its code.

The output is deterministic — same flow, same bytes, in any process — so its sha256 decides
"unchanged" at registration. No timestamps and no absolute paths of the author's machine.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import attrs

from headwater.serialization.converter import canonical_json, to_dict

__all__ = [
    "serialize_flow",
    "flow_metadata",
    "flow_hash",
    "task_type_name",
    "FlowMetadata",
    "TaskMetadata",
    "EdgeMetadata",
    "ParameterMetadata",
]


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


@attrs.frozen
class ParameterMetadata:
    """A flow parameter: its name, JSON-able default and whether a value is required."""

    name: str
    default: Any
    required: bool


@attrs.frozen
class TaskMetadata:
    """One task's options (never its code); ``type`` is ``module:qualname`` of its class or function."""

    slug: str
    name: str
    type: str
    tags: list[str]
    max_retries: int
    retry_delay: float
    timeout: float | None
    trigger: str
    skip_on_upstream_skip: bool
    cache_for: float | None
    cache_key: str | None
    checkpoint: bool | None
    mapped: bool
    inputs: list[str]
    result: dict[str, Any] | None = None
    parameter: dict[str, Any] | None = None


@attrs.frozen
class EdgeMetadata:
    """An edge by task slugs."""

    upstream: str
    downstream: str
    key: str | None
    mapped: bool
    flattened: bool


@attrs.frozen
class FlowMetadata:
    """What a flow is, as sent to the API: tasks, edges, parameters, reference tasks and the
    type-tagged schedule, storage, run config and result (already unstructured)."""

    name: str
    tasks: list[TaskMetadata]
    edges: list[EdgeMetadata]
    parameters: list[ParameterMetadata]
    reference_tasks: list[str]
    schedule: dict[str, Any] | None = None
    storage: dict[str, Any] | None = None
    run_config: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


def flow_metadata(flow: Any) -> FlowMetadata:
    """The flow's metadata as an attrs object (deterministic order everywhere)."""
    from headwater.core.parameter import Parameter

    tasks = [
        TaskMetadata(
            slug=t.slug,
            name=t.name,
            type=task_type_name(t),
            tags=sorted(t.tags),
            max_retries=t.max_retries,
            retry_delay=t.retry_delay,
            timeout=t.timeout,
            trigger=_trigger_name(t.trigger),
            skip_on_upstream_skip=t.skip_on_upstream_skip,
            cache_for=t.cache_for,
            cache_key=t.cache_key,
            checkpoint=t.checkpoint,
            mapped=any(e.mapped for e in flow.graph.upstream.get(t, ())),
            inputs=sorted(t.inputs()),
            result=to_dict(t.result) if t.result is not None else None,
            parameter={"default": _jsonable(t.default), "required": t.required} if isinstance(t, Parameter) else None,
        )
        for t in sorted(flow.graph.tasks, key=lambda t: t.slug or "")
    ]
    edges = sorted(
        (
            EdgeMetadata(e.upstream_task.slug, e.downstream_task.slug, e.key, e.mapped, e.flattened)
            for e in flow.graph.edges
        ),
        key=lambda e: (e.upstream, e.downstream, e.key or ""),
    )
    parameters = sorted(
        (ParameterMetadata(p.name, _jsonable(p.default), p.required) for p in flow.parameters()),
        key=lambda p: p.name,
    )
    return FlowMetadata(
        name=flow.name,
        tasks=tasks,
        edges=edges,
        parameters=parameters,
        reference_tasks=sorted(t.slug for t in flow.reference_tasks()),
        schedule=to_dict(flow.schedule) if flow.schedule is not None else None,
        storage=to_dict(flow.storage) if flow.storage is not None else None,
        run_config=to_dict(flow.run_config) if flow.run_config is not None else None,
        result=to_dict(flow.result) if flow.result is not None else None,
    )


def serialize_flow(flow: Any) -> dict[str, Any]:
    """The flow's metadata as JSON-ready data (deterministic); ``from_dict(d, FlowMetadata)`` reads it back."""
    return to_dict(flow_metadata(flow))


def flow_hash(flow: Any) -> str:
    """sha256 of the flow's canonical metadata JSON."""
    return hashlib.sha256(canonical_json(serialize_flow(flow)).encode()).hexdigest()
