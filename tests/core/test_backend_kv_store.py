"""``headwater.backend`` as a package: ``kv_store`` values as attribute-accessible ``Box`` mappings (Prefect 1),
Prefect 1's errors, the lazy top-level names, and the install hint when no plugin provides the API client."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import headwater.backend as backend
from headwater.backend import kv_store
from headwater.backend.kv_store import Box, KeyNotFoundError


class _NotFound(Exception):
    code = "NOT_FOUND"


class FakeKV:
    """What ``client.kv()`` offers (set/get/delete/list), in memory, raising as the API does for a missing key."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        assert type(value) in (dict, list, str, int, float, bool, type(None)), type(value)  # plain JSON goes to the API
        self.values[key] = value

    def get(self, key: str) -> Any:
        if key not in self.values:
            raise _NotFound(f"Key {key!r} is not in the key-value store.")
        return self.values[key]

    def delete(self, key: str) -> bool:
        self.get(key)
        return self.values.pop(key) is not None or True

    def list(self) -> list[str]:
        return sorted(self.values)


class FakeClient:
    def __init__(self) -> None:
        self.store = FakeKV()

    def kv(self) -> FakeKV:
        return self.store


def test_box_is_an_attribute_accessible_dict_all_the_way_down() -> None:
    box = Box({"warehouse": {"schema": "raw", "tables": [{"name": "trips"}]}, "n": 1})
    assert box.warehouse.schema == "raw" and box["warehouse"]["schema"] == "raw"
    assert box.warehouse.tables[0].name == "trips"
    assert box == {"warehouse": {"schema": "raw", "tables": [{"name": "trips"}]}, "n": 1}
    assert repr(Box({"a": 1})) == "{'a': 1}" and isinstance(box, dict)
    box.extra = {"x": 2}
    assert box["extra"].x == 2 and "extra" in dir(box)
    del box.extra
    with pytest.raises(AttributeError, match="'missing' is not a key of this value"):
        _ = box.missing
    assert type(box.to_dict()["warehouse"]) is dict and box.to_dict() == box
    assert pickle.loads(pickle.dumps(box)) == box


def test_kv_functions_box_values_and_raise_prefect_1s_errors() -> None:
    client = FakeClient()
    assert kv_store.set_key_value("cfg", {"schema": "raw", "limits": {"rows": 10}}, client=client) == "cfg"
    kv_store.set_key_value("count", 3, client=client)
    kv_store.set_key_value("boxed", Box({"a": {"b": 1}}), client=client)  # a Box goes back as plain JSON
    value = kv_store.get_key_value("cfg", client=client)
    assert isinstance(value, Box) and value.limits.rows == 10
    assert kv_store.get_key_value("count", client=client) == 3
    assert kv_store.list_keys(client=client) == ["boxed", "cfg", "count"]
    assert kv_store.delete_key("count", client=client) is True
    with pytest.raises(ValueError, match="No value found for key: 'count'") as missing:
        kv_store.get_key_value("count", client=client)
    assert isinstance(missing.value, KeyError) and isinstance(missing.value, KeyNotFoundError)
    with pytest.raises(KeyNotFoundError, match="nothing to delete"):
        kv_store.delete_key("count", client=client)


def test_backend_names_are_lazy_and_complete() -> None:
    for name in backend.__all__:
        assert getattr(backend, name) is not None, name
    assert backend.get_key_value is kv_store.get_key_value and backend.kv_store is kv_store
    assert backend.create_link_artifact.__module__ == "headwater.backend.artifacts"
    assert backend.FlowRunView.__module__ == "headwater.backend.flow_run"
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = backend.nothing


def test_without_the_api_plugin_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.client import Client

    monkeypatch.setattr(Client, "resource_names", staticmethod(lambda: ["transport"]))
    with pytest.raises(ImportError, match=r"key-value store .* pip install headwater-cloud-api"):
        kv_store.get_key_value("anything")
    from headwater.backend.flow_run import FlowRunView

    with pytest.raises(ImportError, match="FlowRunView talks to the orchestration API"):
        FlowRunView.from_flow_run_id("x")
