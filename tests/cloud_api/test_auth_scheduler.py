"""API keys (401 without a valid key, health stays open) and the scheduler (bounded, idempotent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from click.testing import CliRunner

from headwater import Flow, task
from headwater.cli.main import cli, load_plugin_commands
from headwater.client import Client
from headwater.schedules import IntervalClock, Schedule
from headwater_cloud_api.client.transport import AuthenticationError
from headwater_cloud_api.server.db.session import Database
from headwater_cloud_api.server.run import ServerThread
from headwater_cloud_api.server.services.scheduler import schedule_flow_runs


def test_api_keys_from_the_cli_lock_the_server(tmp_path, sqlite_server):
    url = sqlite_server.app.state.db.url
    load_plugin_commands()
    open_client = Client(api=sqlite_server.api, api_key="")
    open_client.project(name="before").create()  # no keys yet: no auth on the embedded server
    result = CliRunner().invoke(cli, ["server", "api-key", "create", "ci", "--database-url", url])
    assert result.exit_code == 0, result.output
    key = result.output.splitlines()[0]
    assert key.startswith("hw_") and len(key) > 40
    listing = CliRunner().invoke(cli, ["server", "api-key", "list", "--database-url", url]).output
    assert "ci" in listing and key not in listing
    assert httpx.get(sqlite_server.url + "/health").status_code == 200
    for headers in ({}, {"Authorization": "Bearer hw_wrong"}, {"Authorization": key}):
        response = httpx.post(sqlite_server.api, json={"query": "{ projects { name } }"}, headers=headers)
        assert response.status_code == 401 and response.json()["data"] is None
    with pytest.raises(AuthenticationError, match="requires an API key"):
        open_client.graphql("{ projects { name } }")
    authed = Client(api=sqlite_server.api, api_key=key)
    assert authed.graphql("{ projects { name } }") == {"projects": [{"name": "before"}]}
    db = Database(url)
    try:
        with db.read() as s:
            from sqlalchemy import text

            stored = s.execute(text("select key_hash from api_key")).scalars().all()
        assert stored and key not in stored
    finally:
        db.dispose()
    # revoking the last key would silently turn auth off: refused unless asked for explicitly (issue 10 #11)
    refused = CliRunner().invoke(cli, ["server", "api-key", "revoke", "ci", "--database-url", url])
    assert refused.exit_code != 0 and "last API key" in refused.output and "--disable-auth" in refused.output
    with pytest.raises(AuthenticationError):
        open_client.graphql("{ projects { name } }")
    revoked = CliRunner().invoke(cli, ["server", "api-key", "revoke", "ci", "--disable-auth", "--database-url", url])
    assert revoked.exit_code == 0 and "authentication is now off" in revoked.output
    assert open_client.graphql("{ projects { name } }")["projects"] == [{"name": "before"}]


def test_auth_flag_requires_a_key_even_without_keys(tmp_path):
    with ServerThread(database_url=f"sqlite:///{tmp_path / 'a.db'}", scheduler=False, auth=True) as srv:
        assert httpx.post(srv.api, json={"query": "{ hello }"}).status_code == 401


@task
def noop():
    return 1


def test_scheduler_creates_a_bounded_number_of_runs_idempotently(server, database_url):
    client = Client(api=server.api, api_key="")
    client.project(name="P").create()
    start = datetime(2030, 1, 1, tzinfo=UTC)
    with Flow("hourly", schedule=Schedule(clocks=[IntervalClock(timedelta(hours=1), start_date=start)])) as flow:
        noop()
    client.register(flow, project_name="P")
    now = start + timedelta(minutes=30)
    db = Database(database_url)
    try:
        assert schedule_flow_runs(db, now=now, max_runs=5) == 5
        assert schedule_flow_runs(db, now=now, max_runs=5) == 0  # a restart or a second server adds nothing
        assert schedule_flow_runs(db, now=now + timedelta(hours=1), max_runs=5) == 1
        second = Database(database_url)  # another "server" on the same database
        try:
            assert schedule_flow_runs(second, now=now + timedelta(hours=1), max_runs=5) == 0
        finally:
            second.dispose()
    finally:
        db.dispose()
    runs = client.graphql('{ flow_runs(flow_name: "hourly", order_by: "scheduled_start_time") { scheduled_start_time auto_scheduled state { type } } }')["flow_runs"]
    times = [datetime.fromisoformat(r["scheduled_start_time"]) for r in runs]
    assert times == [start + timedelta(hours=h) for h in range(1, 7)]
    assert all(r["auto_scheduled"] and r["state"]["type"] == "Scheduled" for r in runs)
    client.flow(name="hourly", project="P").set_schedule_active(False)
    assert client.graphql('{ flow_runs(flow_name: "hourly") { id } }')["flow_runs"] == []
