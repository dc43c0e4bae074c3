"""Flow runs and task runs: creation, version-checked batched state writes, cancel, logs, queue, agents, heartbeats.

Every state write is ``UPDATE ... WHERE id = :id AND version = :expected`` plus one row in the
append-only history, so a stale writer (one that read an older version) cannot overwrite a newer
state — in one process or across server processes, on SQLite or PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import attrs
from sqlalchemy import JSON, any_, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from headwater.states import (
    ABSTRACT_STATE_NAMES,
    CANCEL_STATE_NAMES,
    FINISHED_STATE_NAMES,
    PAUSED_STATE_NAMES,
    RUNNING_STATE_NAMES,
    SCHEDULED_STATE_NAMES,
    STATE_CLASSES,
    SUCCESS_STATE_NAMES,
    Failed,
    Scheduled,
)
from headwater_cloud_api.server.db.models import (
    Agent,
    Flow,
    FlowRun,
    FlowRunState,
    Log,
    TaskRun,
    TaskRunState,
    new_id,
    utcnow,
)
from headwater_cloud_api.server.errors import MAX_BATCH, APIError, BadInput, NotFound
from headwater_cloud_api.server.services.flows import get_flow, run_fields, validate_run_fields
from headwater_cloud_api.server.validation import RunBatch, strip_nul

__all__ = [
    "STATE_NAMES",
    "FINISHED_STATES",
    "StateWrite",
    "TaskStateWrite",
    "WriteResult",
    "create_flow_run",
    "get_flow_run",
    "set_flow_run_states",
    "set_task_run_states",
    "set_states",
    "cancel_flow_run",
    "restart_flow_run",
    "resume_flow_run",
    "resume_records",
    "check_transition",
    "check_writable_state",
    "InvalidTransition",
    "Superseded",
    "write_logs",
    "write_run_batch",
    "runs_in_queue",
    "register_agent",
    "heartbeat",
]


STATE_NAMES: frozenset[str] = frozenset(STATE_CLASSES)
"""Every state name a run may be set to (the classes of ``headwater.states``)."""
FINISHED_STATES: frozenset[str] = FINISHED_STATE_NAMES | {"Finished"}
RUNNING_STATES: frozenset[str] = RUNNING_STATE_NAMES
SCHEDULED_STATES: frozenset[str] = SCHEDULED_STATE_NAMES
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ABSTRACT_STATES: frozenset[str] = ABSTRACT_STATE_NAMES
"""Base classes: a run is never *in* one of these (they may still be used to filter queries)."""
WRITABLE_STATES: frozenset[str] = STATE_NAMES - ABSTRACT_STATES
FROM_PAUSED_STATES: frozenset[str] = PAUSED_STATE_NAMES | CANCEL_STATE_NAMES | {Scheduled.__name__, Failed.__name__}
"""Where a Paused run may go: resumed (task runs: Resume; flow runs: Scheduled), cancelled, failed (or paused again)."""
KEPT_TASK_STATES: frozenset[str] = SUCCESS_STATE_NAMES
"""Task-run states a restart from failed keeps (a new attempt reuses them and their checkpointed results)."""


class InvalidTransition(APIError):
    """A state write the state machine forbids (a finished run changing state, an abstract state)."""

    code = "INVALID_TRANSITION"


class Superseded(APIError):
    """A write from an attempt of a flow run that has since been rescheduled or restarted (a zombie runner)."""

    code = "SUPERSEDED"


def check_state(name: str) -> str:
    if name not in STATE_NAMES:
        raise BadInput(f"Unknown state {name!r}; states are: {', '.join(sorted(STATE_NAMES))}.")
    return name


def check_writable_state(name: str) -> str:
    """A state a run may be set to: a known, concrete state (not ``State`` or ``Finished``)."""
    check_state(name)
    if name in ABSTRACT_STATES:
        raise InvalidTransition(f"{name!r} is an abstract state; set a concrete one ({', '.join(sorted(WRITABLE_STATES))}).")
    return name


def check_transition(kind: str, run_id: str, current: str, new: str, fresh: bool = False) -> None:
    """The orchestrator's promise: a finished run stays finished (unless restarted: ``fresh``); Cancelling only ends.

    ``kind`` is "Flow run" or "Task run" (for the message).
    """
    if fresh:
        return
    if current in FINISHED_STATES:
        how = ("restart the flow run (the restart_flow_run mutation) to run it again" if kind == "Flow run"
               else "only a new attempt of its flow run (a restart or reschedule) runs it again")
        raise InvalidTransition(f"{kind} {run_id} is {current}, a finished state, and cannot become {new}; {how}.")
    if current == "Cancelling" and new not in FINISHED_STATES and new != "Cancelling":
        raise InvalidTransition(f"{kind} {run_id} is Cancelling; it can only end (Cancelled, or a finished state), not become {new}.")
    if current == "Paused" and new not in FROM_PAUSED_STATES:
        how = "resume_flow_run" if kind == "Flow run" else "resume_task_run"
        raise InvalidTransition(
            f"{kind} {run_id} is Paused and cannot become {new}; a paused run is resumed (the {how} mutation, "
            f"`headwater flow-run resume ID`), cancelled or failed ({', '.join(sorted(FROM_PAUSED_STATES - {'Paused'}))})."
        )


@attrs.define
class StateWrite:
    """One flow-run state write: ``version`` is the version the writer last saw (None: no check)."""

    flow_run_id: str
    state: str
    message: str | None = None
    version: int | None = None
    serialized: dict[str, Any] | None = None
    attempt: int | None = None
    """The writer's attempt (fencing token); None: no check (an operator's write)."""
    write_id: str | None = None
    """The client's id of this write: a retried write with an id already in the history is not applied again."""


@attrs.define
class TaskStateWrite:
    """One task-run state write, naming the task run by id or by ``(flow_run_id, task_slug, map_index)``."""

    flow_run_id: str
    state: str
    task_slug: str | None = None
    map_index: int = -1
    task_run_id: str | None = None
    message: str | None = None
    version: int | None = None
    serialized: dict[str, Any] | None = None
    attempt: int | None = None
    write_id: str | None = None


