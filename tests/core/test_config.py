"""Configuration: config.toml in HEADWATER_HOME, HEADWATER__* env vars, explicit overrides, typed sections, masking."""

from __future__ import annotations

import json
import tomllib
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from click.testing import CliRunner

from headwater import Flow, task
from headwater.cli.config import config as config_group
from headwater.config import (
    MASK,
    Config,
    ConfigError,
    ConfigWarning,
    FlowsSection,
    config_path,
    env_var_name,
    get_config,
    headwater_home,
    load_config,
    register_section,
    registered_sections,
    secret_field,
    unregister_section,
)
from headwater.config._toml import dumps, parse_scalar
from headwater.config.loader import env_entries
from headwater.engine.flow_runner import _run_on_schedule_default


@pytest.fixture
def home(headwater_home: Path) -> Path:
    """headwater.testing's isolated HEADWATER_HOME (no HEADWATER__ variables from outside)."""
    return headwater_home


def write(home: Path, text: str) -> Path:
    path = home / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- where the file is --------------------------------------------------------------------------


def test_headwater_home_comes_from_the_env_var_or_defaults_to_dot_headwater(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("HEADWATER_HOME", raising=False)
    assert headwater_home() == tmp_path / ".headwater"
    monkeypatch.setenv("HEADWATER_HOME", str(tmp_path / "elsewhere"))
    assert headwater_home() == tmp_path / "elsewhere"
    assert config_path() == tmp_path / "elsewhere" / "config.toml"
    assert headwater_home({"HEADWATER_HOME": "~/x"}) == tmp_path / "x"


def test_a_missing_file_gives_the_defaults(home: Path) -> None:
    cfg = load_config()
    assert cfg.path == home / "config.toml" and not cfg.path.exists()
    assert cfg.flows.run_on_schedule is True
    assert cfg.server.port == 4200 and cfg.server.host == "127.0.0.1"
    assert cfg.cloud.api == "http://127.0.0.1:4200/graphql" and cfg.cloud.api_key is None
    assert cfg.context.secrets == {}
    assert cfg.source("server.port").kind == "default"


# --- precedence ---------------------------------------------------------------------------------


def test_env_beats_file_and_explicit_overrides_beat_both(home: Path) -> None:
    write(home, '[server]\nport = 5000\nhost = "127.0.0.2"\n[flows]\nrun_on_schedule = false\n')
    env = {"HEADWATER__SERVER__PORT": "5001", "HEADWATER_HOME": str(home)}

    from_file = load_config(env={"HEADWATER_HOME": str(home)})
    assert from_file.server.port == 5000
    assert from_file.source("server.port").describe() == f"the file {home / 'config.toml'}"

    from_env = load_config(env=env)
    assert from_env.server.port == 5001 and from_env.server.host == "127.0.0.2"  # other keys still from the file
    assert from_env.source("server.port").describe() == "the environment variable HEADWATER__SERVER__PORT"

    explicit = load_config(env=env, overrides={"server.port": 5002, "flows": {"run_on_schedule": True}})
    assert explicit.server.port == 5002 and explicit.flows.run_on_schedule is True
    assert explicit.server.host == "127.0.0.2"
    assert explicit.source("server.port").kind == "argument"


def test_home_argument_wins_over_the_env_var(home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    write(other, "[server]\nport = 6000\n")
    write(home, "[server]\nport = 5000\n")
    assert load_config().server.port == 5000
    assert load_config(home=other).server.port == 6000


def test_env_names_are_case_insensitive_nested_and_secret_names_keep_their_case(home: Path) -> None:
    env = {
        "HEADWATER__MYPLUGIN__DEEP__ER__KEY": "1",
        "headwater__Server__Port": "4300",
        "HEADWATER__CONTEXT__SECRETS__GitHub_Token": "abc",
        "HEADWATER_HOME": str(home),  # one underscore: not a key
        "OTHER__X": "1",
    }
    cfg = load_config(home=home, env=env)
    assert cfg.raw["myplugin"] == {"deep": {"er": {"key": 1}}}
    assert cfg.get("myplugin.deep.er.key") == 1
    assert cfg.server.port == 4300
    assert cfg.context.secrets == {"GitHub_Token": "abc"}
    assert set(cfg.raw) == {"myplugin", "server", "context"}
    assert env_var_name("server", "port") == "HEADWATER__SERVER__PORT"
    assert env_var_name("context", "secrets", "GitHub_Token") == "HEADWATER__CONTEXT__SECRETS__GitHub_Token"


def test_an_env_var_with_an_empty_name_part_is_ignored_with_a_warning() -> None:
    with pytest.warns(ConfigWarning, match="HEADWATER__SERVER____PORT"):
        assert env_entries({"HEADWATER__SERVER____PORT": "1"}) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", True),
        ("false", False),
        ("42", 42),
        ("-7", -7),
        ("1.5", 1.5),
        ('"quoted string"', "quoted string"),
        ("'literal'", "literal"),
        ('["a", "b"]', ["a", "b"]),
        ("[1, 2]", [1, 2]),
        ("{ a = 1 }", {"a": 1}),
        ("127.0.0.1", "127.0.0.1"),
        ("hello world", "hello world"),
        ("False", "False"),  # TOML booleans are lower-case: kept as text (a bool field still accepts it)
        ("", ""),
        ("1\nother = 2", "1\nother = 2"),  # no smuggling a second key in
    ],
)
def test_env_values_are_read_as_toml_scalars(text: str, expected: Any) -> None:
    assert parse_scalar(text) == expected
    assert type(parse_scalar(text)) is type(expected)


