"""Session fixtures for contrib/: the plugin template rendered once, and the contrib plugins built once."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from contrib_helpers import CUSTOM, ZIP, render
from headwater.testing.distributions import install_distributions


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template rendered with :data:`CUSTOM`."""
    return render(tmp_path_factory.mktemp("template"), **CUSTOM)


@pytest.fixture(scope="session")
def sites(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict[str, Path]:
    """``{"zip": site, "template": site}``: headwater-zip and the rendered template, built in one pip call."""
    sources = {"zip": ZIP}
    if importlib.util.find_spec("cookiecutter") is not None:  # else the template tests skip, the zip ones run
        sources["template"] = request.getfixturevalue("rendered")
    return install_distributions(sources, tmp_path_factory.mktemp("contrib-sites"))
