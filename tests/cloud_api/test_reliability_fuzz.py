"""Issue 10: a bounded schemathesis fuzz of the GraphQL API on SQLite and PostgreSQL — 0 HTTP 5xx, 0 INTERNAL.

Every query and mutation of the schema is fuzzed (schemathesis generates documents and arguments
from the schema's introspection, including NUL characters, extreme numbers and nulls), against a
server with some data in it. About 2 000 requests in all: ``FUZZ_EXAMPLES`` per operation and database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from graphql import get_introspection_query
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes

from headwater_cloud_api.server.run import ServerThread

FUZZ_EXAMPLES = int(os.environ.get("HEADWATER_FUZZ_EXAMPLES", "26"))
"""Examples per operation and database (39 operations x 2 databases x 26 = 2 028 requests)."""


def _introspection() -> dict[str, Any]:
    from headwater_cloud_api.server.schema import schema

    result = schema.execute_sync(get_introspection_query())
    assert result.errors is None, result.errors
    return result.data  # type: ignore[return-value]


def _node(value: Any) -> Any:
    """A GraphQL literal for a JSON-like Python value."""
    import graphql

    if value is None:
        return nodes.Null
    if isinstance(value, bool):
        return nodes.Boolean(value)
    if isinstance(value, int):
        return nodes.Int(value)
    if isinstance(value, float):
        return nodes.Float(value)
    if isinstance(value, str):
        return nodes.String(value)
    if isinstance(value, list):
        return nodes.List([_node(v) for v in value])
    return nodes.Object([graphql.ObjectFieldNode(name=graphql.NameNode(value=k), value=_node(v)) for k, v in value.items()])


_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**31), 2**31 - 1), st.text(max_size=12),
                  st.floats(allow_nan=False, allow_infinity=False), st.floats(min_value=1e300))
_names = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)
_json = st.recursive(_leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_names, inner, max_size=3), max_leaves=8)
schemathesis.graphql.scalar("JSON", _json.map(_node))
schemathesis.graphql.scalar("DateTime", st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()), st.text(max_size=25),
    st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2024-02-30T00:00:00Z"]),
).map(nodes.String))

SCHEMA = schemathesis.graphql.from_dict(_introspection())


def _seed(server: ServerThread) -> None:
    from headwater_cloud_api.server.services import flows, projects
    from headwater_cloud_api.server.services import runs as run_service

    flow_meta = {"name": "etl", "tasks": [], "edges": [], "parameters": [{"name": "x", "default": 1, "required": False}],
                 "run_config": {"type": "LocalRun", "labels": []}, "schedule": None, "storage": None}
    with server.app.state.db.write() as s:
        projects.create_project(s, "P", None)
        flow, _ = flows.create_flow(s, serialized=flow_meta, project_name="P")
        for i in range(3):
            run = run_service.create_flow_run(s, flow_id=flow.id, parameters={"x": i})
            run_service.set_task_run_states(s, [run_service.TaskStateWrite(run.id, "Running", "t")])
            run_service.write_logs(s, [{"flow_run_id": run.id, "message": f"log {i}"}])


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fuzz_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'api.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    with ServerThread(database_url=url, scheduler=False, reaper=False) as srv:
        _seed(srv)
        yield srv


COUNTS = {"requests": 0, "5xx": 0, "internal": 0}


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Iterator[None]:
    """Prints how many requests were fuzzed (visible with ``pytest -s``)."""
    yield
    print(f"\nGraphQL fuzz: {COUNTS['requests']} requests, {COUNTS['5xx']} HTTP 5xx, {COUNTS['internal']} INTERNAL")


@pytest.mark.slow
@SCHEMA.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_get_no_5xx_and_no_internal_error(case: Any, fuzz_server: ServerThread) -> None:
    response = case.call(base_url=fuzz_server.api)
    COUNTS["requests"] += 1
    assert response.status_code < 500, (case.body, response.text[:500])
    body = response.json()
    internal = [e for e in body.get("errors") or [] if (e.get("extensions") or {}).get("code") == "INTERNAL"]
    assert not internal, (case.body, internal)
