"""Engines and sessions: SQLite (WAL, default under ``$HEADWATER_HOME``) or PostgreSQL; alembic upgrades.

SQLite write transactions start with ``BEGIN IMMEDIATE`` so concurrent writers (threads or
server processes) wait on the busy timeout instead of failing with "database is locked";
read transactions stay deferred. PostgreSQL uses one engine for both.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Database", "MissingDriverError", "default_database_url", "upgrade_database", "MIGRATIONS_DIR"]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def default_database_url() -> str:
    """``[server] database_url`` (or ``HEADWATER__SERVER__DATABASE_URL``), else SQLite in ``$HEADWATER_HOME/server.db``."""
    from headwater.plugins import get_config, headwater_home

    url = get_config().server.database_url
    if url:
        return str(url)
    home = headwater_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'server.db'}"


def _interrupt_if_late() -> int:
    """SQLite progress handler: non-zero interrupts the statement (the request's deadline passed; limits.py)."""
    from headwater_cloud_api.server.limits import deadline_passed

    return 1 if deadline_passed() else 0


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8, max_overflow=16)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()
        dbapi_conn.set_progress_handler(_interrupt_if_late, 10000)  # a request past its deadline stops mid-query

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_DRIVER_EXTRAS = {"psycopg": "postgres", "psycopg2": "postgres"}


class MissingDriverError(ImportError):
    """The database URL names a driver that is not installed; the message says what to install."""

    @classmethod
    def for_url(cls, url: str, exc: ModuleNotFoundError) -> MissingDriverError:
        module = (exc.name or "").split(".")[0] or "the database driver"
        scheme = url.split("://", 1)[0]
        extra = _DRIVER_EXTRAS.get(module)
        fix = f"pip install 'headwater-cloud-api[{extra}]'" if extra else f"pip install {module}"
        return cls(f"The database URL {scheme}://... needs the Python package {module}, which is not installed: {fix}",
                   name=module)


class Database:
    """The server's database: ``read()`` and ``write()`` give a session in one transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.write_engine = _sqlite_engine(url, immediate=True)
            self.read_engine = _sqlite_engine(url, immediate=False)
        else:
            from headwater_cloud_api.server.limits import REQUEST_TIMEOUT

            try:
                self.write_engine = self.read_engine = create_engine(
                    url, pool_size=10, max_overflow=20, pool_pre_ping=True, pool_timeout=REQUEST_TIMEOUT,
                    connect_args={"options": f"-c statement_timeout={int(REQUEST_TIMEOUT * 1000)}"},  # no statement outlives a request
                )
            except ModuleNotFoundError as exc:
                raise MissingDriverError.for_url(url, exc) from None
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)
        # SQLite has one writer at a time. Threads of this process queue here and start the moment the
        # writer before them commits; without it they would wait in SQLite's busy handler, which polls with
        # sleeps of up to 100 ms (a latency cliff under load). Other processes still wait in the busy handler.
        self._write_lock: threading.RLock | None = threading.RLock() if self.is_sqlite else None

    @property
    def dialect(self) -> str:
        return self.write_engine.dialect.name

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session in a write transaction, committed on success, rolled back on any error."""
        if self._write_lock is None:
            with self._write() as session, session.begin():
                yield session
            return
        with self._write_lock, self._write() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (its transaction is rolled back at the end)."""
        with self._read() as session:
            yield session

    def ping(self) -> None:
        """One trivial query (``/health``): raises when the database cannot answer."""
        with self.read_engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def upgrade(self) -> None:
        upgrade_database(self)

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade_database(db: Database, revision: str = "head") -> None:
    """Run the alembic migrations up to ``revision``; on PostgreSQL under an advisory lock (several servers may start at once)."""
    from alembic import command

    with db.write_engine.begin() as connection:
        if db.dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(4200420042)"))
        command.upgrade(_alembic_config(connection), revision)


def current_revision(db: Database) -> str | None:
    """The database's alembic revision (None before the first upgrade)."""
    from alembic.runtime.migration import MigrationContext

    with db.read_engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def downgrade_database(db: Database, revision: str = "base") -> None:
    """Run the migrations down to ``revision`` (``base`` drops every table)."""
    from alembic import command

    with db.write_engine.begin() as connection:
        command.downgrade(_alembic_config(connection), revision)