def test_env_values_land_typed_in_the_config(home: Path) -> None:
    cfg = load_config(
        home=home, env={"HEADWATER__X__FLAG": "true", "HEADWATER__X__N": "3", "HEADWATER__X__L": '["a","b"]'}
    )
    assert cfg.raw["x"] == {"flag": True, "n": 3, "l": ["a", "b"]}


def test_a_string_field_keeps_the_env_text_even_when_it_looks_like_a_number(home: Path) -> None:
    cfg = load_config(home=home, env={"HEADWATER__CLOUD__API_KEY": "1e5", "HEADWATER__SERVER__HOST": "10"})
    assert cfg.cloud.api_key == "1e5"
    assert cfg.server.host == "10"


@pytest.mark.parametrize(("text", "expected"), [("False", False), ("no", False), ("0", False), ("ON", True)])
def test_bool_fields_accept_the_usual_spellings(home: Path, text: str, expected: bool) -> None:
    cfg = load_config(home=home, env={"HEADWATER__FLOWS__RUN_ON_SCHEDULE": text})
    assert cfg.flows.run_on_schedule is expected


# --- errors -------------------------------------------------------------------------------------


def test_a_malformed_file_names_the_file_the_line_and_the_toml_error(home: Path) -> None:
    path = write(home, '[server]\nport = 4200\napi_key = "s3cr3t-value\n')
    with pytest.raises(ConfigError) as info:
        load_config()
    message = str(info.value)
    assert str(path) in message
    assert "line 3" in message
    assert "not valid TOML" in message and "Illegal character" in message  # the TOML parser's own words
    assert "s3cr3t" not in message  # the offending line may hold a secret: never echoed


def test_a_file_that_is_not_utf8_is_a_clear_error(home: Path) -> None:
    (home / "config.toml").write_bytes(b'[server]\nhost = "\xff"\n')
    with pytest.raises(ConfigError, match=r"line 2.*not UTF-8"):
        load_config()


def test_a_wrong_type_names_the_key_the_expected_type_and_the_env_var(home: Path) -> None:
    cfg = load_config(home=home, env={"HEADWATER__SERVER__PORT": "abc"})
    with pytest.raises(ConfigError) as info:
        cfg.server  # noqa: B018 - typed sections are built on first access
    message = str(info.value)
    assert "server.port must be int" in message
    assert "'abc'" in message
    assert "the environment variable HEADWATER__SERVER__PORT" in message
    assert cfg.flows.run_on_schedule is True  # other sections still work


def test_a_wrong_type_from_the_file_names_the_file(home: Path) -> None:
    path = write(home, '[flows]\nrun_on_schedule = "maybe"\n')
    with pytest.raises(ConfigError) as info:
        load_config().flows  # noqa: B018
    assert "flows.run_on_schedule must be bool" in str(info.value)
    assert f"the file {path}" in str(info.value)


