"""The API server over real HTTP (uvicorn on 127.0.0.1), on SQLite and on PostgreSQL."""

from __future__ import annotations

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from headwater_cloud_api.server.db.models import Base
from headwater_cloud_api.server.db.session import Database, current_revision, downgrade_database
from headwater_cloud_api.server.errors import MAX_BODY_BYTES, MAX_KV_VALUE_BYTES

HTTP = httpx.Client(timeout=30)  # one client: building an httpx.Client costs ~50 ms (TLS setup)


@pytest.fixture
def server(clean_server):
    """One server per module and database, emptied before each test (see conftest)."""
    return clean_server


def gql(server, query, variables=None, headers=None):
    response = HTTP.post(server.api, json={"query": query, "variables": variables or {}}, headers=headers or {})
    assert response.status_code != 500
    return response


def data(server, query, variables=None):
    body = gql(server, query, variables).json()
    assert "errors" not in body, body
    return body["data"]


def error(server, query, variables=None):
    response = gql(server, query, variables)
    body = response.json()
    assert body.get("errors"), body
    return body["errors"][0]


FLOW = {"name": "etl", "tasks": [], "edges": [], "parameters": [{"name": "x", "default": 1, "required": False},
                                                                {"name": "y", "default": None, "required": True}],
        "run_config": {"type": "LocalRun", "labels": ["staging"]}, "schedule": None, "storage": None}
CREATE_FLOW = "mutation($i: CreateFlowInput!) { create_flow(input: $i) { id version created } }"
CREATE_RUN = "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { id version state { type } labels parameters } }"


def make_flow(server, serialized=FLOW, project="MDS"):
    if not data(server, "{ projects { name } }")["projects"]:
        data(server, "mutation { create_project(name: \"MDS\") { id } }")
    return data(server, CREATE_FLOW, {"i": {"serialized": serialized, "project_name": project}})["create_flow"]


def test_health_and_migrations_match_the_models(server):
    assert HTTP.get(server.url + "/health").json()["status"] == "ok"
    db = Database(server.app.state.db.url)
    try:
        assert current_revision(db) == "0003"
        with db.read_engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        db.dispose()


def test_downgrade_drops_everything_and_upgrade_restores(database_url):
    db = Database(database_url)
    try:
        db.upgrade()
        downgrade_database(db, "base")
        assert current_revision(db) is None
        db.upgrade()
        assert current_revision(db) == "0003"
    finally:
        db.dispose()


def test_flow_versions_are_idempotent_by_hash(server):
    first = make_flow(server)
    assert first["version"] == 1 and first["created"]
    again = data(server, CREATE_FLOW, {"i": {"serialized": FLOW, "project_name": "MDS"}})["create_flow"]
    assert again == {**first, "created": False}
    changed = data(server, CREATE_FLOW, {"i": {"serialized": {**FLOW, "tasks": [{"slug": "a-1"}]}, "project_name": "MDS"}})["create_flow"]
    assert changed["version"] == 2 and changed["id"] != first["id"]
    flows = data(server, "{ flows(project: \"MDS\", include_archived: true, order_by: \"version\") { version archived } }")["flows"]
    assert flows == [{"version": 1, "archived": True}, {"version": 2, "archived": False}]
    latest = data(server, "{ flow(name: \"etl\", project: \"MDS\") { id version run_config { labels } } }")["flow"]
    assert latest == {"id": changed["id"], "version": 2, "run_config": {"labels": ["staging"]}}
    hashes = data(server, "query($f: [FlowHashInput!]!) { flow_hashes(project: \"MDS\", flows: $f) { unchanged version } }",
                  {"f": [{"name": "etl", "hash": "nope"}, {"name": "other", "hash": "x"}]})["flow_hashes"]
    assert hashes == [{"unchanged": False, "version": None}, {"unchanged": False, "version": None}]


