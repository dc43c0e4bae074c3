"""headwater.results: Result locations, serializers, atomic writes, and checkpointing in real flow runs."""

from __future__ import annotations

import os
import pickle
import threading
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import cattrs
import cloudpickle
import fsspec
import pytest
from cattrs.strategies import configure_tagged_union, include_subclasses

from headwater import Flow, task
from headwater.executors import ProcessExecutor
from headwater.results import (
    BytesSerializer,
    JSONSerializer,
    PickleSerializer,
    Result,
    ResultLocationError,
    ResultSerializationError,
    Serializer,
    TextSerializer,
)
from headwater.states import Failed, Mapped, Success


@pytest.fixture
def mem() -> Any:
    """A unique memory:// prefix, removed afterwards (the memory filesystem is process-global)."""
    prefix = f"memory://test-results-{uuid.uuid4().hex}"
    yield prefix
    fs = fsspec.filesystem("memory")
    path = prefix[len("memory://") :]
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture
def home(headwater_home: Path) -> Path:
    """headwater.testing's isolated HEADWATER_HOME (no HEADWATER__ variables from outside)."""
    return headwater_home


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


# --- serializers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serializer", "value"),
    [
        (PickleSerializer(), {"a": (1, 2), "b": {3}}),
        (JSONSerializer(), {"a": [1, 2.5, None, True], "b": "é"}),
        (JSONSerializer(indent=2), [1, {"x": "y"}]),
        (TextSerializer(), "héllo\nwörld"),
        (BytesSerializer(), b"\x00\xffbytes"),
    ],
)
def test_serializers_round_trip(serializer: Serializer, value: Any) -> None:
    data = serializer.serialize(value)
    assert isinstance(data, bytes)
    assert serializer.deserialize(data) == value


def test_pickle_serializer_handles_lambdas_and_closures() -> None:
    factor = 7
    fn = cloudpickle.loads(cloudpickle.dumps(lambda x: x * factor))  # closures survive cloudpickle
    restored = PickleSerializer().deserialize(PickleSerializer().serialize(fn))
    assert restored(3) == 21


def test_json_serializer_output_is_plain_json() -> None:
    assert JSONSerializer().serialize({"a": 1}) == b'{"a": 1}'
    assert TextSerializer(encoding="latin-1").serialize("é") == b"\xe9"


@pytest.mark.parametrize(
    ("serializer", "value", "type_name"),
    [
        (JSONSerializer(), {1, 2}, "set"),
        (JSONSerializer(), float("nan"), "float"),
        (PickleSerializer(), threading.Lock(), "_thread.lock"),
        (TextSerializer(), 42, "int"),
        (BytesSerializer(), "text", "str"),
    ],
)
def test_unsupported_value_raises_a_clear_error(serializer: Serializer, value: Any, type_name: str) -> None:
    with pytest.raises(ResultSerializationError) as info:
        serializer.serialize(value)
    message = str(info.value)
    assert type(serializer).__name__ in message
    assert repr(type_name) in message
    assert "PickleSerializer" in message and "checkpoint=False" in message
    assert info.value.serializer == type(serializer).__name__
    assert info.value.value_type == type_name
    assert info.value.cause  # the underlying error, as text


def test_json_error_names_the_underlying_error() -> None:
    with pytest.raises(ResultSerializationError, match="Object of type set is not JSON serializable"):
        JSONSerializer().serialize({1})


def test_serialization_error_survives_pickling() -> None:
    """It travels back from worker processes inside a Failed state."""
    with pytest.raises(ResultSerializationError) as info:
        JSONSerializer().serialize(object())
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value)
    assert (copy.serializer, copy.value_type, copy.cause) == (
        info.value.serializer,
        info.value.value_type,
        info.value.cause,
    )


def test_deserialize_garbage_raises_serialization_error() -> None:
    with pytest.raises(ResultSerializationError, match="JSONSerializer cannot deserialize"):
        JSONSerializer().deserialize(b"\x80 not json")
    with pytest.raises(ResultSerializationError, match="PickleSerializer cannot deserialize"):
        PickleSerializer().deserialize(b"not a pickle")


# --- the Result class ------------------------------------------------------------------------


