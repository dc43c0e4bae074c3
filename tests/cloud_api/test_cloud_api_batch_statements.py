"""The write path's batch statements (issue 19): large batches, IN lists as one JSON array, PostgreSQL's JSON recordsets and
its savepoint when another transaction creates the same task runs; on SQLite and PostgreSQL, through the services."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from headwater_cloud_api.server.db.models import TaskRun, TaskRunState
from headwater_cloud_api.server.db.session import Database
from headwater_cloud_api.server.services import flows, projects, runs
from headwater_cloud_api.server.services.runs import TaskStateWrite

N = 600  # above the size from which both databases take IN lists as one JSON array


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    database.upgrade()
    try:
        yield database
    finally:
        database.dispose()


def new_run(db: Database) -> str:
    with db.write() as s:
        if not s.scalar(select(func.count()).select_from(projects.Project)):
            projects.create_project(s, "P")
        flow, _ = flows.create_flow(s, serialized={"name": "f", "tasks": [], "edges": []}, project_name="P")
        return runs.create_flow_run(s, flow_id=flow.id).id


def writes(run_id: str, n: int = N, prefix: str = "w") -> list[TaskStateWrite]:
    out = []
    for i in range(n):
        out.append(TaskStateWrite(run_id, "Running", f"t-{i}", -1, write_id=f"{prefix}-{i}-r", attempt=0))
        out.append(TaskStateWrite(run_id, "Success", f"t-{i}", -1, message="done 'quoted' \"too\"", write_id=f"{prefix}-{i}-s",
                                  serialized={"location": f"/results/t-{i}", "nested": {"ok": [1, None]}}, attempt=0))
    return out


def stored(db: Database, run_id: str) -> tuple[list[Any], list[Any]]:
    with db.read() as s:
        task_runs = s.execute(select(TaskRun.task_slug, TaskRun.state, TaskRun.version, TaskRun.state_message,
                                     TaskRun.start_time, TaskRun.end_time).where(TaskRun.flow_run_id == run_id)
                              .order_by(TaskRun.task_slug)).all()
        history = s.execute(select(TaskRunState.version, TaskRunState.state, TaskRunState.serialized, TaskRunState.write_id,
                                   TaskRunState.serialized.is_(None))
                            .join(TaskRun, TaskRun.id == TaskRunState.task_run_id).where(TaskRun.flow_run_id == run_id)
                            .order_by(TaskRunState.write_id)).all()
    return list(task_runs), list(history)


def test_a_large_batch_creates_every_task_run_in_its_final_state_and_a_retry_changes_nothing(db: Database) -> None:
    run_id = new_run(db)
    with db.write() as s:
        results = runs.set_task_run_states(s, writes(run_id))
    assert [r.status for r in results] == ["SUCCESS"] * 2 * N
    assert [(r.version, r.state) for r in results[:2]] == [(1, "Running"), (2, "Success")]
    task_runs, history = stored(db, run_id)
    assert len(task_runs) == N and {(t.state, t.version, t.state_message) for t in task_runs} == {
        ("Success", 2, "done 'quoted' \"too\"")}
    assert all(t.start_time is not None and t.end_time is not None and t.start_time.tzinfo is not None for t in task_runs)
    assert len(history) == 2 * N
    by_id = {h.write_id: h for h in history}
    assert by_id["w-7-s"].serialized == {"location": "/results/t-7", "nested": {"ok": [1, None]}}
    assert by_id["w-7-r"].serialized is None
    assert not any(h[4] for h in history)  # no serialized is SQL NULL: None is JSON null, as the ORM stores it

    with db.write() as s:  # the same request again (a retry): answered from the write ids, nothing applied twice
        again = runs.set_task_run_states(s, writes(run_id))
    assert [r.status for r in again] == ["SUCCESS"] * 2 * N
    assert stored(db, run_id) == (task_runs, history)


def test_existing_task_runs_are_updated_version_checked_in_one_batch(db: Database) -> None:
    run_id = new_run(db)
    with db.write() as s:
        runs.set_task_run_states(s, [TaskStateWrite(run_id, "Running", f"t-{i}", -1, attempt=0) for i in range(N)])
    with db.write() as s:
        results = runs.set_task_run_states(s, [TaskStateWrite(run_id, "Success", f"t-{i}", -1, version=1 if i % 2 else 0,
                                                              attempt=0) for i in range(N)])
    assert [r.status for r in results] == ["STALE", "SUCCESS"] * (N // 2)  # version 0 is stale: the run is at 1
    task_runs, history = stored(db, run_id)
    assert sorted({(t.state, t.version) for t in task_runs}) == [("Running", 1), ("Success", 2)]
    assert len(history) == N + N // 2


@pytest.mark.postgres
def test_task_runs_another_transaction_creates_meanwhile_are_written_after_it(postgres_db_url: str,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: the final-state INSERT finds the task runs created meanwhile; its savepoint is undone and the batch
    runs again against them (Pending insert, read under lock, update), so no write is lost or applied out of order."""
    db = Database(postgres_db_url)
    db.upgrade()
    try:
        run_id = new_run(db)
        original = runs._executemany
        calls: list[str] = []

        def racing(conn: Any, stmt: Any, rows: list[dict[str, Any]]) -> int:
            if stmt is runs._pg_insert_task_runs() and not calls:
                calls.append("raced")  # before this INSERT, another server creates the same task runs and commits
                other = threading.Thread(target=lambda: _write(db, [TaskStateWrite(run_id, "Running", f"t-{i}", -1, write_id=f"o-{i}",
                                                                                    attempt=0) for i in range(10)]))
                other.start()
                other.join()
            return original(conn, stmt, rows)

        monkeypatch.setattr(runs, "_executemany", racing)
        with db.write() as s:
            results = runs.set_task_run_states(s, writes(run_id, 20))
        assert calls == ["raced"]
        assert [r.status for r in results] == ["SUCCESS"] * 40
        task_runs, history = stored(db, run_id)
        assert len(task_runs) == 20 and {t.state for t in task_runs} == {"Success"}
        versions = {t.task_slug: t.version for t in task_runs}
        assert [versions[f"t-{i}"] for i in range(20)] == [3] * 10 + [2] * 10  # the other's Running came first
        assert len(history) == 50
    finally:
        db.dispose()


def _write(db: Database, batch: list[TaskStateWrite]) -> None:
    with db.write() as s:
        runs.set_task_run_states(s, batch)
