"""A real PostgreSQL 15 server for the test session, on 127.0.0.1 at a free port.

``tests/conftest.py`` exposes the fixtures; any test can use them:

- ``postgres_server`` (session): the running :class:`PostgresServer`; ``create_database()`` makes
  a fresh, empty database and returns its SQLAlchemy URL.
- ``postgres_url`` (session): the URL of the shared database ``headwater``
  (``postgresql+psycopg://postgres@127.0.0.1:PORT/headwater``).
- ``postgres_db_url`` (function): a fresh database for one test.

The server is created with ``initdb`` as the ``postgres`` OS user (initdb refuses root) in a
temporary directory, with fsync off and trust auth on loopback only, and stopped at the end of
the session. Tests are skipped, with the reason, when PostgreSQL 15 is not installed.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PGBIN", "PostgresServer", "postgres_server", "postgres_url", "postgres_db_url"]

PGBIN = Path(os.environ.get("HEADWATER_TEST_PGBIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One throwaway PostgreSQL cluster: ``start()``, ``url(db)``, ``create_database()``, ``stop()``."""

    def __init__(self, pgbin: Path = PGBIN) -> None:
        self.pgbin = pgbin
        self.port = 0
        self.dir = Path(tempfile.mkdtemp(prefix="headwater-pg-"))
        self._counter = itertools.count(1)
        self._as_postgres = os.geteuid() == 0  # initdb refuses root: run the server as the postgres user

    def _cmd(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if self._as_postgres else list(args)

    def _run(self, *args: str) -> None:
        done = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = (self.dir / "log").read_text(errors="replace")[-3000:] if (self.dir / "log").exists() else ""
            raise RuntimeError(
                f"{' '.join(args)} failed with exit code {done.returncode}:\n{done.stdout}{done.stderr}\n{log}"
            )

    def start(self) -> PostgresServer:
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        data = str(self.dir / "data")
        self._run(str(self.pgbin / "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-locale", "--no-sync")
        for attempt in range(3):  # the free port may be taken between choosing and binding it
            self.port = _free_port()
            options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
            try:
                self._run(str(self.pgbin / "pg_ctl"), "-D", data, "-l", str(self.dir / "log"), "-w", "-o", options, "start")
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        return self

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (named ``test_<n>`` by default); returns its SQLAlchemy URL."""
        name = name or f"test_{next(self._counter)}"
        subprocess.run(
            [str(self.pgbin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
            check=True, capture_output=True, timeout=60,
        )
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.dir / "data" / "postmaster.pid").exists():
                self._run(str(self.pgbin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _skip_reason() -> str | None:
    if not (PGBIN / "initdb").exists():
        return f"PostgreSQL 15 is not installed ({PGBIN / 'initdb'} is missing): run `make system-deps`."
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no `postgres` OS user to run initdb as."
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (skips the test if PostgreSQL 15 is missing)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of the session's shared database ``headwater``."""
    return postgres_server.create_database("headwater")


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL of a fresh, empty database for this test."""
    return postgres_server.create_database()
