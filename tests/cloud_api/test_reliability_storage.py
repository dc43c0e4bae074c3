"""Issue 10 #12: no import-time value frozen into a stored flow by default; locations never change their bytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.client import Client
from headwater_cloud_api.registration import Registration, load_flows
from headwater_cloud_api.server.run import ServerThread

SECRET = "s3cr3t-planted-value-42"

READS_AT_IMPORT = '''
from headwater import Flow, task
from headwater.backend import get_key_value
{storage_import}

PASSWORD = get_key_value("db_password")  # read at import: a pickle would freeze it


@task
def connect():
    return len(PASSWORD)


with Flow("{name}"{storage}) as flow:
    connect()
'''

STAMPED = '''
import time
from headwater import Flow, task
from headwater.storage import Local

STAMP = time.time_ns()  # an import-time value: different bytes every time the file is imported


@task
def stamp():
    return STAMP


with Flow("stamped", storage=Local()) as flow:
    stamp()
'''


@pytest.fixture
def api(sqlite_server: ServerThread, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HEADWATER__CLOUD__API", sqlite_server.api)
    with Client(api=sqlite_server.api, api_key="") as c:
        c.project(name="P").create()
        c.kv().set("db_password", SECRET)
        yield c


def _stored_bytes(flow) -> bytes:  # noqa: ANN001
    storage = flow.storage
    return (storage.root() / storage.flows[flow.name]).read_bytes()


def test_flows_from_files_default_to_script_storage_and_store_no_secret(api: Client, tmp_path: Path) -> None:
    path = tmp_path / "reads.py"
    path.write_text(READS_AT_IMPORT.format(name="reads", storage="", storage_import=""))
    flows, errors = load_flows([path])
    assert not errors
    [result] = Registration(api).register_many(flows, "P")
    assert result.status == "registered" and result.warnings == []
    [(_, flow)] = flows
    assert flow.storage.stored_as_script is True and flow.storage.flows["reads"].endswith(".py")
    stored = _stored_bytes(flow)
    assert SECRET.encode() not in stored and b'get_key_value("db_password")' in stored
    stored_meta = api.graphql('{ flow(name: "reads", project: "P") { storage } }')["flow"]["storage"]
    assert stored_meta["stored_as_script"] is True


def test_a_pickled_flow_that_captured_a_kv_value_gets_a_warning(api: Client, tmp_path: Path) -> None:
    path = tmp_path / "pickled.py"
    path.write_text(READS_AT_IMPORT.format(name="pickled", storage=", storage=Local()",
                                           storage_import="from headwater.storage import Local"))
    flows, errors = load_flows([path])
    assert not errors
    [result] = Registration(api).register_many(flows, "P")
    assert result.status == "registered"
    [warning] = result.warnings
    assert "key-value store key 'db_password'" in warning and "frozen into the stored flow" in warning
    assert SECRET not in warning  # the warning names the key, never the value
    [(_, flow)] = flows
    assert SECRET.encode() in _stored_bytes(flow)  # what the warning is about


def test_new_bytes_get_a_new_location_and_a_new_version(api: Client, tmp_path: Path) -> None:
    path = tmp_path / "stamped.py"
    path.write_text(STAMPED)
    first_flows, _ = load_flows([path])
    [first] = Registration(api).register_many(first_flows, "P")
    first_flow = first_flows[0][1]
    first_location = first_flow.storage.flows["stamped"]
    first_bytes = _stored_bytes(first_flow)
    import sys

    sys.modules.pop("stamped", None)
    second_flows, _ = load_flows([path])  # imported again: STAMP differs, so the pickle differs
    [second] = Registration(api).register_many(second_flows, "P")
    second_flow = second_flows[0][1]
    second_location = second_flow.storage.flows["stamped"]
    assert second_location != first_location
    assert (first_flow.storage.root() / first_location).read_bytes() == first_bytes  # never rewritten in place
    assert (first.status, first.version, second.status, second.version) == ("registered", 1, "registered", 2)
