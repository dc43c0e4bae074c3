"""headwater.serialization: "type"-tagged round trips of storage, environments, schedules and results,
plugin classes registered late, unknown tags, and deterministic flow metadata across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from headwater.environments import Environment, LocalEnvironment, RunHandle, SubprocessEnvironment
from headwater.plugins import registry
from headwater.results import JSONSerializer, PickleSerializer, Result, TextSerializer
from headwater.run_configs import LocalRun, UniversalRun
from headwater.schedules import CronClock, DatesClock, IntervalClock, Schedule
from headwater.schedules.filters import AtTime, BetweenDates, BetweenTimes, IsWeekday, OnDate
from headwater.serialization import SerializationError, canonical_json, dumps, from_dict, to_dict
from headwater.storage import FileSystem, Local, Module, Storage

START = datetime(2020, 1, 1, 9, 30, tzinfo=UTC)


def round_trip(obj: Any, kind: str | type) -> Any:
    """to_dict, through real JSON text, and back."""
    return from_dict(json.loads(json.dumps(to_dict(obj))), kind)


def builtin_tags(kind: str) -> set[str]:
    return {entry.name for entry in registry(kind).entries() if entry.plugin == "headwater"}


# --- storage -----------------------------------------------------------------------------------

STORAGES = [
    Local(),
    Local(directory="flows-dir", stored_as_script=True, path="flows/etl.py", flows={"etl": "etl/0123456789abcdef.py"}),
    Module("my_package.flows"),
    Module("my_package.flows:flow", flows={"etl": "my_package.flows:flow#etl"}),
    FileSystem("memory://bucket/flows"),
    FileSystem(
        "file:///srv/flows",
        stored_as_script=True,
        path="flows/etl.py",
        project_dir=".",
        storage_options={"auto_mkdir": True},
        flows={"etl": "etl/0123456789abcdef/flows/etl.py"},
    ),
]


@pytest.mark.parametrize("storage", STORAGES, ids=lambda s: repr(s))
def test_builtin_storage_round_trips_with_its_type_tag(storage: Storage) -> None:
    data = to_dict(storage)
    assert data["type"] == type(storage).__name__
    assert data["type"] == storage.name
    assert storage.serialize() == data
    back = round_trip(storage, "storage")
    assert type(back) is type(storage)
    assert back == storage
    assert back.flows == storage.flows
    assert from_dict(data, Storage) == storage  # by base class as well as by kind


def test_every_builtin_storage_tag_is_covered() -> None:
    assert {type(s).__name__ for s in STORAGES} == builtin_tags("storage")


# --- environments ------------------------------------------------------------------------------

ENVIRONMENTS = [
    LocalEnvironment(),
    LocalEnvironment(labels=["dev", "laptop"]),
    SubprocessEnvironment(labels="gpu", env={"A": "1", "B": 2}, working_dir="work", python="python3"),
    LocalRun(labels=["test"]),
    LocalRun(labels=["prod", "etl"], env={"LEVEL": "debug"}, working_dir="/srv/etl"),
    UniversalRun(labels=["any"], env={"X": "y"}),
]


@pytest.mark.parametrize("environment", ENVIRONMENTS, ids=lambda e: repr(e))
def test_builtin_environment_round_trips_with_its_type_tag(environment: Environment) -> None:
    data = environment.serialize()
    assert data["type"] == type(environment).__name__
    assert data == to_dict(environment)
    json.dumps(data)  # JSON-ready as is
    back = round_trip(environment, "environment")
    assert type(back) is type(environment)
    assert back == environment
    assert isinstance(back.labels, tuple)
    assert from_dict(data, Environment) == environment


def test_every_builtin_environment_tag_is_covered() -> None:
    assert {type(e).__name__ for e in ENVIRONMENTS} == builtin_tags("environment")


def test_run_configs_are_environments_with_normalised_fields() -> None:
    run = LocalRun(labels=["b", "a", "b"], env={"N": 1})
    assert isinstance(run, SubprocessEnvironment) and isinstance(run, Environment)
    assert run.labels == ("a", "b")
    assert run.env == {"N": "1"}
    assert LocalRun(labels="solo").labels == ("solo",)
    assert isinstance(UniversalRun(), SubprocessEnvironment)
    with pytest.raises(TypeError, match="env must be a mapping"):
        LocalRun(env=["A=1"])


def test_a_tag_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(SerializationError, match="Unknown environment type 'Local'"):
        from_dict({"type": "Local"}, "environment")


def test_bad_fields_name_the_tag_and_the_payload() -> None:
    with pytest.raises(SerializationError, match="Could not restore storage 'Module'"):
        from_dict({"type": "Module", "module": ""}, "storage")
    with pytest.raises(SerializationError, match="'type' tag"):
        from_dict({"module": "x"}, "storage")


# --- schedules and results ---------------------------------------------------------------------

SCHEDULES = [
    Schedule(clocks=[IntervalClock(timedelta(hours=1), start_date=START)]),
    Schedule(
        clocks=[
            IntervalClock(timedelta(minutes=15), start_date=START, end_date=START + timedelta(days=3),
                          parameter_defaults={"n": 3}, labels=["fast"]),
            CronClock("0 9 * * 1-5", start_date=START, timezone="Europe/Berlin", day_or=False),
            DatesClock([START + timedelta(days=2), START + timedelta(days=1)]),
        ],
        filters=[IsWeekday(), BetweenTimes("08:00", "18:00")],
        or_filters=[AtTime("09:00"), OnDate(1, 2)],
        not_filters=[BetweenDates(12, 24, 12, 26)],
    ),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=["interval", "everything"])
def test_schedules_round_trip(schedule: Schedule) -> None:
    data = to_dict(schedule)
    assert data["type"] == "Schedule"
    assert {c["type"] for c in data["clocks"]} <= {"IntervalClock", "CronClock", "DatesClock"}
    back = round_trip(schedule, "schedule")
    assert back == schedule
    assert back.next(5, after=START) == schedule.next(5, after=START)
    assert dumps(back) == dumps(schedule)


@pytest.mark.parametrize(
    "result",
    [
        Result(),
        Result(location="memory://results/{flow_name}/{task_name}.json", serializer=JSONSerializer(indent=2)),
        Result(location="/data/{task_slug}.txt", serializer=TextSerializer(encoding="latin-1")),
        Result(location="file:///data/{task_slug}.pkl", serializer=PickleSerializer()),
    ],
    ids=repr,
)
def test_results_round_trip(result: Result) -> None:
    data = to_dict(result)
    assert data["type"] == "Result"
    assert data["serializer"]["type"] == type(result.serializer).__name__
    back = round_trip(result, "result")
    assert back == result
    assert type(back.serializer) is type(result.serializer)


# --- classes registered late (a plugin, a test) ----------------------------------------------


@attrs.define
class BucketStorage(Storage):
    """A storage known only to this test module."""

    bucket: str = "b"
    prefix: str = ""

    def location_for(self, flow: Any) -> str:
        return f"{self.bucket}/{flow.name}"

    def _write(self, flow: Any, location: str) -> None:
        return None

    def get_flow(self, location: str) -> Any:
        raise NotImplementedError


@attrs.define
class RecordingEnvironment(Environment):
    """An environment known only to this test module."""

    queue: str = "default"

    def execute(self, storage: Any, flow_location: str, **run_context: Any) -> RunHandle:
        return RunHandle(environment="RecordingEnvironment", status="success")

    def status(self, handle: RunHandle) -> str:
        return handle.status

    def kill(self, handle: RunHandle, grace_period: float = 10.0) -> None:
        return None


@pytest.fixture
def late_classes() -> Iterator[None]:
    storages, environments = registry("storage"), registry("environment")
    assert "Local" in storages and "LocalRun" in environments  # both registries are filled already
    storages.register(BucketStorage)
    environments.register(RecordingEnvironment, "Recording")
    yield
    storages.unregister("BucketStorage")
    environments.unregister("Recording")


def test_a_class_registered_after_the_registry_was_filled_round_trips(late_classes: None) -> None:
    storage = BucketStorage(bucket="flows", prefix="team-a", flows={"etl": "flows/etl"})
    data = storage.serialize()
    assert data["type"] == "BucketStorage"
    assert from_dict(json.loads(json.dumps(data)), "storage") == storage
    env = RecordingEnvironment(labels=["x"], queue="fast")
    assert env.serialize()["type"] == "Recording"
    assert round_trip(env, "environment") == env


def test_an_unregistered_class_cannot_be_serialized() -> None:
    with pytest.raises(SerializationError, match=r"BucketStorage is not registered.*register\(BucketStorage\)"):
        to_dict(BucketStorage())


def test_unknown_tag_names_the_tag_the_installed_tags_and_the_distribution(headwater_plugin_manager: Any) -> None:
    # built-ins only: the plugins that provide S3 and KubernetesRun may be installed in this environment
    with pytest.raises(SerializationError) as info:
        from_dict({"type": "S3", "bucket": "flows"}, "storage")
    message = str(info.value)
    assert "'S3'" in message
    for tag in ("FileSystem", "Local", "Module"):
        assert tag in message
    assert "pip install headwater-s3" in message

    with pytest.raises(SerializationError) as info:
        from_dict({"type": "KubernetesRun"}, "environment")
    message = str(info.value)
    assert "'KubernetesRun'" in message and "LocalRun" in message and "SubprocessEnvironment" in message
    assert "pip install headwater-k8s" in message

    with pytest.raises(SerializationError) as info:  # hints match exact names, never substrings
        from_dict({"type": "DigitalOceanSpaces"}, "storage")
    assert "pip install" not in str(info.value) and "register_storage hook" in str(info.value)

    with pytest.raises(SerializationError, match="'Nowhere'.*Installed storage types: .*Local"):
        from_dict({"type": "Nowhere"}, "storage")


# --- flow metadata ------------------------------------------------------------------------------

FLOW_FILE = '''
from datetime import datetime, timedelta, timezone

from headwater import Flow, Parameter, task
from headwater.results import JSONSerializer, Result
from headwater.run_configs import LocalRun
from headwater.schedules import Schedule
from headwater.schedules.clocks import CronClock, IntervalClock
from headwater.storage import Local

@task(max_retries=2, retry_delay=timedelta(seconds=5), tags=["io"])
def extract(n):
    return list(range(n))

@task(result=Result(serializer=JSONSerializer()))
def total(xs, offset=0):
    return sum(xs) + offset

schedule = Schedule(clocks=[
    IntervalClock(timedelta(hours=6), start_date=datetime(2020, 1, 1, tzinfo=timezone.utc)),
    CronClock("30 2 * * *", timezone="UTC"),
])

with Flow(
    "metadata",
    schedule=schedule,
    storage=Local(stored_as_script=True, path=__file__),
    run_config=LocalRun(labels=["b", "a"], env={"MODE": "test"}),
) as flow:
    n = Parameter("n", default=4)
    offset = Parameter("offset", required=True)
    total(extract(n), offset=offset)
'''

SERIALIZE = """
import sys
from headwater.serialization import canonical_json
from headwater.utilities.flow_files import load_flows_from_file

