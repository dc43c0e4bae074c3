"""Logs paged by cursor (service and GraphQL ``log_page``; the offset ``logs`` field still works), the Run form's
typed parameters, restart-from-failed and the GraphQL explorer route — against an in-process server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from headwater.client import Client
from headwater_cloud_api.server.errors import BadInput
from headwater_cloud_api.server.run import ServerThread
from headwater_cloud_api.ui import run_url, ui_base_url
from headwater_cloud_api.ui.data import parameter_fields
from headwater_cloud_api.ui.routes import parse_parameters

FLOW = {"name": "f", "tasks": [{"slug": "t", "name": "t"}], "edges": [],
        "parameters": [{"name": "n", "default": 3, "required": False}, {"name": "ratio", "default": 0.5, "required": False},
                       {"name": "on", "default": False, "required": False}, {"name": "tags", "default": ["a"], "required": False},
                       {"name": "who", "default": "me", "required": False}, {"name": "anything", "default": None, "required": True}]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    db = tmp_path_factory.mktemp("ui-logs") / "api.db"
    with ServerThread(database_url=f"sqlite:///{db}", scheduler=False, reaper=False) as srv:
        yield srv


@pytest.fixture(scope="module")
def run_id(server: ServerThread) -> str:
    with Client(api=server.api, api_key="") as c:
        c.project(name="p").create()
        flow_id = c.graphql("mutation($s: JSON!) { create_flow(input: {serialized: $s, project_name: \"p\"}) { id } }",
                            {"s": FLOW})["create_flow"]["id"]
        rid = c.graphql("mutation($f: String!) { create_flow_run(input: {flow_id: $f, parameters: {anything: 1}}) { id } }",
                        {"f": flow_id})["create_flow_run"]["id"]
        logs = [{"flow_run_id": rid, "level": "ERROR" if i % 10 == 0 else "INFO", "name": "t", "message": f"record {i}"}
                for i in range(450)]
        c.graphql("mutation($l: [LogInput!]!) { write_logs(logs: $l) }", {"l": logs})
        return str(rid)


PAGE = ("query($id: String!, $a: String, $b: String, $lv: [String!], $q: String) { log_page(flow_run_id: $id, after: $a, before: $b,"
        " levels: $lv, search: $q, limit: 200) { logs { message level } start_cursor end_cursor has_more } }")


def test_cursor_pages_cover_every_record_once_and_follow_new_ones(server: ServerThread, run_id: str) -> None:
    with Client(api=server.api, api_key="") as c:
        seen: list[str] = []
        after = None
        while True:
            page = c.graphql(PAGE, {"id": run_id, "a": after})["log_page"]
            seen += [r["message"] for r in page["logs"]]
            after = page["end_cursor"]
            if not page["has_more"]:
                break
        assert seen == [f"record {i}" for i in range(450)]
        empty = c.graphql(PAGE, {"id": run_id, "a": after})["log_page"]
        assert empty["logs"] == [] and empty["end_cursor"] == after  # a follower keeps its place
        c.graphql("mutation($l: [LogInput!]!) { write_logs(logs: $l) }",
                  {"l": [{"flow_run_id": run_id, "level": "INFO", "message": "late arrival"}]})
        assert [r["message"] for r in c.graphql(PAGE, {"id": run_id, "a": after})["log_page"]["logs"]] == ["late arrival"]
        back = c.graphql(PAGE, {"id": run_id, "b": after})["log_page"]
        assert back["logs"][-1]["message"] == "record 448" and back["has_more"]  # before is exclusive
        errors = c.graphql(PAGE, {"id": run_id, "lv": ["error"]})["log_page"]["logs"]
        assert len(errors) == 45 and {r["level"] for r in errors} == {"ERROR"}
        found = c.graphql(PAGE, {"id": run_id, "q": "RECORD 44"})["log_page"]["logs"]
        assert [r["message"] for r in found] == ["record 44"] + [f"record {i}" for i in range(440, 450)]
        old = c.graphql("query($id: String!) { logs(flow_run_id: $id, offset: 440, limit: 5) { message } }", {"id": run_id})["logs"]
        assert [r["message"] for r in old] == [f"record {i}" for i in range(440, 445)]  # the offset field still works
        with pytest.raises(Exception, match="must be a cursor"):
            c.graphql(PAGE, {"id": run_id, "a": "12"})


def test_bad_cursors_are_named() -> None:
    from headwater_cloud_api.server.services.logs import decode_cursor

    assert decode_cursor("l42") == 42 and decode_cursor(None) is None
    with pytest.raises(BadInput, match="'after' must be a cursor"):
        decode_cursor("42")


def test_ui_logs_endpoint_tail_and_level(server: ServerThread, run_id: str) -> None:
    r = httpx.get(f"{server.url}/ui/flow-runs/{run_id}/logs", params={"tail": "1", "level": "ERROR"})
    body = r.json()
    assert r.status_code == 200 and body["count"] == 45 and "record 440" in body["html"] and "record 441" not in body["html"]
    older = httpx.get(f"{server.url}/ui/flow-runs/{run_id}/logs", params={"before": body["start_cursor"]}).json()
    assert older["count"] == 0 and older["has_more"] is False


def test_live_endpoint_answers_204_until_something_changes(server: ServerThread, run_id: str) -> None:
    first = httpx.get(f"{server.url}/ui/flow-runs/{run_id}/live").json()
    assert set(first["parts"]) == {"header", "summary", "dag", "gantt", "tasks", "explain"} and first["state"] == "Scheduled"
    same = httpx.get(f"{server.url}/ui/flow-runs/{run_id}/live", params={"token": first["token"]})
    assert same.status_code == 204
    from headwater_cloud_api.server.services.runs import TaskStateWrite, set_task_run_states

    with server.app.state.db.write() as session:  # the runner's write, through the same service the API uses
        set_task_run_states(session, [TaskStateWrite(run_id, "Running", task_slug="t")])
    changed = httpx.get(f"{server.url}/ui/flow-runs/{run_id}/live", params={"token": first["token"]}).json()
    assert changed["token"] != first["token"] and "Running" in changed["parts"]["tasks"]


def test_parameter_fields_and_typed_parsing() -> None:
    fields = parameter_fields(FLOW)
    assert {f["name"]: f["kind"] for f in fields} == {"n": "int", "ratio": "float", "on": "bool", "tags": "json", "who": "str",
                                                     "anything": "any"}
    values = parse_parameters(fields, {"param:n": "7", "param:ratio": "1.5", "param:on": "on", "param:tags": '["x", 2]',
                                       "param:who": "42", "param:anything": "[1, 2]"})
    assert values == {"n": 7, "ratio": 1.5, "on": True, "tags": ["x", 2], "who": "42", "anything": [1, 2]}
    assert parse_parameters(fields, {"param:anything": "plain text"}) == {"on": False, "anything": "plain text"}
    with pytest.raises(ValueError, match="'n' must be an integer"):
        parse_parameters(fields, {"param:n": "seven", "param:anything": "1"})
    with pytest.raises(ValueError, match="'anything' is required"):
        parse_parameters(fields, {})


def test_graphql_get_serves_the_explorer_to_browsers_and_405_to_clients(server: ServerThread) -> None:
    page = httpx.get(server.api, headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 200 and "GraphQL explorer" in page.text and "unpkg" not in page.text and "cdn" not in page.text.lower()
    for asset in ("graphiql.js", "graphiql.css", "app.css", "app.js"):
        assert httpx.get(f"{server.url}/ui/static/{asset}").status_code == 200
    assert httpx.get(server.api).status_code == 405


def test_ui_urls() -> None:
    assert ui_base_url("http://127.0.0.1:4200/graphql") == "http://127.0.0.1:4200/ui"
    assert run_url("http://h:1/graphql/", "abc") == "http://h:1/ui/flow-runs/abc"


def test_templates_and_static_files_are_package_data() -> None:
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "plugins" / "cloud-api" / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["headwater_cloud_api"]
    assert "ui/templates/*.html" in data and "ui/static/*" in data


def test_finished_run_pages_are_cached_until_the_run_changes(server: ServerThread, run_id: str) -> None:
    from headwater_cloud_api.server.services.runs import (
        StateWrite,
        TaskStateWrite,
        set_flow_run_states,
        set_task_run_states,
    )
    from headwater_cloud_api.ui import data

    db = server.app.state.db
    with db.write() as session:
        set_flow_run_states(session, [StateWrite(run_id, "Cancelled", "stopped for the cache test")])
    first = httpx.get(f"{server.url}/ui/flow-runs/{run_id}").text
    assert run_id in data._RUN_CACHE and "Cancelled" in first
    token = data._RUN_CACHE[run_id][0]
    with db.write() as session:
        set_task_run_states(session, [TaskStateWrite(run_id, "Cancelled", task_slug="t", message="late write")])
    again = httpx.get(f"{server.url}/ui/flow-runs/{run_id}").text
    assert data._RUN_CACHE[run_id][0] != token
    assert 'data-task="t"' in again and "state-Cancelled" in again.split('id="task-t"')[1].split("</tr>")[0]


def test_schedule_switch_on_the_flows_page(server: ServerThread) -> None:
    import re

    from headwater_cloud_api.server.services.flows import create_flow, get_flow

    db = server.app.state.db
    scheduled = {**FLOW, "name": "nightly", "schedule": {"type": "Schedule", "clocks": [{"type": "CronClock", "cron": "0 3 * * *"}]}}
    with db.write() as session:
        flow, _ = create_flow(session, serialized=scheduled, project_name="p")
    with httpx.Client(base_url=server.url, follow_redirects=False) as c:
        page = c.get("/ui/flows", params={"q": "night"}).text
        assert "cron 0 3 * * *" not in page and "● on" in page  # a schedule, active
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        r = c.post(f"/ui/flows/{flow.id}/schedule", data={"csrf": token, "active": "off", "back": "/ui/flows?q=night"})
        assert r.status_code == 303 and r.headers["location"] == "/ui/flows?q=night"
        with db.read() as session:
            from headwater_cloud_api.server.db.models import FlowGroup

            assert session.get(FlowGroup, get_flow(session, id=flow.id).flow_group_id).schedule_active is False
        assert "○ off" in c.get("/ui/flows", params={"q": "night"}).text
        assert "cron 0 3 * * *" in c.get(f"/ui/flows/{flow.id}").text
