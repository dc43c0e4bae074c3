"""The check that runs inside a freshly built image: ``python3 -m headwater_docker.check '<json>'``.

It loads every flow from its file, compares the image's Python and headwater versions with the
host's, and imports the modules the flows need. On failure it prints one line per problem, with
the failing import and its traceback's last line, and exits 1; the storage's ``build()`` turns
that into an error (instead of a generic "healthcheck failed").
"""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from typing import Any

__all__ = ["main", "run_checks"]


def _last_line(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]


def run_checks(spec: dict[str, Any]) -> list[str]:
    """Problems found (empty when the image is good)."""
    problems: list[str] = []
    python = spec.get("python")
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if python and python != here:
        problems.append(
            f"Python version mismatch: flows were pickled with Python {python} but the image has Python {here} "
            f"({sys.executable}); use a base image with Python {python}."
        )
    for module in spec.get("modules", []):
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - every import problem is reported
            problems.append(f"import {module} failed in the image: {_last_line(exc)}")
    try:
        from importlib.metadata import version

        import headwater

        image_version = getattr(headwater, "__version__", None) or version("headwater")
    except Exception as exc:  # noqa: BLE001
        problems.append(f"headwater is not importable in the image: {_last_line(exc)}")
        return problems
    wanted = spec.get("headwater")
    if wanted and str(image_version) != wanted:
        problems.append(f"headwater version mismatch: registered with {wanted}, the image has {image_version}.")
    for dist in spec.get("plugins", []):
        try:
            from headwater.plugins import plugin_records

            names = {r.distribution for r in plugin_records()}
        except Exception as exc:  # noqa: BLE001
            problems.append(f"the plugin system does not load in the image: {_last_line(exc)}")
            break
        if dist not in names:
            problems.append(f"plugin distribution {dist} is not installed in the image (plugins there: {sorted(names)}).")
    from headwater.plugins import loads_flow

    for name, location in sorted(spec.get("flows", {}).items()):
        try:
            with open(location, "rb") as fh:
                flow = loads_flow(fh.read(), location)
        except Exception as exc:  # noqa: BLE001
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
            problems.append(f"flow {name!r} at {location} does not load in the image: {_last_line(exc)}{where}")
            continue
        if getattr(flow, "name", None) != name:
            problems.append(f"the file {location} holds flow {getattr(flow, 'name', None)!r}, not {name!r}.")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = json.loads(args[0]) if args else {}
    problems = run_checks(spec)
    if problems:
        for problem in problems:
            print(f"HEADWATER-CHECK-FAILED: {problem}", file=sys.stderr, flush=True)
        return 1
    print("HEADWATER-CHECK-OK", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
