"""Issue 10 #8/#9: query depth and cost limits, request deadlines, /health under saturation, prompt shutdown, bounded cache."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_helpers import ServerProcess
from headwater_cloud_api.server.run import ServerThread

HTTP = httpx.Client(timeout=60)
FLOW = {"name": "etl", "tasks": [], "edges": [], "parameters": [], "run_config": None, "schedule": None, "storage": None}


def post(url: str, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
    response = HTTP.post(url, json={"query": query, "variables": variables or {}})
    assert response.status_code != 500, response.text
    return response


def seed(api: str, runs: int = 50) -> None:
    post(api, 'mutation { create_project(name: "P") { id } }')
    flow = post(api, "mutation($i: CreateFlowInput!) { create_flow(input: $i) { id } }",
                {"i": {"serialized": FLOW, "project_name": "P"}}).json()["data"]["create_flow"]["id"]
    for _ in range(runs):
        post(api, "mutation($i: CreateFlowRunInput!) { create_flow_run(input: $i) { id } }", {"i": {"flow_id": flow}})


def seed_db(server: ServerThread, runs: int) -> None:
    """The same data, written straight to the database (the server under test answers too little to seed it)."""
    from headwater_cloud_api.server.services import flows, projects
    from headwater_cloud_api.server.services import runs as run_service

    with server.app.state.db.write() as s:
        projects.create_project(s, "P", None)
        flow, _ = flows.create_flow(s, serialized=FLOW, project_name="P")
        for _ in range(runs):
            run_service.create_flow_run(s, flow_id=flow.id)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory):
    with ServerThread(database_url=f"sqlite:///{tmp_path_factory.mktemp('limits') / 'api.db'}", scheduler=False,
                      reaper=False) as s:
        seed(s.api, 5)
        yield s


def test_deep_queries_are_refused_before_running(srv: ServerThread) -> None:
    query = "{ flows { " + "project { flows { " * 8 + "id" + " } }" * 8 + " } }"
    err = post(srv.api, query).json()["errors"][0]
    assert err["extensions"]["code"] == "QUERY_TOO_COMPLEX" and "nested" in err["message"]


def test_costly_queries_are_refused_before_running(srv: ServerThread) -> None:
    query = "{ flow_runs(limit: 1000) { flow { project { flows { project { flows { project { flows { id } } } } } } } } }"
    err = post(srv.api, query).json()["errors"][0]
    assert err["extensions"]["code"] == "QUERY_TOO_COMPLEX" and "objects" in err["message"]
    aliases = "{ " + " ".join(f"a{i}: flow_runs(limit: 1000) {{ task_runs {{ states {{ type }} }} }}" for i in range(20)) + " }"
    assert post(srv.api, aliases).json()["errors"][0]["extensions"]["code"] == "QUERY_TOO_COMPLEX"


def test_ordinary_queries_pass(srv: ServerThread) -> None:
    for query in ("{ flow_runs(limit: 100) { id state { type } task_runs { task_slug states { type } } logs(limit: 20) { message } } }",
                  "{ projects { flows { name project { name } } } }",
                  "{ __schema { types { name fields { name type { name kind ofType { name kind ofType { name kind "
                  "ofType { name kind ofType { name } } } } } } } } }"):
        body = post(srv.api, query).json()
        assert "errors" not in body, body


def test_a_request_past_its_deadline_is_stopped(tmp_path: Path) -> None:
    with ServerThread(database_url=f"sqlite:///{tmp_path / 'api.db'}", scheduler=False, reaper=False,
                      request_timeout=0.05) as s:
        seed_db(s, 40)
        query = "{ " + " ".join(f"a{i}: flow_runs(limit: 40) {{ flow {{ project {{ flows {{ project {{ name }} }} }} }} }}"
                                for i in range(20)) + " }"
        response = post(s.api, query)
        body = response.json()
        assert body["errors"][0]["extensions"]["code"] == "TIMEOUT", body
        assert "limit" in body["errors"][0]["message"]


def test_health_reports_a_saturated_api_and_recovers(tmp_path: Path) -> None:
    with ServerThread(database_url=f"sqlite:///{tmp_path / 'api.db'}", scheduler=False, reaper=False, graphql_workers=1,
                      request_timeout=30) as s:
        assert HTTP.get(s.url + "/health").json()["status"] == "ok"
        lock = s.app.state.db._write_lock
        lock.acquire()  # every mutation now waits for SQLite's writer: the one worker is busy, the next request queues
        answers: list[int] = []
        def create(name: str) -> None:
            answers.append(post(s.api, f'mutation {{ create_project(name: "{name}") {{ id }} }}').status_code)

        threads = [threading.Thread(target=create, args=(name,)) for name in ("a", "b")]
        try:
            for t in threads:
                t.start()
            from agent_helpers import wait_for

            def saturated() -> bool:
                health = HTTP.get(s.url + "/health")
                return health.status_code == 503 and health.json()["status"] == "saturated"

            wait_for(saturated, 30, 0.05, what="/health to report saturation")
            assert "waiting" in HTTP.get(s.url + "/health").json()["problem"]
        finally:
            lock.release()
        for t in threads:
            t.join(60)
        assert answers == [200, 200]
        assert HTTP.get(s.url + "/health").json()["status"] == "ok"


def test_sigterm_stops_a_busy_server_promptly(tmp_path: Path) -> None:
    server = ServerProcess(f"sqlite:///{tmp_path / 'busy.db'}", tmp_path).start()
    try:
        seed(server.api, 60)
        query = "{ " + " ".join(f"a{i}: flow_runs(limit: 60) {{ flow {{ project {{ flows {{ project {{ name }} }} }} }} }}"
                                for i in range(25)) + " }"
        results: list[Any] = []

        def slow() -> None:
            try:
                results.append(httpx.post(server.api, json={"query": query}, timeout=120).json())
            except httpx.HTTPError as exc:
                results.append(exc)

        busy = [threading.Thread(target=slow) for _ in range(4)]
        for t in busy:
            t.start()
        threading.Event().wait(1.0)
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=20) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after its shutdown
        # (without the fix, uvicorn waits for every running request to finish: wait() times out)
        for t in busy:
            t.join(30)
    finally:
        server.stop()


def test_the_query_cache_is_bounded_by_bytes(srv: ServerThread) -> None:
    from headwater_cloud_api.server.schema.cache import MAX_CACHE_BYTES, MAX_CACHED_QUERY_BYTES, cache_size

    filler = " " * 8000  # valid, distinct, large documents (whitespace is insignificant in GraphQL)
    for i in range(400):
        assert "errors" not in post(srv.api, "{ hello" + filler + f"a{i}: hello }}").json()
    documents, size = cache_size()
    assert size <= MAX_CACHE_BYTES and documents <= MAX_CACHE_BYTES // 8000 + 1
    huge = "{ hello" + " " * (MAX_CACHED_QUERY_BYTES + 1) + "}"
    post(srv.api, huge)
    assert cache_size()[1] <= MAX_CACHE_BYTES
    from headwater_cloud_api.server.schema import cache

    assert huge not in cache._documents
    again = "{ projects { name } }"
    post(srv.api, again)
    assert again in cache._documents  # the small documents clients repeat are still cached
