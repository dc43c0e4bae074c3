"""Issue 10: the API refuses bad input at the door and never answers 500 or INTERNAL for a client's mistake.

Covers #1 (NaN/Infinity; claim-and-return as one unit), #5 (state machine), #14/#15 (schema-level
validation, BAD_INPUT naming the field), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from headwater_cloud_api.server.run import ServerThread

HTTP = httpx.Client(timeout=60)

FLOW = {"name": "etl", "tasks": [], "edges": [], "parameters": [{"name": "x", "default": 1, "required": False}],
        "run_config": {"type": "LocalRun", "labels": []}, "schedule": None, "storage": None}
CREATE_FLOW = "mutation($i: CreateFlowInput!) { create_flow(input: $i) { id version created } }"
CREATE_RUN = "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { id version state { type } parameters } }"
SET_FLOW = "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { status version state } }"
SET_TASK = "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { id status version state } }"


@pytest.fixture
def server(clean_server: ServerThread) -> ServerThread:
    return clean_server


def post(server: ServerThread, query: str, variables: dict[str, Any] | None = None, raw: bytes | None = None) -> httpx.Response:
    if raw is not None:
        response = HTTP.post(server.api, content=raw, headers={"content-type": "application/json"})
    else:
        response = HTTP.post(server.api, json={"query": query, "variables": variables or {}})
    assert response.status_code < 500, response.text
    return response


def data(server: ServerThread, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = post(server, query, variables).json()
    assert not body.get("errors"), body
    return body["data"]


def error(server: ServerThread, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = post(server, query, variables).json()
    assert body.get("errors"), body
    assert body["errors"][0]["extensions"]["code"] != "INTERNAL", body
    return body["errors"][0]


def make_flow(server: ServerThread) -> str:
    data(server, 'mutation { create_project(name: "MDS") { id } }')
    return data(server, CREATE_FLOW, {"i": {"serialized": FLOW, "project_name": "MDS"}})["create_flow"]["id"]


def make_run(server: ServerThread, flow_id: str, **extra: Any) -> dict[str, Any]:
    return data(server, CREATE_RUN, {"i": {"flow_id": flow_id, **extra}})["create_flow_run"]


def run_count(server: ServerThread) -> int:
    return len(data(server, "{ flow_runs { id } }")["flow_runs"])


# --- #1 NaN / Infinity ----------------------------------------------------------------------------


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e400"])
def test_non_finite_numbers_are_refused_at_the_door(server: ServerThread, literal: bytes) -> None:
    flow_id = make_flow(server)
    body = (b'{"query": "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { id } }", '
            b'"variables": {"i": {"flow_id": "' + flow_id.encode() + b'", "parameters": {"x": ' + literal + b'}}}}')
    response = post(server, "", raw=body)
    assert response.status_code == 400
    err = response.json()["errors"][0]
    assert err["extensions"]["code"] == "BAD_INPUT" and "finite" in err["message"]
    assert run_count(server) == 0


@pytest.mark.parametrize("field", ["parameters", "context"])
def test_non_finite_graphql_literals_are_refused_naming_the_field(server: ServerThread, field: str) -> None:
    flow_id = make_flow(server)
    err = error(server, f'mutation {{ create_flow_run(input: {{flow_id: "{flow_id}", {field}: {{x: 1e999}}}}) {{ id }} }}')
    assert err["extensions"]["code"] == "BAD_INPUT" and f"input.{field}.x" in err["message"]
    err = error(server, 'mutation { set_key_value(key: "k", value: [1, 2e400]) { key } }')
    assert "value[1]" in err["message"]
    assert run_count(server) == 0


def test_claim_with_a_stored_nan_run_hands_out_the_others_and_fails_that_one(server: ServerThread) -> None:
    """A run stored with NaN (before the door check; SQLite's JSON accepts it) must not strand its batch."""
    from headwater_cloud_api.server.db.models import FlowRun
    from sqlalchemy import update

    if server.app.state.db.dialect != "sqlite":
        pytest.skip("PostgreSQL's jsonb cannot even store NaN: the legacy case exists only on SQLite")
    flow_id = make_flow(server)
    runs = [make_run(server, flow_id, parameters={"x": i}) for i in range(5)]
    with server.app.state.db.write() as s:
        s.execute(update(FlowRun).where(FlowRun.id == runs[2]["id"]).values(parameters={"x": float("nan")}))
    agent = data(server, 'mutation { register_agent(name: "a", labels: []) { id } }')["register_agent"]["id"]
    claim = f'mutation {{ claim_flow_runs(agent_id: "{agent}", limit: 10) {{ id parameters }} }}'
    claimed = data(server, claim)["claim_flow_runs"]
    assert sorted(r["id"] for r in claimed) == sorted(r["id"] for i, r in enumerate(runs) if i != 2)
    bad = data(server, f'{{ flow_run(id: "{runs[2]["id"]}") {{ state {{ type message }} }} }}'.replace("parameters", ""))
    assert bad["flow_run"]["state"]["type"] == "Failed" and "JSON cannot carry" in bad["flow_run"]["state"]["message"]
    # reading the legacy row never fails either: the value is sent as null with an error naming it
    body = post(server, f'{{ flow_run(id: "{runs[2]["id"]}") {{ parameters }} }}').json()
    assert body["data"]["flow_run"]["parameters"] == {"x": None}
    assert body["errors"][0]["extensions"]["code"] == "NON_FINITE_VALUE"


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_json_is_a_bad_request_not_a_500(server: ServerThread, depth: int) -> None:
    raw = b'{"query": "{ hello }", "variables": {"v": ' + b"[" * depth + b"]" * depth + b"}}"
    response = post(server, "", raw=raw)
    assert response.status_code == 400 and "nested" in response.json()["errors"][0]["message"]
