"""Helpers of the contrib tests: where things are, and rendering the plugin template."""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["ROOT", "TEMPLATE", "ZIP", "CUSTOM", "render", "RUN_PYTEST"]

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "contrib" / "headwater-plugin-template"
ZIP = ROOT / "contrib" / "headwater-zip"

CUSTOM = {
    "project_name": "headwater-acme-store",
    "storage_class": "AcmeStorage",
    "description": "Flows in the Acme store.",
    "author": "Acme",
}
"""What the template test answers (everything else keeps its default)."""


def render(tmp_path: Path, **answers: str) -> Path:
    """Render the template without questions into ``tmp_path``; returns the project directory."""
    cookiecutter = pytest.importorskip("cookiecutter.main", reason="the plugin template needs cookiecutter==2.7.1")
    config = tmp_path / "cookiecutter.yaml"
    config.write_text(f"cookiecutters_dir: {tmp_path / 'cookiecutters'}\nreplay_dir: {tmp_path / 'replay'}\n")
    out = cookiecutter.cookiecutter(
        str(TEMPLATE), no_input=True, output_dir=str(tmp_path / "out"), extra_context=answers, config_file=str(config)
    )
    return Path(out)


RUN_PYTEST = "import sys, pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-p', 'no:headwater']))"
"""Run pytest in the current directory (``run_python(RUN_PYTEST, site, cwd=project)``)."""
