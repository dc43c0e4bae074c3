"""Issue 10 #11: revoking the last API key does not silently turn authentication off."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater_cloud_api.server.auth import create_api_key, list_api_keys, revoke_api_key
from headwater_cloud_api.server.db.session import Database
from headwater_cloud_api.server.errors import APIError


@pytest.fixture
def db(tmp_path: Path):
    database = Database(f"sqlite:///{tmp_path / 'keys.db'}")
    database.upgrade()
    yield database
    database.dispose()


def test_the_last_key_is_kept_unless_auth_is_disabled_explicitly(db: Database) -> None:
    with db.write() as s:
        create_api_key(s, "alice")
        create_api_key(s, "bob")
    with db.write() as s:
        assert revoke_api_key(s, "alice") == 1  # another key remains: fine
    with pytest.raises(APIError) as refused, db.write() as s:
        revoke_api_key(s, "bob")
    assert refused.value.code == "LAST_API_KEY" and "--disable-auth" in str(refused.value)
    with db.read() as s:
        assert [k.name for k in list_api_keys(s)] == ["bob"]
    with db.write() as s:
        assert revoke_api_key(s, "bob", disable_auth=True) == 0
    with db.read() as s:
        assert list_api_keys(s) == []


def test_revoking_an_unknown_key_names_it(db: Database) -> None:
    with pytest.raises(APIError, match="No API key named 'ghost'"), db.write() as s:
        revoke_api_key(s, "ghost")


def test_cli_refuses_then_accepts_with_disable_auth(db: Database) -> None:
    from click.testing import CliRunner

    from headwater_cloud_api.cli.server import server

    with db.write() as s:
        create_api_key(s, "ci")
    refused = CliRunner().invoke(server, ["api-key", "revoke", "ci", "--database-url", db.url])
    assert refused.exit_code == 1 and "last API key" in refused.output
    done = CliRunner().invoke(server, ["api-key", "revoke", "ci", "--disable-auth", "--database-url", db.url])
    assert done.exit_code == 0 and "authentication is now off" in done.output
