"""Issue 19/10: the flow-run process's write path — ``write_run_batch`` (one JSON variable, checked in one pass) and fencing.

* ``write_run_batch`` writes the same history as ``set_task_run_states`` + ``write_logs`` (on SQLite
  and PostgreSQL), answers counts and STALE writes, is idempotent by ``write_id``;
* its one-pass check refuses what the typed mutations refuse, as BAD_INPUT naming the path, writing nothing;
* log records and the agent's ``end_flow_run`` are fenced by attempt: a zombie runner's logs are
  refused (and kept on its stderr), a stale agent cannot end a rescheduled run;
* the outbox sends states and logs of a flush in one request.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from headwater.client import Client
from headwater_cloud_api.server.run import ServerThread

HTTP = httpx.Client(timeout=60)
FLOW: dict[str, Any] = {"name": "etl", "tasks": [], "edges": [], "parameters": [], "run_config": {"type": "LocalRun", "labels": []},
        "schedule": None, "storage": None}
BATCH = "mutation($b: JSON!) { write_run_batch(batch: $b) { written logs stale { id status version state } } }"
SET_TASK = "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { status } }"
WRITE_LOGS = "mutation($l: [LogInput!]!) { write_logs(logs: $l) }"
HISTORY = ("query($id: String!) { flow_run(id: $id) { state { type } task_runs { task_slug map_index version state { type message } "
           "states { type message } } } }")
LOGS = "query($id: String!) { logs(flow_run_id: $id, limit: 1000) { level name message timestamp } }"


@pytest.fixture
def server(clean_server: ServerThread) -> ServerThread:
    return clean_server


def post(server: ServerThread, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = HTTP.post(server.api, json={"query": query, "variables": variables or {}})
    assert response.status_code < 500, response.text
    return response.json()


def data(server: ServerThread, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = post(server, query, variables)
    assert not body.get("errors"), body
    return body["data"]


def error(server: ServerThread, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body = post(server, query, variables)
    assert body.get("errors"), body
    assert body["errors"][0]["extensions"]["code"] != "INTERNAL", body
    return body["errors"][0]


def make_run(server: ServerThread, project: str = "P") -> str:
    if not data(server, "{ projects { name } }")["projects"]:
        data(server, f'mutation {{ create_project(name: "{project}") {{ id }} }}')
    flow_id = data(server, "mutation($i: CreateFlowInput!) { create_flow(input: $i) { id } }",
                   {"i": {"serialized": FLOW, "project_name": project}})["create_flow"]["id"]
    return data(server, "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { id } }",
                {"i": {"flow_id": flow_id}})["create_flow_run"]["id"]


def claim(server: ServerThread) -> dict[str, Any]:
    agent = data(server, 'mutation { register_agent(name: "a", labels: []) { id } }')["register_agent"]["id"]
    [run] = data(server, f'mutation {{ claim_flow_runs(agent_id: "{agent}", limit: 10) {{ id attempt }} }}')["claim_flow_runs"]
    return run


def reschedule(server: ServerThread, run_id: str) -> None:
    """What the reaper does when a lease expires: the run becomes Scheduled again as a new attempt."""
    from headwater_cloud_api.server.services.agents import end_flow_run

    with server.app.state.db.write() as s:
        end_flow_run(s, run_id, "Scheduled", "lost (test)", only_if=["Submitted", "Running"])


def states(i: int, kind: str, **extra: Any) -> dict[str, Any]:
    return {"task_slug": f"t-{i}", "map_index": -1, "type": kind, "message": f"{kind} {i}", "write_id": f"w-{kind}-{i}", **extra}


def history(server: ServerThread, run_id: str) -> dict[tuple[str, int], list[tuple[str, str | None]]]:
    runs = data(server, HISTORY, {"id": run_id})["flow_run"]["task_runs"]
    return {(t["task_slug"], t["map_index"]): [(s["type"], s["message"]) for s in t["states"]] for t in runs}


# --- write_run_batch: the same writes as the typed mutations ------------------------------------------------------


def test_a_batch_writes_states_and_logs_in_one_transaction_like_the_typed_mutations(server: ServerThread) -> None:
    batch_run, typed_run = make_run(server), make_run(server)
    ts = "2026-01-02T03:04:05.678901+00:00"
    items = [states(i, "Running") for i in range(5)] + [states(i, "Success") for i in range(5)] + [
        {"task_slug": "m", "map_index": 3, "type": "Failed", "message": "bad\x00byte", "write_id": "w-m3"}]
    logs: list[dict[str, Any]] = [{"level": "info", "name": "headwater.task", "message": "one\x00", "timestamp": ts},
            {"level": "WARNING", "name": None, "message": "two", "timestamp": None}]
    answer = data(server, BATCH, {"b": {"flow_run_id": batch_run, "attempt": None, "states": items, "logs": logs}})["write_run_batch"]
    assert answer == {"written": 11, "logs": 2, "stale": []}
    typed = [{"flow_run_id": typed_run, "task_slug": s["task_slug"], "map_index": s["map_index"], "write_id": "x" + s["write_id"],
              "state": {"type": s["type"], "message": s["message"]}} for s in items]
    data(server, SET_TASK, {"s": typed})
    data(server, WRITE_LOGS, {"l": [{"flow_run_id": typed_run, **{k: v for k, v in lg.items() if v is not None}} for lg in logs]})
    assert history(server, batch_run) == history(server, typed_run)
    assert history(server, batch_run)[("m", 3)] == [("Failed", "bad\ufffdbyte")]
    assert history(server, batch_run)[("t-0", -1)] == [("Running", "Running 0"), ("Success", "Success 0")]
    by_batch = data(server, LOGS, {"id": batch_run})["logs"]
    by_type = data(server, LOGS, {"id": typed_run})["logs"]
    assert [(lg["level"], lg["name"], lg["message"]) for lg in by_batch] == [
        ("INFO", "headwater.task", "one\ufffd"), ("WARNING", None, "two")]
    assert [(lg["level"], lg["name"], lg["message"]) for lg in by_batch] == [(lg["level"], lg["name"], lg["message"]) for lg in by_type]
    assert by_batch[0]["timestamp"].startswith("2026-01-02T03:04:05.678901")


def test_a_retried_batch_is_not_applied_twice_and_stale_writes_are_answered(server: ServerThread) -> None:
    run = make_run(server)
    batch = {"flow_run_id": run, "states": [states(0, "Running"), states(0, "Success"), states(1, "Running")]}
    for _ in range(3):  # the answer was lost: the runner sends the same request again
        assert data(server, BATCH, {"b": batch})["write_run_batch"]["written"] == 3
    assert history(server, run)[("t-0", -1)] == [("Running", "Running 0"), ("Success", "Success 0")]
    answer = data(server, BATCH, {"b": {"flow_run_id": run, "states": [states(1, "Success", version=0, write_id="late")]}})
    assert answer["write_run_batch"]["written"] == 0
    assert [(s["status"], s["version"], s["state"]) for s in answer["write_run_batch"]["stale"]] == [("STALE", 1, "Running")]


def test_a_batch_respects_the_state_machine_and_unknown_runs(server: ServerThread) -> None:
    run = make_run(server)
    data(server, BATCH, {"b": {"flow_run_id": run, "states": [states(0, "Success")]}})
    err = error(server, BATCH, {"b": {"flow_run_id": run, "states": [states(0, "Running", write_id="again")]}})
    assert err["extensions"]["code"] == "INVALID_TRANSITION"
    err = error(server, BATCH, {"b": {"flow_run_id": run, "states": [states(1, "Finished")]}})
    assert err["extensions"]["code"] == "INVALID_TRANSITION" and "abstract" in err["message"]
    err = error(server, BATCH, {"b": {"flow_run_id": "no-such-run", "states": [states(1, "Running")]}})
    assert err["extensions"]["code"] == "NOT_FOUND"
    err = error(server, BATCH, {"b": {"flow_run_id": "no-such-run", "logs": [{"message": "x"}]}})
    assert err["extensions"]["code"] == "NOT_FOUND"
    assert list(history(server, run)) == [("t-0", -1)]


BAD_BATCHES: list[tuple[str, dict[str, Any], str]] = [
    ("not an object", [], "'batch' must be a JSON object"),  # type: ignore[list-item]
    ("an unknown batch field", {"state": []}, "batch' has unknown field(s) 'state'"),
    ("no flow run", {"states": []}, "batch.flow_run_id' is required"),
    ("a negative attempt", {"attempt": -1}, "batch.attempt' must be at least 0"),
    ("a string attempt", {"attempt": "1"}, "batch.attempt' must be an integer"),
    ("states not a list", {"states": {"a": 1}}, "batch.states' must be a list"),
    ("a state not an object", {"states": ["Running"]}, "batch.states[0]' must be a JSON object"),
    ("an unknown state field", {"states": [{"task_slug": "t", "type": "Running", "state": "x"}]}, "batch.states[0]' has unknown field(s) 'state'"),
    ("no task", {"states": [{"type": "Running"}]}, "names its task run by 'task_slug'"),
    ("NUL in a slug", {"states": [{"task_slug": "t\x00", "type": "Running"}]}, "batch.states[0].task_slug' contains a NUL"),
    ("a 300-character slug", {"states": [{"task_slug": "t" * 300, "type": "Running"}]}, "batch.states[0].task_slug' is 300 characters"),
    ("a numeric slug", {"states": [{"task_slug": 5, "type": "Running"}]}, "batch.states[0].task_slug' must be a string"),
    ("a map index below -1", {"states": [{"task_slug": "t", "map_index": -7, "type": "Running"}]}, "map_index' is -1 (not mapped)"),
    ("a boolean map index", {"states": [{"task_slug": "t", "map_index": True, "type": "Running"}]}, "map_index' must be an integer"),
    ("no state type", {"states": [{"task_slug": "t"}]}, "batch.states[0].type' must be a state name"),
    ("an unknown state", {"states": [{"task_slug": "t", "type": "Sleeping"}]}, "Unknown state 'Sleeping'"),
    ("a numeric message", {"states": [{"task_slug": "t", "type": "Running", "message": 3}]}, "batch.states[0].message' must be a string"),
    ("a 65-character write id", {"states": [{"task_slug": "t", "type": "Running", "write_id": "w" * 65}]}, "write_id' is 65 characters"),
    ("a negative version", {"states": [{"task_slug": "t", "type": "Running", "version": -1}]}, "version' must be at least 0"),
    ("serialized not an object", {"states": [{"task_slug": "t", "type": "Running", "serialized": [1]}]}, "serialized' must be a JSON object"),
    ("NUL in serialized", {"states": [{"task_slug": "t", "type": "Running", "serialized": {"a": "\x00"}}]}, "serialized.a' contains a NUL"),
    ("a log without message", {"logs": [{"level": "INFO"}]}, "batch.logs[0].message' is required"),
    ("an unknown log field", {"logs": [{"message": "m", "when": 1}]}, "batch.logs[0]' has unknown field(s) 'when'"),
    ("an unknown level", {"logs": [{"message": "m", "level": "LOUD"}]}, "Unknown log level 'LOUD'"),
    ("a naive timestamp", {"logs": [{"message": "m", "timestamp": "2024-01-01T00:00:00"}]}, "timestamp' must include a time zone"),
    ("a year-1 timestamp", {"logs": [{"message": "m", "timestamp": "0001-01-01T00:00:00+14:00"}]}, "between the years"),
    ("an impossible timestamp", {"logs": [{"message": "m", "timestamp": "2024-02-30T00:00:00+00:00"}]}, "is not an ISO-8601 date-time"),
    ("a long task run id in a log", {"logs": [{"message": "m", "task_run_id": "x" * 40}]}, "task_run_id' is 40 characters"),
    ("too many states", {"states": [{"task_slug": f"t{i}", "type": "Running"} for i in range(5001)]}, "the limit is 5000"),
]


@pytest.mark.parametrize("what,batch,expected", BAD_BATCHES, ids=[b[0] for b in BAD_BATCHES])
def test_the_one_pass_check_refuses_bad_items_naming_the_path_and_writes_nothing(
        server: ServerThread, what: str, batch: Any, expected: str) -> None:
    run = make_run(server)
    if isinstance(batch, dict) and what != "no flow run":
        batch = {"flow_run_id": run, **batch}
    good = {"task_slug": "ok", "type": "Running"}
    if isinstance(batch, dict) and "states" in batch and isinstance(batch["states"], list) and what != "too many states":
        batch["states"] = [good, *batch["states"]]  # a good item first: the whole batch is refused, it too
        expected = expected.replace("states[0]", "states[1]")
    err = error(server, BATCH, {"b": batch})
    assert err["extensions"]["code"] in ("BAD_INPUT", "INVALID_TRANSITION"), (what, err)
    assert expected in err["message"], (what, err["message"])
    assert history(server, run) == {} and data(server, LOGS, {"id": run})["logs"] == []


# --- fencing: logs and the agent's end of a run ---------------------------------------------------------------------


def test_logs_from_a_superseded_attempt_are_refused_through_every_mutation(server: ServerThread) -> None:
    run = make_run(server)
    first = claim(server)
    assert first["attempt"] == 1
    data(server, WRITE_LOGS, {"l": [{"flow_run_id": run, "message": "attempt 1 speaks", "attempt": 1}]})
    reschedule(server, run)
    second = claim(server)
    assert second["attempt"] == 3
    err = error(server, WRITE_LOGS, {"l": [{"flow_run_id": run, "message": "zombie", "attempt": 1}]})
    assert err["extensions"]["code"] == "SUPERSEDED" and "attempt 3" in err["message"]
    err = error(server, BATCH, {"b": {"flow_run_id": run, "attempt": 1, "logs": [{"message": "zombie"}]}})
    assert err["extensions"]["code"] == "SUPERSEDED"
    err = error(server, BATCH, {"b": {"flow_run_id": run, "attempt": 1, "states": [states(0, "Running")], "logs": [{"message": "z"}]}})
    assert err["extensions"]["code"] == "SUPERSEDED"
    # the current attempt (and an operator, with no attempt) still write
    data(server, BATCH, {"b": {"flow_run_id": run, "attempt": 3, "logs": [{"message": "attempt 3 speaks"}]}})
    data(server, WRITE_LOGS, {"l": [{"flow_run_id": run, "message": "operator"}]})
    messages = [lg["message"] for lg in data(server, LOGS, {"id": run})["logs"]]
    assert "zombie" not in messages and "z" not in messages
    assert {"attempt 1 speaks", "attempt 3 speaks", "operator"} <= set(messages)
    assert history(server, run) == {}


def test_a_stale_agent_cannot_end_a_rescheduled_run(server: ServerThread) -> None:
    from headwater_cloud_api.agent.agent import Agent

    run = make_run(server)
    stale = claim(server)
    reschedule(server, run)
    current = claim(server)
    end = ("mutation($r: String!, $a: Int) { end_flow_run(flow_run_id: $r, state: \"Failed\", message: \"process exited\", "
           "task_state: \"Failed\", attempt: $a) { state } }")
    err = error(server, end, {"r": run, "a": stale["attempt"]})
    assert err["extensions"]["code"] == "SUPERSEDED" and f"attempt {current['attempt']}" in err["message"]
    with Client(api=server.api, api_key="") as client:  # the agent's own path: refused quietly, the run left alone
        agent = Agent(client, name="stale")
        agent.api.register()
        agent._end(run, stale["attempt"], "Failed", "The flow-run process exited.", "Failed")
        agent._log_run(run, stale["attempt"], "stale agent's note")
        assert client.graphql(HISTORY, {"id": run})["flow_run"]["state"]["type"] == "Submitted"
        messages = [lg["message"] for lg in data(server, LOGS, {"id": run})["logs"]]
        assert "stale agent's note" not in messages
        # the owner of the current attempt may end it
        agent._end(run, current["attempt"], "Failed", "The flow-run process exited.", "Failed")
        assert client.graphql(HISTORY, {"id": run})["flow_run"]["state"]["type"] == "Failed"


def test_a_zombie_outbox_keeps_its_logs_on_stderr_and_writes_nothing(server: ServerThread, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    from headwater_cloud_api.execution.runner import Outbox

    run = make_run(server)
    claim(server)
    reschedule(server, run)
    claim(server)  # attempt 3 owns the run now
    with Client(api=server.api, api_key="") as client:
        zombie = Outbox(client, run, attempt=1)
        zombie.task_state("t", None, "Running", None)
        zombie.log("INFO", "headwater.task", "written while cut off", time.time())
        zombie.flush()
        assert zombie.lost.is_set() and zombie.pending() == 0
        zombie.log("ERROR", "headwater.task", "written after the refusal", time.time())
        zombie.task_state("t", None, "Success", None)
        assert zombie.pending() == 0 and zombie.superseded_logs == 2
    err = capsys.readouterr().err
    assert "SUPERSEDED" in err or "superseded" in err
    assert "[attempt 1, superseded]" in err and "written while cut off" in err and "written after the refusal" in err
    assert history(server, run) == {}
    assert [lg["message"] for lg in data(server, LOGS, {"id": run})["logs"]] == ["lost (test)"]  # the reschedule's own record


# --- the outbox: one request per flush ---------------------------------------------------------------------------


def test_the_outbox_sends_a_flush_of_states_and_logs_as_one_request(server: ServerThread) -> None:
    import time

    from headwater_cloud_api.execution.runner import WRITE_RUN_BATCH, Outbox

    run = make_run(server)
    with Client(api=server.api, api_key="") as client:
        sent: list[str] = []
        original = client.graphql

        def counting(query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
            sent.append(query)
            return original(query, variables)

        client.graphql = counting  # type: ignore[method-assign]
        outbox = Outbox(client, run, batch_size=1000)
        for i in range(400):
            outbox.task_state(f"t-{i}", None, "Running", None)
            outbox.task_state(f"t-{i}", None, "Success", "done")
            if i % 4 == 0:
                outbox.log("INFO", "headwater.task", f"line {i}", time.time())
        outbox.flush()
        assert sent == [WRITE_RUN_BATCH] and outbox.requests == 1
        assert outbox.sent_states == 800 and outbox.sent_logs == 100
        write_ids = set()
        for item in outbox._states:  # noqa: SLF001 - emptied by the flush
            write_ids.add(item["write_id"])
        assert write_ids == set()
    runs = history(server, run)
    assert len(runs) == 400 and all(h == [("Running", None), ("Success", "done")] for h in runs.values())
    assert len(data(server, LOGS, {"id": run})["logs"]) == 100


def test_outbox_write_ids_are_unique_per_process_and_fit_the_column() -> None:
    from headwater_cloud_api.execution.runner import Outbox
    from headwater_cloud_api.server.validation import MAX_WRITE_ID_LENGTH

    a, b = Outbox(object(), "run"), Outbox(object(), "run")
    for outbox in (a, b):
        for i in range(3):
            outbox.task_state(f"t{i}", None, "Running", None)
    ids = [item["write_id"] for outbox in (a, b) for item in outbox._states]  # noqa: SLF001
    assert len(set(ids)) == 6 and all(len(i) <= MAX_WRITE_ID_LENGTH for i in ids)


def test_outbox_size_bound_is_never_below_the_encoded_size() -> None:
    from headwater_cloud_api.execution.runner import _size

    for message in ["", "plain", '"\\' * 100, "\x01\x02" * 200, "é€😀" * 300, "x" * 5000, "\n" * 1024]:
        for item in ({"task_slug": "s" * 50, "map_index": -1, "type": "Running", "message": message, "write_id": "w" * 30},
                     {"level": "INFO", "name": "headwater.task", "message": message, "timestamp": "2026-01-01T00:00:00+00:00"}):
            encoded = len(json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()) + 1
            assert _size(item) >= encoded, (message[:20], _size(item), encoded)
