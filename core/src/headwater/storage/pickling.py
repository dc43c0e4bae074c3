"""Pickled flows with a version envelope, checked on load with a clear message."""

from __future__ import annotations

import contextlib
import pickle
import platform
import sys
import sysconfig
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import cloudpickle

__all__ = ["dumps_flow", "loads_flow", "FlowLoadError"]

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


@contextlib.contextmanager
def _by_value(flow: Any) -> Iterator[None]:
    """Pickle the flow's own code by value, so the agent needs no copy of the author's checkout."""
    registered = []
    for task in flow._tasks:
        fn = getattr(task, "__wrapped__", None) or type(task)
        module = sys.modules.get(getattr(fn, "__module__", "") or "")
        if module is not None and module.__name__ not in ("__main__",) and not module.__name__.startswith("headwater") \
                and not _is_installed(module) and module not in registered:
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
            f"{here['cloudpickle']} and headwater {here['headwater']}. Install matching versions or re-register the flow."
        ) from exc