flow = load_flows_from_file(sys.argv[1])["metadata"]
flow.storage.add_flow(flow)
sys.stdout.write(canonical_json(flow.serialize()))
"""


def serialize_in_child(flow_file: Path, cwd: Path, home: Path) -> str:
    env = {**os.environ, "HEADWATER_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-c", SERIALIZE, str(flow_file)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_flow_serialize_is_byte_identical_across_processes_without_paths_or_timestamps(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    flow_file = project / "metadata_flow.py"
    flow_file.write_text(textwrap.dedent(FLOW_FILE))
    first = serialize_in_child(flow_file, project, tmp_path / "home1")
    second = serialize_in_child(flow_file, project, tmp_path / "home2")
    assert first == second
    assert first.encode() == second.encode()

    data = json.loads(first)
    assert canonical_json(data) == first  # already canonical
    assert data["name"] == "metadata"
    assert data["run_config"] == {
        "type": "LocalRun", "labels": ["a", "b"], "env": {"MODE": "test"}, "working_dir": None, "python": None,
    }
    assert data["storage"]["type"] == "Local"
    assert data["storage"]["path"] == "metadata_flow.py"  # relative to the working directory
    assert data["storage"]["flows"]["metadata"].startswith("metadata/")
    assert data["schedule"]["type"] == "Schedule"
    assert {p["name"]: p["required"] for p in data["parameters"]} == {"n": False, "offset": True}

    # nothing of this machine: no temp dir, no home, no interpreter path, no time of serialization
    for machine_path in (str(tmp_path), str(Path.home()), str(project), sys.prefix, os.path.dirname(sys.executable)):
        assert machine_path not in first
    for today in (date.today().isoformat(), datetime.now(UTC).date().isoformat()):
        assert today not in first


def test_flow_serialize_changes_with_the_flow(tmp_path: Path) -> None:
    flow_file = tmp_path / "metadata_flow.py"
    flow_file.write_text(textwrap.dedent(FLOW_FILE))
    before = serialize_in_child(flow_file, tmp_path, tmp_path / "home")
    flow_file.write_text(textwrap.dedent(FLOW_FILE).replace('labels=["b", "a"]', 'labels=["b", "c"]'))
    after = serialize_in_child(flow_file, tmp_path, tmp_path / "home")
    assert json.loads(after)["run_config"]["labels"] == ["b", "c"]
    assert before != after
