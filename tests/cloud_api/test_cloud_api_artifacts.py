"""Task run artifacts (``headwater.backend.artifacts``, Prefect 1's names) stored in the API and listed on the run;
run details; migration 0003 upgrading a 0002 database that holds runs (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from headwater.backend import artifacts
from headwater.client import Client
from headwater.utilities.context import context
from headwater_cloud_api.client.transport import APIClientError
from headwater_cloud_api.server.db.session import Database, current_revision, upgrade_database
from headwater_cloud_api.server.services.artifacts import MAX_ARTIFACT_BYTES

FLOW = {"name": "report", "tasks": [], "edges": [], "parameters": [], "run_config": None, "schedule": None, "storage": None}


@pytest.fixture
def run(sqlite_client: Client, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HEADWATER__CLOUD__API", sqlite_client.api)
    sqlite_client.project(name="P").create()
    sqlite_client.graphql("mutation($i: CreateFlowInput!) { create_flow(input: $i) { id } }", {"i": {"serialized": FLOW, "project_name": "P"}})
    return str(sqlite_client.flow(name="report", project="P").create_run().id)


def test_artifacts_are_created_updated_deleted_and_listed_on_the_run(sqlite_client: Client, run: str) -> None:
    with context(running_with_backend=True, flow_run_id=run, task_slug="publish-1", map_index=None):
        link = artifacts.create_link_artifact("https://example.org/report.html")
        doc = artifacts.create_markdown_artifact("# Report\n\n| a | b |\n|---|---|\n| 1 | 2 |")
    with context(running_with_backend=True, flow_run_id=run, task_slug="publish-1", map_index=2):
        mapped = artifacts.create_markdown_artifact("child 2")
    assert link and doc and mapped and len({link, doc, mapped}) == 3
    listed = sqlite_client.graphql("query($r: String!) { flow_run(id: $r) { artifacts { id kind data text task_slug map_index } } }",
                                   {"r": run})["flow_run"]["artifacts"]
    assert [(a["id"], a["kind"], a["task_slug"], a["map_index"]) for a in listed] == [
        (link, "link", "publish-1", -1), (doc, "markdown", "publish-1", -1), (mapped, "markdown", "publish-1", 2)]
    assert listed[0]["data"] == {"link": "https://example.org/report.html"} and listed[1]["text"].startswith("# Report")
    with context(running_with_backend=True, flow_run_id=run, task_slug="publish-1", map_index=None):
        artifacts.update_link_artifact(link, "https://example.org/v2.html")
        artifacts.update_markdown_artifact(doc, "# Report v2")
        artifacts.delete_artifact(mapped)
        with pytest.raises(ValueError, match="needs the id of an existing artifact"):
            artifacts.update_link_artifact("", "x")
    assert [(a["kind"], a["text"]) for a in sqlite_client.flow_run(id=run).artifacts()] == [
        ("link", "https://example.org/v2.html"), ("markdown", "# Report v2")]
    by_task = sqlite_client.graphql('query($r: String!) { flow_run(id: $r) { artifacts(task_slug: "other") { id } } }', {"r": run})
    assert by_task["flow_run"]["artifacts"] == []


def test_outside_an_api_run_artifacts_do_nothing(sqlite_client: Client, run: str) -> None:
    assert artifacts.create_link_artifact("https://example.org") is None
    assert artifacts.create_markdown_artifact("# local run") is None
    assert artifacts.update_markdown_artifact("some-id", "x") is None and artifacts.delete_artifact("some-id") is None
    with context(flow_run_id=run, task_slug="t"):  # a local flow.run() has a flow run id, but no API behind it
        assert artifacts.create_markdown_artifact("# local run") is None
    assert sqlite_client.flow_run(id=run).artifacts() == []
    with pytest.raises(TypeError, match="takes a string"):
        artifacts.create_markdown_artifact(42)  # type: ignore[arg-type]


def test_the_api_refuses_bad_artifacts_with_clear_errors(sqlite_client: Client, run: str) -> None:
    fr = sqlite_client.flow_run(id=run)
    with pytest.raises(APIClientError, match="Unknown artifact kind 'table'; kinds are: link, markdown"):
        fr.create_artifact("table", "x")
    with pytest.raises(APIClientError, match=f"artifacts hold up to {MAX_ARTIFACT_BYTES} bytes"):
        fr.create_artifact("markdown", "x" * (MAX_ARTIFACT_BYTES + 1))
    with pytest.raises(APIClientError, match="Flow run with id 'nope' does not exist"):
        sqlite_client.flow_run(id="nope").create_artifact("link", "x")
    with pytest.raises(APIClientError, match="Artifact with id 'nope' does not exist"):
        fr.update_artifact("nope", "x")
    assert fr.artifacts() == []


def test_run_details_are_string_mappings_written_by_the_current_attempt(sqlite_client: Client, run: str) -> None:
    fr = sqlite_client.flow_run(id=run)
    assert fr.get("run_details") is None
    assert fr.set_details({"repo": "org/etl", "commit": "a" * 40}, attempt=0) == {"repo": "org/etl", "commit": "a" * 40}
    assert fr.get("run_details") == {"repo": "org/etl", "commit": "a" * 40}
    with pytest.raises(APIClientError, match="superseded") as superseded:
        fr.set_details({"commit": "b" * 40}, attempt=5)
    assert superseded.value.code == "SUPERSEDED"
    with pytest.raises(APIClientError, match="string keys to string values"):
        fr.set_details({"commit": 1})  # type: ignore[dict-item]
    assert fr.get("run_details")["commit"] == "a" * 40


def test_migration_0003_upgrades_a_0002_database_with_runs(database_url: str) -> None:
    db = Database(database_url)
    try:
        upgrade_database(db, "0002")
        assert current_revision(db) == "0002"
        now = datetime.now(UTC).replace(tzinfo=None) if db.dialect == "sqlite" else datetime.now(UTC)
        with db.write_engine.begin() as conn:
            conn.execute(text("INSERT INTO project (id, name, created) VALUES ('p', 'P', :t)"), {"t": now})
            conn.execute(text("INSERT INTO flow_group (id, project_id, name, schedule_active, created) VALUES ('g', 'p', 'f', true, :t)"),
                         {"t": now})
            conn.execute(text("INSERT INTO flow (id, flow_group_id, project_id, name, version, archived, metadata_hash, serialized, "
                              "labels, created) VALUES ('f', 'g', 'p', 'f', 1, false, 'h', '{}', '[]', :t)"), {"t": now})
            conn.execute(text("INSERT INTO flow_run (id, flow_id, flow_group_id, parameters, context, labels, auto_scheduled, "
                              "scheduled_start_time, state, state_timestamp, version, times_resurrected, created, updated, attempt) "
                              "VALUES ('r', 'f', 'g', '{}', '{}', '[]', false, :t, 'Success', :t, 3, 0, :t, :t, 1)"), {"t": now})
        db.upgrade()
        assert current_revision(db) == "0003"
        with db.read_engine.connect() as conn:
            row = conn.execute(text("SELECT state, attempt, parent_flow_run_id, parent_task_slug, run_details FROM flow_run")).one()
        assert tuple(row) == ("Success", 1, None, None, None)  # the old run is intact, with empty run records
        from headwater_cloud_api.server.services import artifacts as service

        with db.write() as s:
            service.create_artifact(s, "r", "link", "https://example.org", task_slug="t")
            service.set_run_details(s, "r", {"commit": "c" * 40})
        with db.read() as s:
            assert [a.data for a in service.list_artifacts(s, "r")] == [{"link": "https://example.org"}]
    finally:
        db.dispose()


def test_flow_run_show_prints_run_details_parent_children_and_artifacts(sqlite_client: Client, run: str) -> None:
    from click.testing import CliRunner

    from headwater_cloud_api.cli.flow_run import flow_run

    child = sqlite_client.flow(name="report", project="P").create_run(parent_flow_run_id=run, parent_task_slug="start-1",
                                                                      parent_map_index=2).id
    sqlite_client.flow_run(id=child).set_details({"repo": "org/etl", "ref": "main", "commit": "c" * 40})
    sqlite_client.flow_run(id=run).create_artifact("markdown", "# Totals\nmore lines", task_slug="sum-1")
    parent_out = CliRunner().invoke(flow_run, ["show", run], catch_exceptions=False).output
    assert f"child: flow run {child} is Scheduled" in parent_out
    assert "artifact (markdown, task sum-1): # Totals" in parent_out and "more lines" not in parent_out
    child_out = CliRunner().invoke(flow_run, ["show", child], catch_exceptions=False).output
    assert f"ran: commit {'c' * 40}, ref main, repo org/etl" in child_out
    assert f"parent: flow run {run} (task start-1[2])" in child_out


def test_the_ui_run_page_links_parent_and_children_and_shows_details_and_artifacts(sqlite_server, sqlite_client: Client,
                                                                                   run: str) -> None:
    import httpx

    child = sqlite_client.flow(name="report", project="P").create_run(parent_flow_run_id=run, parent_task_slug="start-1").id
    sqlite_client.flow_run(id=child).set_details({"commit": "d" * 40, "repo": "org/etl"})
    sqlite_client.flow_run(id=run).create_artifact("link", "https://example.org/r.html", task_slug="publish-1")
    sqlite_client.flow_run(id=run).create_artifact("link", "javascript:alert(1)", task_slug="publish-1")
    sqlite_client.flow_run(id=run).create_artifact("markdown", "<b>bold</b> # notes", task_slug="publish-1")
    base = sqlite_server.api.removesuffix("/graphql")
    parent_page = httpx.get(f"{base}/ui/flow-runs/{run}", timeout=30).text
    assert f'href="/ui/flow-runs/{child}"' in parent_page and "from start-1" in parent_page
    assert '<a href="https://example.org/r.html" rel="noopener noreferrer">' in parent_page
    assert 'href="javascript:' not in parent_page and "&lt;b&gt;bold&lt;/b&gt;" in parent_page  # escaped, never a live link
    child_page = httpx.get(f"{base}/ui/flow-runs/{child}", timeout=30).text
    assert f'href="/ui/flow-runs/{run}"' in child_page and "task start-1" in child_page
    assert "d" * 40 in child_page and "org/etl" in child_page


def test_flow_runs_filter_by_parent(sqlite_client: Client, run: str) -> None:
    flow = sqlite_client.flow(name="report", project="P")
    kids = {flow.create_run(parent_flow_run_id=run, parent_task_slug="t-1", parent_map_index=i).id for i in range(3)}
    flow.create_run()  # not a child
    found = sqlite_client.graphql("query($p: String) { flow_runs(parent_flow_run_id: $p) { id parent_map_index } }",
                                  {"p": run})["flow_runs"]
    assert {r["id"] for r in found} == kids and sorted(r["parent_map_index"] for r in found) == [0, 1, 2]
    with pytest.raises(APIClientError, match="Flow run with id 'nope' does not exist"):
        flow.create_run(parent_flow_run_id="nope", parent_task_slug="t-1")
    with pytest.raises(APIClientError, match="'parent_task_slug' needs 'parent_flow_run_id'"):
        flow.create_run(parent_task_slug="t-1")


def test_parent_fields_are_checked_before_anything_is_written(sqlite_client: Client, run: str) -> None:
    flow = sqlite_client.flow(name="report", project="P")
    with pytest.raises(APIClientError, match="at most 255 characters"):
        flow.create_run(parent_flow_run_id=run, parent_task_slug="t" * 256)
    with pytest.raises(APIClientError, match="'parent_map_index' is -1"):
        flow.create_run(parent_flow_run_id=run, parent_task_slug="t-1", parent_map_index=-2)
    assert sqlite_client.flow_run(id=run).children() == []


def test_artifact_writes_from_a_superseded_attempt_are_refused(sqlite_client: Client, run: str) -> None:
    fr = sqlite_client.flow_run(id=run)
    current = int(fr.get("attempt") or 0)
    kept = fr.create_artifact("markdown", "# from the current attempt", task_slug="t-1", attempt=current)
    for write in (lambda: fr.create_artifact("link", "https://example.org/stale", task_slug="t-1", attempt=current + 3),
                  lambda: fr.update_artifact(kept, "# overwritten by a zombie", attempt=current + 3),
                  lambda: fr.delete_artifact(kept, attempt=current + 3)):
        with pytest.raises(APIClientError, match="superseded") as refused:
            write()
        assert refused.value.code == "SUPERSEDED"
    assert [(a["id"], a["text"]) for a in fr.artifacts()] == [(kept, "# from the current attempt")]  # nothing changed
    with context(flow_run_id=run, task_slug="t-1", map_index=None, running_with_backend=True, flow_run_attempt=current + 3):
        with pytest.raises(APIClientError, match="superseded"):
            artifacts.create_markdown_artifact("# a zombie task's report")
    assert len(fr.artifacts()) == 1
