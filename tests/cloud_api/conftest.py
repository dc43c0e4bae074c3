"""Fixtures: the real API server (uvicorn on 127.0.0.1, a free port) on SQLite and on PostgreSQL, and a Client for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from headwater.client import Client
from headwater_cloud_api.server.run import ServerThread


@pytest.fixture(autouse=True)
def _headwater_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HEADWATER_HOME (Local storage, the default SQLite database) and no API settings."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HEADWATER_HOME", str(home))
    for var in ("HEADWATER__CLOUD__API", "HEADWATER__CLOUD__API_KEY", "HEADWATER__SERVER__DATABASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: SQLite in a temp dir, or a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'api.db'}"
    return request.getfixturevalue("postgres_db_url")


@pytest.fixture
def server(database_url: str) -> Iterator[ServerThread]:
    """The API server on a fresh database, scheduler off (tests drive it explicitly)."""
    with ServerThread(database_url=database_url, scheduler=False) as srv:
        yield srv


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(api=server.api, api_key="") as c:
        yield c


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[ServerThread]:
    """The API server on a fresh SQLite database (for client-side tests that need not run twice)."""
    with ServerThread(database_url=f"sqlite:///{tmp_path / 'api.db'}", scheduler=False) as srv:
        yield srv


@pytest.fixture
def sqlite_client(sqlite_server: ServerThread) -> Iterator[Client]:
    with Client(api=sqlite_server.api, api_key="") as c:
        yield c


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One API server per test module and database (scheduler off); use it through ``clean_server``."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('api') / 'api.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    with ServerThread(database_url=url, scheduler=False) as srv:
        yield srv


@pytest.fixture
def clean_server(shared_server: ServerThread) -> ServerThread:
    """The module's shared server with every table emptied first: as good as a fresh server, without starting one."""
    from headwater_cloud_api.server.db.models import Base

    with shared_server.app.state.db.write() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
    return shared_server
