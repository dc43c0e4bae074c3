"""Task types for flow specs: the registry, and the built-in types.

A task type is a handler ``handler(task, ctx)``: ``task`` is the :class:`SpecTask` being
ticked and ``ctx`` the :class:`~headwater.spec.engine.TickContext` (``ctx.params`` are the
task's params with ``$ctx.`` references resolved). The handler writes its output into
``task.data``; a value it returns (other than None) is stored as ``task.data["result"]``.
Returning finishes the task COMPLETED, raising fails it (retries apply), ``signals.SKIP``
skips it, and ``ctx.keep_running(msg)`` leaves it RUNNING to be ticked again next tick.
A handler may name ``raw_params`` (a tuple attribute) that are passed through without
interpolation: a child spec's ``$ctx.`` references belong to the child.

Register your own with :func:`register` or, from a plugin, with the ``register_task_types(register)``
hook; a later registration of a name replaces the earlier one (plugins can override built-ins).
"""

from __future__ import annotations

import copy
import logging
import subprocess
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from headwater import signals
from headwater.plugins._registry import import_string
from headwater.spec.model import SpecError, SpecFlow, SpecTask, Status

if TYPE_CHECKING:
    from headwater.spec.engine import TickContext

__all__ = ["register", "unregister", "get_handler", "task_types", "UnknownTaskTypeError", "Handler", "BUILTIN_TASK_TYPES"]

Handler = Callable[["SpecTask", "TickContext"], Any]

_lock = threading.RLock()
_registry: dict[str, Handler | str] = {}
_loaded = False
_logger = logging.getLogger("headwater.spec")


class UnknownTaskTypeError(SpecError, LookupError):
    """A spec names a ``task_type`` that is not registered (lists the installed ones and how to add one)."""


