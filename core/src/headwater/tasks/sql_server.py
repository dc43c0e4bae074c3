"""SQL Server tasks (Prefect 1's ``prefect.tasks.sql_server``): ``SqlServerExecute``, ``SqlServerExecuteMany``, ``SqlServerFetch``.

They use pyodbc (``pip install pyodbc``) and an ODBC driver for SQL Server on the machine
(Microsoft's "ODBC Driver 17/18 for SQL Server"). Prefect 1's arguments: the connection
(``db_name``, ``user``, ``host``, ``port``, ``driver``) is fixed at creation, ``query``,
``data`` and ``commit`` may be given at creation or to ``run()``, and the password is a
``run()`` argument (typically a ``SecretTask`` result). ``commit=True`` commits; otherwise
the transaction is rolled back.

One deliberate difference: Prefect 1 passed ``port`` to pyodbc as a separate keyword, which
SQL Server's ODBC driver ignores; headwater puts it in ``SERVER=host,port`` so it is used.
"""

from __future__ import annotations

from typing import Any

from headwater.core.task import Task
from headwater.utilities.tasks import defaults_from_attrs

__all__ = ["SqlServerExecute", "SqlServerExecuteMany", "SqlServerFetch", "connection_string"]

_FETCH = ("one", "many", "all")


def _pyodbc() -> Any:
    try:
        import pyodbc
    except ImportError:
        raise ImportError(
            "The SQL Server tasks need pyodbc, which is not installed: pip install pyodbc (and install an ODBC "
            "driver for SQL Server, e.g. Microsoft's msodbcsql18)."
        ) from None
    return pyodbc


def _quote(value: Any) -> str:
    """An ODBC connection-string value: braced when it has ``;``, ``{``, ``}`` or spaces at its ends."""
    text = str(value)
    if any(c in text for c in ";{}") or text != text.strip():
        return "{" + text.replace("}", "}}") + "}"
    return text


def connection_string(driver: str, host: str, port: int | None, db_name: str, user: str,
                      password: str | None) -> str:
    """The ODBC connection string for SQL Server: ``DRIVER={...};SERVER=host,port;DATABASE=...;UID=...;PWD=...``."""
    server = f"{host},{int(port)}" if port else host
    parts = [f"DRIVER={{{driver.strip('{}')}}}", f"SERVER={_quote(server)}", f"DATABASE={_quote(db_name)}",
             f"UID={_quote(user)}"]
    if password is not None:
        parts.append(f"PWD={_quote(password)}")
    return ";".join(parts)


class _SqlServer(Task):
    def __init__(
        self,
        db_name: str,
        user: str,
        host: str,
        port: int = 1433,
        driver: str = "ODBC Driver 17 for SQL Server",
        query: str | None = None,
        data: Any = None,
        commit: bool = False,
        **kwargs: Any,
    ) -> None:
        for arg, value in (("db_name", db_name), ("user", user), ("host", host), ("driver", driver)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{type(self).__name__}: {arg} must be a non-empty string, got {value!r}.")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise ValueError(f"{type(self).__name__}: port must be a TCP port number, got {port!r}.")
        self.db_name = db_name
        self.user = user
        self.host = host
        self.port = port
        self.driver = driver
        self.query = query
        self.data = data
        self.commit = commit
        super().__init__(**kwargs)

    def _query(self, query: str | None) -> str:
        if not query:
            raise ValueError(f"Task {self.name!r}: a query string must be provided (at creation or in run()).")
        return query

    def _connect(self, password: str | None) -> Any:
        pyodbc = _pyodbc()
        text = connection_string(self.driver, self.host, self.port, self.db_name, self.user, password)
        try:
            return pyodbc.connect(text)
        except pyodbc.Error as exc:
            raise ConnectionError(
                f"Task {self.name!r}: could not connect to SQL Server database {self.db_name!r} at "
                f"{self.host}:{self.port} as {self.user!r} with driver {self.driver!r}: {exc}"
            ) from None

    def _finish(self, conn: Any, commit: bool | None) -> None:
        if commit:
            conn.commit()
        else:
            conn.rollback()


class SqlServerExecute(_SqlServer):
    """Runs one statement (``query`` with ``data`` parameters, ``?`` placeholders); returns pyodbc's cursor result."""

    @defaults_from_attrs("query", "data", "commit")
    def run(self, query: str | None = None, data: Any = None, commit: bool | None = None,
            password: str | None = None) -> Any:
        sql = self._query(query)
        conn = self._connect(password)
        try:
            with conn.cursor() as cursor:
                executed = cursor.execute(sql, data) if data is not None else cursor.execute(sql)
                self._finish(conn, commit)
            return executed
        finally:
            conn.close()


class SqlServerExecuteMany(_SqlServer):
    """Runs one statement once per item of ``data`` (a list of parameter tuples), with ``executemany``."""

    @defaults_from_attrs("query", "data", "commit")
    def run(self, query: str | None = None, data: Any = None, commit: bool | None = None,
            password: str | None = None) -> Any:
        sql = self._query(query)
        if not data:
            raise ValueError(f"Task {self.name!r}: a data list must be provided (a list of parameter tuples).")
        if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
            raise ValueError(f"Task {self.name!r}: data must be a list of parameter tuples, got {type(data).__name__}.")
        conn = self._connect(password)
        try:
            with conn.cursor() as cursor:
                executed = cursor.executemany(sql, list(data))
                self._finish(conn, commit)
            return executed
        finally:
            conn.close()


class SqlServerFetch(_SqlServer):
    """Runs a query and returns ``fetch="one"`` row, ``"many"`` (``fetch_count``) rows or ``"all"`` rows."""

    def __init__(
        self,
        db_name: str,
        user: str,
        host: str,
        port: int = 1433,
        driver: str = "ODBC Driver 17 for SQL Server",
        fetch: str = "one",
        fetch_count: int = 10,
        query: str | None = None,
        data: Any = None,
        commit: bool = False,
        **kwargs: Any,
    ) -> None:
        self.fetch = fetch
        self.fetch_count = fetch_count
        super().__init__(db_name, user, host, port=port, driver=driver, query=query, data=data, commit=commit,
                         **kwargs)

    @defaults_from_attrs("fetch", "fetch_count", "query", "data", "commit")
    def run(self, fetch: str | None = None, fetch_count: int | None = None, query: str | None = None,
            data: Any = None, commit: bool | None = None, password: str | None = None) -> Any:
        sql = self._query(query)
        if fetch not in _FETCH:
            raise ValueError(
                f"Task {self.name!r}: the 'fetch' parameter must be one of the following - ('one', 'many', 'all'), "
                f"got {fetch!r}."
            )
        if fetch == "many" and (not isinstance(fetch_count, int) or fetch_count < 1):
            raise ValueError(f"Task {self.name!r}: fetch_count must be a positive integer, got {fetch_count!r}.")
        conn = self._connect(password)
        try:
            with conn.cursor() as cursor:
                if data is not None:
                    cursor.execute(sql, data)
                else:
                    cursor.execute(sql)
                if fetch == "all":
                    records = cursor.fetchall()
                elif fetch == "many":
                    records = cursor.fetchmany(fetch_count)
                else:
                    records = cursor.fetchone()
                self._finish(conn, commit)
            return records
        finally:
            conn.close()
