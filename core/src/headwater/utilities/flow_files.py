"""Loading flows from Python files and modules (used by ``headwater run``, registration and storage)."""

from __future__ import annotations

import importlib
import runpy
import sys
import traceback
from pathlib import Path
from typing import Any

__all__ = ["FlowFileError", "load_flows_from_file", "load_flows_from_module", "flows_in_namespace", "pick_flow"]


class FlowFileError(Exception):
    """A flow file could not be loaded, or did not define the flow asked for."""


def flows_in_namespace(namespace: dict[str, Any]) -> dict[str, Any]:
    """The Flow objects among ``namespace``'s values, by flow name (first one of a name wins)."""
    from headwater.core.flow import Flow

    found: dict[str, Any] = {}
    for value in namespace.values():
        if isinstance(value, Flow) and value.name not in found:
            found[value.name] = value
    return found


def load_flows_from_file(path: str | Path, run_name: str = "__headwater_flow__") -> dict[str, Any]:
    """Execute ``path`` (not as ``__main__``) and return the flows it defines.

    The file's directory is put first on ``sys.path`` while it runs, so sibling modules import.
    An exception while importing is a :class:`FlowFileError` showing the file and the traceback.
    """
    file = Path(path)
    if not file.is_file():
        raise FlowFileError(f"Flow file {str(file)!r} does not exist (or is not a file).")
    directory = str(file.resolve().parent)
    _forget_shadowed_modules(directory)
    sys.path.insert(0, directory)
    try:
        namespace = runpy.run_path(str(file), run_name=run_name)
    except SystemExit as exc:
        raise FlowFileError(f"Flow file {str(file)!r} called sys.exit({exc.code!r}) while being loaded.") from exc
    except BaseException as exc:
        tb = traceback.format_exc()
        raise FlowFileError(f"Flow file {str(file)!r} failed to import: {exc!r}\n\n{tb}") from exc
    finally:
        try:
            sys.path.remove(directory)
        except ValueError:
            pass
    flows = flows_in_namespace(namespace)
    for flow in flows.values():
        flow._source_path = str(file)
    return flows


def _forget_shadowed_modules(directory: str) -> None:
    """Drop imported modules that ``directory`` has its own module of the same name for.

    Two projects loaded in one process (registration of several repositories, a test run)
    often both have a ``helpers`` or ``scripts`` module: without this, the second project's
    flow file would get the first project's module from ``sys.modules``. Standard-library
    and installed modules are never dropped.
    """
    root = Path(directory)
    for name in [n for n in sys.modules if "." not in n and n not in sys.stdlib_module_names]:
        module = sys.modules[name]
        own = root / f"{name}.py"
        package = root / name
        if not (own.is_file() or package.is_dir()):
            continue
        origin = getattr(module, "__file__", None)
        paths = [str(p) for p in getattr(module, "__path__", [])] or ([str(Path(origin).parent)] if origin else [])
        if origin is None and not paths:
            continue  # a built-in module: the directory's file would not win over it anyway
        if any(part in ("site-packages", "dist-packages") for p in paths for part in Path(p).parts):
            continue  # an installed distribution, which the process itself may use: only project modules go
        if any(Path(p).resolve() == package.resolve() or Path(p).resolve() == root.resolve() for p in paths):
            continue  # it is this directory's own module
        for loaded in [n for n in sys.modules if n == name or n.startswith(name + ".")]:
            del sys.modules[loaded]


def load_flows_from_module(module_name: str) -> dict[str, Any]:
    """Import ``module_name`` and return the flows it defines."""
    try:
        module = importlib.import_module(module_name)
    except BaseException as exc:
        raise FlowFileError(f"Module {module_name!r} failed to import: {exc!r}\n\n{traceback.format_exc()}") from exc
    return flows_in_namespace(vars(module))


def pick_flow(flows: dict[str, Any], name: str | None, source: str) -> Any:
    """The flow called ``name`` (or the only one) from ``flows`` loaded from ``source``."""
    if name is not None:
        if name not in flows:
            found = ", ".join(repr(n) for n in flows) or "none"
            raise FlowFileError(f"{source} has no flow named {name!r}; flows found: {found}.")
        return flows[name]
    if not flows:
        raise FlowFileError(
            f"{source} defines no flow. A flow file builds one at module level, e.g. `with Flow('name') as flow:`."
        )
    if len(flows) > 1:
        names = ", ".join(repr(n) for n in flows)
        raise FlowFileError(f"{source} defines several flows ({names}); pick one with {source}:NAME.")
    return next(iter(flows.values()))