def test_default_serializer_is_pickle_and_arguments_are_checked() -> None:
    assert Result().serializer == PickleSerializer()
    assert Result("x", None).serializer == PickleSerializer()
    with pytest.raises(TypeError, match=r"serializer=JSONSerializer\(\)"):
        Result(serializer=JSONSerializer)  # the class, not an instance
    with pytest.raises(TypeError, match="serialize"):
        Result(serializer="json")
    with pytest.raises(TypeError, match="must be a string"):
        Result(location=Path("/tmp/x"))  # type: ignore[arg-type]


def test_result_is_an_attrs_class_with_plain_fields() -> None:
    assert [f.name for f in attrs.fields(Result)] == ["location", "serializer"]
    r = Result("memory://x/{task_slug}", JSONSerializer())
    assert r.value is None
    assert r == Result("memory://x/{task_slug}", JSONSerializer())
    assert r != Result("memory://x/{task_slug}", PickleSerializer())


def test_result_round_trips_through_cloudpickle() -> None:
    r = Result("file:///tmp/{flow_name}/{task_slug}.json", JSONSerializer(indent=2))
    copy = cloudpickle.loads(cloudpickle.dumps(r))
    assert copy == r
    assert copy.serializer.indent == 2


def test_result_round_trips_through_a_tagged_cattrs_converter() -> None:
    """Results are structured/unstructured by a converter with a "type" tag (no value persisted)."""
    converter = cattrs.Converter()
    include_subclasses(Serializer, converter, union_strategy=partial(configure_tagged_union, tag_name="type"))
    r = Result("memory://a/{task_slug}.json", JSONSerializer(indent=4))
    r.value = {"not": "persisted"}
    data = converter.unstructure(r)
    assert data == {"location": "memory://a/{task_slug}.json", "serializer": {"indent": 4, "type": "JSONSerializer"}}
    back = converter.structure(data, Result)
    assert back == r and isinstance(back.serializer, JSONSerializer) and back.value is None
    for serializer in (PickleSerializer(), TextSerializer(encoding="latin-1"), BytesSerializer()):
        data = converter.unstructure(Result(None, serializer))
        assert converter.structure(data, Result) == Result(None, serializer)


def test_format_fills_the_template_from_the_context() -> None:
    ctx = {
        "flow_name": "etl",
        "task_name": "load",
        "map_index": 2,
        "date": datetime(2024, 5, 17, tzinfo=UTC),
        "parameters": {"region": "eu"},
        "logger": object(),  # non-string context values are fine when unused
    }
    r = Result("memory://out/{flow_name}/{parameters[region]}/{date:%Y}/{task_name}-{map_index}.pkl")
    assert r.format(**ctx) == "memory://out/etl/eu/2024/load-2.pkl"
    assert r.location == "memory://out/{flow_name}/{parameters[region]}/{date:%Y}/{task_name}-{map_index}.pkl"


def test_plain_paths_are_local_and_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert Result("rel/{task_name}.pkl").format(task_name="t") == str(tmp_path / "rel" / "t.pkl")
    assert Result("~/r/{task_name}.pkl").format(task_name="t") == str(tmp_path / "home" / "r" / "t.pkl")
    written = Result("rel/{task_name}.pkl").write([1], task_name="t")
    assert (tmp_path / "rel" / "t.pkl").is_file()
    assert Result().read(written.location).value == [1]


def test_missing_template_key_names_the_key_and_the_available_keys() -> None:
    r = Result("memory://x/{flow_name}/{region}.pkl")
    with pytest.raises(ResultLocationError) as info:
        r.format(flow_name="f", task_name="t")
    message = str(info.value)
    assert "'region'" in message
    assert "Available keys: flow_name, task_name" in message
    assert "memory://x/{flow_name}/{region}.pkl" in message


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("memory://x/{}.pkl", "positional field"),
        ("memory://x/{0}.pkl", "positional field"),
        ("memory://x/{task_name.nope}.pkl", "could not be formatted"),
        ("memory://x/{task_name", "not a valid template"),
    ],
)
def test_bad_templates_raise_location_errors(template: str, match: str) -> None:
    with pytest.raises(ResultLocationError, match=match):
        Result(template).format(task_name="t")


