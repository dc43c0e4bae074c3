"""Batched, version-checked state writes (``set_states``, ``client.state_batch()``), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from headwater.client import Client
from headwater_cloud_api.client.transport import APIClientError

FLOW = {"name": "etl", "tasks": [], "edges": [], "parameters": [], "run_config": None, "schedule": None, "storage": None}
SET_STATES = (
    "mutation($f: [FlowRunStateInput!], $t: [TaskRunStateInput!]) { set_states(flow_runs: $f, task_runs: $t) "
    "{ written stale { id status version state } flow_runs { id status version state } task_runs { id status version state } } }"
)
HISTORY = (
    "query($id: String!) { flow_run(id: $id) { version state { type } states { type version } "
    "task_runs { id task_slug map_index version state { type message } states { type version } } } }"
)


@pytest.fixture
def api(clean_server):
    with Client(api=clean_server.api, api_key="") as client:
        client.project(name="P").create()
        client.graphql("mutation($i: CreateFlowInput!) { create_flow(input: $i) { id } }",
                       {"i": {"serialized": FLOW, "project_name": "P"}})
        yield client


def new_run(api) -> str:
    return api.flow(name="etl", project="P").create_run().id


def test_one_request_writes_flow_and_task_states_in_order_and_reports_stale_items(api):
    run = new_run(api)
    result = api.graphql(SET_STATES, {
        "f": [{"flow_run_id": run, "version": 1, "state": {"type": "Submitted"}},
              {"flow_run_id": run, "version": 2, "state": {"type": "Running", "message": "go"}},
              {"flow_run_id": run, "version": 2, "state": {"type": "Failed", "message": "a stale writer"}}],
        "t": [{"flow_run_id": run, "task_slug": "a-1", "version": 0, "state": {"type": "Running"}},
              {"flow_run_id": run, "task_slug": "a-1", "version": 1, "state": {"type": "Success", "message": "done"}},
              {"flow_run_id": run, "task_slug": "b-1", "map_index": 3, "state": {"type": "Success"}},
              {"flow_run_id": run, "task_slug": "c-1", "version": 5, "state": {"type": "Success"}}],
    })["set_states"]
    assert [r["status"] for r in result["flow_runs"]] == ["SUCCESS", "SUCCESS", "STALE"]
    assert [r["status"] for r in result["task_runs"]] == ["SUCCESS", "SUCCESS", "SUCCESS", "STALE"]
    assert result["written"] == 5
    assert [(r["state"], r["version"]) for r in result["stale"]] == [("Running", 3), ("Pending", 0)]
    assert result["task_runs"][0]["id"] == result["task_runs"][1]["id"] != result["task_runs"][2]["id"]

    info = api.graphql(HISTORY, {"id": run})["flow_run"]
    assert info["version"] == 3 and info["state"] == {"type": "Running"}
    assert [(s["type"], s["version"]) for s in info["states"]] == [("Scheduled", 1), ("Submitted", 2), ("Running", 3)]
    tasks = {(t["task_slug"], t["map_index"]): t for t in info["task_runs"]}
    assert tasks[("a-1", -1)]["state"] == {"type": "Success", "message": "done"} and tasks[("a-1", -1)]["version"] == 2
    assert [(s["type"], s["version"]) for s in tasks[("a-1", -1)]["states"]] == [("Running", 1), ("Success", 2)]
    assert tasks[("b-1", 3)]["version"] == 1
    # the stale first write still names its task run: it exists, untouched, at version 0
    assert tasks[("c-1", -1)]["version"] == 0 and tasks[("c-1", -1)]["states"] == []

    # a finished task run stays finished (issue 10 #5): the write is refused with a clear error, nothing is written
    with pytest.raises(APIClientError) as refused:
        api.graphql(SET_STATES, {"t": [{"flow_run_id": run, "task_slug": "a-1", "version": 2, "state": {"type": "Failed"}},
                                       {"flow_run_id": run, "task_run_id": tasks[("b-1", 3)]["id"], "version": 1,
                                        "state": {"type": "Failed"}}]})
    assert refused.value.code == "INVALID_TRANSITION" and "is Success, a finished state" in str(refused.value)
    again = api.graphql(HISTORY, {"id": run})["flow_run"]
    assert {t["task_slug"]: t["version"] for t in again["task_runs"]} == {"a-1": 2, "b-1": 1, "c-1": 0}


def test_a_bad_item_anywhere_fails_the_whole_batch_and_writes_nothing(api):
    run = new_run(api)
    good_flow = [{"flow_run_id": run, "version": 1, "state": {"type": "Submitted"}}]
    good_task = [{"flow_run_id": run, "task_slug": "a-1", "state": {"type": "Running"}}]
    bad = [
        ({"f": good_flow, "t": [*good_task, {"flow_run_id": "missing", "task_slug": "a-1", "state": {"type": "Running"}}]}, "nothing was written"),
        ({"f": good_flow, "t": [*good_task, {"flow_run_id": run, "task_slug": "a-1", "state": {"type": "Runing"}}]}, "Unknown state 'Runing'"),
        ({"f": good_flow, "t": [{"flow_run_id": run, "task_run_id": "nope", "state": {"type": "Running"}}]}, "Task run 'nope' does not exist"),
        ({"f": good_flow, "t": [{"flow_run_id": run, "state": {"type": "Running"}}]}, "by 'task_run_id' or by 'task_slug'"),
        ({"f": [{"flow_run_id": run, "state": {"typo": "Running"}}]}, "unknown field 'typo'"),
    ]
    for variables, message in bad:
        with pytest.raises(APIClientError, match=message):
            api.graphql(SET_STATES, variables)
    info = api.graphql(HISTORY, {"id": run})["flow_run"]
    assert info["version"] == 1 and info["task_runs"] == [] and len(info["states"]) == 1


def test_concurrent_writers_of_one_version_exactly_one_wins(api, clean_server):
    """Eight clients race to move one run (and one task run) from each version to the next: one write per version."""
    run = new_run(api)
    rounds, writers = 6, 8
    wins: list[tuple[int, int]] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        with Client(api=clean_server.api, api_key="") as c:
            for _ in range(rounds):
                current = c.graphql("query($id: String!) { flow_run(id: $id) { version } }", {"id": run})["flow_run"]["version"]
                result = c.graphql(SET_STATES, {
                    "f": [{"flow_run_id": run, "version": current, "state": {"type": "Running", "message": f"writer {n}"}}],
                    "t": [{"flow_run_id": run, "task_slug": "t-1", "version": current - 1, "state": {"type": "Running"}}],
                })["set_states"]
                flow_result, task_result = result["flow_runs"][0], result["task_runs"][0]
                assert task_result["status"] == flow_result["status"]  # the two always move together
                if flow_result["status"] == "SUCCESS":
                    with lock:
                        wins.append((current, flow_result["version"]))

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(writer, range(writers)))
    info = api.graphql(HISTORY, {"id": run})["flow_run"]
    versions = [s["version"] for s in info["states"]]
    assert versions == list(range(1, info["version"] + 1))  # no gaps, no duplicates
    assert sorted(w[0] for w in wins) == list(range(1, info["version"]))  # each version was won exactly once
    assert all(new == old + 1 for old, new in wins)
    [task] = info["task_runs"]
    assert task["version"] == info["version"] - 1 == len(task["states"])


def test_the_client_state_batch_sends_one_request(api):
    from headwater import states

    run = new_run(api)
    before = api.transport.request_count
    batch = api.state_batch()
    batch.flow_run(run, "Submitted", version=1).flow_run(run, states.Running(message="go"), version=2)
    for i in range(3):
        batch.task_run(run, "add-1", "Success", version=0, map_index=i, message=f"item {i}")
    batch.flow_run(run, "Success", version=1)  # stale: the run is at version 3 by then
    assert len(batch) == 6
    result = batch.send()
    assert api.transport.request_count == before + 1
    assert result.written == 5 and [r["state"] for r in result.stale] == ["Running"]
    assert len(batch) == 0 and batch.send().written == 0
    assert api.transport.request_count == before + 1  # an empty batch sends nothing
    assert api.flow_run(id=run).state.message == "go"


def test_cached_documents_still_report_errors_for_bad_variables(api):
    run = new_run(api)
    query = "mutation($f: [FlowRunStateInput!]) { set_states(flow_runs: $f) { written } }"
    for _ in range(2):  # the second time the document comes from the cache: same checks
        with pytest.raises(APIClientError, match="Int cannot represent non-integer value: 'one'") as bad_variable:
            api.graphql(query, {"f": [{"flow_run_id": run, "version": "one", "state": {"type": "Running"}}]})
        assert bad_variable.value.code == "BAD_INPUT"  # the client's mistake (issue 10 #15), not an internal error
        with pytest.raises(APIClientError, match="Syntax Error"):
            api.graphql("mutation { set_states(flow_runs: [ { written } }")
    assert api.graphql(query, {"f": [{"flow_run_id": run, "version": 1, "state": {"type": "Running"}}]})["set_states"]["written"] == 1
