"""``FlowStore``: spec flows in a SQL database (SQLAlchemy: SQLite file or memory, PostgreSQL, ...).

One row per flow holds its flow dict plus the columns workers select on (status, label,
parent_key, depth, how many tasks are ready) and a lease (``claimed_by``/``claimed_until``).
``claim`` hands out flows whose lease is free, deepest (children) first, and makes them
invisible to other workers until ``release`` or until the lease expires, so a crashed
worker's flows come back. Claims are atomic across processes and servers: on PostgreSQL an
``UPDATE ... WHERE key IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``, on SQLite the same
UPDATE inside ``BEGIN IMMEDIATE``. Every row has a version, so a save never overwrites a
change it has not seen, and a worker whose lease was taken over cannot save its stale tick.
Times are the database server's clock, so workers on different machines agree on leases.
``query`` lists flows in the order they were first saved, by a ``seq`` column (a sequence on
PostgreSQL, ``MAX(seq) + 1`` under SQLite's write lock): the clock's millisecond ticks cannot
order flows saved within one tick. ``ensure_tables`` adds that column to tables made before it.

A parent flow whose tickable tasks all wait on unfinished child flows is not claimed; the
waits live in a second table (parent_key, child_key), written with the parent.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from headwater.spec.model import (
    SpecError,
    SpecTask,
    Status,
    flow_from_dict,
    flow_to_dict,
    new_flow_key,
    spec_tasks,
    tickable_tasks,
)

if TYPE_CHECKING:
    from headwater.spec.model import SpecFlow

__all__ = ["FlowStore", "FlowNotFoundError", "FlowExistsError", "StaleFlowError", "LeaseLostError", "INSTALL_HINT"]

logger = logging.getLogger("headwater.spec.store")

INSTALL_HINT = "pip install 'headwater[sql]' (for PostgreSQL: pip install 'headwater[postgres]')"
_UNFINISHED = (Status.PENDING.value, Status.RUNNING.value)
_FINISHED = (Status.COMPLETED.value, Status.FAILED.value)


class FlowNotFoundError(LookupError):
    """No flow with that key in the store."""


class FlowExistsError(ValueError):
    """A new flow's key is already taken in the store."""


class StaleFlowError(RuntimeError):
    """The flow changed in the store (or is claimed by a worker) since this copy was loaded."""


class LeaseLostError(StaleFlowError):
    """This worker's lease on the flow expired and another worker claimed it; the tick is discarded."""


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as exc:
        raise ImportError(f"headwater.spec.FlowStore needs SQLAlchemy, which is not installed: {INSTALL_HINT}.") from exc
    return sqlalchemy


