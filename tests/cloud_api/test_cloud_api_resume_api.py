"""Restart and resume in the API (GraphQL, on SQLite and PostgreSQL): which task runs a restart resets, the Paused
state machine, resume_flow_run / resume_task_run, and the scheduler resuming pauses whose timeout passed."""

from __future__ import annotations

import time
from typing import Any

import pytest

from headwater.client import Client
from headwater_cloud_api.server.run import ServerThread
from headwater_cloud_api.server.services.scheduler import resume_due_pauses

FLOW = {"name": "etl", "tasks": [{"slug": "a", "name": "a"}, {"slug": "b", "name": "b"}, {"slug": "m", "name": "m"}],
        "edges": [], "parameters": [], "run_config": {"type": "LocalRun", "labels": []}, "schedule": None, "storage": None}
SET_FLOW = "mutation($s: [FlowRunStateInput!]!) { set_flow_run_states(states: $s) { status version state } }"
SET_TASK = "mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { id status version state } }"
TASKS = "query($id: String!) { task_runs(flow_run_id: $id) { id task_slug map_index state { type } states { type } } }"


@pytest.fixture
def api(clean_server: ServerThread) -> Any:
    with Client(api=clean_server.api, api_key="") as client:
        client.project(name="P").create()
        flow_id = client.graphql("mutation($s: JSON!) { create_flow(input: {serialized: $s, project_name: \"P\"}) { id } }",
                                 {"s": FLOW})["create_flow"]["id"]
        client.flow_id = flow_id  # type: ignore[attr-defined]
        yield client


def _run(api: Any, flow_state: str, tasks: dict[tuple[str, int], str], serialized: dict[tuple[str, int], Any] | None = None) -> str:
    run_id = api.graphql("mutation($f: String!) { create_flow_run(input: {flow_id: $f}) { id } }", {"f": api.flow_id})["create_flow_run"]["id"]
    api.graphql(SET_FLOW, {"s": [{"flow_run_id": run_id, "state": {"type": "Running"}}]})
    writes = [{"flow_run_id": run_id, "task_slug": slug, "map_index": index,
               "state": {"type": state, "serialized": (serialized or {}).get((slug, index))}}
              for (slug, index), state in tasks.items()]
    api.graphql(SET_TASK, {"s": writes})
    api.graphql(SET_FLOW, {"s": [{"flow_run_id": run_id, "state": {"type": flow_state}}]})
    return str(run_id)


def _states(api: Any, run_id: str) -> dict[str, str]:
    rows = api.graphql(TASKS, {"id": run_id})["task_runs"]
    return {f"{t['task_slug']}{'' if t['map_index'] < 0 else '[' + str(t['map_index']) + ']'}": t["state"]["type"] for t in rows}


def _error(call: Any) -> Any:
    from headwater_cloud_api.client.transport import APIClientError

    with pytest.raises(APIClientError) as info:
        call()
    return info.value


def test_restart_from_failed_resets_only_what_did_not_succeed(api: Any) -> None:
    run_id = _run(api, "Failed", {("a", -1): "Success", ("m", -1): "Mapped", ("m", 0): "Success", ("m", 1): "Failed",
                                  ("b", -1): "TriggerFailed"})
    state = api.flow_run(id=run_id).restart()
    assert state.name == "Scheduled"
    assert _states(api, run_id) == {"a": "Success", "m": "Mapped", "m[0]": "Success", "m[1]": "Pending", "b": "Pending"}
    info = api.flow_run(id=run_id).query("attempt state { message }")
    assert info["attempt"] == 1 and "2 task run(s) run again" in info["state"]["message"]


def test_restart_all_resets_every_task_run(api: Any) -> None:
    run_id = _run(api, "Success", {("a", -1): "Success", ("b", -1): "Success"})
    api.flow_run(id=run_id).restart(from_failed=False)
    assert set(_states(api, run_id).values()) == {"Pending"}
    history = [s["type"] for s in api.graphql(TASKS, {"id": run_id})["task_runs"][0]["states"]]
    assert history == ["Success", "Pending"]  # the history keeps what happened