def test_flow_runs_states_history_and_version_checks(server):
    flow = make_flow(server)
    run = data(server, CREATE_RUN, {"i": {"flow_name": "etl", "project_name": "MDS", "parameters": {"y": 5}}})["create_flow_run"]
    assert run["state"] == {"type": "Scheduled"} and run["version"] == 1
    assert run["labels"] == ["staging"] and run["parameters"] == {"x": 1, "y": 5}
    write = "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { status version state } }"
    results = data(server, write, {"s": [
        {"flow_run_id": run["id"], "version": 1, "state": {"type": "Submitted"}},
        {"flow_run_id": run["id"], "version": 2, "state": {"type": "Running", "message": "go"}},
        {"flow_run_id": run["id"], "version": 2, "state": {"type": "Failed", "message": "stale writer"}},
    ]})["set_flow_run_states"]
    assert [r["status"] for r in results] == ["SUCCESS", "SUCCESS", "STALE"]
    assert results[2] == {"status": "STALE", "version": 3, "state": "Running"}
    info = data(server, "query($id: String!) { flow_run(id: $id) { state { type message } start_time states { type version } } }",
                {"id": run["id"]})["flow_run"]
    assert info["state"] == {"type": "Running", "message": "go"} and info["start_time"]
    assert [(s["type"], s["version"]) for s in info["states"]] == [("Scheduled", 1), ("Submitted", 2), ("Running", 3)]
    assert flow["id"]


def test_task_runs_are_created_on_first_write_and_version_checked(server):
    make_flow(server)
    run = data(server, CREATE_RUN, {"i": {"flow_name": "etl", "project_name": "MDS", "parameters": {"y": 1}}})["create_flow_run"]
    write = "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { id status version state } }"
    batch = [{"flow_run_id": run["id"], "task_slug": "add-1", "map_index": i, "state": {"type": "Running"}} for i in range(3)]
    batch += [{"flow_run_id": run["id"], "task_slug": "add-1", "map_index": 0, "version": 1, "state": {"type": "Success"}}]
    batch += [{"flow_run_id": run["id"], "task_slug": "add-1", "map_index": 0, "version": 1, "state": {"type": "Failed"}}]
    results = data(server, write, {"s": batch})["set_task_run_states"]
    assert [r["status"] for r in results] == ["SUCCESS"] * 4 + ["STALE"]
    task_runs = data(server, "query($id: String!) { task_runs(flow_run_id: $id) { map_index state { type } states { type } } }",
                     {"id": run["id"]})["task_runs"]
    assert sorted((t["map_index"], t["state"]["type"], len(t["states"])) for t in task_runs) == [
        (0, "Success", 2), (1, "Running", 1), (2, "Running", 1)]


def test_cancel_scheduled_and_running_runs(server):
    make_flow(server)
    a = data(server, CREATE_RUN, {"i": {"flow_name": "etl", "project_name": "MDS", "parameters": {"y": 1}}})["create_flow_run"]
    b = data(server, CREATE_RUN, {"i": {"flow_name": "etl", "project_name": "MDS", "parameters": {"y": 1}}})["create_flow_run"]
    data(server, "mutation($id: String!) { set_flow_run_states(states: [{flow_run_id: $id, state: {type: \"Running\"}}]) { status } }", {"id": b["id"]})
    cancel = "mutation($id: String!) { cancel_flow_run(id: $id) { status state } }"
    assert data(server, cancel, {"id": a["id"]})["cancel_flow_run"] == {"status": "SUCCESS", "state": "Cancelled"}
    assert data(server, cancel, {"id": b["id"]})["cancel_flow_run"] == {"status": "SUCCESS", "state": "Cancelling"}
    assert data(server, cancel, {"id": a["id"]})["cancel_flow_run"] == {"status": "FINISHED", "state": "Cancelled"}


def test_logs_batched_filtered_and_paged(server):
    make_flow(server)
    run = data(server, CREATE_RUN, {"i": {"flow_name": "etl", "project_name": "MDS", "parameters": {"y": 1}}})["create_flow_run"]
    logs = [{"flow_run_id": run["id"], "message": f"line {i}", "level": "ERROR" if i % 2 else "INFO"} for i in range(10)]
    assert data(server, "mutation($l: [LogInput!]!) { write_logs(logs: $l) }", {"l": logs})["write_logs"] == 10
    page = data(server, "query($id: String!) { logs(flow_run_id: $id, levels: [\"ERROR\"], limit: 2, offset: 1) { message } }",
                {"id": run["id"]})["logs"]
    assert [p["message"] for p in page] == ["line 3", "line 5"]


def test_queue_matches_label_subsets(server):
    make_flow(server)
    for labels in (["staging"], [], ["staging", "gpu"]):
        data(server, CREATE_RUN, {"i": {"flow_name": "etl", "project_name": "MDS", "parameters": {"y": 1}, "labels": labels}})
    queue = "query($l: [String!]!, $u: Boolean!) { runs_in_queue(labels: $l, accepts_unlabeled: $u) { labels } }"
    assert sorted(r["labels"] for r in data(server, queue, {"l": ["staging"], "u": True})["runs_in_queue"]) == [[], ["staging"]]
    assert [r["labels"] for r in data(server, queue, {"l": ["staging"], "u": False})["runs_in_queue"]] == [["staging"]]


