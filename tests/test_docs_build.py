"""The documentation site builds cleanly and every page in docs/ is reachable from the nav.

The examples inside the pages are run separately, by sybil (docs/conftest.py).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS_YML = ROOT / "mkdocs.yml"


def _nav_pages(entries: Any) -> Iterator[str]:
    """Every page path in a mkdocs ``nav`` (nested lists of ``{title: page-or-list}`` or plain paths)."""
    if isinstance(entries, str):
        if "://" not in entries:  # external links are not pages
            yield entries
    elif isinstance(entries, list):
        for entry in entries:
            yield from _nav_pages(entry)
    elif isinstance(entries, dict):
        for value in entries.values():
            yield from _nav_pages(value)


def _nav() -> list[str]:
    config = yaml.safe_load(MKDOCS_YML.read_text(encoding="utf-8"))
    assert config.get("docs_dir", "docs") == "docs"
    return list(_nav_pages(config["nav"]))


def _markdown_files() -> set[str]:
    return {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}


def test_every_page_is_in_the_nav() -> None:
    nav = _nav()
    orphans = sorted(_markdown_files() - set(nav))
    assert not orphans, f"pages missing from the nav in mkdocs.yml (add them there): {orphans}"


def test_every_nav_entry_is_a_page_and_listed_once() -> None:
    nav = _nav()
    missing = sorted(set(nav) - _markdown_files())
    assert not missing, f"mkdocs.yml's nav names pages that do not exist under docs/: {missing}"
    duplicates = sorted({page for page in nav if nav.count(page) > 1})
    assert not duplicates, f"pages listed more than once in the nav: {duplicates}"


def test_site_builds_strictly(tmp_path: Path) -> None:
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(MKDOCS_YML), "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    for page in _nav():
        stem = page[: -len(".md")]
        built = site / ("index.html" if stem == "index" else f"{stem}/index.html")
        assert built.is_file(), f"{page} was not built to {built.relative_to(site)}"
    assert "Getting started" in (site / "index.html").read_text(encoding="utf-8")
    assert not (site / "conftest.py").exists(), "the sybil wiring must not be published"