def test_resume_sets_paused_task_runs_to_resume_and_schedules_the_paused_flow_run(api: Any) -> None:
    run_id = _run(api, "Paused", {("a", -1): "Success", ("b", -1): "Paused", ("m", 0): "Paused"})
    ids = {t["task_slug"] + str(t["map_index"]): t["id"] for t in api.graphql(TASKS, {"id": run_id})["task_runs"]}
    result = api.graphql("mutation($id: String!) { resume_task_run(id: $id) { status state } }", {"id": ids["m0"]})
    assert result["resume_task_run"] == {"status": "SUCCESS", "state": "Scheduled"}
    assert _states(api, run_id) == {"a": "Success", "b": "Paused", "m[0]": "Resume"}
    assert api.flow_run(id=run_id).query("attempt")["attempt"] == 1
    assert "Resumed 1 paused task run(s) (m[0])" in api.flow_run(id=run_id).query("state { message }")["state"]["message"]
    err = _error(lambda: api.flow_run(id=run_id).resume([ids["a-1"]]))
    assert err.code == "INVALID_TRANSITION" and "a is Success" in str(err)  # only paused task runs are resumed
    assert _error(lambda: api.flow_run(id=run_id).resume(["no-such-task-run"])).code == "NOT_FOUND"


def test_a_paused_run_is_resumed_cancelled_or_failed_never_run_directly(api: Any) -> None:
    run_id = _run(api, "Paused", {("a", -1): "Paused"})
    err = _error(lambda: api.graphql(SET_FLOW, {"s": [{"flow_run_id": run_id, "state": {"type": "Running"}}]}))
    assert err.code == "INVALID_TRANSITION" and "resume_flow_run" in str(err)
    err = _error(lambda: api.graphql(SET_TASK, {"s": [{"flow_run_id": run_id, "task_slug": "a", "state": {"type": "Success"}}]}))
    assert err.code == "INVALID_TRANSITION" and "resume_task_run" in str(err)
    assert _error(lambda: api.flow_run(id=run_id).restart()).code == "INVALID_TRANSITION"  # not finished: resume it
    assert api.flow_run(id=run_id).cancel().name == "Cancelled"
    err = _error(lambda: api.flow_run(id=run_id).resume())
    assert err.code == "INVALID_TRANSITION" and "finished state" in str(err)


def test_resume_without_paused_task_runs_says_so(api: Any) -> None:
    run_id = _run(api, "Paused", {("a", -1): "Success"})
    err = _error(lambda: api.flow_run(id=run_id).resume())
    assert err.code == "BAD_INPUT" and "no paused task run" in str(err)


def test_a_resume_while_the_run_still_runs_leaves_the_flow_run_to_its_runner(api: Any) -> None:
    run_id = _run(api, "Running", {("a", -1): "Paused", ("b", -1): "Running"})
    assert api.flow_run(id=run_id).resume().name == "Running"
    assert _states(api, run_id)["a"] == "Resume"


def test_the_scheduler_resumes_pauses_whose_timeout_passed(api: Any, clean_server: ServerThread) -> None:
    due, later = time.time() - 1, time.time() + 3600
    run_id = _run(api, "Paused", {("a", -1): "Paused", ("b", -1): "Paused", ("m", -1): "Paused"},
                  {("a", -1): {"start_time": due}, ("b", -1): {"start_time": later}})
    db = clean_server.app.state.db
    assert resume_due_pauses(db) == [(run_id, 1)]
    assert _states(api, run_id) == {"a": "Resume", "b": "Paused", "m": "Paused"}  # b's time has not come; m waits for a person
    assert api.flow_run(id=run_id).state.name == "Scheduled"
    assert resume_due_pauses(db) == []  # nothing more is due (and the run is no longer Paused)


def test_resume_records_read_in_one_query_match_the_task_runs_histories(api: Any, clean_server: ServerThread) -> None:
    from headwater_cloud_api.execution.task_states import fetch_records
    from headwater_cloud_api.server.services.runs import resume_records

    run_id = _run(api, "Failed", {("a", -1): "Success", ("m", -1): "Mapped", ("m", 0): "Success", ("m", 1): "Failed",
                                  ("b", -1): "TriggerFailed"},
                  {("a", -1): {"location": "/results/a.pkl"}, ("m", 0): {"location": "/results/m-0.pkl"}})
    api.flow_run(id=run_id).restart()
    db = clean_server.app.state.db

    class OneQuery:
        """Serves ``resume_states`` from the service (as a server with that query field does)."""

        def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
            assert "resume_states" in query
            with db.read() as s:
                return {"resume_states": resume_records(s, variables["id"], variables["o"], 1000)}

    def key(r: Any) -> tuple[str, int]:
        return (r.task_slug, r.map_index)

    fast = sorted(fetch_records(OneQuery(), run_id), key=key)
    slow = sorted(fetch_records(api, run_id), key=key)  # this server has no resume_states: task_runs with histories
    assert fast == slow
    by_key = {key(r): r for r in fast}
    assert by_key[("a", -1)].serialized == {"location": "/results/a.pkl"}
    assert (by_key[("m", 1)].state, by_key[("m", 1)].outcome) == ("Pending", "Failed")  # reset by the restart: was Failed
    assert (by_key[("b", -1)].state, by_key[("b", -1)].outcome) == ("Pending", "TriggerFailed")


