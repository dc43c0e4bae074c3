"""The plugin API is one public module: plugins and contrib code import nothing private from the core."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "core" / "src" / "headwater"

PUBLIC_MODULES = {
    "headwater",
    "headwater.plugins",
    "headwater.plugins.hookspecs",
    "headwater.states",
    "headwater.signals",
    "headwater.triggers",
    "headwater.storage",
    "headwater.run_configs",
    "headwater.executors",
    "headwater.results",
    "headwater.schedules",
    "headwater.testing",
}
"""What plugins may import: the plugin API, and the user-facing modules (as a flow author would)."""

PUBLIC_PACKAGES = ("headwater.tasks",)
"""Packages whose every module is user-facing (the task library)."""


def _is_public(module: str) -> bool:
    return module in PUBLIC_MODULES or any(module == p or module.startswith(p + ".") for p in PUBLIC_PACKAGES)


def private_imports(path: Path) -> list[str]:
    """``file:line module`` for each import of a private headwater module in ``path``."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except SyntaxError:  # the cookiecutter template's Jinja placeholders
        return []
    found = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
            if node.module == "headwater":  # `from headwater import engine` imports a private submodule
                modules += [f"headwater.{a.name}" for a in node.names if (CORE / a.name).exists() or (CORE / f"{a.name}.py").exists()]
        for module in modules:
            if (module == "headwater" or module.startswith("headwater.")) and not _is_public(module):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {module}")
    return found


def _sources() -> list[Path]:
    files = []
    for top in ("plugins", "contrib"):
        files += [p for p in (ROOT / top).rglob("*.py") if ".venv" not in p.parts]
    return sorted(files)


def test_plugins_and_contrib_import_only_the_public_plugin_api() -> None:
    offenders = [line for path in _sources() for line in private_imports(path)]
    assert not offenders, "private core imports (use headwater.plugins):\n" + "\n".join(offenders)


def test_the_checker_catches_a_private_import(tmp_path: Path) -> None:
    bad = ROOT / "plugins" / "_probe_private_import.py"
    bad.write_text("from headwater.storage.base import Storage\nimport headwater.plugins._manager\n")
    try:
        found = private_imports(bad)
    finally:
        bad.unlink()
    assert [f.split(" ")[1] for f in found] == ["headwater.storage.base", "headwater.plugins._manager"]


@pytest.mark.parametrize("name", ["hookimpl", "Registrar", "Storage", "Environment", "RunHandle", "Executor", "Result",
                                  "Serializer", "Task", "Flow", "StorageConformance", "EnvironmentConformance"])
def test_the_plugin_api_exports_what_authors_need(name: str) -> None:
    import headwater.plugins as api

    assert name in api.__all__
    assert getattr(api, name) is not None


def test_every_name_in_the_plugin_api_resolves() -> None:
    import headwater.plugins as api

    missing = []
    for name in api.__all__:
        try:
            getattr(api, name)
        except (AttributeError, ImportError) as exc:
            missing.append(f"{name}: {exc}")
    assert not missing, missing


def _state_name_collections(path: Path) -> list[str]:
    """Tuple/list/set literals spelling out two or more state names (they belong in headwater.states)."""
    from headwater.states import STATE_CLASSES

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            names = {e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in STATE_CLASSES}
            if len(names) >= 2:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {sorted(names)}")
    return found


def test_groups_of_state_names_come_from_headwater_states() -> None:
    files = [p for p in sorted((ROOT / "plugins").rglob("*.py")) if "tests" not in p.parts]
    files += sorted((CORE / "engine").rglob("*.py"))
    offenders = [line for path in files for line in _state_name_collections(path)]
    assert not offenders, "use headwater.states.FINISHED_STATE_NAMES & co:\n" + "\n".join(offenders)


def test_all_lists_exactly_the_lazy_names() -> None:
    import headwater.plugins as api

    assert set(api.__all__) == {"hookimpl", "hookspec", *api._LAZY}
