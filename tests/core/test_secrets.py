"""Secrets: Secret(name).get() lookup order and errors, SecretTask in flows, values never shown, logged or pickled."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from headwater import Flow, Parameter, task
from headwater.config import get_config
from headwater.plugins import hookimpl, register_plugin, unregister_plugin
from headwater.results import Result
from headwater.secrets import Secret, SecretNotFoundError, secret_env_var
from headwater.tasks.secrets import SecretTask

VALUE = "s3cr3t-Value-917"


@pytest.fixture
def home(headwater_home: Path) -> Path:
    """headwater.testing's isolated HEADWATER_HOME (no HEADWATER__ variables from outside)."""
    return headwater_home


def write_secrets(home: Path, **secrets: str) -> Path:
    path = home / "config.toml"
    path.write_text("[context.secrets]\n" + "".join(f'{k} = "{v}"\n' for k, v in secrets.items()), encoding="utf-8")
    return path


class SecretPlugin:
    """A plugin answering get_secret for the names it holds."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[str] = []

    @hookimpl
    def get_secret(self, name: str) -> str | None:
        self.asked.append(name)
        return self.values.get(name)


@pytest.fixture
def plugin() -> Iterator[SecretPlugin]:
    instance = SecretPlugin({"FROM_PLUGIN": "plugin-value", "EVERYWHERE": "plugin-value"})
    register_plugin(instance, name="secrets-test-plugin")
    try:
        yield instance
    finally:
        unregister_plugin("secrets-test-plugin")


# --- lookup ---------------------------------------------------------------------------------------


def test_lookup_order_is_env_then_file_then_plugin(
    home: Path, plugin: SecretPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secrets(home, EVERYWHERE="file-value", IN_FILE="file-only")
    assert Secret("FROM_PLUGIN").get() == "plugin-value"
    assert Secret("IN_FILE").get() == "file-only"
    assert Secret("EVERYWHERE").get() == "file-value"
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__EVERYWHERE", "env-value")
    assert Secret("EVERYWHERE").get() == "env-value"
    assert "EVERYWHERE" not in plugin.asked  # the plugin is asked only when env and file have nothing
    assert plugin.asked == ["FROM_PLUGIN"]


def test_env_secret_names_are_case_insensitive_and_values_toml_scalars(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__db_pass", "pw")
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__SCOPES", '["read", "write"]')
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__QUOTED", '"12345"')
    assert Secret("DB_PASS").get() == "pw"
    assert Secret("db_pass").get() == "pw"
    assert Secret("SCOPES").get() == ["read", "write"]
    assert Secret("QUOTED").get() == "12345"
    assert secret_env_var("X") == "HEADWATER__CONTEXT__SECRETS__X"


def test_file_secret_names_match_case_insensitively(home: Path) -> None:
    write_secrets(home, GitHub_Token="ghp-1")
    assert Secret("GitHub_Token").get() == "ghp-1"
    assert Secret("GITHUB_TOKEN").get() == "ghp-1"


def test_a_missing_secret_names_every_place_looked_at(home: Path) -> None:
    with pytest.raises(SecretNotFoundError) as info:
        Secret("NOWHERE").get()
    message = str(info.value)
    assert "Secret 'NOWHERE' was not found" in message
    assert "HEADWATER__CONTEXT__SECRETS__NOWHERE (not set)" in message
    assert f"[context.secrets] in the configuration file {home / 'config.toml'} (the file does not exist)" in message
    assert "get_secret(name) hook (none returned a value)" in message
    assert info.value.name == "NOWHERE" and len(info.value.places) == 3
    assert isinstance(info.value, LookupError)

    write_secrets(home, OTHER="x")
    with pytest.raises(SecretNotFoundError, match=r"config\.toml \(no such key\)"):
        Secret("NOWHERE").get()
    assert not Secret("NOWHERE").exists() and Secret("OTHER").exists()


def test_a_secret_needs_a_name() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        Secret("")
    with pytest.raises(ValueError, match="non-empty string"):
        SecretTask(" ")


# --- never shown --------------------------------------------------------------------------------------


def test_a_secret_never_holds_or_shows_its_value(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__TOKEN", VALUE)
    secret = Secret("TOKEN")
    assert secret.get() == VALUE
    assert repr(secret) == str(secret) == "<Secret: 'TOKEN'>"
    for blob in (pickle.dumps(secret), cloudpickle.dumps(secret)):
        assert VALUE.encode() not in blob
        assert pickle.loads(blob) == secret
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__TOKEN", "rotated")
    assert pickle.loads(pickle.dumps(secret)).get() == "rotated"  # resolved where it is used


def test_config_repr_and_show_never_contain_secret_values(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from headwater.cli.config import config as config_group

    write_secrets(home, IN_FILE=VALUE)
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__IN_ENV", VALUE + "-env")
    assert VALUE not in repr(get_config())
    for args in (["show"], ["show", "--json"], ["show", "--toml"]):
        result = CliRunner().invoke(config_group, args)
        assert result.exit_code == 0, result.output
        assert VALUE not in result.output and "IN_FILE" in result.output and "IN_ENV" in result.output


# --- SecretTask ---------------------------------------------------------------------------------------


def test_secret_task_gives_its_value_to_downstream_tasks(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__API_TOKEN", VALUE)

    @task
    def header(token: str) -> str:
        return f"Bearer {token}"

    with Flow("uses-a-secret") as flow:
        token = SecretTask("API_TOKEN")
        auth = header(token)
    state = flow.run()
    assert state.is_successful()
    assert state.result[auth].result == f"Bearer {VALUE}"
    assert token.name == "API_TOKEN" and token.secret_name == "API_TOKEN"


def test_secret_task_name_can_come_from_a_parameter(home: Path) -> None:
    write_secrets(home, STAGING="s-value", PROD="p-value")
    with Flow("chosen") as flow:
        which = Parameter("which", default="STAGING")
        value = SecretTask("STAGING")(name=which)
    assert flow.run().result[value].result == "s-value"
    assert flow.run(parameters={"which": "PROD"}).result[value].result == "p-value"


def test_a_missing_secret_fails_the_task_with_the_clear_message(home: Path) -> None:
    with Flow("missing") as flow:
        value = SecretTask("NOT_SET")()  # called: added to the flow
    state = flow.run()
    assert state.is_failed()
    assert isinstance(state.result[value].result, SecretNotFoundError)
    assert "HEADWATER__CONTEXT__SECRETS__NOT_SET" in state.result[value].message


def test_secret_task_is_never_checkpointed(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__API_TOKEN", VALUE)
    results = tmp_path / "results"

    @task
    def length(token: str) -> int:
        return len(token)

    with Flow("checkpointed", result=Result(str(results / "{task_name}.pkl"))) as flow:
        size = length(SecretTask("API_TOKEN"))
    state = flow.run()
    assert state.result[size].result == len(VALUE)
    written = sorted(p.name for p in results.iterdir())
    assert written == ["length.pkl"]  # the downstream task is checkpointed, the secret task is not
    assert all(VALUE.encode() not in p.read_bytes() for p in results.iterdir())

    assert SecretTask("X").checkpoint is False
    with pytest.raises(ValueError, match="never checkpointed"):
        SecretTask("X", checkpoint=True)
    with pytest.raises(ValueError, match="never checkpointed"):
        SecretTask("X").copy(checkpoint=True)
    assert SecretTask("X", checkpoint=False, tags=["t"]).tags == {"t"}


def test_secret_values_are_not_logged_or_pickled_with_the_flow(
    home: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__API_TOKEN", VALUE)

    @task
    def use(token: str) -> int:
        return len(token)

    with Flow("logged") as flow:
        secret_task = SecretTask("API_TOKEN")
        used = use(secret_task)
    with caplog.at_level(logging.DEBUG, logger="headwater"):
        state = flow.run()
    assert state.is_successful() and state.result[used].result == len(VALUE)
    assert any("API_TOKEN" in r.getMessage() for r in caplog.records)  # the lookup is logged, by name
    for record in caplog.records:
        assert VALUE not in record.getMessage()
    assert VALUE not in caplog.text
    assert VALUE.encode() not in cloudpickle.dumps(flow)
    assert VALUE not in repr(secret_task)
