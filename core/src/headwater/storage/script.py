"""Flows stored as the source of their script, run again to rebuild the flow."""

from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path
from typing import Any

__all__ = ["script_source", "script_path", "flow_from_script", "source_hash"]


def script_path(flow: Any, path: str | None) -> Path:
    """The file that defines ``flow``: ``path`` if given, else where it was loaded from, else its tasks' file."""
    if path:
        return Path(path)
    loaded = getattr(flow, "_source_path", None)
    if loaded:
        return Path(loaded)
    for task in flow.ordered_tasks():
        fn = getattr(task, "__wrapped__", None)
        if fn is not None:
            try:
                file = inspect.getsourcefile(fn)
            except TypeError:
                file = None
            if file:
                return Path(file)
    raise ValueError(
        f"Cannot tell which script defines flow {flow.name!r}; pass path='flows/my_flow.py' to the storage."
    )


def relative_path(path: str | None) -> str | None:
    """``path`` relative to the working directory when it lies under it (never an absolute author path)."""
    if path is None or not os.path.isabs(path):
        return path
    try:
        return os.path.relpath(path, os.getcwd()) if Path(path).is_relative_to(os.getcwd()) else Path(path).name
    except ValueError:
        return Path(path).name


def script_source(flow: Any, path: str | None) -> str:
    file = script_path(flow, path)
    try:
        return file.read_text()
    except OSError as exc:
        raise ValueError(f"Cannot read the script {str(file)!r} of flow {flow.name!r}: {exc}.") from exc


def source_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flow_from_script(text: str, flow_name: str, source: str, file_name: str | None = None) -> Any:
    """Run script ``text`` and return its flow called ``flow_name``."""
    from headwater.utilities.flow_files import FlowFileError, flows_in_namespace, pick_flow

    namespace: dict[str, Any] = {"__name__": "__headwater_flow__", "__file__": file_name or source}
    try:
        code = compile(text, file_name or source, "exec")
        exec(code, namespace)  # noqa: S102 - running the user's own flow script is the point
    except BaseException as exc:
        import traceback

        raise FlowFileError(f"Stored flow script {source} failed to run: {exc!r}\n\n{traceback.format_exc()}") from exc
    return pick_flow(flows_in_namespace(namespace), flow_name, source)
