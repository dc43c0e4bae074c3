"""contrib/headwater-plugin-template: rendered without questions, built, installed, and its own tests pass."""

from __future__ import annotations

import json
import re
from pathlib import Path

from contrib_helpers import CUSTOM, RUN_PYTEST, ZIP, render
from headwater.testing.distributions import run_headwater, run_python


def test_rendering_fills_every_variable(rendered: Path) -> None:
    assert rendered.name == "headwater-acme-store"
    files = sorted(str(p.relative_to(rendered)) for p in rendered.rglob("*") if p.is_file())
    assert files == [
        "README.md",
        "pyproject.toml",
        "src/headwater_acme_store/__init__.py",
        "src/headwater_acme_store/plugin.py",
        "src/headwater_acme_store/storage.py",
        "tests/test_conformance.py",
        "tests/test_plugin.py",
    ]
    for path in rendered.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "{{" not in text and "{%" not in text and "cookiecutter" not in text, path
    pyproject = (rendered / "pyproject.toml").read_text()
    assert '[project.entry-points.headwater]\nacme-store = "headwater_acme_store.plugin"' in pyproject
    plugin = (rendered / "src" / "headwater_acme_store" / "plugin.py").read_text()
    assert 'register("headwater_acme_store.storage:AcmeStorage", "Acme")' in plugin


def test_rendered_plugin_is_listed_by_headwater_plugins(rendered: Path, sites: dict[str, Path]) -> None:
    done = run_headwater(["plugins", "--json"], sites["template"])
    assert done.returncode == 0, done.stderr
    row = next(r for r in json.loads(done.stdout) if r["distribution"] == CUSTOM["project_name"])
    assert (row["name"], row["version"], row["status"]) == ("acme-store", "0.1.0", "loaded")
    assert row["hooks"] == ["register_storage"] and row["tags"] == {"storage": ["Acme"]}


def test_rendered_plugins_own_tests_pass(sites: dict[str, Path], rendered: Path) -> None:
    done = run_python(RUN_PYTEST, sites["template"], cwd=rendered)
    assert done.returncode == 0, done.stdout + done.stderr
    from headwater.testing.conformance import StorageConformance

    kit = sum(name.startswith("test_") for name in vars(StorageConformance))
    assert re.search(rf"\b{kit + 3} passed\b", done.stdout), done.stdout  # the kit + test_plugin.py's 3


def test_headwater_zip_is_the_template_rendered(tmp_path: Path) -> None:
    """headwater-zip was made from the template: only its storage, tests and README were written by hand."""
    fresh = render(
        tmp_path, project_name="headwater-zip", storage_class="ZipStorage",
        description="Storage of flows in a zip archive on local disk.", author="headwater contributors",
    )
    for name in ("pyproject.toml", "src/headwater_zip/__init__.py", "src/headwater_zip/plugin.py", "tests/test_plugin.py"):
        assert (ZIP / name).read_text() == (fresh / name).read_text(), name


def _written_block(page: str, name: str) -> str:
    """The fenced block a docs page writes to ``name`` (``<!-- write-file: name -->``)."""
    match = re.search(rf"<!-- write-file: {re.escape(name)} -->\n```python\n(.*?)^```$", page, re.MULTILINE | re.DOTALL)
    assert match, f"docs/plugins.md has no block written to {name}"
    return match.group(1)


def test_template_renders_to_exactly_the_plugin_guides_40_lines(tmp_path: Path) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text(encoding="utf-8")
    project = render(tmp_path, project_name="headwater-shelf", storage_class="ShelfStorage")
    package = project / "src" / "headwater_shelf"
    storage = (package / "storage.py").read_text()
    assert storage == _written_block(page, "headwater_shelf/storage.py")
    assert (package / "plugin.py").read_text() == _written_block(page, "headwater_shelf/plugin.py")
    assert len(storage.splitlines()) <= 40
