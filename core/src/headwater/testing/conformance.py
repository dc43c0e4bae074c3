"""Conformance kits: the tests every Storage and Environment must pass, ready to subclass.

A plugin's test module subclasses a kit and provides one fixture; pytest collects the
inherited tests::

    import pytest
    from headwater.testing.conformance import StorageConformance

    class TestMyStorage(StorageConformance):
        @pytest.fixture
        def storage(self, tmp_path):
            return MyStorage(directory=str(tmp_path))

The class must be registered (its plugin installed, or ``registry("storage").register(...)``
in a fixture) because the kits round-trip it through the serializer by its ``"type"`` tag.
The kits define their fixtures themselves, so they need no pytest plugin.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from headwater.testing.flows import expected_result, failing_flow, result_of, sample_flow, slow_flow

__all__ = ["StorageConformance", "EnvironmentConformance", "count_writes"]

RUN_TIMEOUT = 120.0
"""Seconds the environment kit waits for a run to end before failing (a safety net, not a timing check)."""


class count_writes:  # noqa: N801 - used like a function: ``with count_writes(storage) as calls``
    """Count calls of ``type(storage)._write`` inside the ``with`` block (``calls`` is a list of locations)."""

    def __init__(self, storage: Any) -> None:
        self.cls = type(storage)
        self.calls: list[str] = []
        self._original: Any = None

    def __enter__(self) -> list[str]:
        original = self.cls.__dict__.get("_write")
        self._original = original
        inherited = self.cls._write
        calls = self.calls

        def spy(this: Any, flow: Any, location: str) -> Any:
            calls.append(location)
            return inherited(this, flow, location)

        self.cls._write = spy
        return calls

    def __exit__(self, *exc: Any) -> None:
        if self._original is None:
            del self.cls._write
        else:
            self.cls._write = self._original


def _restore(data: dict[str, Any], kind: str) -> Any:
    from headwater.serialization import from_dict

    return from_dict(json.loads(json.dumps(data)), kind)


class StorageConformance:
    """Tests of the Storage interface. Provide a ``storage`` fixture: a fresh, empty storage.

    Class attributes say which rules apply:

    - ``needs_build``: ``get_flow`` fails before ``build()`` (the storage writes code; Module does not);
    - ``content_addressed``: a flow with other code gets another location (Module: the module name).

    Override the ``flow`` / ``other_flow`` fixtures when your storage cannot hold the default
    flows (:func:`headwater.testing.flows.sample_flow`), e.g. flows that must live in a module.
    """

    needs_build: bool = True
    content_addressed: bool = True

    @pytest.fixture
    def storage(self) -> Any:
        raise NotImplementedError("Subclasses of StorageConformance provide a `storage` fixture (a fresh, empty storage).")

    @pytest.fixture
    def flow(self) -> Any:
        """The flow stored by the tests (``x`` -> ``(x + 1) * 2``)."""
        return sample_flow("conformance-flow")

    @pytest.fixture
    def other_flow(self) -> Any:
        """A second flow with another name and other code (``x`` -> ``(x + 1) * 3``)."""
        return sample_flow("conformance-other", variant="triple")

    @pytest.fixture
    def same_flow(self, flow: Any) -> Any:
        """A new object equal to ``flow`` (same name, same code)."""
        return sample_flow(flow.name)

    # --- add_flow ------------------------------------------------------------------------

    def test_add_flow_assigns_a_location_without_io(self, storage: Any, flow: Any) -> None:
        with count_writes(storage) as writes:
            location = storage.add_flow(flow)
        assert writes == [], "add_flow must not write; build() does the I/O"
        assert isinstance(location, str) and location
        assert storage.flows == {flow.name: location}
        assert flow in storage and flow.name in storage and location in storage
        assert "missing-flow" not in storage
        assert storage.location_for(flow) == location, "location_for must be pure and agree with add_flow"
        if self.needs_build:
            from headwater.storage import FlowNotInStorageError

            with pytest.raises(FlowNotInStorageError):
                storage.get_flow(location)

    def test_duplicate_flow_name_is_rejected(self, storage: Any, flow: Any, same_flow: Any) -> None:
        location = storage.add_flow(flow)
        with pytest.raises(ValueError, match=flow.name):
            storage.add_flow(same_flow)
        assert storage.flows == {flow.name: location}

    # --- build ---------------------------------------------------------------------------

    def test_build_returns_self_and_is_idempotent(self, storage: Any, flow: Any, other_flow: Any) -> None:
        storage.add_flow(flow)
        with count_writes(storage) as writes:
            assert storage.build() is storage
            first = list(writes)
            assert storage.build() is storage
        assert writes == first, "a second build() without new flows must write nothing"
        location = storage.add_flow(other_flow)
        with count_writes(storage) as writes:
            storage.build()
        if first:  # the storage writes through _write: only the new flow is written
            assert writes == [location]
        assert storage.get_flow(location).name == other_flow.name

    # --- serialization -------------------------------------------------------------------

    def test_serialize_round_trip_through_the_registry(self, storage: Any, flow: Any) -> None:
        from headwater.plugins import registry

        storage.add_flow(flow)
        storage.build()
        data = storage.serialize()
        json.dumps(data)  # JSON-ready
        tag = registry("storage").name_for(type(storage))
        assert tag is not None, f"{type(storage).__name__} is not registered in the storage registry"
        assert data["type"] == tag == storage.name
        restored = _restore(data, "storage")
        assert type(restored) is type(storage)
        assert restored.flows == storage.flows
        assert restored.serialize() == data

    # --- loading and running -------------------------------------------------------------

    def test_get_flow_from_a_restored_storage_runs(self, storage: Any, flow: Any) -> None:
        location = storage.add_flow(flow)
        storage.build()
        agent_side = _restore(storage.serialize(), "storage")  # what an agent gets
        loaded = agent_side.get_flow(location)
        assert loaded.name == flow.name
        assert sorted(t.name for t in loaded.tasks) == sorted(t.name for t in flow.tasks)
        state = loaded.run(parameters={"x": 4}, run_on_schedule=False)
        assert state.is_successful(), state
        assert result_of(loaded, state) == expected_result(4)

    def test_get_runner_runs_the_flow(self, storage: Any, flow: Any) -> None:
        location = storage.add_flow(flow)
        storage.build()
        runner = storage.get_runner(location)
        state = runner(parameters={"x": 2})
        assert state.is_successful(), state
        assert sorted(t.name for t in state.result) == sorted(t.name for t in flow.tasks)
        assert [s.result for t, s in state.result.items() if t.name == "double"] == [expected_result(2)]

    def test_two_flows_in_one_storage(self, storage: Any, flow: Any, other_flow: Any) -> None:
        first = storage.add_flow(flow)
        second = storage.add_flow(other_flow)
        assert first != second
        storage.build()
        assert storage.get_flow(first).name == flow.name
        assert storage.get_flow(second).name == other_flow.name

    def test_unknown_location_is_an_error(self, storage: Any, flow: Any) -> None:
        from headwater.storage import FlowNotInStorageError

        storage.add_flow(flow)
        storage.build()
        with pytest.raises(FlowNotInStorageError):
            storage.get_flow("no-such-flow/0000000000000000.flow")

    # --- locations -----------------------------------------------------------------------

    def test_locations_are_content_addressed(
        self, storage: Any, flow: Any, same_flow: Any, other_flow: Any
    ) -> None:
        empty = storage.serialize()
        location = storage.add_flow(flow)
        twin = _restore(empty, "storage")
        assert twin.add_flow(same_flow) == location, "the same flow must get the same location in an equal storage"
        if self.content_addressed:
            changed = sample_flow(flow.name, variant="triple")
            other = _restore(empty, "storage")
            assert other.add_flow(changed) != location, "a flow whose code changed must get a new location"


class EnvironmentConformance:
    """Tests of the Environment interface. Provide an ``environment`` fixture.

    The flows are stored in ``environment_storage`` (default: :class:`~headwater.storage.Local`
    in a temporary directory); override it when your environment cannot read that (a container
    needs storage it can reach). Flows write their output to files under ``output_dir``;
    override it with a directory both sides share.

    ``can_kill = False`` says the environment runs flows synchronously (``execute`` returns when
    the run is over, like :class:`~headwater.environments.LocalEnvironment`): the kill test is
    skipped, and only "kill after the end changes nothing" applies.
    """

    can_kill: bool = True

    @pytest.fixture
    def environment(self) -> Any:
        raise NotImplementedError("Subclasses of EnvironmentConformance provide an `environment` fixture.")

    @pytest.fixture
    def environment_storage(self, tmp_path: Path) -> Any:
        from headwater.storage import Local

        return Local(directory=str(tmp_path / "conformance-flows"))

    @pytest.fixture
    def output_dir(self, tmp_path: Path) -> Path:
        out = tmp_path / "conformance-output"
        out.mkdir(exist_ok=True)
        return out

    @pytest.fixture
    def stored(self, environment: Any, environment_storage: Any) -> Iterator[dict[str, str]]:
        """The kit's sample and failing flows added to ``environment_storage`` and built: name -> location."""
        locations = {
            "sample": environment_storage.add_flow(sample_flow("conformance-env-flow")),
            "failing": environment_storage.add_flow(failing_flow("conformance-env-failing")),
        }
        environment_storage.build()
        environment.setup(environment_storage)
        yield locations

    def test_serialize_round_trip_through_the_registry(self, environment: Any) -> None:
        from headwater.plugins import registry

        data = environment.serialize()
        json.dumps(data)
        tag = registry("environment").name_for(type(environment))
        assert tag is not None, f"{type(environment).__name__} is not registered in the environment registry"
        assert data["type"] == tag
        restored = _restore(data, "environment")
        assert type(restored) is type(environment)
        assert restored.serialize() == data

    def test_labels_are_sorted_unique_and_round_trip(self, environment: Any) -> None:
        import attrs

        assert isinstance(environment.labels, tuple)
        labelled = attrs.evolve(environment, labels=["prod", "gpu", "prod"])
        assert labelled.labels == ("gpu", "prod")
        assert attrs.evolve(environment, labels="gpu").labels == ("gpu",)
        restored = _restore(labelled.serialize(), "environment")
        assert restored.labels == ("gpu", "prod")

    def test_execute_runs_a_stored_flow_to_success(
        self, environment: Any, environment_storage: Any, stored: dict[str, str], output_dir: Path
    ) -> None:
        from headwater.environments import RunHandle

        out = output_dir / "sample.txt"
        handle = environment.execute(environment_storage, stored["sample"], parameters={"x": 2, "path": str(out)})
        assert isinstance(handle, RunHandle)
        assert environment.wait(handle, timeout=RUN_TIMEOUT) == "success"
        assert out.read_text() == str(expected_result(2)), "the flow did not run with the given parameters"
        assert environment.status(handle) == "success", "status of a finished run must stay the same"
        assert handle.status == "success"

    def test_failing_flow_reports_failed(
        self, environment: Any, environment_storage: Any, stored: dict[str, str]
    ) -> None:
        handle = environment.execute(environment_storage, stored["failing"])
        assert environment.wait(handle, timeout=RUN_TIMEOUT) == "failed"
        assert environment.status(handle) == "failed"

    def test_kill_after_the_run_ended_changes_nothing(
        self, environment: Any, environment_storage: Any, stored: dict[str, str], output_dir: Path
    ) -> None:
        handle = environment.execute(environment_storage, stored["sample"], parameters={"path": str(output_dir / "k.txt")})
        assert environment.wait(handle, timeout=RUN_TIMEOUT) == "success"
        environment.kill(handle, grace_period=1.0)
        assert environment.status(handle) == "success"

    def test_kill_stops_a_long_running_run(
        self, environment: Any, environment_storage: Any, stored: dict[str, str], output_dir: Path
    ) -> None:
        if not self.can_kill:
            pytest.skip(f"{type(environment).__name__} runs flows synchronously (can_kill = False)")
        location = environment_storage.add_flow(slow_flow("conformance-env-slow"))
        environment_storage.build()
        environment.setup(environment_storage)
        out = output_dir / "slow.txt"
        handle = environment.execute(environment_storage, location, parameters={"path": str(out)})
        assert environment.status(handle) == "running"
        environment.kill(handle, grace_period=5.0)
        assert environment.wait(handle, timeout=RUN_TIMEOUT) == "cancelled"
        assert environment.status(handle) == "cancelled"
        assert not out.exists(), "the killed run went on to its last task"
