"""Pickled flows with a version envelope, checked on load with a clear message."""

from __future__ import annotations

import contextlib
import functools
import pickle
import platform
import sys
import sysconfig
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import cloudpickle

__all__ = ["dumps_flow", "loads_flow", "FlowLoadError", "project_modules"]

_MAGIC = "headwater-flow"


class FlowLoadError(RuntimeError):
    """A stored flow could not be loaded here (versions differ, code missing, file corrupt)."""


def _versions() -> dict[str, str]:
    from headwater import __version__

    return {
        "python": ".".join(platform.python_version_tuple()[:2]),
        "cloudpickle": cloudpickle.__version__,
        "headwater": __version__,
    }


def _is_installed(module: ModuleType) -> bool:
    """True for modules from the standard library or site-packages (importable on any agent)."""
    file = getattr(module, "__file__", None)
    if not file:
        return True
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    return any(file.startswith(root) for root in roots)


def _module_of(value: Any) -> ModuleType | None:
    if isinstance(value, ModuleType):
        return value
    try:
        name = getattr(value, "__module__", None)
    except Exception:  # lazy proxies and other odd objects
        return None
    return sys.modules.get(name) if isinstance(name, str) else None


def _is_code(value: Any) -> bool:
    """A function, a class or a module: things whose code may need to travel with the flow."""
    if isinstance(value, (ModuleType, type)):
        return True
    try:
        return hasattr(value, "__code__")
    except Exception:
        return False


@functools.lru_cache(maxsize=1)
def _distribution_packages() -> frozenset[str]:
    """Top-level packages of installed distributions, editable installs included (plugins, ``pip install -e``)."""
    from importlib.metadata import packages_distributions

    try:
        return frozenset(packages_distributions())
    except Exception:  # a broken dist-info must not stop pickling
        return frozenset()


def _is_project_module(module: ModuleType) -> bool:
    """A pure-Python module of the author's project: not installed, not headwater's, not ``__main__``.

    Installed means under the standard library or site-packages, or part of an installed
    distribution (editable installs too): the agent is expected to have those installed.
    """
    name = module.__name__
    if name == "__main__" or name == "headwater" or name.startswith("headwater."):
        return False
    file = getattr(module, "__file__", None)
    if not file or not file.endswith(".py") or _is_installed(module):
        return False
    return name.partition(".")[0] not in _distribution_packages()


def _code_names(code: Any) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _code_names(const)
    return names


def _referenced(obj: Any) -> list[Any]:
    """The globals and closure values a function (or the functions of a class) refers to."""
    found: list[Any] = []
    functions = [obj] if hasattr(obj, "__code__") else []
    if isinstance(obj, type):
        members = [getattr(f, "__func__", f) for f in vars(obj).values()]  # unwrap static/class methods
        functions = [f for f in members if hasattr(f, "__code__")]
    for fn in functions:
        namespace = getattr(fn, "__globals__", {})
        found.extend(namespace[n] for n in sorted(_code_names(fn.__code__)) if n in namespace)
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                found.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
    return found


def project_modules(flow: Any) -> list[ModuleType]:
    """The project modules the flow's code uses, directly or through each other (sorted by name).

    Starts from the tasks' functions (or Task classes), state handlers and constants, and
    follows what they reference; a project module is taken whole and its own imports are
    followed. These are pickled by value and hashed into the flow's location, so a helper
    module next to the flow file travels with the flow and changing it changes the location.
    """
    roots: list[Any] = []
    for task in flow.graph.tasks:
        fn = getattr(task, "__wrapped__", None)
        roots.append(fn if fn is not None else type(task))
        roots.extend(getattr(task, "state_handlers", ()) or ())
        for value in (flow.constants.get(task) or {}).values():
            roots.append(type(value))
    roots.extend(getattr(flow, "state_handlers", ()) or ())
    seen: dict[str, ModuleType] = {}
    pending = list(roots)
    root_ids = {id(r) for r in roots}
    visited: set[int] = set()
    while pending:
        obj = pending.pop()
        if id(obj) in visited:
            continue
        visited.add(id(obj))
        module = _module_of(obj)
        if module is not None and module.__name__ not in seen and _is_project_module(module):
            seen[module.__name__] = module
            pending.extend(v for v in list(vars(module).values()) if _is_code(v))
        if not isinstance(obj, ModuleType) and (module is None or module.__name__ in seen or id(obj) in root_ids):
            pending.extend(_referenced(obj))
    return [seen[name] for name in sorted(seen)]


@contextlib.contextmanager
def _by_value(flow: Any) -> Iterator[None]:
    """Pickle the flow's own code by value, so the agent needs no copy of the author's checkout."""
    registered = []
    already = cloudpickle.list_registry_pickle_by_value()
    for module in project_modules(flow):
        if module.__name__ not in already:  # leave the caller's own registrations alone
            cloudpickle.register_pickle_by_value(module)
            registered.append(module)
    try:
        yield
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)


def dumps_flow(flow: Any) -> bytes:
    """The flow pickled with cloudpickle inside a version envelope."""
    with _by_value(flow):
        payload = cloudpickle.dumps(flow)
    return pickle.dumps({"magic": _MAGIC, "versions": _versions(), "flow": payload}, protocol=pickle.HIGHEST_PROTOCOL)


def loads_flow(data: bytes, source: str) -> Any:
    """Unpickle a flow written by :func:`dumps_flow`, checking the versions first."""
    try:
        envelope = pickle.loads(data)
    except Exception as exc:
        raise FlowLoadError(f"Stored flow {source} is not a headwater flow file or is corrupt: {exc!r}.") from exc
    if not isinstance(envelope, dict) or envelope.get("magic") != _MAGIC:
        raise FlowLoadError(f"Stored flow {source} is not a headwater flow file.")
    stored, here = envelope["versions"], _versions()
    if stored["python"] != here["python"]:
        raise FlowLoadError(
            f"Stored flow {source} was pickled with Python {stored['python']} but this is Python {here['python']}; "
            "pickled flows only load on the same Python minor version. Re-register the flow from this Python, "
            "or use stored_as_script=True."
        )
    try:
        return cloudpickle.loads(envelope["flow"])
    except Exception as exc:
        raise FlowLoadError(
            f"Stored flow {source} could not be unpickled: {exc!r}. It was pickled with cloudpickle "
            f"{stored['cloudpickle']} and headwater {stored['headwater']}; this process has cloudpickle "
            f"{here['cloudpickle']} and headwater {here['headwater']}. "
            "Install matching versions or re-register the flow."
        ) from exc