def test_default_location_is_under_headwater_home(home: Path) -> None:
    ctx = {"flow_name": "my flow", "task_slug": "add-1", "map_index": 3, "flow_run_id": "run-42", "task_name": "add"}
    location = Result().format(**ctx)
    assert location == str(home / "results" / "my_flow" / "run-42" / "add-1-3.pkl")
    # Unique per task run, with no time or content in it: the same context gives the same name.
    assert Result().format(**ctx) == location
    assert Result().format(**{**ctx, "map_index": 4}) != location
    assert Result().format(**{**ctx, "task_slug": "add-2"}) != location
    assert Result().format(**{**ctx, "flow_run_id": "run-43"}) != location
    assert Result().format(**{**ctx, "map_index": None}).endswith(os.sep + "add-1.pkl")
    assert Result(serializer=JSONSerializer()).format(**ctx).endswith("add-1-3.json")


def test_default_home_is_dot_headwater(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HEADWATER_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    location = Result().format(flow_name="f", task_slug="t", flow_run_id="r")
    assert location == str(tmp_path / ".headwater" / "results" / "f" / "r" / "t.pkl")


def test_write_read_exists_on_memory(mem: str) -> None:
    r = Result(mem + "/{flow_name}/{task_slug}.json", serializer=JSONSerializer())
    assert not r.exists(mem + "/{flow_name}/{task_slug}.json", flow_name="f", task_slug="t")
    written = r.write({"rows": 3}, flow_name="f", task_slug="t")
    assert written is not r
    assert written.location == mem + "/f/t.json"
    assert written.value == {"rows": 3}
    assert written.serializer == r.serializer
    assert r.value is None and r.location == mem + "/{flow_name}/{task_slug}.json"  # unchanged
    assert fsspec.filesystem("memory").cat_file(written.location[len("memory://") :]) == b'{"rows": 3}'
    assert r.exists(written.location)
    assert r.exists(mem + "/{flow_name}/{task_slug}.json", flow_name="f", task_slug="t")
    assert r.exists(flow_name="f", task_slug="t")  # this Result's own template
    assert not r.exists(flow_name="f", task_slug="other")
    read = Result(serializer=JSONSerializer()).read(written.location)
    assert read.value == {"rows": 3} and read.location == written.location


def test_write_and_read_local_file_url(tmp_path: Path) -> None:
    r = Result(f"file://{tmp_path}/{{flow_name}}/deep/{{task_name}}.pkl")
    written = r.write(lambda: "closure ok", flow_name="f", task_name="t")
    assert written.location == f"file://{tmp_path}/f/deep/t.pkl"
    assert (tmp_path / "f" / "deep" / "t.pkl").is_file()
    assert Result().read(written.location).value() == "closure ok"
    assert Result().read(str(tmp_path / "f" / "deep" / "t.pkl")).value() == "closure ok"
    assert files_under(tmp_path) == ["f/deep/t.pkl"]  # no temporary files left


def test_rewriting_replaces_the_file(tmp_path: Path) -> None:
    r = Result(str(tmp_path / "{task_name}.txt"), TextSerializer())
    r.write("first", task_name="t")
    r.write("second", task_name="t")
    assert (tmp_path / "t.txt").read_text() == "second"
    assert files_under(tmp_path) == ["t.txt"]


def test_read_missing_result_names_the_location(mem: str) -> None:
    with pytest.raises(FileNotFoundError, match="No result at 'memory://.*/nope.pkl'"):
        Result().read(mem + "/nope.pkl")


def test_serialization_failure_touches_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out" / "t.json"
    r = Result(str(tmp_path / "out" / "{task_name}.json"), JSONSerializer())
    with pytest.raises(ResultSerializationError):
        r.write({1, 2}, task_name="t")
    assert not (tmp_path / "out").exists()  # not even the directory
    r.write([1], task_name="t")
    with pytest.raises(ResultSerializationError):
        r.write(object(), task_name="t")
    assert target.read_bytes() == b"[1]"  # the earlier result is intact
    assert files_under(tmp_path) == ["out/t.json"]


def test_a_failed_local_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bytes go to a temporary file first; if the rename never happens, nothing is left."""
    r = Result(str(tmp_path / "{task_name}.bin"), BytesSerializer())
    r.write(b"old", task_name="t")

    def crash(src: str, dst: str) -> None:
        assert Path(src).parent == Path(dst).parent  # the temporary file is in the same directory
        assert Path(src).read_bytes() == b"new" * 1000  # fully written before the rename
        raise OSError("disk went away")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk went away"):
        r.write(b"new" * 1000, task_name="t")
    monkeypatch.undo()
    assert (tmp_path / "t.bin").read_bytes() == b"old"
    assert files_under(tmp_path) == ["t.bin"]


def test_serializer_returning_non_bytes_is_an_error(mem: str) -> None:
    @attrs.define(frozen=True)
    class Broken(Serializer):
        def serialize(self, value: Any) -> bytes:
            return str(value)  # type: ignore[return-value]

    with pytest.raises(TypeError, match="Broken.serialize\\(\\) returned str, not bytes"):
        Result(mem + "/x", Broken()).write(1)


# --- in real flow runs ---------------------------------------------------------------------


def test_mapped_task_writes_one_file_per_map_index(tmp_path: Path) -> None:
    @task(result=Result(f"file://{tmp_path}/{{flow_name}}/{{task_name}}-{{map_index}}.pkl"))
    def square(x: int) -> int:
        return x * x

    with Flow("squares") as flow:
        squares = square.map([1, 2, 3])

    state = flow.run()
    assert state.is_successful()
    mapped = state.result[squares]
    assert isinstance(mapped, Mapped)
    assert files_under(tmp_path) == ["squares/square-0.pkl", "squares/square-1.pkl", "squares/square-2.pkl"]
    for i, child in enumerate(mapped.map_states):
        assert child.location == f"file://{tmp_path}/squares/square-{i}.pkl"
        assert Result().read(child.location).value == (i + 1) ** 2


def test_flow_result_checkpoints_every_task(mem: str) -> None:
    @task
    def numbers() -> list[int]:
        return [1, 2]

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("sums", result=Result(mem + "/{flow_name}/{task_slug}-{map_index}.pkl")) as flow:
        xs = numbers()
        doubled = total.map([[1], [2, 3]])
        s = total(xs)

    state = flow.run()
    assert state.is_successful()
    fs = fsspec.filesystem("memory")
    base = mem[len("memory://") :]
    written = {p.rsplit("/", 1)[1] for p in fs.find(base)}
    ours = {f"{xs.slug}-None.pkl", f"{doubled.slug}-0.pkl", f"{doubled.slug}-1.pkl", f"{s.slug}-None.pkl"}
    assert len(ours) == 4
    assert ours == written  # constant inputs the engine turns into tasks are not checkpointed
    locations = {
        "numbers": state.result[xs].location,
        "total": state.result[s].location,
    }
    assert Result().read(locations["numbers"]).value == [1, 2]
    assert Result().read(locations["total"]).value == 3
    children = state.result[doubled].map_states
    assert [Result().read(c.location).value for c in children] == [1, 5]
    not_written = {t.slug for t in flow.tasks if state.result[t].location is None}
    constants = {t.slug for t in flow.tasks if t.name.startswith("Constant")}
    assert len(constants) == 1
    # the Mapped parent (each child has its own location) and the constant it maps over
    assert not_written == {doubled.slug} | constants


def test_checkpoint_false_skips_a_task(tmp_path: Path) -> None:
    @task
    def kept() -> int:
        return 1

    @task(checkpoint=False)
    def secret() -> str:
        return "do not store"

    with Flow("partial", result=Result(str(tmp_path / "{task_name}.pkl"))) as flow:
        a = kept()
        b = secret()

    state = flow.run()
    assert state.is_successful()
    assert files_under(tmp_path) == ["kept.pkl"]
    assert state.result[a].location == str(tmp_path / "kept.pkl")
    assert state.result[b].location is None
    assert state.result[b].result == "do not store"


def test_task_result_overrides_flow_result(tmp_path: Path) -> None:
    @task(result=Result(str(tmp_path / "task" / "{task_name}.txt"), TextSerializer()))
    def own() -> str:
        return "mine"

    @task
    def other() -> str:
        return "flow's"

    with Flow("override", result=Result(str(tmp_path / "flow" / "{task_name}.pkl"))) as flow:
        own()
        other()

    assert flow.run().is_successful()
    assert files_under(tmp_path) == ["flow/other.pkl", "task/own.txt"]
    assert (tmp_path / "task" / "own.txt").read_text() == "mine"


def test_memory_results_in_a_flow(mem: str) -> None:
    @task(result=Result(mem + "/{flow_name}/{today}/{task_slug}.json", JSONSerializer()))
    def report(n: int) -> dict[str, int]:
        return {"n": n}

    with Flow("report") as flow:
        r = report(5)

    state = flow.run()
    location = state.result[r].location
    assert location.startswith(mem + "/report/")
    assert location.endswith(f"/{r.slug}.json")
    assert Result(serializer=JSONSerializer()).read(location).value == {"n": 5}
    assert Result().exists(location)


def test_unserializable_value_fails_the_task_and_leaves_no_file(tmp_path: Path) -> None:
    @task(result=Result(str(tmp_path / "{task_name}.json"), JSONSerializer()))
    def make_set() -> set[int]:
        return {1, 2}

    @task
    def after(x: Any) -> Any:
        return x

    with Flow("bad-json") as flow:
        s = make_set()
        a = after(s)

    state = flow.run()
    assert state.is_failed()
    failed = state.result[s]
    assert isinstance(failed, Failed)
    assert "JSONSerializer cannot serialize a value of type 'set'" in failed.message
    assert "PickleSerializer" in failed.message and "checkpoint=False" in failed.message
    assert isinstance(failed.result, ResultSerializationError)
    assert not state.result[a].is_successful()
    assert files_under(tmp_path) == []


def test_missing_template_key_fails_the_task_with_the_key(mem: str) -> None:
    @task(result=Result(mem + "/{region}/{task_name}.pkl"))
    def t() -> int:
        return 1

    with Flow("needs-region") as flow:
        x = t()

    state = flow.run()
    assert "'region'" in state.result[x].message and "Available keys:" in state.result[x].message
    assert flow.run(context={"region": "eu"}).is_successful()
    assert Result().read(mem + "/eu/t.pkl").value == 1


def test_no_result_configured_writes_nothing(home: Path) -> None:
    @task
    def one() -> int:
        return 1

    @task(checkpoint=True)  # asks for a checkpoint, but no result is configured anywhere
    def two() -> int:
        return 2

    with Flow("plain") as flow:
        a = one()
        b = two()

    state = flow.run()
    assert state.is_successful()
    assert state.result[a].location is None and state.result[b].location is None
    assert files_under(home) == []


def test_default_location_in_a_flow(home: Path) -> None:
    @task
    def inc(x: int) -> int:
        return x + 1

    with Flow("defaults", result=Result()) as flow:
        one = inc(1)
        many = inc.map([1, 2])

    state = flow.run()
    assert state.is_successful()
    files = files_under(home / "results" / "defaults")
    run_ids = {f.split("/")[0] for f in files}
    assert len(run_ids) == 1  # one flow run
    names = {f.split("/", 1)[1] for f in files}
    assert {f"{one.slug}.pkl", f"{many.slug}-0.pkl", f"{many.slug}-1.pkl"} <= names
    assert state.result[one].location == str(home / "results" / "defaults" / run_ids.pop() / f"{one.slug}.pkl")
    assert Result().read(state.result[one].location).value == 2
    assert [Result().read(c.location).value for c in state.result[many].map_states] == [2, 3]


def test_results_are_written_from_worker_processes(tmp_path: Path) -> None:
    @task(result=Result(f"file://{tmp_path}/{{task_name}}-{{map_index}}.json", JSONSerializer()))
    def pid_of(x: int) -> dict[str, int]:
        return {"x": x, "pid": os.getpid()}

    with Flow("procs", executor=ProcessExecutor(max_workers=1)) as flow:
        out = pid_of.map([1, 2])

    state = flow.run()
    assert state.is_successful()
    values = [Result(serializer=JSONSerializer()).read(c.location).value for c in state.result[out].map_states]
    assert [v["x"] for v in values] == [1, 2]
    assert all(v["pid"] != os.getpid() for v in values)
    assert files_under(tmp_path) == ["pid_of-0.json", "pid_of-1.json"]


def test_success_state_keeps_the_value_and_the_location(tmp_path: Path) -> None:
    @task(result=Result(str(tmp_path / "{task_name}.pkl")))
    def value() -> dict[str, int]:
        return {"a": 1}

    with Flow("keep") as flow:
        v = value()

    s = flow.run().result[v]
    assert isinstance(s, Success)
    assert s.result == {"a": 1}
    assert s.location == str(tmp_path / "value.pkl")