def _tables(sa: Any, prefix: str, dialect: str) -> tuple[Any, Any, Any]:
    md = sa.MetaData()
    if dialect == "postgresql":  # a sequence numbers new rows, also those written by older headwater versions
        sequence = sa.Sequence(f"{prefix}flows_seq", metadata=md)  # named <flows table>_seq
        seq = sa.Column("seq", sa.BigInteger, nullable=True, index=True, server_default=sequence.next_value())
    else:  # the insert writes MAX(seq) + 1 (see FlowStore._next_seq)
        seq = sa.Column("seq", sa.BigInteger, nullable=True, index=True)
    flows = sa.Table(
        f"{prefix}flows",
        md,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("label", sa.String(255), nullable=True, index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("parent_key", sa.String(255), nullable=True, index=True),
        sa.Column("depth", sa.Integer, nullable=False, default=0),
        sa.Column("num_ready", sa.Integer, nullable=False, default=0),
        sa.Column("flow", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("claimed_by", sa.String(255), nullable=True),
        sa.Column("claimed_until", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        seq,  # insertion order; NULL only in rows an older headwater wrote into an upgraded SQLite table
    )
    waits = sa.Table(
        f"{prefix}waits",
        md,
        sa.Column("parent_key", sa.String(255), primary_key=True),
        sa.Column("child_key", sa.String(255), primary_key=True, index=True),
    )
    return md, flows, waits


def redact_url(url: str, text: str | None = None) -> str:
    """``url`` with its password as ``***`` (or ``text`` with that password removed wherever it appears)."""
    import re

    match = re.match(r"^([^:/]+://[^:/@]*):([^@]*)@", url)
    password = match.group(2) if match else None
    if text is None:
        return f"{match.group(1)}:***@{url[match.end():]}" if match else url
    if password:
        from urllib.parse import unquote

        for form in {password, unquote(password)}:
            if form:
                text = text.replace(form, "***")
    return text


def _create_engine(sa: Any, url: str, engine_kwargs: dict[str, Any] | None) -> Any:
    parsed = sa.engine.make_url(url)
    kwargs = dict(engine_kwargs or {})
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(parsed, **kwargs)
    memory = parsed.database in (None, "", ":memory:")
    connect_args = kwargs.setdefault("connect_args", {})
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", 30.0)
    if memory:
        kwargs.setdefault("poolclass", sa.pool.StaticPool)  # one shared in-memory database
    engine = sa.create_engine(parsed, **kwargs)

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below be the only one
        if not memory:
            dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # take the write lock up front: claims are atomic

    return engine


def _unjsonable(value: Any, path: str) -> str | None:
    """The path of the first value in ``value`` that JSON cannot hold, or None."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return None
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{path} (key {k!r} is not a string)"
            found = _unjsonable(v, f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            found = _unjsonable(v, f"{path}.{i}")
            if found:
                return found
        return None
    return f"{path} ({type(value).__name__})"


def _missing_seq_column(exc: Any) -> bool:
    """``exc`` says the flows table has no ``seq`` column (SQLite's or PostgreSQL's wording)."""
    text = str(exc.orig)
    missing = "no such column" in text or "has no column named" in text or getattr(exc.orig, "sqlstate", None) == "42703"
    return missing and "seq" in text


def _waits_in_store(task: SpecTask) -> bool:
    """The task waits on a child flow kept in the store (children kept inside the task are ticked with it)."""
    return task.waiting_on is not None and task.waiting_on not in task.children


class FlowStore:
    """Spec flows in a SQL database. ``FlowStore("sqlite://")`` is an in-memory store; any SQLAlchemy URL works.

    ``worker_id`` names this store's claims (default ``host:pid:random``).
    """

    def __init__(
        self,
        url: str = "sqlite://",
        *,
        table_prefix: str = "headwater_spec_",
        worker_id: str | None = None,
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        sa = self._sa = _sqlalchemy()
        try:
            self.engine = _create_engine(sa, url, engine_kwargs)
        except ImportError as exc:  # e.g. psycopg missing for postgresql+psycopg://
            raise ImportError(f"FlowStore({redact_url(url)!r}): the database driver is not installed: "
                              f"{redact_url(url, str(exc))}. {INSTALL_HINT}.") from None
        self.url: str = self.engine.url.render_as_string(hide_password=True)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._dialect = self.engine.dialect.name
        self._metadata, self.flows_table, self.waits_table = _tables(sa, table_prefix, self._dialect)

    def __repr__(self) -> str:
        return f"FlowStore({self.url!r})"

    def close(self) -> None:
        """Close the database connections."""
        self.engine.dispose()

    # --- schema ------------------------------------------------------------------------------------

    def ensure_tables(self) -> None:
        """Create the tables if they do not exist, and upgrade older ones (safe to call from several processes at once)."""
        with self.engine.begin() as conn:
            if self._dialect == "postgresql":  # serialize concurrent CREATE TABLEs of starting workers
                conn.execute(self._sa.text("SELECT pg_advisory_xact_lock(7239051)"))
            self._metadata.create_all(conn)
            self._add_seq_column(conn)

    def _add_seq_column(self, conn: Any) -> None:
        """Give a flows table made before the ``seq`` column that column, numbered by ``created_at`` then key.

        On PostgreSQL the column defaults to the sequence's next value; the sequence then
        continues after the highest number given here.
        """
        sa, t = self._sa, self.flows_table
        if "seq" in {c["name"] for c in sa.inspect(conn).get_columns(t.name)}:
            return
        logger.info("Adding the seq column (insertion order) to %s in %s", t.name, self.url)
        column = t.c.seq
        ddl = f"ALTER TABLE {conn.dialect.identifier_preparer.format_table(t)} ADD COLUMN seq "
        ddl += column.type.compile(dialect=conn.dialect)
        if column.server_default is not None:
            ddl += " DEFAULT " + str(column.server_default.arg.compile(dialect=conn.dialect))
        conn.exec_driver_sql(ddl)
        order = (
            sa.select(t.c.key, sa.func.row_number().over(order_by=(t.c.created_at, t.c.key)).label("n"))
            .subquery("ordered")
        )
        conn.execute(sa.update(t).where(t.c.key == order.c.key).values(seq=order.c.n))
        for index in t.indexes:
            if "seq" in index.columns:
                index.create(conn, checkfirst=True)
        if self._dialect == "postgresql":
            top = sa.select(sa.func.coalesce(sa.func.max(t.c.seq), 0) + 1).scalar_subquery()
            conn.execute(sa.select(sa.func.setval(f"{t.name}_seq", top, False)))

    def _now(self) -> Any:
        """The database server's time in seconds since the epoch, as an SQL expression."""
        sa = self._sa
        if self._dialect == "sqlite":
            return sa.literal_column("((julianday('now') - 2440587.5) * 86400.0)", sa.Float)
        if self._dialect == "postgresql":
            return sa.cast(sa.extract("epoch", sa.func.clock_timestamp()), sa.Float)
        return sa.literal(time.time(), sa.Float)

    def _next_seq(self) -> Any:
        """The next insertion number, as an SQL expression: safe where writers are serialized (SQLite's write lock)."""
        sa, t = self._sa, self.flows_table
        return sa.select(sa.func.coalesce(sa.func.max(t.c.seq), 0) + 1).scalar_subquery()

    def _run(self, fn: Any, upgraded: bool = False) -> Any:
        sa = self._sa
        try:
            with self.engine.begin() as conn:
                return fn(conn)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            if not upgraded and _missing_seq_column(exc):  # tables of an older headwater: upgrade them, go on
                self.ensure_tables()
                return self._run(fn, upgraded=True)
            missing_table = "no such table" in str(exc) or getattr(exc.orig, "sqlstate", None) == "42P01"
            if missing_table:
                raise SpecError(
                    f"The flow store {self.url!r} has no tables yet: call store.ensure_tables() first "
                    "(the worker and `headwater spec submit` do)."
                ) from exc
            raise

    # --- saving and loading ------------------------------------------------------------------------

    def save(self, flow: SpecFlow) -> str:
        """Save ``flow`` (a new one gets a ``flow:<uuid>`` key); returns its key.

        Child flows spawned by its tasks are saved with it, in the same transaction.
        """
        if flow.key is None:
            flow.key = new_flow_key()
        version = self._run(lambda conn: self._write(conn, flow, release=False))
        self._saved(flow, version, claimed_by=getattr(flow, "_claimed_by", None))
        return flow.key

    def release(self, flow: SpecFlow, save: bool = True) -> None:
        """Give a claimed flow back (saving it first unless ``save=False``); other workers may claim it again."""
        me = getattr(flow, "_claimed_by", None)
        if me is None:
            raise SpecError(f"Flow {flow.key!r} is not claimed through this store; save it with store.save(flow).")
        if save:
            version = self._run(lambda conn: self._write(conn, flow, release=True))
        else:
            t = self.flows_table
            version = flow._store_version
            if version is None:
                raise SpecError(f"Flow {flow.key!r} was not loaded from this store; save it with store.save(flow).")

            def unclaim(conn: Any) -> int:
                done = conn.execute(
                    self._sa.update(t)
                    .where(t.c.key == flow.key, t.c.claimed_by == me, t.c.version == version)
                    .values(claimed_by=None, claimed_until=None)
                )
                if done.rowcount != 1:
                    raise self._conflict(conn, flow, version, me)
                return version

            self._run(unclaim)
        self._saved(flow, version, claimed_by=None)

    def _saved(self, flow: SpecFlow, version: int, claimed_by: str | None) -> None:
        flow._store_version = version
        flow._claimed_by = claimed_by
        flow._new_children = []

    def _row_values(self, conn: Any, flow: SpecFlow) -> dict[str, Any]:
        d = flow_to_dict(flow)
        bad = _unjsonable(d, "flow")
        if bad:
            raise SpecError(
                f"Flow {flow.key!r} cannot be saved: {bad} is not JSON. Task data and params must be "
                "JSON values (dicts, lists, strings, numbers, booleans, null); convert it before returning it."
            )
        tasks = spec_tasks(flow)
        ready = sum(1 for t in tickable_tasks(flow, tasks) if not _waits_in_store(t))
        return {
            "label": flow.label,
            "status": d["status"],
            "parent_key": flow.parent_key,
            "depth": flow.depth,
            "num_ready": ready,
            "flow": d,
            "updated_at": self._now(),
        }

    def _write(self, conn: Any, flow: SpecFlow, release: bool) -> int:
        """Insert or update ``flow`` (and its new children and waits) in ``conn``'s transaction; the new version."""
        sa, t = self._sa, self.flows_table
        values = self._row_values(conn, flow)
        version: int | None = getattr(flow, "_store_version", None)
        me: str | None = getattr(flow, "_claimed_by", None)
        key = flow.key
        if version is None:
            if self._dialect != "postgresql":  # PostgreSQL's column default takes the sequence's next value
                values["seq"] = self._next_seq()
            try:
                conn.execute(sa.insert(t).values(key=key, version=1, created_at=self._now(), **values))
            except sa.exc.IntegrityError:
                raise FlowExistsError(
                    f"A flow with key {key!r} is already in {self.url!r}: load it with store.load({key!r}), "
                    "or give the new flow another key (or none, to get a fresh one)."
                ) from None
            new_version = 1
        else:
            cond = [t.c.key == key, t.c.version == version]
            if me is not None:
                cond.append(t.c.claimed_by == me)
            else:
                cond.append(sa.or_(t.c.claimed_by.is_(None), t.c.claimed_until < self._now()))
            if release:
                values.update(claimed_by=None, claimed_until=None)
            done = conn.execute(sa.update(t).where(*cond).values(version=version + 1, **values))
            if done.rowcount != 1:
                raise self._conflict(conn, flow, version, me)
            new_version = version + 1
        for child in getattr(flow, "_new_children", ()):
            if child.key is None:
                child.key = new_flow_key()
            self._write(conn, child, release=False)
        w = self.waits_table
        conn.execute(sa.delete(w).where(w.c.parent_key == key))
        waits = sorted({task.waiting_on for task in spec_tasks(flow) if task.waiting_on and _waits_in_store(task)})
        if waits:
            conn.execute(sa.insert(w), [{"parent_key": key, "child_key": c} for c in waits])
        return new_version

    def _conflict(self, conn: Any, flow: SpecFlow, version: int, me: str | None) -> Exception:
        t = self.flows_table
        key = flow.key
        row = conn.execute(
            self._sa.select(t.c.version, t.c.claimed_by, t.c.claimed_until, self._now()).where(t.c.key == key)
        ).first()
        if row is None:
            return FlowNotFoundError(f"Flow {key!r} is no longer in {self.url!r} (deleted while this copy was held).")
        if me is not None:
            holder = f"now held by {row.claimed_by!r}" if row.claimed_by else "since ticked and released"
            return LeaseLostError(
                f"Flow {key!r}: the lease of worker {me!r} expired and the flow was claimed again ({holder}); "
                "this tick's changes are discarded and the flow will be ticked again. Use a lease longer than a tick "
                "takes (lease_seconds / --lease)."
            )
        if me is None and row.claimed_by is not None and row.claimed_until is not None and row.claimed_until >= row[3]:
            return StaleFlowError(
                f"Flow {key!r} is claimed by worker {row.claimed_by!r} for another {row.claimed_until - row[3]:.1f} s; "
                "load it again after the worker releases it, then save your change."
            )
        return StaleFlowError(
            f"Flow {key!r} changed in {self.url!r} since this copy was loaded (version {version}, now {row.version}): "
            f"load it again with store.load({key!r}) and reapply the change."
        )

    def load(self, key: str) -> SpecFlow:
        """The flow saved under ``key``."""
        t = self.flows_table
        row = self._run(lambda conn: conn.execute(self._sa.select(t.c.flow, t.c.version).where(t.c.key == key)).first())
        if row is None:
            raise FlowNotFoundError(f"No flow with key {key!r} in {self.url!r}; `headwater spec submit` prints the keys it saves.")
        flow = flow_from_dict(row.flow)
        self._saved(flow, row.version, claimed_by=None)
        return flow

    def status(self, key: str) -> str | None:
        """The status of flow ``key`` (``PENDING``, ``RUNNING``, ``COMPLETED``, ``FAILED``), or None if absent."""
        t = self.flows_table
        status: str | None = self._run(lambda conn: conn.execute(self._sa.select(t.c.status).where(t.c.key == key)).scalar())
        return status

    def _filters(self, status: str | Iterable[str] | None, label: str | None, parent_key: str | None) -> list[Any]:
        t = self.flows_table
        cond = []
        if status is not None:
            cond.append(t.c.status.in_([status] if isinstance(status, str) else [str(s) for s in status]))
        if label is not None:
            cond.append(t.c.label == label)
        if parent_key is not None:
            cond.append(t.c.parent_key == parent_key)
        return cond

    def query(
        self,
        status: str | Iterable[str] | None = None,
        label: str | None = None,
        parent_key: str | None = None,
        limit: int | None = None,
    ) -> list[SpecFlow]:
        """Flows matching every given filter (``status`` may be one or several), in the order they were first saved."""
        t = self.flows_table
        stmt = (
            self._sa.select(t.c.flow, t.c.version)
            .where(*self._filters(status, label, parent_key))
            .order_by(t.c.seq.nulls_last(), t.c.created_at, t.c.key)
            .limit(limit)
        )
        rows = self._run(lambda conn: conn.execute(stmt).all())
        flows = []
        for row in rows:
            flow = flow_from_dict(row.flow)
            self._saved(flow, row.version, claimed_by=None)
            flows.append(flow)
        return flows

    def count(
        self, status: str | Iterable[str] | None = None, label: str | None = None, parent_key: str | None = None
    ) -> int:
        """How many flows match every given filter."""
        sa, t = self._sa, self.flows_table
        stmt = sa.select(sa.func.count()).select_from(t).where(*self._filters(status, label, parent_key))
        return int(self._run(lambda conn: conn.execute(stmt).scalar()))

    # --- workers -----------------------------------------------------------------------------------

    def claim(self, limit: int = 10, lease_seconds: float = 60.0, worker_id: str | None = None) -> list[SpecFlow]:
        """Lease up to ``limit`` flows that have work to do, deepest first, for ``lease_seconds``.

        A claimed flow is invisible to other claims until :meth:`release` or until the lease
        expires. Flows whose ready tasks all wait on unfinished child flows are skipped.
        """
        sa, t, w = self._sa, self.flows_table, self.waits_table
        me = worker_id or self.worker_id
        f, c, w1, w2 = t.alias("f"), t.alias("c"), w.alias("w1"), w.alias("w2")
        now = self._now()
        child_finished = (
            sa.select(1)
            .select_from(w1.join(c, c.c.key == w1.c.child_key))
            .where(w1.c.parent_key == f.c.key, c.c.status.in_(_FINISHED))
            .exists()
        )
        waits_any = sa.select(1).select_from(w2).where(w2.c.parent_key == f.c.key).exists()
        pick = (
            sa.select(f.c.key)
            .where(
                f.c.status.in_(_UNFINISHED),
                sa.or_(f.c.claimed_until.is_(None), f.c.claimed_until < now),
                sa.or_(f.c.num_ready > 0, child_finished, ~waits_any),
            )
            .order_by(f.c.depth.desc(), f.c.updated_at, f.c.key)
            .limit(limit)
        )
        if self._dialect == "postgresql":
            pick = pick.with_for_update(skip_locked=True, of=f)
        stmt = (
            sa.update(t)
            .where(t.c.key.in_(pick))
            .values(claimed_by=me, claimed_until=now + float(lease_seconds), version=t.c.version + 1)
            .returning(t.c.key, t.c.flow, t.c.version, t.c.depth)
        )
        rows = self._run(lambda conn: conn.execute(stmt).all())
        flows = []
        for row in sorted(rows, key=lambda r: -r.depth):
            try:
                flow = flow_from_dict(row.flow)
            except Exception as exc:  # e.g. a task type this worker does not have: leave it leased, say why
                logger.error(
                    "Worker %s cannot load claimed flow %s: %s. It stays leased for %.0f s, then comes back.",
                    me, row.key, exc, lease_seconds,
                )
                continue
            self._saved(flow, row.version, claimed_by=me)
            flows.append(flow)
        return flows