def register(name: str, handler: Handler | str) -> Handler | str:
    """Register ``handler`` (a callable, or a lazy ``"module:attr"`` string) as task type ``name``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"A task type needs a non-empty string name, got {name!r}.")
    if isinstance(handler, str):
        if ":" not in handler:
            raise ValueError(f"Task type {name!r}: lazy handler {handler!r} must look like 'package.module:function'.")
    elif not callable(handler):
        raise TypeError(f"Task type {name!r}: the handler must be callable or a 'module:function' string, got {handler!r}.")
    _ensure_loaded()
    with _lock:
        _registry[name] = handler
    return handler


def unregister(name: str) -> None:
    """Remove task type ``name`` (tests; no error if it is not registered)."""
    with _lock:
        _registry.pop(name, None)


def task_types() -> list[str]:
    """The names of every registered task type, sorted."""
    _ensure_loaded()
    return sorted(_registry)


def get_handler(name: str, task_key: str | None = None) -> Handler:
    """The handler of task type ``name`` (importing a lazy one); :class:`UnknownTaskTypeError` if none."""
    _ensure_loaded()
    target = _registry.get(name)
    if target is None:
        _load_plugin_task_types(_register_missing)  # a plugin registered in-process since the first load
        target = _registry.get(name)
    if target is None:
        where = f" (task {task_key!r})" if task_key else ""
        raise UnknownTaskTypeError(
            f"Unknown task_type {name!r}{where}. Installed task types: {', '.join(task_types())}. "
            f"Add one with headwater.spec.register({name!r}, handler), or from a plugin with the "
            "register_task_types(register) hook (see docs/specs.md); if a plugin provides it, pip install that plugin."
        )
    if isinstance(target, str):
        try:
            loaded = import_string(target)
        except Exception as exc:
            raise UnknownTaskTypeError(
                f"Task type {name!r} is registered as {target!r}, but importing it failed: {exc!r}. "
                "Install or fix the package that provides it."
            ) from exc
        with _lock:
            _registry[name] = loaded
        return loaded
    return target


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    with _lock:
        if _loaded:
            return
        _loaded = True
        _registry.update(BUILTIN_TASK_TYPES)
        _load_plugin_task_types(_registry.__setitem__)


def _register_missing(name: str, handler: Handler | str) -> None:
    with _lock:
        _registry.setdefault(name, handler)


def _load_plugin_task_types(register: Callable[[str, Handler | str], Any]) -> None:
    """Let plugins add task types through the ``register_task_types(register)`` hook."""
    try:
        from headwater.plugins._manager import call_register_hook
    except ImportError:
        return
    def sink(obj: Handler | str, name: str, *, plugin: str, replace: bool = False) -> Any:
        return register(name, obj)

    try:
        call_register_hook("register_task_types", sink, kind="task_type", swap_legacy_order=True)
    except Exception:  # the plugin system reports broken plugins itself; never fail spec loading over it
        _logger.exception("Loading task types from plugins failed")


def _pass_raw(handler: Handler, *names: str) -> None:
    """Mark ``names`` as params the engine passes through without ``$ctx.`` interpolation."""
    handler.__dict__["raw_params"] = names


def _item(flow: SpecFlow, index: int) -> SpecTask:
    task = flow.task_by_slug(f"item_{index}")
    if not isinstance(task, SpecTask):
        raise SpecError(f"Child flow {flow.key!r} has no spec task 'item_{index}'.")
    return task


# --- built-in task types -----------------------------------------------------------------------------------


def _param(task: SpecTask, params: Mapping[str, Any], name: str, kind: type | tuple[type, ...] | None = None) -> Any:
    if name not in params:
        raise ValueError(f"Task {task.key!r} ({task.task_type}): task_params needs {name!r}.")
    value = params[name]
    if kind is not None and not isinstance(value, kind):
        raise ValueError(f"Task {task.key!r} ({task.task_type}): {name!r} must be {_kind_name(kind)}, got {value!r}.")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def print_task(task: SpecTask, ctx: TickContext) -> None:
    """``print``: print ``msg``."""
    print(ctx.params.get("msg", ""))


def noop_task(task: SpecTask, ctx: TickContext) -> None:
    """``noop``: do nothing (a join point, a placeholder)."""


def log_task(task: SpecTask, ctx: TickContext) -> None:
    """``log``: log ``msg`` at ``level`` (a name like ``"WARNING"`` or a number; INFO by default)."""
    level = ctx.params.get("level", "INFO")
    if isinstance(level, str):
        number = logging.getLevelNamesMapping().get(level.upper())
        if number is None:
            raise ValueError(f"Task {task.key!r} (log): unknown level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL.")
        level = number
    ctx.logger.log(level, "%s", ctx.params.get("msg", ""))


def shell_task(task: SpecTask, ctx: TickContext) -> None:
    """``shell``: run ``command`` (a string for the shell, or an argv list); stdout, stderr, exit_code into data.

    Optional ``cwd``, ``env`` (merged over the environment) and ``timeout`` (seconds). A
    non-zero exit code fails the task, with the tail of stderr in the message.
    """
    import os

    params = ctx.params
    command = _param(task, params, "command", (str, list))
    env = params.get("env")
    try:
        done = subprocess.run(
            command,
            shell=isinstance(command, str),
            cwd=params.get("cwd"),
            env={**os.environ, **{str(k): str(v) for k, v in env.items()}} if env else None,
            capture_output=True,
            text=True,
            timeout=params.get("timeout"),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise signals.FAIL(f"Task {task.key!r}: command {command!r} ran longer than {params['timeout']} s.") from None
    task.data.update(stdout=done.stdout, stderr=done.stderr, exit_code=done.returncode)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-10:]) or "(no stderr)"
        raise signals.FAIL(f"Command {command!r} exited with code {done.returncode}. stderr:\n{tail}")


def python_task(task: SpecTask, ctx: TickContext) -> Any:
    """``python``: call ``callable`` (``"module:function"``) with ``args`` and ``kwargs``; the return value into data."""
    params = ctx.params
    path = _param(task, params, "callable", str)
    if ":" not in path:
        raise ValueError(f"Task {task.key!r} (python): callable {path!r} must look like 'package.module:function'.")
    try:
        fn = import_string(path)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"Task {task.key!r} (python): cannot import {path!r}: {exc}. Check the name and sys.path.") from exc
    return fn(*params.get("args", ()), **params.get("kwargs", {}))


def wire_task(task: SpecTask, ctx: TickContext) -> None:
    """``wire``: copy values into other tasks' params or data (or the flow's data).

    ``wirings`` is a list of ``{"src": PATH, "dest": PATH}`` or ``{"value": VALUE, "dest": PATH}``;
    paths are ``$ctx.`` paths without the prefix, e.g. ``flow.tasks.task_2.task_params.msg``.
    """
    wirings = _param(task, ctx.params, "wirings", list)
    for i, wiring in enumerate(wirings):
        if not isinstance(wiring, Mapping) or "dest" not in wiring or ("src" in wiring) == ("value" in wiring):
            raise ValueError(
                f"Task {task.key!r} (wire): wiring #{i + 1} must have 'dest' and one of 'src' (a path) or 'value', "
                f"got {wiring!r}."
            )
        value = ctx.resolve(wiring["src"]) if "src" in wiring else wiring["value"]
        ctx.set_value(wiring["dest"], copy.deepcopy(value))


def switch_task(task: SpecTask, ctx: TickContext) -> None:
    """``switch``: run the branch chosen by ``control_value`` in ``cases`` (else ``default``); skip the others.

    ``cases`` maps values to a successor's key (or a list of keys); every successor not chosen
    is SKIPPED, and tasks after it are skipped too unless they also follow a branch that ran.
    """
    params = ctx.params
    value = _param(task, params, "control_value")
    cases = _param(task, params, "cases", Mapping)
    successors = ctx.successors()
    for candidate in (value, str(value), _json(value)):
        try:
            if candidate in cases:
                chosen = cases[candidate]
                break
        except TypeError:  # an unhashable control value
            continue
    else:
        if "default" not in params:
            raise signals.FAIL(
                f"Task {task.key!r} (switch): no case for control value {value!r} (cases: "
                f"{', '.join(map(repr, cases))}) and no 'default'."
            )
        chosen = params["default"]
    chosen_keys = [chosen] if isinstance(chosen, str) else list(chosen or [])
    for key in chosen_keys:
        if key not in successors:
            raise ValueError(
                f"Task {task.key!r} (switch): case target {key!r} is not a successor of the switch "
                f"(successors: {', '.join(successors) or 'none'}). Name it in the switch's successors."
            )
    task.data.update(control_value=value, chosen=chosen_keys)
    for key in successors:
        if key not in chosen_keys:
            ctx.skip_task(key, f"Branch not taken: switch {task.key!r} chose {chosen_keys} for {value!r}.")


def _json(value: Any) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def flow_task(task: SpecTask, ctx: TickContext) -> None:
    """``flow``: run ``flow_spec`` as a child flow (depth + 1, parent_key = this flow's key) and wait for it.

    ``data`` (interpolated) is merged into the child's data. When the child finishes, its data
    is copied into ``data["flow_data"]``; a failed child fails this task.
    """
    if task.waiting_on is None:
        spec = _param(task, ctx.params, "flow_spec", Mapping)
        spec = {**spec, "data": {**(spec.get("data") or {}), **(ctx.params.get("data") or {})}}
        child = ctx.spawn_child(spec)
        task.data["child_key"] = child
        ctx.wait_for_child(child)
    child_flow = ctx.finished_child(task.waiting_on)
    if child_flow is None:
        ctx.wait_for_child(task.waiting_on)
    task.data["flow_data"] = copy.deepcopy(child_flow.data)
    _fail_if_child_failed(task, child_flow)


_pass_raw(flow_task, "flow_spec")


def spread_task(task: SpecTask, ctx: TickContext) -> None:
    """``spread``: one copy of ``skeleton`` (a task spec) per item of ``items``, run as a child flow.

    Each copy gets its item as ``task_params[item_param]`` (``"item"`` by default) and runs in
    parallel with the others. When the child flow finishes, ``data["results"]`` lists each
    copy's data in item order. ``cfg`` sets the child's cfg (fail_fast defaults to this flow's).
    """
    if task.waiting_on is None:
        params = ctx.params
        items = _param(task, params, "items", list)
        skeleton = _param(task, params, "skeleton", Mapping)
        item_param = params.get("item_param", "item")
        if not items:
            task.data["results"] = []
            return
        tasks = []
        for i, item in enumerate(items):
            spec = copy.deepcopy(dict(skeleton))
            spec.pop("key", None)
            spec.update(key=f"item_{i}", precursors=[])
            spec["task_params"] = {**(spec.get("task_params") or {}), item_param: item}
            tasks.append(spec)
        cfg = {"fail_fast": ctx.flow.cfg.get("fail_fast", True), **(params.get("cfg") or {})}
        label = f"{ctx.flow.label or ctx.flow.key or 'flow'}.{task.key}"
        child = ctx.spawn_child({"label": label, "cfg": cfg, "tasks": tasks})
        task.data["child_key"] = child
        ctx.wait_for_child(child)
    child_flow = ctx.finished_child(task.waiting_on)
    if child_flow is None:
        ctx.wait_for_child(task.waiting_on)
    n = len(child_flow.tasks) - 1
    task.data["results"] = [copy.deepcopy(_item(child_flow, i).data) for i in range(n)]
    _fail_if_child_failed(task, child_flow)


_pass_raw(spread_task, "skeleton")


def _fail_if_child_failed(task: SpecTask, child: Any) -> None:
    if child.status is Status.FAILED:
        errors = child.data.get("errors") or []
        detail = "; ".join(f"{e.get('task')}: {e.get('message')}" for e in errors) or (child.state.message or "")
        raise signals.FAIL(f"Child flow {child.key!r} failed: {detail}")


BUILTIN_TASK_TYPES: dict[str, Handler] = {
    "print": print_task,
    "noop": noop_task,
    "log": log_task,
    "shell": shell_task,
    "python": python_task,
    "wire": wire_task,
    "switch": switch_task,
    "spread": spread_task,
    "flow": flow_task,
}
