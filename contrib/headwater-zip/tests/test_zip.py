"""What is particular to ZipStorage: a real zip archive, content-addressed members, atomic rewrites."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from headwater.storage import FlowNotInStorageError
from headwater.testing import sample_flow
from headwater_zip import ZipStorage


def test_build_writes_a_zip_archive_with_one_member_per_flow(tmp_path: Path) -> None:
    storage = ZipStorage(path=str(tmp_path / "flows.zip"))
    first = storage.add_flow(sample_flow("first"))
    second = storage.add_flow(sample_flow("second", variant="triple"))
    assert not (tmp_path / "flows.zip").exists()  # add_flow does no I/O
    storage.build()
    with zipfile.ZipFile(tmp_path / "flows.zip") as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted([first, second])
        assert all(info.compress_type == zipfile.ZIP_DEFLATED for info in archive.infolist())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.zip"]  # no temporary file left behind


def test_unchanged_flow_adds_nothing_and_changed_flow_adds_a_member(tmp_path: Path) -> None:
    path = str(tmp_path / "flows.zip")
    old = ZipStorage(path=path)
    old_location = old.add_flow(sample_flow("etl"))
    old.build()
    before = (tmp_path / "flows.zip").read_bytes()
    again = ZipStorage(path=path)
    assert again.add_flow(sample_flow("etl")) == old_location
    again.build()
    assert (tmp_path / "flows.zip").read_bytes() == before
    changed = ZipStorage(path=path)
    new_location = changed.add_flow(sample_flow("etl", variant="triple"))
    changed.build()
    assert new_location != old_location
    assert sorted(changed.members()) == sorted([old_location, new_location])
    assert old.get_flow(old_location).run(x=1).is_successful()  # the old version still loads


def test_missing_archive_or_member_names_the_fix(tmp_path: Path) -> None:
    storage = ZipStorage(path=str(tmp_path / "flows.zip"))
    location = storage.add_flow(sample_flow("etl"))
    with pytest.raises(FlowNotInStorageError, match="does not exist on this machine"):
        storage.get_flow(location)
    other = ZipStorage(path=str(tmp_path / "flows.zip"))
    other.add_flow(sample_flow("other"))
    other.build()
    with pytest.raises(FlowNotInStorageError, match="has no member"):
        storage.get_flow(location)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="needs the path"):
        ZipStorage()
    with pytest.raises(ValueError, match="compression 'zstd' is not one of stored, deflated, bzip2, lzma"):
        ZipStorage(path="flows.zip", compression="zstd")


def test_another_process_loads_and_runs_the_flow_from_the_archive(tmp_path: Path) -> None:
    storage = ZipStorage(path=str(tmp_path / "flows.zip"), compression="lzma")
    location = storage.add_flow(sample_flow("etl"))
    storage.build()
    code = (
        "import json, sys\n"
        "from headwater.serialization import from_dict\n"
        "storage = from_dict(json.loads(sys.argv[1]), 'storage')\n"
        "state = storage.get_runner(sys.argv[2])(parameters={'x': 20})\n"
        "print(type(storage).__name__, [s.result for t, s in state.result.items() if t.name == 'double'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, json.dumps(storage.serialize()), location],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "ZipStorage [42]"
