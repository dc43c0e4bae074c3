"""A flow's run fields (storage, run config, parameters, schedule, environment) without its whole metadata (issue 19).

Creating, claiming and running a flow run read only those fields, selected with the database's JSON
operators and kept per flow id; ``serialized`` and ``tasks`` still answer the whole metadata. On
SQLite and PostgreSQL, through the real server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event, inspect, update

from headwater_cloud_api.server.db.models import Flow
from headwater_cloud_api.server.errors import NotFound
from headwater_cloud_api.server.services import flows as flow_service

HTTP = httpx.Client(timeout=30)

TASKS = [{"slug": f"t-{i}", "name": "t", "type": "Task"} for i in range(300)]
FLOW = {
    "name": "wide", "tasks": TASKS, "edges": [],
    "parameters": [{"name": "x", "default": {"nested": [1, 2]}, "required": False}, {"name": "y", "required": True}],
    "run_config": {"type": "LocalRun", "labels": ["fields"], "env": {"A": "1"}},
    "storage": {"type": "Local", "directory": "/flows", "flows": {"wide": "/flows/wide.flow"}},
    "schedule": None, "environment": {"type": "LocalEnvironment"},
}


def data(server: Any, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = HTTP.post(server.api, json={"query": query, "variables": variables or {}}).json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


def make_flow(server: Any, serialized: dict[str, Any] = FLOW) -> str:
    data(server, 'mutation { create_project(name: "P") { id } }')
    created = data(server, "mutation($i: CreateFlowInput!) { create_flow(input: $i) { id } }",
                   {"i": {"serialized": serialized, "project_name": "P"}})
    return created["create_flow"]["id"]  # type: ignore[no-any-return]


@contextmanager
def statements(server: Any) -> Iterator[list[str]]:
    """Every SQL statement the server runs inside the block."""
    seen: list[str] = []
    db = server.app.state.db
    engines = {id(e): e for e in (db.read_engine, db.write_engine)}.values()

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def reads_whole_metadata(sql: str) -> bool:
    """True if ``sql`` selects ``flow.serialized`` itself, not one field of it through a JSON operator."""
    for match in re.finditer(r"flow\.serialized", sql, re.IGNORECASE):
        before, after = sql[max(0, match.start() - 13):match.start()], sql[match.end():match.end() + 4]
        if not (before.upper().endswith("JSON_EXTRACT(") or after.lstrip().startswith("->")):
            return True
    return False


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    flow_service._fields.clear()


def test_run_paths_never_read_the_whole_metadata(server: Any) -> None:
    flow_id = make_flow(server)
    with statements(server) as sql:
        run = data(server, 'mutation { create_flow_run(input: {flow_name: "wide", project_name: "P", parameters: {y: 2}}) '
                           "{ id labels parameters run_config } }")["create_flow_run"]
        agent = data(server, 'mutation { register_agent(name: "a", labels: ["fields"]) { id } }')["register_agent"]["id"]
        claimed = data(server, "mutation($a: String!) { claim_flow_runs(agent_id: $a, limit: 5) "
                               "{ id run_config flow { id name storage } } }", {"a": agent})["claim_flow_runs"]
        runner = data(server, "query($id: String!) { flow_run(id: $id) { flow { id name storage } } }", {"id": run["id"]})
    assert run["parameters"] == {"x": {"nested": [1, 2]}, "y": 2}  # the declared default, merged
    assert run["labels"] == ["fields"] and run["run_config"] == FLOW["run_config"]
    assert [c["id"] for c in claimed] == [run["id"]]
    assert claimed[0]["flow"] == runner["flow_run"]["flow"] == {"id": flow_id, "name": "wide", "storage": FLOW["storage"]}
    assert any("flow.serialized" in s.lower() for s in sql)  # the fields were selected ...
    assert not [s for s in sql if reads_whole_metadata(s)]  # ... and never the whole document


def test_flow_fields_and_the_whole_metadata_answer_as_stored(server: Any) -> None:
    flow_id = make_flow(server)
    got = data(server, "query($id: String!) { flow(id: $id) { storage schedule parameters run_config { type labels data } "
                       "serialized tasks } }", {"id": flow_id})["flow"]
    assert got["storage"] == FLOW["storage"] and got["schedule"] is None and got["parameters"] == FLOW["parameters"]
    assert got["run_config"] == {"type": "LocalRun", "labels": ["fields"], "data": FLOW["run_config"]}
    assert got["serialized"] == FLOW and got["tasks"] == TASKS
    with statements(server) as sql:
        data(server, "{ flows { name storage } }")
    assert not [s for s in sql if reads_whole_metadata(s)]


def test_run_fields_are_read_once_per_flow_and_returned_as_fresh_objects(server: Any) -> None:
    flow_id = make_flow(server)
    db = server.app.state.db
    with db.read() as s:
        first = flow_service.run_fields(s, flow_id)
        assert set(first) == set(flow_service.RUN_FIELDS) and first["environment"] == FLOW["environment"]
        first["parameters"].append("changed by a caller")
        with statements(server) as sql:
            again = flow_service.run_fields(s, flow_id)
        assert sql == []  # kept: a flow version's metadata never changes
        assert again["parameters"] == FLOW["parameters"]
        with pytest.raises(NotFound, match="does not exist"):
            flow_service.run_fields(s, "no-such-flow")
        row = s.get(Flow, flow_id)
        assert row is not None and "serialized" in inspect(row).unloaded  # deferred: loading a row skips it
        assert row.serialized == FLOW  # ... and it loads when asked for


def test_malformed_stored_run_fields_are_refused_when_a_run_is_created(server: Any) -> None:
    flow_id = make_flow(server)
    with server.app.state.db.write() as s:  # metadata stored before registration validated it
        s.execute(update(Flow).where(Flow.id == flow_id).values(serialized={**FLOW, "storage": "not an object"}))
    body = HTTP.post(server.api, json={"query": 'mutation { create_flow_run(input: {flow_name: "wide", project_name: "P", '
                                                'parameters: {y: 1}}) { id } }'}).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_INPUT"
    assert "malformed stored metadata" in body["errors"][0]["message"] and "serialized.storage" in body["errors"][0]["message"]


def test_run_fields_are_kept_per_database(tmp_path: Any) -> None:
    """One process may serve several databases (tests, in-process servers): the same flow id in two of them is two flows."""
    from headwater_cloud_api.server.db.session import Database

    seen = []
    for name in ("a", "b"):
        db = Database(f"sqlite:///{tmp_path / name}.db")
        try:
            db.upgrade()
            with db.write() as s:
                from headwater_cloud_api.server.services.projects import create_project

                create_project(s, "P")
                flow, _ = flow_service.create_flow(s, serialized={"name": "f", "storage": {"type": "Local", "directory": name}},
                                                   project_name="P")
                s.execute(update(Flow).where(Flow.id == flow.id).values(id="same-id"))
            with db.read() as s:
                seen.append(flow_service.run_fields(s, "same-id")["storage"])
        finally:
            db.dispose()
    assert seen == [{"type": "Local", "directory": "a"}, {"type": "Local", "directory": "b"}]
