"""Issue 10: the API refuses bad input at the door and never answers 500 or INTERNAL for a client's mistake.

Covers #1 (NaN/Infinity; claim-and-return as one unit), #5 (state machine), #14/#15 (schema-level
validation, BAD_INPUT naming the field), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC
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
    from sqlalchemy import update

    from headwater_cloud_api.server.db.models import FlowRun

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


# --- #5 the state machine ---------------------------------------------------------------------------

HISTORY = 'query($id: String!) { flow_run(id: $id) { version attempt state { type } states { type } task_runs { task_slug version state { type } states { type } } } }'


def _agent(server: ServerThread) -> str:
    return data(server, 'mutation { register_agent(name: "a", labels: []) { id } }')["register_agent"]["id"]


def _claim(server: ServerThread, agent: str) -> list[dict[str, Any]]:
    return data(server, f'mutation {{ claim_flow_runs(agent_id: "{agent}", limit: 10) {{ id attempt version }} }}')["claim_flow_runs"]


def test_a_finished_run_is_not_set_back_to_scheduled_nor_run_again(server: ServerThread) -> None:
    run = make_run(server, make_flow(server))["id"]
    data(server, SET_FLOW, {"s": [{"flow_run_id": run, "state": {"type": "Running"}}, {"flow_run_id": run, "state": {"type": "Success"}}]})
    for target in ("Scheduled", "Success", "Running", "Failed"):
        err = error(server, SET_FLOW, {"s": [{"flow_run_id": run, "state": {"type": target}}]})
        assert err["extensions"]["code"] == "INVALID_TRANSITION" and "is Success, a finished state" in err["message"]
        assert "restart" in err["message"]
    assert _claim(server, _agent(server)) == []
    info = data(server, HISTORY, {"id": run})["flow_run"]
    assert [s["type"] for s in info["states"]] == ["Scheduled", "Running", "Success"]


@pytest.mark.parametrize("abstract", ["State", "Finished"])
def test_abstract_states_are_refused(server: ServerThread, abstract: str) -> None:
    run = make_run(server, make_flow(server))["id"]
    err = error(server, SET_FLOW, {"s": [{"flow_run_id": run, "state": {"type": abstract}}]})
    assert err["extensions"]["code"] == "INVALID_TRANSITION" and "abstract" in err["message"]
    err = error(server, SET_TASK, {"s": [{"flow_run_id": run, "task_slug": "t", "state": {"type": abstract}}]})
    assert err["extensions"]["code"] == "INVALID_TRANSITION"
    assert data(server, HISTORY, {"id": run})["flow_run"]["task_runs"] == []


def test_cancelling_only_ends(server: ServerThread) -> None:
    run = make_run(server, make_flow(server))["id"]
    data(server, SET_FLOW, {"s": [{"flow_run_id": run, "state": {"type": "Running"}}]})
    data(server, f'mutation {{ cancel_flow_run(id: "{run}") {{ state }} }}')
    assert error(server, SET_FLOW, {"s": [{"flow_run_id": run, "state": {"type": "Running"}}]})["extensions"]["code"] == "INVALID_TRANSITION"
    data(server, SET_FLOW, {"s": [{"flow_run_id": run, "state": {"type": "Cancelled"}}]})


def test_an_explicit_restart_reopens_a_finished_run_as_a_new_attempt(server: ServerThread) -> None:
    run = make_run(server, make_flow(server))["id"]
    agent = _agent(server)
    [claimed] = _claim(server, agent)
    assert claimed["attempt"] == 1
    data(server, SET_FLOW, {"s": [{"flow_run_id": run, "attempt": 1, "state": {"type": "Failed"}}]})
    data(server, SET_TASK, {"s": [{"flow_run_id": run, "task_slug": "t", "attempt": 1, "state": {"type": "Failed"}}]})
    err = error(server, f'mutation {{ restart_flow_run(id: "{make_run(server, make_flow_id(server))["id"]}") {{ state }} }}')
    assert err["extensions"]["code"] == "INVALID_TRANSITION"  # an unfinished run is not "restarted"
    assert data(server, f'mutation {{ restart_flow_run(id: "{run}") {{ status state }} }}')["restart_flow_run"] == {
        "status": "SUCCESS", "state": "Scheduled"}
    [again] = [r for r in _claim(server, agent) if r["id"] == run]
    assert again["attempt"] == 3  # restart and claim each start a new attempt
    # the new attempt may run the task run that the old one finished
    data(server, SET_TASK, {"s": [{"flow_run_id": run, "task_slug": "t", "attempt": 3, "state": {"type": "Running"}},
                                  {"flow_run_id": run, "task_slug": "t", "attempt": 3, "state": {"type": "Success"}}]})
    info = data(server, HISTORY, {"id": run})["flow_run"]
    # the restart (from failed) reset the failed task run to Pending; the new attempt ran it again
    assert [s["type"] for s in info["task_runs"][0]["states"]] == ["Failed", "Pending", "Running", "Success"]


def make_flow_id(server: ServerThread) -> str:
    return data(server, "{ flows { id } }")["flows"][0]["id"]


# --- #4 fencing ----------------------------------------------------------------------------------


def test_writes_from_a_superseded_attempt_are_refused(server: ServerThread) -> None:
    from headwater_cloud_api.server.services.agents import end_flow_run

    run = make_run(server, make_flow(server))["id"]
    agent = _agent(server)
    [claimed] = _claim(server, agent)
    data(server, SET_FLOW, {"s": [{"flow_run_id": run, "attempt": 1, "state": {"type": "Running"}}]})
    data(server, SET_TASK, {"s": [{"flow_run_id": run, "task_slug": "t", "attempt": 1, "state": {"type": "Success"}}]})
    with server.app.state.db.write() as s:  # what the reaper does when the lease expires
        end_flow_run(s, run, "Scheduled", "lost", only_if=["Running"])
    [second] = _claim(server, agent)
    assert second["attempt"] == 3
    data(server, SET_FLOW, {"s": [{"flow_run_id": run, "attempt": 3, "state": {"type": "Running"}}]})
    data(server, SET_TASK, {"s": [{"flow_run_id": run, "task_slug": "t", "attempt": 3, "state": {"type": "Running"}}]})
    # the zombie (attempt 1) comes back: every write is refused, nothing of it lands
    for query, item in ((SET_FLOW, {"flow_run_id": run, "attempt": 1, "state": {"type": "Success"}}),
                        (SET_TASK, {"flow_run_id": run, "task_slug": "t", "attempt": 1, "state": {"type": "Cancelled"}}),
                        (SET_TASK, {"flow_run_id": run, "task_slug": "u", "attempt": 1, "state": {"type": "Running"}})):
        err = error(server, query, {"s": [item]})
        assert err["extensions"]["code"] == "SUPERSEDED" and "attempt 3" in err["message"]
    beat = data(server, f'mutation {{ flow_run_heartbeat(flow_run_id: "{run}", attempt: 1) {{ attempt state }} }}')
    assert beat["flow_run_heartbeat"] == {"attempt": 3, "state": "Running"}
    info = data(server, HISTORY, {"id": run})["flow_run"]
    assert info["state"]["type"] == "Running" and [t["task_slug"] for t in info["task_runs"]] == ["t"]
    assert info["task_runs"][0]["state"]["type"] == "Running"


def test_a_retried_write_is_not_applied_twice(server: ServerThread) -> None:
    run = make_run(server, make_flow(server))["id"]
    flow_batch = {"s": [{"flow_run_id": run, "write_id": "w1", "state": {"type": "Running"}},
                        {"flow_run_id": run, "write_id": "w2", "state": {"type": "Success"}}]}
    task_batch = {"s": [{"flow_run_id": run, "task_slug": "t", "write_id": "t1", "state": {"type": "Running"}},
                        {"flow_run_id": run, "task_slug": "t", "write_id": "t2", "state": {"type": "Success"}}]}
    for _ in range(3):  # the answer was lost and the runner sends the same request again
        assert [r["status"] for r in data(server, SET_FLOW, flow_batch)["set_flow_run_states"]] == ["SUCCESS", "SUCCESS"]
        assert [r["status"] for r in data(server, SET_TASK, task_batch)["set_task_run_states"]] == ["SUCCESS", "SUCCESS"]
    info = data(server, HISTORY, {"id": run})["flow_run"]
    assert [s["type"] for s in info["states"]] == ["Scheduled", "Running", "Success"]
    assert [s["type"] for s in info["task_runs"][0]["states"]] == ["Running", "Success"]


# --- #6 one malformed flow does not stop the scheduler ---------------------------------------------


def test_registration_validates_flow_metadata(server: ServerThread) -> None:
    make_flow(server)
    for bad, field in ((["x"], "serialized.parameters[0]"), ([{"name": "a"}, {"name": "a"}], "declared twice"),
                       ([{"name": "a", "required": "yes"}], "parameters[0].required")):
        err = error(server, CREATE_FLOW, {"i": {"serialized": {**FLOW, "name": "bad", "parameters": bad}, "project_name": "MDS"}})
        assert err["extensions"]["code"] == "BAD_INPUT" and field in err["message"], err
    err = error(server, CREATE_FLOW, {"i": {"serialized": {**FLOW, "name": "bad", "run_config": {"labels": "abc"}}, "project_name": "MDS"}})
    assert "run_config.labels must be a list of strings" in err["message"]


def test_the_scheduler_isolates_a_malformed_flow(server: ServerThread, caplog: pytest.LogCaptureFixture) -> None:
    from datetime import datetime, timedelta

    from sqlalchemy import update

    from headwater import Flow, task
    from headwater.client import Client
    from headwater.schedules import IntervalClock, Schedule
    from headwater_cloud_api.server.db.models import Flow as FlowRow
    from headwater_cloud_api.server.services.scheduler import schedule_flow_runs

    @task
    def noop() -> None:
        return None

    start = datetime(2031, 1, 1, tzinfo=UTC)
    with Client(api=server.api, api_key="") as client:
        client.project(name="P").create()
        for name in ("broken", "fine"):
            with Flow(name, schedule=Schedule(clocks=[IntervalClock(timedelta(hours=1), start_date=start)])) as flow:
                noop()
            client.register(flow, project_name="P")
    db = server.app.state.db
    with db.write() as s:  # metadata stored before registration validated it
        row = s.query(FlowRow).filter_by(name="broken").one()
        s.execute(update(FlowRow).where(FlowRow.id == row.id).values(serialized={**row.serialized, "parameters": [7]}))
    now = start + timedelta(minutes=30)
    with caplog.at_level("ERROR", logger="headwater.server.scheduler"):
        assert schedule_flow_runs(db, now=now, max_runs=3) == 3  # "fine" is scheduled
        assert schedule_flow_runs(db, now=now + timedelta(hours=1), max_runs=3) == 1
    reports = [r for r in caplog.records if "broken" in r.getMessage()]
    assert len(reports) == 1 and "Register it again" in reports[0].getMessage()
    err = error(server, 'mutation { create_flow_run(input: {flow_name: "broken", project_name: "P"}) { id } }')
    assert err["extensions"]["code"] == "BAD_INPUT" and "malformed stored metadata" in err["message"]


# --- #14/#15 schema-level validation: the same answers on SQLite and PostgreSQL -------------------------


PROBES: list[tuple[str, str, dict[str, Any], str]] = [
    ("NUL in a project name", 'mutation($n: String!) { create_project(name: $n) { id } }', {"n": "a\x00b"}, "'name'"),
    ("NUL in a key", 'mutation($k: String!) { set_key_value(key: $k, value: 1) { key } }', {"k": "k\x00"}, "'key'"),
    ("NUL in a KV value", 'mutation($v: JSON) { set_key_value(key: "k", value: $v) { key } }', {"v": {"a": "x\x00"}}, "value.a"),
    ("NUL in parameters", "RUN", {"i": {"parameters": {"x": "\x00"}}}, "input.parameters.x"),
    ("NUL in a run name", "RUN", {"i": {"run_name": "r\x00"}}, "input.run_name"),
    ("a 300-character run name", "RUN", {"i": {"run_name": "r" * 300}}, "input.run_name"),
    ("a 300-character label", "RUN", {"i": {"labels": ["l" * 300]}}, "input.labels[0]"),
    ("a 300-character idempotency key", "RUN", {"i": {"idempotency_key": "k" * 300}}, "input.idempotency_key"),
    ("a year-1 date", "RUN", {"i": {"scheduled_start_time": "0001-01-01T00:00:00+14:00"}}, "input.scheduled_start_time"),
    ("a year-9999 date", "RUN", {"i": {"scheduled_start_time": "9999-12-31T23:59:59-14:00"}}, "input.scheduled_start_time"),
    ("an impossible date", "RUN", {"i": {"scheduled_start_time": "2024-02-30T00:00:00+00:00"}}, "$i"),
    ("a negative limit", "{ flow_runs(limit: -1) { id } }", {}, "'limit'"),
    ("a negative nested limit", "{ flow_runs { logs(limit: -5) { id } } }", {}, "'limit'"),
    ("a negative offset", "{ projects(offset: -1) { id } }", {}, "'offset'"),
    ("a negative claim limit", 'mutation { claim_flow_runs(agent_id: "a", limit: -2) { id } }', {}, "'limit'"),
    ("a huge alive_within", '{ explain_flow_run(id: "x", alive_within: 1e300) { state } }', {}, "alive_within"),
    ("set_key_value without value", 'mutation { set_key_value(key: "k") { key } }', {}, "'value'"),
    ("a 300-character agent name", 'mutation($n: String!) { register_agent(name: $n, labels: []) { id } }', {"n": "a" * 300}, "'name'"),
    ("NUL in a task slug", SET_TASK, {"s": [{"flow_run_id": "RUN_ID", "task_slug": "t\x00", "state": {"type": "Running"}}]},
     "s[0].task_slug"),
    ("a map index below -1", SET_TASK, {"s": [{"flow_run_id": "RUN_ID", "task_slug": "t", "map_index": -7,
                                               "state": {"type": "Running"}}]}, "map_index"),
]


@pytest.mark.parametrize("what,query,variables,field", PROBES, ids=[p[0] for p in PROBES])
def test_client_mistakes_get_bad_input_naming_the_field(server: ServerThread, what: str, query: str,
                                                        variables: dict[str, Any], field: str) -> None:
    flow_id = make_flow(server)
    run_id = make_run(server, flow_id)["id"]
    if query == "RUN":
        query = CREATE_RUN
        variables = {"i": {"flow_id": flow_id, **variables["i"]}}
    import json

    variables = json.loads(json.dumps(variables).replace("RUN_ID", run_id))
    err = error(server, query, variables)
    assert err["extensions"]["code"] == "BAD_INPUT", (what, err)
    assert field in err["message"], (what, err)
    assert run_count(server) == 1  # nothing was written


def test_unknown_operation_name_is_bad_input(server: ServerThread) -> None:
    response = HTTP.post(server.api, json={"query": "query A { hello }", "operationName": "B"})
    assert response.status_code == 200
    err = response.json()["errors"][0]
    assert err["extensions"]["code"] == "BAD_INPUT" and "operationName 'B'" in err["message"]


def test_nul_in_logs_and_state_messages_is_kept_visible_on_every_database(server: ServerThread) -> None:
    run = make_run(server, make_flow(server))["id"]
    written = data(server, "mutation($l: [LogInput!]!) { write_logs(logs: $l) }",
                   {"l": [{"flow_run_id": run, "message": "before\x00after", "name": "n\x00"}]})
    assert written["write_logs"] == 1
    data(server, SET_FLOW, {"s": [{"flow_run_id": run, "state": {"type": "Running", "message": "bad\x00byte"}}]})
    logs = data(server, 'query($r: String!) { logs(flow_run_id: $r) { message name } }', {"r": run})["logs"]
    assert logs == [{"message": "before\ufffdafter", "name": "n\ufffd"}]
    state = data(server, 'query($r: String!) { flow_run(id: $r) { state { message } } }', {"r": run})["flow_run"]["state"]
    assert state["message"] == "bad\ufffdbyte"