@attrs.define
class WriteResult:
    """``status``: ``SUCCESS`` (written; ``version`` is the new one) or ``STALE`` (not written; ``version``/``state`` are the current ones)."""

    id: str
    status: str
    version: int
    state: str


def get_flow_run(session: Session, id: str) -> FlowRun:
    row = session.get(FlowRun, id)
    if row is None:
        raise NotFound(f"Flow run with id {id!r} does not exist. List runs with `headwater get flow-runs`.")
    return row


def _check_parameters(flow: Flow, declared_parameters: list[Any] | None, parameters: dict[str, Any]) -> None:
    declared = {p["name"]: p for p in declared_parameters or [] if isinstance(p, dict) and "name" in p}
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise BadInput(
            f"Flow {flow.name!r} (version {flow.version}) has no parameter(s) {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(sorted(declared)) or 'none'}."
        )
    missing = sorted(n for n, p in declared.items() if p.get("required") and n not in parameters)
    if missing:
        raise BadInput(f"Flow {flow.name!r} requires parameter(s) {', '.join(map(repr, missing))}; pass them in 'parameters'.")


def create_flow_run(
    session: Session,
    *,
    flow_id: str | None = None,
    flow_name: str | None = None,
    project_name: str | None = None,
    parameters: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    labels: Sequence[str] | None = None,
    run_name: str | None = None,
    scheduled_start_time: datetime | None = None,
    idempotency_key: str | None = None,
    auto_scheduled: bool = False,
    parent_flow_run_id: str | None = None,
    parent_task_slug: str | None = None,
    parent_map_index: int | None = None,
    run_config: dict[str, Any] | None = None,
) -> FlowRun:
    """A new Scheduled flow run; with an ``idempotency_key`` the existing run with that key is returned.

    ``parent_*`` names the task run that creates this run (flow of flows): the parent must exist.
    ``run_config`` (a serialized run config with its ``type``) replaces the flow's for this run; without
    ``labels`` the run then gets the run config's labels.
    """
    if run_config is not None and not (isinstance(run_config, dict) and isinstance(run_config.get("type"), str)):
        raise BadInput("'run_config' must be a serialized run config: a JSON object with its 'type' (e.g. {\"type\": \"LocalRun\"}).")
    flow = get_flow(session, id=flow_id, name=flow_name, project=project_name)
    if parent_flow_run_id is not None:
        get_flow_run(session, parent_flow_run_id)
    elif parent_task_slug is not None:
        raise BadInput("'parent_task_slug' needs 'parent_flow_run_id' (the flow run the parent task run belongs to).")
    if parent_task_slug is not None and (len(parent_task_slug) > 255 or "\x00" in parent_task_slug):
        raise BadInput("'parent_task_slug' is a task slug: at most 255 characters, no NUL.")
    if parent_map_index is not None and parent_map_index < -1:
        raise BadInput(f"'parent_map_index' is -1 (not mapped) or a child's index from 0, not {parent_map_index}.")
    if flow.archived:
        raise BadInput(f"Flow {flow.name!r} version {flow.version} is archived; create runs of its latest version (by name and project).")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadInput("'parameters' must be a JSON object of parameter name -> value.")
    if context is not None and not isinstance(context, dict):
        raise BadInput("'context' must be a JSON object.")
    if idempotency_key is not None:
        existing = session.scalar(select(FlowRun).where(FlowRun.flow_id == flow.id, FlowRun.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    fields = run_fields(session, flow.id)  # the few fields a run needs, not the whole metadata
    try:
        validate_run_fields(flow.name, fields)
    except BadInput as exc:  # stored before registration validated metadata
        raise BadInput(f"Flow {flow.name!r} version {flow.version} has malformed stored metadata ({exc}); register it again.") from None
    defaults = {p["name"]: p.get("default") for p in fields["parameters"] or [] if not p.get("required")}
    params = dict(parameters or {})
    _check_parameters(flow, fields["parameters"], params)
    now = utcnow()
    values = dict(
        id=new_id(), flow_id=flow.id, flow_group_id=flow.flow_group_id, name=run_name,
        parameters={**defaults, **params}, context=dict(context or {}), attempt=0,
        labels=sorted(set(labels if labels is not None else
                          (run_config.get("labels") or [] if run_config is not None else flow.labels))),
        run_config=run_config if run_config is not None else fields["run_config"], idempotency_key=idempotency_key, auto_scheduled=auto_scheduled,
        scheduled_start_time=scheduled_start_time or now, state="Scheduled", state_message=None, state_timestamp=now, version=1,
        start_time=None, end_time=None, agent_id=None, heartbeat=None, times_resurrected=0, created=now, updated=now,
        parent_flow_run_id=parent_flow_run_id, parent_task_slug=parent_task_slug,
        parent_map_index=parent_map_index if parent_task_slug is not None else None, run_details=None,
    )
    conn = session.connection()  # Core inserts with prebuilt statements: no unit-of-work flush for a hot path
    conn.execute(_INSERT_FLOW_RUN, values)
    conn.execute(_INSERT_FLOW_RUN_STATE, {"flow_run_id": values["id"], "version": 1, "state": "Scheduled", "message": None,
                                          "serialized": None, "timestamp": now})
    return FlowRun(**values)  # transient: the row as inserted (not attached to the session)


def _check_batch(writes: Sequence[Any]) -> None:
    if len(writes) > MAX_BATCH:
        raise BadInput(f"{len(writes)} state writes in one request; the limit is {MAX_BATCH}. Split the batch.")
    for w in writes:
        check_writable_state(w.state)
        if w.message is not None and "\x00" in w.message:  # free text (often an exception's): kept, NUL made visible
            w.message = strip_nul(w.message)


# Prebuilt Core statements (compiled once, cached by SQLAlchemy, run with executemany).
_FR, _FRS, _TR, _TRS = FlowRun.__table__, FlowRunState.__table__, TaskRun.__table__, TaskRunState.__table__


def _update_current(table: Any) -> Any:
    """``UPDATE table SET <current state> WHERE id = :b_id AND version = :b_expected`` (the stale-writer check)."""
    values = {
        "state": bindparam("b_state"), "state_message": bindparam("b_message"), "state_timestamp": bindparam("b_ts"),
        "version": bindparam("b_version"), "start_time": bindparam("b_start"), "end_time": bindparam("b_end"),
        "attempt": bindparam("b_attempt"),
    }
    if "updated" in table.c:
        values["updated"] = bindparam("b_ts")
    return update(table).where(table.c.id == bindparam("b_id"), table.c.version == bindparam("b_expected")).values(**values)


_UPDATE_FLOW_RUN = _update_current(_FR)
_UPDATE_TASK_RUN = _update_current(_TR)
_INSERT_FLOW_RUN_STATE = insert(_FRS)
_INSERT_TASK_RUN_STATE = insert(_TRS)
_INSERT_TASK_RUN = insert(_TR)
_INSERT_FLOW_RUN = insert(_FR)

_RAW: dict[tuple[int, str, tuple[str, ...]], tuple[Any, str, bool, Any, tuple[str, ...], tuple[tuple[int, Any], ...]]] = {}
"""Compiled forms of the hot statements per dialect and parameter keys:
(statement, SQL text, positional, row -> values getter, names, (value index, bind processor) of the converted columns)."""


def _executemany(conn: Any, stmt: Any, rows: list[dict[str, Any]]) -> int:
    """Run ``stmt`` once per row with the DBAPI's ``executemany``, converting values with the columns' own bind processors.

    The same SQL and the same stored values as ``conn.execute(stmt, rows)``, without SQLAlchemy's
    per-row parameter processing (most of a state write's server time on SQLite): a value object
    repeated across rows (the batch's timestamp) is converted once. On PostgreSQL the batch's
    INSERTs and version-checked UPDATEs are one statement over the rows as one JSON document
    (:func:`_pg_json_executemany`). Returns the rows affected.
    """
    from operator import itemgetter

    dialect = conn.dialect
    keys = tuple(rows[0])
    if dialect.name == "postgresql" and (stmt.is_insert or stmt in _PG_UPDATE_COLUMNS):
        return _pg_json_executemany(conn, stmt, keys, rows)
    cache_key = (id(stmt), dialect.name, keys)
    entry = _RAW.get(cache_key)
    if entry is None or entry[0] is not stmt:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        names = tuple(compiled.positiontup if compiled.positional else compiled.binds)
        processors = tuple((i, process) for i, name in enumerate(names)
                           if (process := compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None)
        getter = itemgetter(*names) if len(names) > 1 else (lambda row, _n=names[0]: (row[_n],))
        entry = _RAW[cache_key] = (stmt, compiled.string, bool(compiled.positional), getter, names, processors)
    _, sql, positional, getter, names, processors = entry
    memo: dict[tuple[int, int], Any] = {}
    converted: list[Any] = []
    for row in rows:
        values = list(getter(row))
        for i, process in processors:
            value = values[i]
            key = (i, id(value))
            if key in memo:
                values[i] = memo[key]
            else:
                values[i] = memo[key] = process(value)
        converted.append(tuple(values) if positional else dict(zip(names, values, strict=True)))
    return int(conn.exec_driver_sql(sql, converted).rowcount)


_PG_INSERT_TASK_RUNS: list[Any] = []


def _pg_insert_task_runs() -> Any:
    """``INSERT INTO task_run ... ON CONFLICT (flow_run_id, task_slug, map_index) DO NOTHING`` (built once: it is cached by identity)."""
    if not _PG_INSERT_TASK_RUNS:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        _PG_INSERT_TASK_RUNS.append(pg_insert(_TR).on_conflict_do_nothing(index_elements=["flow_run_id", "task_slug", "map_index"]))
    return _PG_INSERT_TASK_RUNS[0]


_PG_UPDATE_COLUMNS = {
    _UPDATE_FLOW_RUN: {"b_state": "state", "b_message": "state_message", "b_ts": "state_timestamp", "b_version": "version",
                       "b_start": "start_time", "b_end": "end_time", "b_attempt": "attempt"},
    _UPDATE_TASK_RUN: {"b_state": "state", "b_message": "state_message", "b_ts": "state_timestamp", "b_version": "version",
                       "b_start": "start_time", "b_end": "end_time", "b_attempt": "attempt"},
}
"""The version-checked UPDATEs of :func:`_update_current`: bind name -> column (``b_id``/``b_expected`` are the WHERE)."""

_PG_JSON: dict[tuple[int, tuple[str, ...]], tuple[Any, str, tuple[str, ...], tuple[str, ...]]] = {}
"""PostgreSQL batch statements per statement and row keys: (statement, SQL, datetime keys, JSON keys)."""


def _pg_json_sql(stmt: Any, keys: Sequence[str], dialect: Any) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """``INSERT INTO t (...) SELECT ... FROM json_to_recordset(%s::json) AS v(...)`` or ``UPDATE t SET ... FROM json_to_recordset(...)``.

    JSON columns keep a Python None as JSON ``null`` (as SQLAlchemy's JSON type stores it), not SQL NULL.
    """
    from headwater_cloud_api.server.db.models import UTCDateTime

    table = stmt.table
    column_of = {key: key for key in keys}
    if not stmt.is_insert:
        column_of = {"b_id": "id", "b_expected": "version", **_PG_UPDATE_COLUMNS[stmt]}
    types = {key: table.c[column_of[key]].type for key in keys}
    datetimes = tuple(key for key in keys if isinstance(types[key], UTCDateTime))
    jsons = tuple(key for key in keys if isinstance(types[key].dialect_impl(dialect), JSON))
    record = ", ".join(f'"{key}" {types[key].compile(dialect=dialect)}' for key in keys)
    source = f"json_to_recordset(%s::json) AS v({record})"

    def value(key: str) -> str:
        return f"""COALESCE(v."{key}", 'null'::jsonb)""" if key in jsons else f'v."{key}"'

    if stmt.is_insert:
        sql = str(stmt.compile(dialect=dialect, column_keys=list(keys)))
        conflict = sql[sql.index(" ON CONFLICT "):] if " ON CONFLICT " in sql else ""
        columns = ", ".join(f'"{key}"' for key in keys)
        return (f"INSERT INTO {table.name} ({columns}) SELECT {', '.join(value(k) for k in keys)} FROM {source}{conflict}",
                datetimes, jsons)
    sets = [f'"{column_of[key]}" = {value(key)}' for key in keys if key not in ("b_id", "b_expected")]
    if "updated" in table.c:
        sets.append('"updated" = v."b_ts"')
    return (f"UPDATE {table.name} SET {', '.join(sets)} FROM {source} "
            f'WHERE {table.name}.id = v."b_id" AND {table.name}.version = v."b_expected"', datetimes, jsons)


def _pg_json_executemany(conn: Any, stmt: Any, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> int:
    """One statement for the whole batch on PostgreSQL: the rows as one JSON text parameter, expanded by ``json_to_recordset``.

    psycopg's ``executemany`` sends one statement per row, and PostgreSQL arrays (``unnest``) are
    dumped value by value in Python; ``json.dumps`` of the rows is one C call. Datetimes go as ISO
    8601 text with their offset (each distinct value converted once).
    """
    cache_key = (id(stmt), keys)
    entry = _PG_JSON.get(cache_key)
    if entry is None or entry[0] is not stmt:
        entry = _PG_JSON[cache_key] = (stmt, *_pg_json_sql(stmt, keys, conn.dialect))
    _, sql, datetimes, _jsons = entry
    if datetimes:
        memo: dict[int, str | None] = {}
        out = []
        for row in rows:
            row = dict(row)
            for key in datetimes:
                value = row[key]
                text = memo.get(id(value), "")
                if text == "":
                    if value is not None and value.tzinfo is None:
                        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
                    text = memo[id(value)] = None if value is None else value.astimezone(UTC).isoformat()
                row[key] = text
            out.append(row)
        rows = out
    return int(conn.exec_driver_sql(sql, (json.dumps(rows, separators=(",", ":"), ensure_ascii=False),)).rowcount)


@attrs.define
class _Current:
    """A run's current row while a batch is resolved: the version the database has, and what the batch makes of it."""

    read_version: int
    version: int
    state: str
    message: str | None
    start_time: datetime | None
    end_time: datetime | None
    attempt: int = 0
    written: bool = False


def _resolve(
    session: Session, writes: Sequence[Any], ids: Sequence[str], current: dict[str, _Current], update_stmt: Any,
    history_stmt: Any, history_key: str, now: datetime, new_rows: dict[str, dict[str, Any]] | None = None,
    flow_attempts: dict[str, int] | None = None, insert_new: Any = _INSERT_TASK_RUN,
) -> list[WriteResult]:
    """Apply ``writes`` (in order) to ``current`` in memory, then write with one executemany UPDATE and one INSERT.

    A write whose ``version`` is not the run's version at that point of the batch is STALE and not
    written; the rows were read under a write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
    ``FOR UPDATE``), so the in-memory check is the database's. The UPDATE still checks the version read,
    and a mismatch (impossible under the lock) fails the whole transaction rather than writing part of it.
    Runs in ``new_rows`` (task runs this batch creates) are inserted with their final state instead, by
    ``insert_new``; if it inserts fewer rows (PostgreSQL's ``ON CONFLICT DO NOTHING``: another
    transaction created one meanwhile), :class:`_CreatedMeanwhile` is raised before anything else is written.

    Fencing: a write carrying an ``attempt`` other than its flow run's current attempt raises
    :class:`Superseded` (nothing is written). ``flow_attempts`` (task writes) maps flow run id to
    its attempt; a task write from a newer attempt than the task run's may leave a finished state.
    A write whose ``write_id`` is already in the history was applied before: it is answered, not repeated.
    """
    results: list[WriteResult] = []
    history: list[dict[str, Any]] = []
    kind = "Task run" if flow_attempts is not None else "Flow run"
    write_ids = sorted({w.write_id for w in writes if w.write_id is not None})
    seen: set[str] = set()
    if write_ids:
        table = history_stmt.table
        seen = set(session.connection().execute(select(table.c.write_id).where(_in(table.c.write_id, write_ids, session))).scalars())
    for w, run_id in zip(writes, ids, strict=True):
        row = current[run_id]
        if w.write_id is not None and w.write_id in seen:  # a retried request: already applied
            results.append(WriteResult(run_id, "SUCCESS", row.version, row.state))
            continue
        fresh = False
        if w.attempt is not None:
            owner_attempt = row.attempt if flow_attempts is None else flow_attempts[w.flow_run_id]
            if w.attempt != owner_attempt:
                raise Superseded(
                    f"Flow run {w.flow_run_id} is at attempt {owner_attempt}; this write comes from attempt {w.attempt}, which "
                    "was superseded (the run was rescheduled or restarted). Nothing was written; the writing process must stop."
                )
            if flow_attempts is not None and w.attempt > row.attempt:
                fresh, row.attempt = True, w.attempt
        if w.version is not None and w.version != row.version:
            results.append(WriteResult(run_id, "STALE", row.version, row.state))
            continue
        check_transition(kind, run_id, row.state, w.state, fresh)
        if w.write_id is not None:
            seen.add(w.write_id)
        row.version += 1
        row.state, row.message, row.written = w.state, w.message, True
        if w.state in RUNNING_STATES and row.start_time is None:
            row.start_time = now
        if w.state in FINISHED_STATES:
            row.end_time = now
        history.append({history_key: run_id, "version": row.version, "state": w.state, "message": w.message,
                        "serialized": w.serialized, "timestamp": now, "write_id": w.write_id})
        results.append(WriteResult(run_id, "SUCCESS", row.version, w.state))
    conn = session.connection()
    if new_rows:  # one INSERT of the task runs created by this batch, in their final state
        for run_id, values in new_rows.items():
            row = current[run_id]
            values.update(state=row.state, state_message=row.message, version=row.version, start_time=row.start_time,
                          end_time=row.end_time, state_timestamp=now, attempt=row.attempt)
        if _executemany(conn, insert_new, list(new_rows.values())) != len(new_rows):
            raise _CreatedMeanwhile()
    updates = [
        {"b_id": run_id, "b_expected": row.read_version, "b_state": row.state, "b_message": row.message, "b_ts": now,
         "b_version": row.version, "b_start": row.start_time, "b_end": row.end_time, "b_attempt": row.attempt}
        for run_id, row in current.items() if row.written and not (new_rows and run_id in new_rows)
    ]
    if updates:
        done = _executemany(conn, update_stmt, updates)
        if done != len(updates) and done >= 0:
            raise BadInput("A run changed while its states were written; nothing was written. Retry the batch.", "CONFLICT")
    if history:
        _executemany(conn, history_stmt, history)
    return results


def _lock(query: Any, session: Session) -> Any:
    """Rows read to be updated are locked on PostgreSQL, in id order (no deadlock between two batches)."""
    return query.with_for_update() if session.get_bind().dialect.name == "postgresql" else query


_IN_JSON_MIN = {"postgresql": 8, "sqlite": 500}
"""From this many values on, ``IN`` takes them as one JSON array (:func:`_in`; measured: on SQLite below a few hundred
values the expanded list costs the same)."""


def _in(column: Any, values: Sequence[Any], session: Session) -> Any:
    """``column IN (values)``; many values as one bound JSON array (SQLite ``json_each``, PostgreSQL ``json_array_elements_text``).

    An expanded ``IN`` of a batch's 2 500 task slugs or write ids is a new SQL text each time:
    SQLAlchemy renders it, the driver parses it again (psycopg caches no query with more than 50
    parameters) and the database prepares it again. One JSON parameter keeps the statement constant.
    """
    dialect = session.get_bind().dialect.name
    if len(values) < _IN_JSON_MIN.get(dialect, len(values) + 1):
        return column.in_(values)
    array = bindparam(None, list(values), type_=JSON())
    if dialect == "sqlite":
        return column.in_(select(func.json_each(array).table_valued("value").c.value))
    # = ANY(ARRAY(...)): PostgreSQL plans an IN (SELECT ...) as a semi join over every row of the other condition
    # (all task runs of the flow run); over an array it searches the unique index, as for a literal IN list
    return column == any_(func.array(select(func.json_array_elements_text(array).table_valued("value").c.value).scalar_subquery()))


def set_flow_run_states(session: Session, writes: Sequence[StateWrite]) -> list[WriteResult]:
    """Write many flow-run states in one transaction (one SELECT, one UPDATE executemany, one INSERT).

    Unknown ids or states fail the whole batch (nothing written); a write with a stale ``version``
    is reported STALE (with the current version and state) and not written, the others are.
    Writes to one run apply in order: ``[v1 -> Submitted, v2 -> Running]`` is valid.
    """
    _check_batch(writes)
    if not writes:
        return []
    ids = sorted({w.flow_run_id for w in writes})
    query = select(_FR.c.id, _FR.c.version, _FR.c.state, _FR.c.state_message, _FR.c.start_time, _FR.c.end_time, _FR.c.attempt)
    rows = session.connection().execute(_lock(query.where(_FR.c.id.in_(ids)).order_by(_FR.c.id), session)).all()
    current = {r.id: _Current(r.version, r.version, r.state, r.state_message, r.start_time, r.end_time, r.attempt) for r in rows}
    missing = [i for i in ids if i not in current]
    if missing:
        raise NotFound(f"Flow run(s) {', '.join(map(repr, missing))} do not exist; nothing was written.")
    return _resolve(session, writes, [w.flow_run_id for w in writes], current, _UPDATE_FLOW_RUN, _INSERT_FLOW_RUN_STATE,
                    "flow_run_id", utcnow())


class _CreatedMeanwhile(Exception):
    """PostgreSQL: a task run this batch creates was created by another transaction since it was read (a savepoint undoes the batch)."""


def set_task_run_states(session: Session, writes: Sequence[TaskStateWrite], *, pending_first: bool = False) -> list[WriteResult]:
    """Write many task-run states in one transaction; a task run is created on its first write (by flow run, task slug and map index).

    Same rules as :func:`set_flow_run_states`. A new task run starts at version 0 (state Pending),
    so its first write has ``version`` 0 or None. Task runs the batch creates are inserted in their
    final state. On PostgreSQL another server may create the same task run at once: the INSERT is
    ``ON CONFLICT DO NOTHING`` under a savepoint, and if it did not insert every row the savepoint is
    rolled back and the batch runs again with ``pending_first``: the task runs are inserted as
    Pending (``ON CONFLICT DO NOTHING``), read back under lock and updated.
    """
    _check_batch(writes)
    if not writes:
        return []
    for w in writes:
        if w.task_run_id is None and not w.task_slug:
            raise BadInput("A task-run state write names its task run by 'task_run_id' or by 'task_slug' (+ 'map_index').")
    conn = session.connection()
    run_ids = sorted({w.flow_run_id for w in writes})
    owners = select(_FR.c.id, _FR.c.attempt).where(_FR.c.id.in_(run_ids)).order_by(_FR.c.id)
    if session.get_bind().dialect.name == "postgresql":  # a reschedule waits until these writes are fenced and done
        owners = owners.with_for_update(read=True)
    flow_attempts = {r.id: r.attempt for r in conn.execute(owners)}
    missing = [i for i in run_ids if i not in flow_attempts]
    if missing:
        raise NotFound(f"Flow run(s) {', '.join(map(repr, missing))} do not exist; nothing was written.")
    by_slug = [w for w in writes if w.task_run_id is None]
    by_id = sorted({w.task_run_id for w in writes if w.task_run_id is not None})
    columns = (_TR.c.id, _TR.c.flow_run_id, _TR.c.task_slug, _TR.c.map_index, _TR.c.version, _TR.c.state,
               _TR.c.state_message, _TR.c.start_time, _TR.c.end_time, _TR.c.attempt)
    current: dict[str, _Current] = {}
    owner: dict[str, str] = {}
    keys: dict[tuple[str, str, int], str] = {}

    def read(where: Any) -> None:
        for r in conn.execute(_lock(select(*columns).where(where).order_by(_TR.c.id), session)):
            current[r.id] = _Current(r.version, r.version, r.state, r.state_message, r.start_time, r.end_time, r.attempt)
            owner[r.id] = r.flow_run_id
            keys[(r.flow_run_id, r.task_slug, r.map_index)] = r.id

    if by_slug:
        slugs = sorted({w.task_slug for w in by_slug})
        read(_TR.c.flow_run_id.in_(sorted({w.flow_run_id for w in by_slug})) & _in(_TR.c.task_slug, slugs, session))
    if by_id:
        read(_in(_TR.c.id, by_id, session))
    for task_run_id, run_id in [(w.task_run_id, w.flow_run_id) for w in writes if w.task_run_id is not None]:
        if owner.get(task_run_id) != run_id:
            raise NotFound(f"Task run {task_run_id!r} does not exist in flow run {run_id!r}; nothing was written.")
    now = utcnow()
    new_keys = sorted({(w.flow_run_id, w.task_slug, w.map_index) for w in by_slug} - set(keys))
    created: dict[str, dict[str, Any]] = {}
    if new_keys:  # one INSERT for every task run written for the first time
        new_rows = [{"id": new_id(), "flow_run_id": f, "task_slug": s, "map_index": m, "state": "Pending", "state_message": None,
                     "version": 0, "state_timestamp": now, "start_time": None, "end_time": None, "created": now, "attempt": 0}
                    for f, s, m in new_keys]
        if pending_first:  # PostgreSQL, after a concurrent creation: Pending rows, read back under lock, then updated
            _executemany(conn, _pg_insert_task_runs(), new_rows)
            read(_in(_TR.c.id, [r["id"] for r in new_rows], session)
                 | (_TR.c.flow_run_id.in_(sorted({k[0] for k in new_keys}))
                    & _in(_TR.c.task_slug, sorted({k[1] for k in new_keys}), session)))
        else:  # inserted later by _resolve, in their final state (no UPDATE)
            for row, key in zip(new_rows, new_keys, strict=True):
                current[row["id"]] = _Current(0, 0, "Pending", None, None, None)
                keys[key] = row["id"]
                created[row["id"]] = row
    ids = [w.task_run_id if w.task_run_id is not None else keys[(w.flow_run_id, w.task_slug, w.map_index)] for w in writes]
    if not created or session.get_bind().dialect.name != "postgresql":  # SQLite: the write lock is held, no one else creates them
        return _resolve(session, writes, ids, current, _UPDATE_TASK_RUN, _INSERT_TASK_RUN_STATE, "task_run_id", now, created,
                        flow_attempts)
    try:
        with session.begin_nested():
            return _resolve(session, writes, ids, current, _UPDATE_TASK_RUN, _INSERT_TASK_RUN_STATE, "task_run_id", now, created,
                            flow_attempts, _pg_insert_task_runs())
    except _CreatedMeanwhile:
        return set_task_run_states(session, writes, pending_first=True)


def set_states(session: Session, flow_runs: Sequence[StateWrite], task_runs: Sequence[TaskStateWrite]) -> tuple[list[WriteResult], list[WriteResult]]:
    """Flow-run and task-run state writes in one transaction (flow runs first): ``(flow results, task results)``."""
    if len(flow_runs) + len(task_runs) > MAX_BATCH:
        raise BadInput(f"{len(flow_runs) + len(task_runs)} state writes in one request; the limit is {MAX_BATCH}. Split the batch.")
    return set_flow_run_states(session, flow_runs), set_task_run_states(session, task_runs)


def _reschedule(session: Session, row: FlowRun, message: str) -> WriteResult:
    """The run back to Scheduled now, as a new attempt (fences off any process of the old one), with a history row."""
    id, now, version, attempt = row.id, utcnow(), row.version, row.attempt  # read before the UPDATE (it refreshes ``row``)
    done = session.execute(
        update(FlowRun).where(FlowRun.id == id, FlowRun.version == version).values(
            state="Scheduled", state_message=message, state_timestamp=now, version=version + 1, attempt=attempt + 1,
            agent_id=None, heartbeat=None, scheduled_start_time=now, end_time=None, updated=now)
    ).rowcount
    if not done:
        raise BadInput(f"Flow run {id!r} changed while being rescheduled; try again.", "CONFLICT")
    session.execute(_INSERT_FLOW_RUN_STATE, {"flow_run_id": id, "version": version + 1, "state": "Scheduled",
                                             "message": message, "serialized": None, "timestamp": now, "write_id": None})
    return WriteResult(id, "SUCCESS", version + 1, "Scheduled")


def _reset_task_runs(session: Session, flow_run_id: str, keep: frozenset[str], message: str) -> int:
    """Task runs of the run whose state is not in ``keep`` back to Pending (one executemany UPDATE and INSERT); how many."""
    conn = session.connection()
    query = select(_TR.c.id, _TR.c.version, _TR.c.attempt, _TR.c.state).where(_TR.c.flow_run_id == flow_run_id)
    if keep:
        query = query.where(_TR.c.state.not_in(sorted(keep)))
    rows = conn.execute(_lock(query.order_by(_TR.c.id), session)).all()
    if not rows:
        return 0
    now = utcnow()
    done = conn.execute(_UPDATE_TASK_RUN, [
        {"b_id": r.id, "b_expected": r.version, "b_state": "Pending", "b_message": message, "b_ts": now, "b_version": r.version + 1,
         "b_start": None, "b_end": None, "b_attempt": r.attempt} for r in rows]).rowcount
    if done != len(rows) and done >= 0:
        raise BadInput(f"Task runs of flow run {flow_run_id!r} changed while it was restarted; try again.", "CONFLICT")
    conn.execute(_INSERT_TASK_RUN_STATE, [  # what it was is kept: the next attempt's log says why it runs again
        {"task_run_id": r.id, "version": r.version + 1, "state": "Pending", "message": message,
         "serialized": {"restarted_from": r.state}, "timestamp": now, "write_id": None} for r in rows])
    return len(rows)


def resume_records(session: Session, flow_run_id: str, offset: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    """What a new attempt of the run starts from, in one query: each task run's slug, map index, state, message and
    the ``serialized`` of its current state (a checkpointed result's ``location``, a pause's ``start_time``, or
    ``restarted_from`` after a restart reset it), ordered by (task slug, map index)."""
    get_flow_run(session, flow_run_id)
    rows = session.connection().execute(
        select(_TR.c.task_slug, _TR.c.map_index, _TR.c.state, _TR.c.state_message, _TRS.c.serialized)
        .select_from(_TR.outerjoin(_TRS, (_TRS.c.task_run_id == _TR.c.id) & (_TRS.c.version == _TR.c.version)))
        .where(_TR.c.flow_run_id == flow_run_id)
        .order_by(_TR.c.task_slug, _TR.c.map_index).offset(max(0, offset)).limit(max(1, min(limit, 10000)))
    ).all()
    return [{"task_slug": r.task_slug, "map_index": r.map_index, "state": r.state, "message": r.state_message,
             "serialized": r.serialized} for r in rows]


def restart_flow_run(session: Session, id: str, message: str | None = None, *, from_failed: bool = True) -> WriteResult:
    """The explicit restart: a finished flow run becomes Scheduled again, as a new attempt (its old runner is fenced off).

    ``from_failed`` (Prefect 1's restart): task runs that succeeded (Success, Cached, Mapped, Skipped)
    keep their state and checkpointed result, the others go back to Pending; the new attempt runs
    only those and what is downstream of them. ``from_failed=False`` resets every task run: the whole
    flow runs again.
    """
    row = get_flow_run(session, id)
    session.refresh(row)
    if row.state not in FINISHED_STATES:
        how = " (resume it: `headwater flow-run resume ID`)" if row.state == "Paused" else " (cancel it first)"
        raise InvalidTransition(f"Flow run {id} is {row.state}, not finished; only a finished run is restarted{how}.")
    attempt = row.attempt
    what = "from its failed task runs" if from_failed else "from the beginning"
    reset = _reset_task_runs(session, id, KEPT_TASK_STATES if from_failed else frozenset(),
                             f"The flow run was restarted {what} (attempt {attempt + 1}); this task run runs again.")
    return _reschedule(session, row, message or f"Restarted {what}: {reset} task run(s) run again (attempt {attempt + 1}).")


def resume_flow_run(session: Session, id: str, task_run_ids: Sequence[str] | None = None,
                    message: str | None = None) -> tuple[WriteResult, int]:
    """Resume paused task runs (all of the run's, or ``task_run_ids``): each becomes ``Resume``; a Paused flow run is scheduled again.

    The next attempt of the flow run runs the resumed tasks (their trigger bypassed, as Prefect 1's
    ``Resume`` state does) and everything after them, keeping the task runs that finished. A flow
    run still running when its task is resumed is scheduled again by its runner when it ends.
    Returns the flow run's write result and how many task runs were resumed.
    """
    row = get_flow_run(session, id)
    session.refresh(row)
    if row.state in FINISHED_STATES:
        raise InvalidTransition(f"Flow run {id} is {row.state}, a finished state: there is nothing to resume "
                                "(restart it instead: `headwater flow-run restart ID`).")
    if row.state in ("Cancelling",):
        raise InvalidTransition(f"Flow run {id} is being cancelled; it cannot be resumed.")
    query = select(_TR.c.id, _TR.c.version, _TR.c.state, _TR.c.task_slug, _TR.c.map_index).where(_TR.c.flow_run_id == id)
    if task_run_ids is not None:
        query = query.where(_TR.c.id.in_(sorted(set(task_run_ids))))
    rows = session.connection().execute(_lock(query.order_by(_TR.c.id), session)).all()
    if task_run_ids is not None:
        found = {r.id for r in rows}
        missing = sorted(set(task_run_ids) - found)
        if missing:
            raise NotFound(f"Task run(s) {', '.join(map(repr, missing))} do not exist in flow run {id!r}; nothing was resumed.")
        not_paused = [f"{r.task_slug}{'' if r.map_index < 0 else f'[{r.map_index}]'} is {r.state}" for r in rows if r.state != "Paused"]
        if not_paused:
            raise InvalidTransition(f"Only paused task runs are resumed: {'; '.join(not_paused)}. Nothing was resumed.")
    paused = [r for r in rows if r.state == "Paused"]
    if not paused:
        raise BadInput(f"Flow run {id} ({row.state}) has no paused task run to resume.")
    note = message or "Resumed by request."
    results = set_task_run_states(session, [TaskStateWrite(id, "Resume", task_run_id=r.id, version=r.version, message=note)
                                            for r in paused])
    stale = [r for r in results if r.status != "SUCCESS"]
    if stale:
        raise BadInput(f"Task run(s) {', '.join(r.id for r in stale)} changed while being resumed; try again.", "CONFLICT")
    if row.state == "Paused":
        names = ", ".join(f"{r.task_slug}{'' if r.map_index < 0 else f'[{r.map_index}]'}" for r in paused[:10])
        more = f" and {len(paused) - 10} more" if len(paused) > 10 else ""
        return _reschedule(session, row, f"Resumed {len(paused)} paused task run(s) ({names}{more}); scheduled again."), len(paused)
    return WriteResult(row.id, "SUCCESS", row.version, row.state), len(paused)


def cancel_flow_run(session: Session, id: str) -> WriteResult:
    """Scheduled/pending runs become Cancelled at once; running ones Cancelling (the runner finishes the job); finished ones stay."""
    for _ in range(5):
        row = get_flow_run(session, id)
        session.refresh(row)  # another write in this transaction may have changed it
        if row.state in FINISHED_STATES:
            return WriteResult(row.id, "FINISHED", row.version, row.state)
        if row.state == "Cancelling":
            return WriteResult(row.id, "SUCCESS", row.version, row.state)
        target = "Cancelled" if row.state in SCHEDULED_STATES else "Cancelling"
        [result] = set_flow_run_states(
            session, [StateWrite(row.id, target, message="Cancelled by request" if target == "Cancelled" else "Cancel requested", version=row.version)]
        )
        if result.status == "SUCCESS":
            return result
    raise BadInput(f"Flow run {id!r} changed state while being cancelled five times; try again.", "CONFLICT")


def write_logs(session: Session, logs: Sequence[dict[str, Any]]) -> int:
    """Insert many log records in one statement; unknown flow runs or levels fail the whole batch.

    Fencing: a record carrying an ``attempt`` other than its flow run's current attempt comes from
    a superseded process (a zombie runner, a stale agent): the whole batch is refused with
    :class:`Superseded` and nothing is written (the runner prints such records on its stderr).
    """
    if len(logs) > MAX_BATCH:
        raise BadInput(f"{len(logs)} log records in one request; the limit is {MAX_BATCH}. Split the batch.")
    if not logs:
        return 0
    run_ids = sorted({log["flow_run_id"] for log in logs})
    attempts = {r.id: r.attempt for r in session.connection().execute(select(_FR.c.id, _FR.c.attempt).where(_FR.c.id.in_(run_ids)))}
    missing = [i for i in run_ids if i not in attempts]
    if missing:
        raise NotFound(f"Flow run(s) {', '.join(map(repr, missing))} do not exist; no log was written.")
    rows = []
    now = utcnow()
    for log in logs:
        level = str(log.get("level") or "INFO").upper()
        if level not in LEVELS:
            raise BadInput(f"Unknown log level {log.get('level')!r}; use one of {', '.join(LEVELS)}.")
        attempt = log.get("attempt")
        if attempt is not None and attempt != attempts[log["flow_run_id"]]:
            raise Superseded(
                f"Flow run {log['flow_run_id']} is at attempt {attempts[log['flow_run_id']]}; these log records come from attempt "
                f"{attempt}, which was superseded (the run was rescheduled or restarted). No log was written."
            )
        task_run_id = log.get("task_run_id")
        if task_run_id is not None and len(task_run_id) > 36:
            raise BadInput(f"'task_run_id' {task_run_id[:40]!r}... is not a task run id (ids are 36 characters).")
        name = log.get("name")
        rows.append({  # NUL cannot be stored by PostgreSQL: logs keep it visible as U+FFFD instead of failing the batch
            "flow_run_id": log["flow_run_id"], "task_run_id": task_run_id, "level": level,
            "name": None if name is None else strip_nul(str(name))[:255], "message": strip_nul(str(log.get("message") or "")),
            "timestamp": log.get("timestamp") or now,
        })
    session.connection().execute(_INSERT_LOG, rows)
    return len(rows)


_INSERT_LOG = insert(Log.__table__)


def write_run_batch(session: Session, batch: RunBatch) -> tuple[list[WriteResult], int]:
    """One flow-run process's batch (``server/validation.py:check_run_batch``): task-run states, then logs, in one transaction.

    Every item carries the batch's ``attempt`` (fenced as in :func:`set_task_run_states` and
    :func:`write_logs`), so a batch from a superseded attempt writes nothing. Returns the state
    write results (input order) and the number of log records written.
    """
    run_id, attempt = batch.flow_run_id, batch.attempt
    writes = [TaskStateWrite(run_id, kind, slug, map_index, task_run_id, message, version, serialized, attempt, write_id)
              for slug, map_index, task_run_id, kind, message, serialized, version, write_id in batch.states]
    results = set_task_run_states(session, writes) if writes else []
    logs = [{"flow_run_id": run_id, "level": level, "name": name, "message": message, "timestamp": timestamp,
             "task_run_id": task_run_id, "attempt": attempt} for level, name, message, timestamp, task_run_id in batch.logs]
    return results, write_logs(session, logs)


def runs_in_queue(session: Session, labels: Sequence[str], before: datetime | None = None, limit: int = 100,
                  accepts_unlabeled: bool = True) -> list[FlowRun]:
    """Scheduled runs due by ``before`` whose labels are a subset of ``labels`` (unlabeled runs only if accepted)."""
    before = before or utcnow()
    rows = session.scalars(
        select(FlowRun)
        .where(FlowRun.state == "Scheduled", FlowRun.scheduled_start_time <= before)
        .order_by(FlowRun.scheduled_start_time)
        .limit(max(1, min(limit, 1000)) * 5)
    ).all()
    have = set(labels)
    out = [r for r in rows if set(r.labels) <= have and (r.labels or accepts_unlabeled)]
    return out[:limit]


def register_agent(session: Session, name: str, labels: Sequence[str], type: str | None = None, accepts_unlabeled: bool = True) -> Agent:
    row = Agent(name=name, labels=sorted(set(labels)), type=type, accepts_unlabeled=accepts_unlabeled, last_seen=utcnow())
    session.add(row)
    session.flush()
    return row


def heartbeat(session: Session, *, agent_id: str | None = None, flow_run_id: str | None = None) -> str | None:
    """Record that an agent or a flow-run process is alive; returns the flow run's current state (so a runner sees Cancelling)."""
    now = utcnow()
    if agent_id is not None:
        if not session.execute(update(Agent).where(Agent.id == agent_id).values(last_seen=now)).rowcount:
            raise NotFound(f"Agent {agent_id!r} is not registered; register it again (restart the agent).")
    if flow_run_id is not None:
        if not session.execute(update(FlowRun).where(FlowRun.id == flow_run_id).values(heartbeat=now)).rowcount:
            raise NotFound(f"Flow run {flow_run_id!r} does not exist.")
        return session.scalar(select(FlowRun.state).where(FlowRun.id == flow_run_id))
    return None


