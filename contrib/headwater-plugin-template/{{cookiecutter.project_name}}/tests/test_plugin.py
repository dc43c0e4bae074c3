"""The plugin as headwater sees it: loaded through its entry point, light to import."""

from __future__ import annotations

import json
import subprocess
import sys

from {{ cookiecutter.package_name }}.storage import {{ cookiecutter.storage_class }}


def test_entry_point_registers_the_storage() -> None:
    from headwater.plugins import plugin_records, registry

    assert registry("storage").get("{{ cookiecutter.storage_tag }}") is {{ cookiecutter.storage_class }}
    record = next(r for r in plugin_records() if r.distribution == "{{ cookiecutter.project_name }}")
    assert (record.name, record.status, record.error) == ("{{ cookiecutter.plugin_name }}", "loaded", None)
    assert record.tags["storage"] == ["{{ cookiecutter.storage_tag }}"]


def test_headwater_plugins_lists_it() -> None:
    code = "import sys; from headwater.cli.main import main; main(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", code, "plugins", "--json"], capture_output=True, text=True, check=True)
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["{{ cookiecutter.plugin_name }}"]["status"] == "loaded"
    assert rows["{{ cookiecutter.plugin_name }}"]["tags"] == {"storage": ["{{ cookiecutter.storage_tag }}"]}


def test_loading_the_plugin_does_not_import_the_storage_module() -> None:
    code = (
        "import sys; from headwater.plugins import plugin_records; plugin_records(); "
        "print('{{ cookiecutter.package_name }}.plugin' in sys.modules, '{{ cookiecutter.package_name }}.storage' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "False"]
