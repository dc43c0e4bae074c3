"""Every page renders from the same data on SQLite and on PostgreSQL (the UI's queries: window functions, raw
timestamps, ILIKE search, JSON labels), with task runs and logs written through the API's services."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from headwater_cloud_api.server.run import ServerThread

FLOW = {"name": "both", "tasks": [{"slug": "a", "name": "a"}, {"slug": "m", "name": "m", "mapped": True}],
        "edges": [{"upstream": "a", "downstream": "m", "key": "x", "mapped": True}],
        "parameters": [{"name": "p", "default": 1, "required": False}], "run_config": {"type": "LocalRun", "labels": ["db"]}}


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_every_page_renders(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_db_url")
    from headwater_cloud_api.server.services import runs as run_service
    from headwater_cloud_api.server.services.flows import create_flow
    from headwater_cloud_api.server.services.kv import set_key_value
    from headwater_cloud_api.server.services.projects import create_project

    with ServerThread(database_url=url, scheduler=False, reaper=False) as srv:
        db = srv.app.state.db
        with db.write() as s:
            create_project(s, "p")
        with db.write() as s:
            flow, _ = create_flow(s, serialized=FLOW, project_name="p")
            run = run_service.create_flow_run(s, flow_id=flow.id, parameters={"p": 2})
            waiting = run_service.create_flow_run(s, flow_id=flow.id)
            set_key_value(s, "k", {"v": [1]})
        with db.write() as s:
            run_service.set_flow_run_states(s, [run_service.StateWrite(run.id, "Submitted"), run_service.StateWrite(run.id, "Running")])
        with db.write() as s:
            writes = [run_service.TaskStateWrite(run.id, "Running", task_slug="a"), run_service.TaskStateWrite(run.id, "Success", task_slug="a"),
                      run_service.TaskStateWrite(run.id, "Mapped", task_slug="m")]
            for i in range(30):
                writes += [run_service.TaskStateWrite(run.id, "Running", task_slug="m", map_index=i),
                           run_service.TaskStateWrite(run.id, "Failed" if i == 4 else "Success", task_slug="m", map_index=i)]
            run_service.set_task_run_states(s, writes)
            run_service.write_logs(s, [{"flow_run_id": run.id, "level": "WARNING", "name": "m", "message": f"100% of item_{i}"} for i in range(5)])
        with db.write() as s:
            run_service.set_flow_run_states(s, [run_service.StateWrite(run.id, "Failed", "one child failed")])
        with db.read() as s:
            from sqlalchemy import select

            from headwater_cloud_api.server.db.models import TaskRun

            child = s.scalar(select(TaskRun.id).where(TaskRun.flow_run_id == run.id, TaskRun.map_index == 4))
        with httpx.Client(base_url=srv.url) as c:
            pages = {"/ui/": "both", "/ui/flows?q=BOT": "both", f"/ui/flows/{flow.id}": "param:p", f"/ui/flow-runs/{run.id}": "× 30",
                     f"/ui/flow-runs/{run.id}/tasks/m": "29", f"/ui/task-runs/{child}": "Failed", "/ui/agents": "Waiting in the queue",
                     "/ui/projects": "p", "/ui/flow-runs?state=Failed": run.id, f"/ui/flow-runs?flow={flow.id}&offset=0": waiting.id, "/ui/kv": "&#34;v&#34;", f"/ui/flow-runs/{waiting.id}": "Waiting for an agent"}
            for path, text in pages.items():
                r = c.get(path)
                assert r.status_code == 200, (path, r.text[:2000])
                assert text in r.text, (path, text)
            failed_only = c.get("/ui/flow-runs", params={"state": "Failed"}).text
            assert waiting.id not in failed_only and "1 run in state Failed" in failed_only
            assert c.get("/ui/flow-runs", params={"state": "Nonsense"}).status_code == 400
            found = c.get(f"/ui/flow-runs/{run.id}/logs", params={"q": "100%", "level": "WARNING"}).json()
            assert found["count"] == 5
            literal = c.get(f"/ui/flow-runs/{run.id}/logs", params={"q": "item_3"}).json()
            assert literal["count"] == 1  # '_' and '%' are matched literally
            assert c.get(f"/ui/flow-runs/{run.id}/logs", params={"q": "item%3"}).json()["count"] == 0


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_flows_page_counts_tasks_and_reads_schedules_without_loading_graphs(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'api.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_db_url")
    from sqlalchemy import event

    from headwater_cloud_api.server.services.flows import create_flow
    from headwater_cloud_api.server.services.projects import create_project
    from headwater_cloud_api.ui.data import flows_page

    schedule = {"type": "Schedule", "clocks": [{"type": "IntervalClock", "interval": 60.0}]}
    with ServerThread(database_url=url, scheduler=False, reaper=False) as srv:
        db = srv.app.state.db
        with db.write() as s:
            create_project(s, "counted")
        with db.write() as s:
            create_flow(s, serialized={**FLOW, "name": "big", "tasks": [{"slug": f"t{i}", "name": f"t{i}"} for i in range(500)],
                                       "edges": [], "schedule": schedule}, project_name="counted")
            create_flow(s, serialized={**FLOW, "name": "small"}, project_name="counted")
        statements: list[str] = []
        engine = db.read_engine

        def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", seen)
        try:
            with db.read() as s:
                page = flows_page(s, project="counted")
        finally:
            event.remove(engine, "before_cursor_execute", seen)
    by_name = {f["name"]: f for f in page["flows"]}
    assert by_name["big"]["tasks"] == 500 and by_name["small"]["tasks"] == 2
    assert by_name["big"]["schedule"] == schedule and by_name["small"]["schedule"] is None
    loads = [st for st in statements if re.search(r"(SELECT|,)\s*flow\.serialized\s*(,|FROM\b|AS\b|$)", st)]
    assert not loads, loads  # the whole graph is never selected (only JSON functions of it)
    assert len(statements) <= 4, statements  # and there is no query per flow