def test_flow_run_logs_reads_every_record_by_cursor(api: Any, clean_server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from headwater.cli.main import cli, load_plugin_commands

    run_id = _run(api, "Success", {("a", -1): "Success"})
    logs = [{"flow_run_id": run_id, "level": "ERROR" if i % 500 == 7 else "INFO", "name": "headwater.a", "message": f"record {i}"}
            for i in range(2100)]
    for start in range(0, len(logs), 1000):
        api.graphql("mutation($l: [LogInput!]!) { write_logs(logs: $l) }", {"l": logs[start:start + 1000]})
    monkeypatch.setenv("HEADWATER__CLOUD__API", clean_server.api)
    load_plugin_commands()
    out = CliRunner().invoke(cli, ["flow-run", "logs", run_id], catch_exceptions=False).output.splitlines()
    assert len(out) == 2100 and out[0].endswith("record 0") and out[-1].endswith("record 2099")  # three pages, in order
    assert len(CliRunner().invoke(cli, ["flow-run", "logs", run_id, "--limit", "1001"]).output.splitlines()) == 1001
    errors = CliRunner().invoke(cli, ["flow-run", "logs", run_id, "--level", "error"]).output.splitlines()
    assert [line.rsplit(" ", 1)[-1] for line in errors] == ["7", "507", "1007", "1507", "2007"]
    assert len(api.flow_run(id=run_id).all_logs(page_size=300)) == 2100


def test_watch_follows_a_paused_run_by_cursor_and_says_how_to_resume_once() -> None:
    from headwater_cloud_api.cli.run import follow_flow_run

    timeline = ["Running", "Paused", "Paused", "Scheduled", "Running", "Success"]

    class Api:
        def __init__(self) -> None:
            self.cursors: list[str | None] = []

        def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
            assert "log_page" in query and "offset" not in query
            poll = len(self.cursors)
            self.cursors.append(variables["a"])
            states = [{"type": t, "message": None, "timestamp": f"2026-01-01T00:00:0{i}+00:00", "version": i + 1}
                      for i, t in enumerate(timeline[:poll + 1])]
            logs = [{"timestamp": f"2026-01-01T00:00:0{poll}.5+00:00", "level": "INFO", "name": "headwater.t", "message": f"poll {poll}"}]
            return {"flow_run": {"states": states}, "log_page": {"logs": logs, "end_cursor": f"l{poll + 1}", "has_more": False}}

    api = Api()
    output: list[str] = []
    final = follow_flow_run(api, "r", poll_interval=0, echo=output.append)
    assert final.name == "Success"
    assert api.cursors == [None, "l1", "l2", "l3", "l4", "l5"]  # each poll continues after the last record printed
    assert sum("is Paused" in line for line in output) == 1 and "headwater flow-run resume r" in "\n".join(output)
    assert [line.rsplit(" ", 1)[-1] for line in output if "poll" in line] == ["0", "1", "2", "3", "4", "5"]


def test_a_task_run_set_to_resume_directly_gets_its_paused_flow_run_scheduled(api: Any, clean_server: ServerThread) -> None:
    run_id = _run(api, "Paused", {("a", -1): "Paused", ("b", -1): "Success"})
    api.graphql(SET_TASK, {"s": [{"flow_run_id": run_id, "task_slug": "a", "state": {"type": "Resume"}}]})  # Prefect 1's way
    assert api.flow_run(id=run_id).state.name == "Paused"
    assert resume_due_pauses(clean_server.app.state.db) == [(run_id, 0)]
    assert api.flow_run(id=run_id).state.name == "Scheduled"
    assert resume_due_pauses(clean_server.app.state.db) == []
