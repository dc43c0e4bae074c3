"""Two projects with a same-named helper module, loaded in one process, each get their own module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from headwater.utilities.flow_files import load_flows_from_file


def _project(root: Path, name: str, greeting: str) -> Path:
    (root / "helpers").mkdir(parents=True)
    (root / "helpers" / "__init__.py").write_text(f"GREETING = {greeting!r}\n")
    (root / "util.py").write_text(f"WHO = {name!r}\n")
    flow_file = root / "flow.py"
    flow_file.write_text(
        "from headwater import Flow, task\n"
        "from helpers import GREETING\n"
        "from util import WHO\n"
        "@task\n"
        "def hello():\n"
        "    return f'{GREETING} from {WHO}'\n"
        f"with Flow({name!r}) as flow:\n"
        "    hello()\n"
    )
    return flow_file


@pytest.fixture
def clean_modules() -> object:
    before = set(sys.modules)
    yield None
    for name in set(sys.modules) - before:
        if name in ("helpers", "util") or name.startswith("helpers."):
            del sys.modules[name]


def test_each_project_gets_its_own_helper_modules(tmp_path: Path, clean_modules: object) -> None:
    first = load_flows_from_file(_project(tmp_path / "a", "alpha", "hello"))["alpha"]
    second = load_flows_from_file(_project(tmp_path / "b", "beta", "bonjour"))["beta"]
    assert [s.result for s in first.run().result.values()] == ["hello from alpha"]
    assert [s.result for s in second.run().result.values()] == ["bonjour from beta"]


def test_standard_library_names_are_never_dropped(tmp_path: Path, clean_modules: object) -> None:
    import json

    (tmp_path / "json.py").write_text("BROKEN = True\n")
    (tmp_path / "flow.py").write_text(
        "import json\nfrom headwater import Flow\nassert not hasattr(json, 'BROKEN')\nwith Flow('std') as flow:\n    pass\n"
    )
    assert "std" in load_flows_from_file(tmp_path / "flow.py")
    assert sys.modules["json"] is json
