"""contrib/headwater-zip: listed by ``headwater plugins``, passes the conformance kit, really stores flows."""

from __future__ import annotations

import json
import re
from pathlib import Path

from contrib_helpers import RUN_PYTEST, ZIP
from headwater.testing.distributions import run_headwater, run_python


def test_zip_plugin_is_listed_with_its_tag(sites: dict[str, Path]) -> None:
    done = run_headwater(["plugins", "--json", "--hook", "register_storage"], sites["zip"])
    assert done.returncode == 0, done.stderr
    row = next(r for r in json.loads(done.stdout) if r["distribution"] == "headwater-zip")
    assert (row["name"], row["status"], row["error"]) == ("zip", "loaded", None)
    assert row["tags"] == {"storage": ["Zip"]}


def test_zip_plugin_passes_its_tests_and_the_conformance_kit(sites: dict[str, Path], tmp_path: Path) -> None:
    done = run_python(RUN_PYTEST, sites["zip"], cwd=ZIP, PYTHONDONTWRITEBYTECODE="1")  # no __pycache__ in the repo
    assert done.returncode == 0, done.stdout + done.stderr
    from headwater.testing.conformance import StorageConformance

    kit = sum(name.startswith("test_") for name in vars(StorageConformance))
    assert re.search(rf"\b{2 * kit + 3 + 5} passed\b", done.stdout), done.stdout  # 2 kit classes, plugin, zip


def test_flow_registered_with_zip_storage_round_trips_by_its_tag(sites: dict[str, Path], tmp_path: Path) -> None:
    code = f"""
import json
from headwater import Flow, Parameter, task
from headwater.serialization import from_dict, serialize_flow
from headwater_zip import ZipStorage

@task
def greet(name):
    return "hello " + name

with Flow("greeting", storage=ZipStorage(path={str(tmp_path / "flows.zip")!r})) as flow:
    greet(Parameter("name", default="world"))

location = flow.storage.add_flow(flow)
flow.storage.build()
meta = serialize_flow(flow)
restored = from_dict(json.loads(json.dumps(meta["storage"])), "storage")
state = restored.get_runner(location)(parameters={{"name": "zip"}})
print(json.dumps({{"storage": meta["storage"], "results": sorted(str(s.result) for s in state.result.values())}}))
"""
    done = run_python(code, sites["zip"])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    location = result["storage"]["flows"]["greeting"]
    assert result["storage"] == {
        "type": "Zip", "flows": {"greeting": location}, "path": str(tmp_path / "flows.zip"), "compression": "deflated",
    }
    assert re.fullmatch(r"greeting/[0-9a-f]{16}\.flow", location)
    assert result["results"] == ["hello zip", "zip"]
