"""Flow specs: parse and validate a spec (a dict, or a YAML/JSON file) into a flow dict and a Flow.

A spec has ``label``, ``key``, ``cfg`` (default ``{"fail_fast": true}``), ``data`` and ``tasks``:
a list of ``{key, task_type, task_params, precursors, successors, ...}``. A task that names
neither precursors nor successors runs after the task before it in the list; the first task
(and any task left without a precursor) runs after the implicit ``ROOT`` task.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from headwater.spec.model import ROOT_KEY, SpecError, Status, flow_from_dict

if TYPE_CHECKING:
    from headwater.core.flow import Flow
    from headwater.spec.model import SpecFlow

__all__ = ["load_spec", "spec_to_flow_dict", "flow_from_spec", "SPEC_KEYS", "TASK_SPEC_KEYS"]

SPEC_KEYS = ("label", "key", "cfg", "data", "tasks", "depth", "parent_key")
TASK_SPEC_KEYS = (
    "key", "label", "task_type", "task_params", "precursors", "successors", "data",
    "max_retries", "retry_delay", "timeout",
)


def load_spec(source: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """A spec dict from a dict (copied), or from a ``.yaml``/``.yml``/``.json`` file path."""
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"Cannot read flow spec file {str(path)!r}: {exc.strerror or exc}.") from None
    try:
        if path.suffix.lower() == ".json":
            spec = json.loads(text)
        else:
            import yaml

            spec = yaml.safe_load(text)
    except Exception as exc:  # yaml.YAMLError, json.JSONDecodeError
        raise SpecError(f"Flow spec file {str(path)!r} is not valid {path.suffix.lstrip('.').upper() or 'YAML'}: {exc}") from None
    if not isinstance(spec, dict):
        raise SpecError(
            f"Flow spec file {str(path)!r} must hold a mapping with 'label' and 'tasks', got {type(spec).__name__}."
        )
    return spec


def _key_list(value: Any, field: str, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise SpecError(f"{where}: {field!r} must be a task key or a list of task keys, got {value!r}.")


def spec_to_flow_dict(spec: Mapping[str, Any], check_task_types: bool = True) -> dict[str, Any]:
    """Validate ``spec`` and return the flow dict of a fresh (PENDING) flow."""
    if not isinstance(spec, Mapping):
        raise SpecError(f"A flow spec must be a mapping with 'label' and 'tasks', got {type(spec).__name__}.")
    where = f"Flow spec {spec.get('label') or spec.get('key') or ''!r}".replace(" ''", "")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise SpecError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}; a spec has {', '.join(SPEC_KEYS)}.")
    for name, kind in (("label", str), ("key", str), ("parent_key", str)):
        if spec.get(name) is not None and not isinstance(spec[name], kind):
            raise SpecError(f"{where}: {name!r} must be a string, got {spec[name]!r}.")
    cfg = spec.get("cfg") or {}
    data = spec.get("data") or {}
    if not isinstance(cfg, Mapping) or not isinstance(data, Mapping):
        raise SpecError(f"{where}: 'cfg' and 'data' must be mappings.")
    cfg = {"fail_fast": True, **cfg}
    if not isinstance(cfg["fail_fast"], bool):
        raise SpecError(f"{where}: cfg.fail_fast must be true or false, got {cfg['fail_fast']!r}.")
    depth = spec.get("depth", 0)
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
        raise SpecError(f"{where}: 'depth' must be a whole number >= 0, got {depth!r}.")
    task_specs = spec.get("tasks") or []
    if not isinstance(task_specs, list):
        raise SpecError(f"{where}: 'tasks' must be a list of task specs, got {type(task_specs).__name__}.")

    # Keys: explicit ones first, so generated ones (task_<position>) never collide with them.
    explicit = [t.get("key") for t in task_specs if isinstance(t, Mapping) and t.get("key") is not None]
    keys: list[str] = []
    for i, t in enumerate(task_specs):
        if not isinstance(t, Mapping):
            raise SpecError(f"{where}: task #{i + 1} must be a mapping with 'task_type', got {t!r}.")
        twhere = f"{where}, task #{i + 1}"
        extra = sorted(set(t) - set(TASK_SPEC_KEYS))
        if extra:
            raise SpecError(
                f"{twhere}: unknown field(s) {', '.join(map(repr, extra))}; a task spec has {', '.join(TASK_SPEC_KEYS)}."
            )
        key = t.get("key")
        if key is None:
            key = f"task_{i + 1}"
            while key in explicit or key in keys:
                key += "_"
        if not isinstance(key, str) or not key:
            raise SpecError(f"{twhere}: 'key' must be a non-empty string, got {key!r}.")
        if key == ROOT_KEY:
            raise SpecError(f"{twhere}: the key {ROOT_KEY!r} is reserved for the flow's implicit first task.")
        if "." in key:
            raise SpecError(
                f"{twhere}: task key {key!r} contains '.', which separates the parts of $ctx. paths; use '_' or '-'."
            )
        if key in keys:
            raise SpecError(f"{where}: two tasks have the key {key!r}; task keys must be unique within a flow.")
        if not isinstance(t.get("task_type"), str) or not t["task_type"]:
            raise SpecError(f"{where}, task {key!r}: 'task_type' is required (a string), got {t.get('task_type')!r}.")
        if not isinstance(t.get("task_params") or {}, Mapping):
            raise SpecError(f"{where}, task {key!r}: 'task_params' must be a mapping, got {t['task_params']!r}.")
        keys.append(key)
    if check_task_types:
        from headwater.spec.task_types import get_handler

        for key, t in zip(keys, task_specs, strict=True):
            get_handler(t["task_type"], task_key=key)

    # Incoming edges per task, in declaration order.
    known = {ROOT_KEY, *keys}
    incoming: dict[str, list[str]] = {k: [] for k in keys}
    for i, (key, t) in enumerate(zip(keys, task_specs, strict=True)):
        twhere = f"{where}, task {key!r}"
        pre = _key_list(t.get("precursors"), "precursors", twhere)
        succ = _key_list(t.get("successors"), "successors", twhere)
        for other in (*pre, *succ):
            if other not in known:
                raise SpecError(f"{twhere}: names task {other!r}, which is not in the spec (tasks: {', '.join(keys)}).")
        if "precursors" not in t and "successors" not in t:
            pre = [keys[i - 1] if i > 0 else ROOT_KEY]
        for p in pre:
            if p not in incoming[key]:
                incoming[key].append(p)
        for s in succ:
            if s == ROOT_KEY:
                raise SpecError(f"{twhere}: {ROOT_KEY!r} cannot be a successor; it runs first.")
            if key not in incoming[s]:
                incoming[s].append(key)
    edges = []
    for key in keys:
        for src in incoming[key] or [ROOT_KEY]:
            edges.append({"dest_key": key, "src_key": src})

    tasks: dict[str, Any] = {ROOT_KEY: {"key": ROOT_KEY, "status": Status.COMPLETED.value}}
    for key, t in zip(keys, task_specs, strict=True):
        td: dict[str, Any] = {
            "key": key,
            "precursors": incoming[key] or [ROOT_KEY],
            "status": Status.PENDING.value,
            "task_params": copy.deepcopy(dict(t.get("task_params") or {})),
            "task_type": t["task_type"],
        }
        for opt in ("label", "data", "max_retries", "retry_delay", "timeout"):
            if t.get(opt) is not None:
                td[opt] = copy.deepcopy(t[opt])
        tasks[key] = td
    result: dict[str, Any] = {
        "cfg": copy.deepcopy(cfg),
        "data": copy.deepcopy(dict(data)),
        "depth": depth,
        "graph": {"edges": edges, "tasks": tasks},
        "label": spec.get("label"),
        "num_tickable_tasks": 0,
        "parent_key": spec.get("parent_key"),
        "status": Status.PENDING.value,
    }
    if spec.get("key") is not None:
        result["key"] = spec["key"]
    return result


def flow_from_spec(
    spec: Mapping[str, Any] | str | os.PathLike[str], flow_class: type[Flow] | None = None
) -> SpecFlow:
    """A PENDING flow from a spec dict or a YAML/JSON spec file (validated, task types checked)."""
    return flow_from_dict(spec_to_flow_dict(load_spec(spec)), flow_class=flow_class)
