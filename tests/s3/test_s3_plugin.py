"""headwater-s3 as a plugin: entry point, `headwater plugins`, [s3] config, lazy imports, install hints,
flow-spec task types, and its wheel installed into a fresh virtual environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from headwater.testing.distributions import install_distributions, run_headwater, run_python
from install_helpers import fresh_venv, pip_install
from s3_helpers import CORE, PLUGIN, REPO


def test_headwater_plugins_lists_storage_result_task_types_and_section(home: Path) -> None:
    done = run_headwater(["plugins", "--json"])
    assert done.returncode == 0, done.stderr
    [record] = [r for r in json.loads(done.stdout) if r["name"] == "s3"]
    assert record["distribution"] == "headwater-s3" and record["status"] == "loaded", record
    assert record["tags"]["storage"] == ["S3"]
    assert record["tags"]["result"] == ["S3Result"]
    assert sorted(record["tags"]["task_type"]) == ["s3_download", "s3_list", "s3_upload"]
    assert record["tags"]["config_section"] == ["s3"]
    assert record["warnings"] == []


def test_the_plugin_module_is_import_light() -> None:
    code = (
        "import sys; import headwater_s3.plugin; from headwater.plugins import registry;"
        "registry('storage').names(); registry('result').names();"
        "import headwater.tasks.aws.s3;"
        "print(sorted(m for m in ('boto3', 'botocore', 's3fs', 'aiobotocore') if m in sys.modules))"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_s3_config_section_and_secrets_never_shown(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (home / "config.toml").write_text(
        '[s3]\nendpoint_url = "http://127.0.0.1:9"\nregion_name = "eu-west-1"\nmax_attempts = 3\n'
        '[context.secrets]\nAWS_CREDENTIALS = {ACCESS_KEY = "AKIASHOWNOWHERE00000", SECRET_ACCESS_KEY = "hidden-sk-4242"}\n'
    )
    monkeypatch.setenv("HEADWATER__S3__CREDENTIALS_SECRET", "AWS_CREDENTIALS")
    monkeypatch.setenv("HEADWATER__S3__ENDPOINT_URL", "http://127.0.0.1:9999")
    from headwater.plugins import get_config
    from headwater_s3.config import S3Section
    from headwater_s3.connection import Connection

    section = get_config(reload=True).section("s3")
    assert isinstance(section, S3Section)
    assert (section.endpoint_url, section.region_name, section.max_attempts) == ("http://127.0.0.1:9999", "eu-west-1", 3)
    connection = Connection.resolve({}, None)
    assert connection.endpoint_url == "http://127.0.0.1:9999" and connection.credentials_secret == "AWS_CREDENTIALS"
    creds = connection.credentials()
    assert creds is not None and creds.access_key == "AKIASHOWNOWHERE00000"
    assert "AKIA" not in repr(creds) and "hidden" not in repr(creds) and "hidden" not in repr(connection)
    for args in (["config", "show"], ["config", "show", "--json"], ["config", "show", "--toml"]):
        done = run_headwater(args, HEADWATER_HOME=str(home))
        assert done.returncode == 0, done.stderr
        assert "hidden-sk-4242" not in done.stdout and "AKIASHOWNOWHERE" not in done.stdout, done.stdout
        assert "127.0.0.1:9999" in done.stdout  # the endpoint is not a secret
    with pytest.raises(ValueError, match="multipart_chunksize"):
        S3Section(multipart_chunksize=1024)


def test_endpoint_from_aws_endpoint_url(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater_s3.connection import Connection

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:7777")
    assert Connection.resolve(None, None).endpoint_url == "http://127.0.0.1:7777"
    monkeypatch.setenv("HEADWATER__S3__ENDPOINT_URL", "http://127.0.0.1:8888")
    assert Connection.resolve(None, None).endpoint_url == "http://127.0.0.1:8888"
    assert Connection.resolve({"endpoint_url": "http://127.0.0.1:1"}, None).endpoint_url == "http://127.0.0.1:1"


def test_missing_plugin_gives_install_hints(home: Path) -> None:
    code = (
        "import sys; sys.modules['headwater_s3'] = None\n"
        "try:\n    from headwater.tasks.aws.s3 import S3Download\nexcept ImportError as e:\n    print(e)\n"
    )
    done = run_python(code)
    assert done.stdout.strip() == "The S3 task library is in headwater-s3: pip install headwater-s3", done.stderr
    code = "try:\n    from headwater.results import S3Result\nexcept ImportError as e:\n    print(e)\n"
    done = run_python(code, HEADWATER_BLOCKED_PLUGINS="s3")
    assert "headwater-s3: pip install headwater-s3" in done.stdout, done.stdout + done.stderr


def test_flow_spec_task_types(bucket: str, moto_endpoint: str) -> None:
    from headwater.spec import FlowEngine

    options = {"endpoint_url": moto_endpoint}
    spec = {
        "label": "s3-spec",
        "tasks": [
            {"key": "up", "task_type": "s3_upload",
             "task_params": {"bucket": bucket, "boto_kwargs": options, "data": "from a spec", "key": "spec/a.txt"}},
            {"key": "down", "task_type": "s3_download", "precursors": ["up"],
             "task_params": {"bucket": bucket, "boto_kwargs": options, "key": "$ctx.flow.tasks.up.data.result"}},
            {"key": "ls", "task_type": "s3_list", "precursors": ["up"],
             "task_params": {"bucket": bucket, "boto_kwargs": options, "prefix": "spec/"}},
        ],
    }
    engine = FlowEngine()
    flow = engine.flow_spec_to_flow(spec)
    engine.tick_flow_until_has_no_pending(flow)
    assert str(flow.status).endswith("COMPLETED"), flow.status
    down: Any = flow.task_by_slug("down")
    listed: Any = flow.task_by_slug("ls")
    assert down.data["result"] == "from a spec"
    assert listed.data["result"] == ["spec/a.txt"]
    bad = FlowEngine().flow_spec_to_flow(
        {"label": "bad", "tasks": [{"key": "x", "task_type": "s3_list", "task_params": {"bucket": bucket, "prefx": "a"}}]}
    )
    FlowEngine().tick_flow_until_has_no_pending(bad)
    assert "FAILED" in str(bad.status)


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_works(tmp_path: Path, moto_endpoint: str, s3_client: Any) -> None:
    """Build the core's and the plugin's wheels, install them into a new venv (third-party pins from PyPI), use S3."""
    install_distributions({"core": CORE, "s3": PLUGIN}, tmp_path / "build")
    wheels = tmp_path / "build" / "_wheels"
    env_dir = tmp_path / "fresh"
    python = fresh_venv(env_dir)
    constraints = tmp_path / "constraints.txt"  # the repository's pins, without extras (pip refuses those)
    lines = []
    for name in ("dev.txt", "s3.txt"):
        for line in (REPO / "requirements" / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                lines.append(re.sub(r"\[[^\]]*\]", "", line))
    constraints.write_text("\n".join(lines) + "\n")
    install = pip_install(python, "--find-links", str(wheels), "-c", str(constraints), "headwater-s3", timeout=900)
    assert install.returncode == 0, install.stdout + install.stderr
    s3_client.create_bucket(Bucket="fresh-venv")
    code = f'''
import json
from headwater import Flow, task
from headwater.plugins import from_dict
from headwater.results import S3Result
from headwater.storage import S3
from headwater.tasks.aws.s3 import S3List
opts = {{"endpoint_url": {moto_endpoint!r}}}

@task(result=S3Result(bucket="fresh-venv", location="results/{{task_name}}.pkl", boto3_kwargs=opts))
def answer():
    return 42

with Flow("fresh") as flow:
    answer()
storage = S3(bucket="fresh-venv", client_options=opts)
location = storage.add_flow(flow)
storage.build()
state = from_dict(json.loads(json.dumps(storage.serialize())), "storage").get_flow(location).run(run_on_schedule=False)
assert state.is_successful(), state
print(json.dumps(S3List(bucket="fresh-venv", boto_kwargs=opts).run(prefix="")))
'''
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    used = subprocess.run([str(python), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert used.returncode == 0, used.stdout + used.stderr
    listed = json.loads(used.stdout.strip().splitlines()[-1])
    assert "results/answer.pkl" in listed and any(k.startswith("fresh/") and k.endswith(".flow") for k in listed)
    plugins = subprocess.run([str(python), "-m", "headwater.cli", "plugins", "--json"], cwd=tmp_path, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert plugins.returncode == 0, plugins.stderr
    names = {r["name"]: r for r in json.loads(plugins.stdout)}
    assert names["s3"]["status"] == "loaded" and names["s3"]["tags"]["storage"] == ["S3"]
    assert sys.prefix != str(env_dir)
