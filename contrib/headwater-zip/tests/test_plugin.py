"""The plugin as headwater sees it: loaded through its entry point, light to import."""

from __future__ import annotations

import json
import subprocess
import sys

from headwater_zip.storage import ZipStorage


def test_entry_point_registers_the_storage() -> None:
    from headwater.plugins import plugin_records, registry

    assert registry("storage").get("Zip") is ZipStorage
    record = next(r for r in plugin_records() if r.distribution == "headwater-zip")
    assert (record.name, record.status, record.error) == ("zip", "loaded", None)
    assert record.tags["storage"] == ["Zip"]


def test_headwater_plugins_lists_it() -> None:
    code = "import sys; from headwater.cli.main import main; main(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", code, "plugins", "--json"], capture_output=True, text=True, check=True)
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["zip"]["status"] == "loaded"
    assert rows["zip"]["tags"] == {"storage": ["Zip"]}


def test_loading_the_plugin_does_not_import_the_storage_module() -> None:
    code = (
        "import sys; from headwater.plugins import plugin_records; plugin_records(); "
        "print('headwater_zip.plugin' in sys.modules, 'headwater_zip.storage' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False"]
