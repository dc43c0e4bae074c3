"""PostgreSQL tasks (Prefect 1's ``prefect.tasks.postgres``): ``PostgresExecute``, ``PostgresExecuteMany``, ``PostgresFetch``.

They use psycopg 3 (``pip install 'headwater[postgres]'``). As in Prefect 1 the password is a
``run()`` argument, so it can come from a ``PrefectSecret``/``SecretTask`` result instead of
being stored in the flow; ``commit=True`` commits, otherwise the transaction is rolled back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from headwater.core.task import Task
from headwater.utilities.tasks import defaults_from_attrs

__all__ = ["PostgresExecute", "PostgresExecuteMany", "PostgresFetch"]


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ImportError(
            "The PostgreSQL tasks need psycopg 3: pip install 'headwater[postgres]' (or pip install 'psycopg[binary]')."
        ) from None
    return psycopg


class _Postgres(Task):
    def __init__(
        self,
        db_name: str | None = None,
        user: str | None = None,
        host: str | None = None,
        port: int = 5432,
        query: str | None = None,
        data: Any = None,
        commit: bool = False,
        **kwargs: Any,
    ) -> None:
        self.db_name = db_name
        self.user = user
        self.host = host
        self.port = port
        self.query = query
        self.data = data
        self.commit = commit
        super().__init__(**kwargs)

    def _connect(self, db_name: str | None, user: str | None, host: str | None, port: int | None,
                 password: str | None) -> Any:
        if not db_name or not user or not host:
            raise ValueError(f"Task {self.name!r}: db_name, user and host are required (at creation or in run()).")
        psycopg = _psycopg()
        try:
            return psycopg.connect(dbname=db_name, user=user, host=host, port=port or 5432, password=password)
        except psycopg.OperationalError as exc:
            raise ConnectionError(
                f"Task {self.name!r}: could not connect to PostgreSQL database {db_name!r} at {host}:{port} as "
                f"{user!r}: {str(exc).strip()}"
            ) from None

    def _query(self, query: str | None) -> str:
        if not query:
            raise ValueError(f"Task {self.name!r}: a query is required (at creation or in run()).")
        return query


class PostgresExecute(_Postgres):
    """Runs one statement (``query`` with ``data`` parameters); returns nothing. ``commit=True`` commits it."""

    @defaults_from_attrs("db_name", "user", "host", "port", "query", "data", "commit")
    def run(self, db_name: str | None = None, user: str | None = None, host: str | None = None,
            port: int | None = None, query: str | None = None, data: Any = None, commit: bool | None = None,
            password: str | None = None) -> None:
        sql = self._query(query)
        with self._connect(db_name, user, host, port, password) as conn:
            with conn.cursor() as cursor:
                cursor.execute(sql, data)
            if commit:
                conn.commit()
            else:
                conn.rollback()


class PostgresExecuteMany(_Postgres):
    """Runs one statement once per item of ``data`` (a list of parameter tuples or dicts)."""

    @defaults_from_attrs("db_name", "user", "host", "port", "query", "data", "commit")
    def run(self, db_name: str | None = None, user: str | None = None, host: str | None = None,
            port: int | None = None, query: str | None = None, data: Iterable[Any] | None = None,
            commit: bool | None = None, password: str | None = None) -> None:
        sql = self._query(query)
        rows = list(data or ())
        if not rows:
            raise ValueError(f"Task {self.name!r}: PostgresExecuteMany needs data, a list of parameter sets.")
        with self._connect(db_name, user, host, port, password) as conn:
            with conn.cursor() as cursor:
                cursor.executemany(sql, rows)
            if commit:
                conn.commit()
            else:
                conn.rollback()


class PostgresFetch(_Postgres):
    """Runs a query and returns ``fetch="one"`` row, ``"many"`` (``fetch_count``) or ``"all"`` rows (tuples)."""

    def __init__(self, db_name: str | None = None, user: str | None = None, host: str | None = None,
                 port: int = 5432, fetch: str = "one", fetch_count: int = 10, query: str | None = None,
                 data: Any = None, commit: bool = False, **kwargs: Any) -> None:
        self.fetch = fetch
        self.fetch_count = fetch_count
        super().__init__(db_name=db_name, user=user, host=host, port=port, query=query, data=data, commit=commit,
                         **kwargs)

    @defaults_from_attrs("db_name", "user", "host", "port", "fetch", "fetch_count", "query", "data", "commit")
    def run(self, db_name: str | None = None, user: str | None = None, host: str | None = None,
            port: int | None = None, fetch: str | None = None, fetch_count: int | None = None,
            query: str | None = None, data: Any = None, commit: bool | None = None,
            password: str | None = None) -> Any:
        if fetch not in ("one", "many", "all"):
            raise ValueError(f"Task {self.name!r}: fetch must be 'one', 'many' or 'all', got {fetch!r}.")
        sql = self._query(query)
        with self._connect(db_name, user, host, port, password) as conn:
            with conn.cursor() as cursor:
                cursor.execute(sql, data)
                if fetch == "one":
                    rows: Any = cursor.fetchone()
                elif fetch == "many":
                    rows = cursor.fetchmany(int(fetch_count or 10))
                else:
                    rows = cursor.fetchall()
            if commit:
                conn.commit()
            else:
                conn.rollback()
        return _plain(rows)


def _plain(rows: Any) -> Any:
    """Rows as tuples (and lists of tuples), which pickle and compare plainly."""
    if rows is None or isinstance(rows, tuple):
        return rows
    if isinstance(rows, Sequence):
        return [tuple(r) for r in rows]
    return rows
