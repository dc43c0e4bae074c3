"""Prefect 1's ``prefect.tasks.postgres`` as ``headwater.tasks.postgres``, against the real PostgreSQL fixture."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from headwater import Flow, Parameter

pytest.importorskip("psycopg")


@pytest.fixture()
def db(postgres_db_url: str) -> dict[str, object]:
    url = urlsplit(postgres_db_url.replace("postgresql+psycopg://", "postgresql://"))
    return {"db_name": url.path.lstrip("/"), "user": url.username, "host": url.hostname, "port": url.port}


def test_execute_and_fetch_in_a_flow(db: dict[str, object]) -> None:
    from headwater.tasks.postgres import PostgresExecute, PostgresExecuteMany, PostgresFetch

    create = PostgresExecute(name="create", query="CREATE TABLE trips (id int PRIMARY KEY, route text)", commit=True,
                             **db)  # type: ignore[arg-type]
    insert = PostgresExecuteMany(name="insert", query="INSERT INTO trips VALUES (%s, %s)", commit=True,
                                 **db)  # type: ignore[arg-type]
    uncommitted = PostgresExecute(name="uncommitted", query="INSERT INTO trips VALUES (99, 'lost')",
                                  **db)  # type: ignore[arg-type]
    fetch = PostgresFetch(**db)  # type: ignore[arg-type]
    with Flow("postgres") as flow:
        route = Parameter("route", default="10")
        made = create()
        filled = insert(data=[(1, "10"), (2, "10"), (3, "22")], upstream_tasks=[made])
        lost = uncommitted(upstream_tasks=[filled])
        one = fetch(query="SELECT count(*) FROM trips WHERE route = %s", data=(route,), upstream_tasks=[lost])
        many = fetch(query="SELECT id FROM trips ORDER BY id", fetch="many", fetch_count=2, upstream_tasks=[lost])
        every = fetch(query="SELECT id, route FROM trips ORDER BY id", fetch="all", upstream_tasks=[lost])
    state = flow.run()
    assert state.is_successful(), state.message
    assert state.result[one].result == (2,)
    assert state.result[many].result == [(1,), (2,)]
    assert state.result[every].result == [(1, "10"), (2, "10"), (3, "22")]  # the uncommitted row was rolled back


def test_errors_name_the_task_and_the_fix(db: dict[str, object]) -> None:
    from headwater.tasks.postgres import PostgresExecuteMany, PostgresFetch

    with pytest.raises(ValueError, match="a query is required"):
        PostgresFetch(**db).run()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fetch must be"):
        PostgresFetch(query="SELECT 1", fetch="some", **db).run()  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="db_name, user and host"):
        PostgresFetch(query="SELECT 1").run()
    with pytest.raises(ValueError, match="needs data"):
        PostgresExecuteMany(query="SELECT 1", **db).run()  # type: ignore[arg-type]
    wrong = dict(db, db_name="no_such_database")
    with pytest.raises(ConnectionError, match="no_such_database"):
        PostgresFetch(query="SELECT 1", **wrong).run()  # type: ignore[arg-type]
    assert PostgresFetch(query="SELECT %s::int + 1", data=(41,), **db).run() == (42,)  # type: ignore[arg-type]