def test_key_value_store(server):
    data(server, "mutation { set_key_value(key: \"db\", value: {host: \"x\", port: 5}) { key } }")
    data(server, "mutation { set_key_value(key: \"db\", value: [1, 2]) { key } }")
    assert data(server, "{ key_value(key: \"db\") { value } }")["key_value"]["value"] == [1, 2]
    assert data(server, "{ keys }")["keys"] == ["db"]
    too_big = "x" * (MAX_KV_VALUE_BYTES + 1)
    err = error(server, "mutation($v: JSON) { set_key_value(key: \"big\", value: $v) { key } }", {"v": too_big})
    assert "10240 bytes" in err["message"] and err["extensions"]["code"] == "BAD_INPUT"
    assert data(server, "mutation { delete_key(key: \"db\") }")["delete_key"] is True
    assert error(server, "{ key_value(key: \"db\") { value } }")["extensions"]["code"] == "NOT_FOUND"


def test_client_mistakes_get_clear_errors_and_no_partial_write(server):
    response = HTTP.post(server.api, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["errors"][0]["message"]
    assert HTTP.post(server.api, json=[1]).status_code == 400
    assert "Syntax Error" in error(server, "query { flows { ")["message"]
    assert error(server, "{ flows(limit: \"ten\") { id } }")["extensions"]["code"] == "GRAPHQL_VALIDATION"
    assert "does not exist" in error(server, "{ flow_run(id: \"nope\") { id } }")["message"]
    assert "headwater project create MDS" in error(server, CREATE_FLOW, {"i": {"serialized": FLOW, "project_name": "MDS"}})["message"]
    make_flow(server)
    assert "requires parameter(s) 'y'" in error(server, CREATE_RUN, {"i": {"flow_name": "etl", "project_name": "MDS"}})["message"]
    assert "no parameter(s) 'z'" in error(server, CREATE_RUN, {"i": {"flow_name": "etl", "project_name": "MDS", "parameters": {"y": 1, "z": 2}}})["message"]
    run = data(server, CREATE_RUN, {"i": {"flow_name": "etl", "project_name": "MDS", "parameters": {"y": 1}}})["create_flow_run"]
    write = "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { status } }"
    err = error(server, write, {"s": [{"flow_run_id": run["id"], "state": {"type": "Running"}},
                                      {"flow_run_id": "missing", "state": {"type": "Running"}}]})
    assert "nothing was written" in err["message"]
    assert "Unknown state 'Runing'" in error(server, write, {"s": [{"flow_run_id": run["id"], "state": {"type": "Runing"}}]})["message"]
    state = data(server, "query($id: String!) { flow_run(id: $id) { version state { type } } }", {"id": run["id"]})["flow_run"]
    assert state == {"version": 1, "state": {"type": "Scheduled"}}
    big = HTTP.post(server.api, content=b"x" * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"})
    assert big.status_code == 413 and big.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


def test_flow_actions_archive_move_schedule_delete(server):
    flow = make_flow(server)
    data(server, "mutation { create_project(name: \"other\") { id } }")
    ref = {"f": {"id": flow["id"]}}
    assert data(server, "mutation($f: FlowRef!) { set_schedule_active(flow: $f, active: false) }", ref)["set_schedule_active"] is False
    data(server, "mutation($f: FlowRef!) { update_flow_project(flow: $f, project_name: \"other\") }", ref)
    assert data(server, "{ flow(name: \"etl\", project: \"other\") { project_name schedule_active } }")["flow"] == {
        "project_name": "other", "schedule_active": False}
    data(server, "mutation($f: FlowRef!) { archive_flow(flow: $f) }", ref)
    assert "archived" in error(server, CREATE_RUN, {"i": {"flow_id": flow["id"], "parameters": {"y": 1}}})["message"]
    assert data(server, "mutation($f: FlowRef!) { delete_flow(flow: $f) }", ref)["delete_flow"] is True
    assert error(server, "query($id: String!) { flow(id: $id) { id } }", {"id": flow["id"]})["extensions"]["code"] == "NOT_FOUND"