def test_a_section_that_is_not_a_table_is_an_error(home: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[server\] must be a table.*HEADWATER__SERVER"):
        load_config(home=home, env={"HEADWATER__SERVER": "5"}).server  # noqa: B018


def test_a_validator_error_names_the_key_and_the_source(home: Path) -> None:
    write(home, "[server]\nport = 70000\n")
    with pytest.raises(ConfigError, match=r"server\.port is not valid: .*between 0 and 65535.*the file"):
        load_config().server  # noqa: B018


def test_a_wrong_type_for_a_secret_never_shows_the_value(home: Path) -> None:
    write(home, '[cloud]\napi_key = ["very-secret-1"]\n')
    with pytest.raises(ConfigError) as info:
        load_config().cloud  # noqa: B018
    assert "cloud.api_key must be" in str(info.value)
    assert "very-secret-1" not in str(info.value)


def test_a_plain_string_for_a_list_field_says_how_to_write_a_list(home: Path) -> None:
    @attrs.define
    class Agent:
        labels: list[str] = attrs.field(factory=list)

    register_section("agent_test", Agent)
    try:
        with pytest.raises(ConfigError, match=r"agent_test\.labels must be list\[str\].*TOML array"):
            load_config(home=home, env={"HEADWATER__AGENT_TEST__LABELS": "a"}).agent_test  # noqa: B018
        cfg = load_config(home=home, env={"HEADWATER__AGENT_TEST__LABELS": '["a", "b"]'})
        assert cfg.agent_test.labels == ["a", "b"]
    finally:
        unregister_section("agent_test")


def test_unknown_keys_in_a_typed_section_warn_and_stay_readable(home: Path) -> None:
    write(home, "[flows]\nrun_on_shedule = false\n[context]\nanything = 1\n")
    cfg = load_config()
    with pytest.warns(ConfigWarning, match=r"flows\.run_on_shedule .*has the keys run_on_schedule"):
        assert cfg.flows.run_on_schedule is True
    assert cfg.get("flows.run_on_shedule") is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # [context] allows other keys silently
        assert cfg.get("context.anything") == 1
    assert cfg.to_dict()["flows"] == {"run_on_schedule": True, "checkpointing": False, "default_result_dir": "",
                                      "run_on_shedule": False}


# --- sections from plugins ----------------------------------------------------------------------


@attrs.define
class S3Section:
    bucket: str = "flows"
    max_connections: int = 10
    secret_access_key: str | None = secret_field()


def test_a_registered_section_is_typed_with_defaults_and_env_overrides(home: Path) -> None:
    register_section("s3test", S3Section)
    try:
        write(home, '[s3test]\nbucket = "mine"\nsecret_access_key = "AKIA-hidden"\n')
        cfg = load_config(home=home, env={"HEADWATER__S3TEST__MAX_CONNECTIONS": "3"})
        assert cfg.s3test == S3Section(bucket="mine", max_connections=3, secret_access_key="AKIA-hidden")
        assert cfg["s3test"] is cfg.s3test
        assert "AKIA-hidden" not in repr(cfg.s3test)
        assert "AKIA-hidden" not in repr(cfg)
        assert cfg.to_dict()["s3test"]["secret_access_key"] == MASK
        assert cfg.to_dict(mask=False)["s3test"]["secret_access_key"] == "AKIA-hidden"
    finally:
        unregister_section("s3test")
    assert load_config().s3test == {"bucket": "mine", "secret_access_key": "AKIA-hidden"}  # untyped again


def test_a_plugin_contributes_its_section_through_the_hook(home: Path) -> None:
    from headwater.plugins import hookimpl, register_plugin, unregister_plugin

    class Plugin:
        @staticmethod
        @hookimpl
        def register_config_sections(register: Any) -> None:
            register(f"{__name__}:S3Section", "s3plug")  # lazy "module:Class"

    register_plugin(Plugin(), name="config-test-plugin")
    try:
        cfg = get_config(reload=True)
        assert "s3plug" in registered_sections()
        assert cfg.s3plug == S3Section()
        assert load_config(home=home, env={"HEADWATER__S3PLUG__BUCKET": "b"}).s3plug.bucket == "b"
    finally:
        unregister_plugin("config-test-plugin")
        unregister_section("s3plug")


def test_registry_rules(home: Path) -> None:
    @attrs.define
    class A:
        x: int = 1

    @attrs.define
    class B:
        x: int = 2

    register_section("rules_test", A)
    try:
        register_section("rules_test", A)  # the same again: nothing happens
        with pytest.raises(ConfigError, match=r"already registered .*replace=True"):
            register_section("rules_test", B)
        register_section("rules_test", B, replace=True)
        assert load_config().rules_test == B()
    finally:
        unregister_section("rules_test")
    with pytest.raises(ConfigError, match="not valid"):
        register_section("Bad-Name", A)
    with pytest.raises(ConfigError, match="reserved"):
        register_section("raw", A)
    with pytest.raises(ConfigError, match="attrs class"):
        register_section("plain", dict)  # type: ignore[arg-type]


def test_a_plugin_may_replace_a_builtin_section(home: Path) -> None:
    original = registered_sections()["flows"]

    @attrs.define
    class MyFlows:
        run_on_schedule: bool = False
        extra: str = "x"

    register_section("flows", MyFlows)
    try:
        assert load_config().flows == MyFlows()
    finally:
        register_section("flows", original.cls, replace=True, _builtin=True)
    assert load_config().flows == FlowsSection()


def test_a_lazy_section_that_cannot_be_imported_is_a_clear_error(home: Path) -> None:
    register_section("lazy_missing", "no_such_module_xyz:Section")
    try:
        with pytest.raises(ConfigError, match=r"\[lazy_missing\] .*cannot be imported.*Reinstall"):
            load_config().lazy_missing  # noqa: B018
    finally:
        unregister_section("lazy_missing")


# --- masking -------------------------------------------------------------------------------------

SECRET_FILE = """
[cloud]
api_key = "key-123"

[context.secrets]
GITHUB_TOKEN = "ghp-abc"

[mine]
db_password = "hunter2"
auth_token = "tok-999"
url = "postgresql://user:pw-777@127.0.0.1:5432/db"
plain = "visible"
"""

SECRET_VALUES = ("key-123", "ghp-abc", "hunter2", "tok-999", "pw-777")


def test_repr_masks_every_kind_of_secret(home: Path) -> None:
    write(home, SECRET_FILE)
    cfg = load_config()
    text = repr(cfg)
    for value in SECRET_VALUES:
        assert value not in text
    assert "visible" in text and MASK in text and "GITHUB_TOKEN" in text
    assert cfg.cloud.api_key == "key-123"  # the real value is still there for code that needs it
    assert "key-123" not in repr(cfg.cloud) and "ghp-abc" not in repr(cfg.context)


def test_config_show_masks_secrets_in_the_table(home: Path) -> None:
    write(home, SECRET_FILE)
    result = CliRunner().invoke(config_group, ["show"], env={"HEADWATER__CLOUD__REQUEST_TIMEOUT": "5"})
    assert result.exit_code == 0, result.output
    for value in SECRET_VALUES:
        assert value not in result.output
    assert "context.secrets.GITHUB_TOKEN" in result.output
    assert "mine.plain" in result.output and '"visible"' in result.output
    assert "env HEADWATER__CLOUD__REQUEST_TIMEOUT" in result.output


def test_config_show_json_and_toml_are_masked_and_parse(home: Path) -> None:
    write(home, SECRET_FILE)
    runner = CliRunner()
    as_json = runner.invoke(config_group, ["show", "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["cloud"]["api_key"] == MASK and data["context"]["secrets"] == {"GITHUB_TOKEN": MASK}
    assert data["mine"]["plain"] == "visible" and data["server"]["port"] == 4200
    assert data["mine"]["url"] == "postgresql://user:********@127.0.0.1:5432/db"
    as_toml = runner.invoke(config_group, ["show", "--toml"])
    assert as_toml.exit_code == 0, as_toml.output
    parsed = tomllib.loads(as_toml.output)
    assert parsed["mine"]["db_password"] == MASK and parsed["flows"] == {
        "run_on_schedule": True, "checkpointing": False, "default_result_dir": ""}
    assert "database_url" not in parsed["server"]  # None cannot be TOML: shown as a comment
    for value in SECRET_VALUES:
        assert value not in as_json.output and value not in as_toml.output


def test_config_show_reports_a_bad_config_and_exits_non_zero(home: Path) -> None:
    write(home, "[server\n")
    result = CliRunner().invoke(config_group, ["show"])
    assert result.exit_code == 1
    assert "not valid TOML" in result.output and "config.toml" in result.output


def test_config_path_prints_the_file(home: Path) -> None:
    result = CliRunner().invoke(config_group, ["path"])
    assert result.exit_code == 0
    assert str(home / "config.toml") in result.output and "does not exist" in result.output


def test_toml_writer_round_trips() -> None:
    data = {
        "a": {"s": 'quote " and \\ and \n and \x7f', "i": 1, "f": 1.5, "b": False, "l": [1, 2], "none": None},
        "b": {"c": {"d": "deep"}, "e": {}},
        "weird key": {"x.y": 1},
    }
    parsed = tomllib.loads(dumps(data))
    assert parsed == {
        "a": {"s": 'quote " and \\ and \n and \x7f', "i": 1, "f": 1.5, "b": False, "l": [1, 2]},
        "b": {"c": {"d": "deep"}, "e": {}},
        "weird key": {"x.y": 1},
    }


# --- the process-wide configuration --------------------------------------------------------------


def test_get_config_is_cached_until_something_changes(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_config()
    assert get_config() is first
    monkeypatch.setenv("HEADWATER__SERVER__PORT", "4301")
    second = get_config()
    assert second is not first and second.server.port == 4301
    write(home, '[server]\nhost = "127.0.0.3"\n')
    third = get_config()
    assert third.server.host == "127.0.0.3"
    assert get_config(reload=True) is not third


def test_flow_run_reads_run_on_schedule_from_the_config_file(home: Path) -> None:
    @attrs.define
    class Event:
        start_time: datetime
        parameter_defaults: dict[str, Any] = attrs.field(factory=dict)

    @attrs.define
    class OneEventTomorrow:
        asked: int = 0

        def next(self, n: int, return_events: bool = False) -> list[Event]:
            self.asked += 1
            return [Event(datetime.now(UTC) + timedelta(days=1))]

    assert _run_on_schedule_default() is True
    write(home, "[flows]\nrun_on_schedule = false\n")
    assert _run_on_schedule_default() is False
    seen: list[int] = []
    schedule = OneEventTomorrow()
    with Flow("configured", schedule=schedule) as flow:
        task(lambda: seen.append(1))()
    assert flow.run().is_successful()  # would wait a day if the file were ignored
    assert seen == [1] and schedule.asked == 0


def test_the_run_on_schedule_env_var_still_wins(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(home, "[flows]\nrun_on_schedule = true\n")
    monkeypatch.setenv("HEADWATER__FLOWS__RUN_ON_SCHEDULE", "false")
    assert _run_on_schedule_default() is False


def test_config_is_a_config(home: Path) -> None:
    cfg = get_config()
    assert isinstance(cfg, Config)
    assert "flows" in cfg and "nope" not in cfg
    with pytest.raises(AttributeError, match="No configuration section 'nope'"):
        cfg.nope  # noqa: B018
    assert cfg.get("nope.x", "d") == "d" and cfg.get("server.nope", 5) == 5


def test_a_secret_field_is_masked_whatever_its_name(home: Path) -> None:
    @attrs.define
    class Warehouse:
        credentials: str | None = secret_field()
        user: str = "etl"

    register_section("warehouse_test", Warehouse)
    try:
        write(home, '[warehouse_test]\ncredentials = "pa55-w0rd"\n')
        cfg = load_config()
        assert cfg.warehouse_test.credentials == "pa55-w0rd"
        assert cfg.to_dict()["warehouse_test"] == {"credentials": MASK, "user": "etl"}
        assert "pa55-w0rd" not in repr(cfg.warehouse_test) and "pa55-w0rd" not in repr(cfg)
        result = CliRunner().invoke(config_group, ["show"])
        assert result.exit_code == 0, result.output
        assert "warehouse_test.credentials" in result.output and "pa55-w0rd" not in result.output
    finally:
        unregister_section("warehouse_test")
