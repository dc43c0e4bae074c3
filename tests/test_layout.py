"""The test tree: every test module has a unique file name (pytest imports them by basename)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_test_module_names_are_unique() -> None:
    seen: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        if "plugins" in path.relative_to(TESTS).parts[:1]:  # test distributions, built, never collected
            continue
        seen[path.name].append(str(path.relative_to(TESTS)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"rename these to tests/<dir>/test_<dir>_<name>.py: {clashes}"
