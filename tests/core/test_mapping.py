"""Mapping: task.map over lists, unmapped/flatten, mapped over mapped, per-item states, reduce."""

from __future__ import annotations

import pytest

import headwater
from headwater import Flow, Parameter, flatten, mapped, task, unmapped
from headwater.states import Failed, Mapped, Retrying, Skipped, State, Success, TriggerFailed
from headwater.triggers import all_finished


@task
def numbers() -> list[int]:
    return [1, 2, 3]


@task
def add(x: int, y: int) -> int:
    return x + y


@task
def double(x: int) -> int:
    return x * 2


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def fragile(x: int) -> int:
    if x == 2:
        raise ValueError(f"cannot take {x}")
    return x * 10


def test_map_with_unmapped_argument() -> None:
    with Flow("map") as flow:
        r = add.map([1, 2, 3], unmapped(100))
    state = flow.run()
    s = state.result[r]
    assert type(s) is Mapped
    assert s.result == [101, 102, 103]
    assert s.n_map_states == 3
    assert all(type(c) is Success for c in s.map_states)
    assert s.message == "Mapped 3 item(s)."


def test_map_over_an_upstream_tasks_result_and_a_parameter() -> None:
    with Flow("map-upstream") as flow:
        offset = Parameter("offset", default=1)
        r = add.map(x=numbers(), y=unmapped(offset))
    assert flow.run(offset=10).result[r].result == [11, 12, 13]


def test_map_over_two_lists_zips_them() -> None:
    with Flow("zip") as flow:
        r = add.map([1, 2, 3], [10, 20, 30])
    assert flow.run().result[r].result == [11, 22, 33]


def test_mapped_marker_in_a_plain_call() -> None:
    with Flow("mapped-marker") as flow:
        r = add(mapped([1, 2]), 5)
    assert flow.run().result[r].result == [6, 7]


def test_map_over_mapped_and_reduce() -> None:
    with Flow("map-map-reduce") as flow:
        doubled = double.map(numbers())
        plus_one = add.map(doubled, unmapped(1))
        s = total(plus_one)
    state = flow.run()
    assert state.result[doubled].result == [2, 4, 6]
    assert state.result[plus_one].result == [3, 5, 7]
    assert state.result[s].result == 15
    assert state.is_successful()


def test_map_index_in_context() -> None:
    @task
    def where(x: str) -> tuple[str, int, str]:
        ctx = headwater.context
        return x, ctx.map_index, ctx.task_name

    with Flow("map-index") as flow:
        r = where.map(["a", "b", "c"])
    assert flow.run().result[r].result == [("a", 0, "where"), ("b", 1, "where"), ("c", 2, "where")]


def test_a_failed_item_does_not_stop_the_others() -> None:
    with Flow("map-fail") as flow:
        f = fragile.map([1, 2, 3])
        after = double.map(f)
    state = flow.run()
    fs = state.result[f]
    assert type(fs) is Mapped
    assert [type(c) for c in fs.map_states] == [Success, Failed, Success]
    assert fs.map_states[1].message == "Error during execution of task: ValueError('cannot take 2')"
    assert fs.message == "Mapped 3 item(s), 1 failed."
    assert fs.result[0] == 10 and fs.result[2] == 30
    # downstream maps run per item: the failed item's child is TriggerFailed, the others run
    children = state.result[after].map_states
    assert [type(c) for c in children] == [Success, TriggerFailed, Success]
    assert [children[0].result, children[2].result] == [20, 60]
    assert "fragile-1[1]" in children[1].message
    assert state.is_failed()  # a failed child counts as a failed reference task


def test_reduce_after_a_failed_item_under_all_successful_and_all_finished() -> None:
    @task(trigger=all_finished)
    def collect(xs: list[object]) -> list[str]:
        return [type(x).__name__ for x in xs]

    with Flow("map-reduce-fail") as flow:
        f = fragile.map([1, 2, 3])
        strict = total(f)
        lenient = collect(f)
    state = flow.run()
    assert type(state.result[strict]) is TriggerFailed
    assert "all_successful" in state.result[strict].message
    assert "fragile-1[1]" in state.result[strict].message
    assert state.result[lenient].result == ["int", "ValueError", "int"]


def test_flatten_a_mapped_result_and_a_list_of_lists() -> None:
    @task
    def split(n: int) -> list[int]:
        return list(range(n))

    @task
    def nested() -> list[list[str]]:
        return [["a"], [], ["b", "c"]]

    @task
    def echo(x: object) -> object:
        return x

    with Flow("flatten") as flow:
        parts = split.map([1, 2, 3])
        flat_total = total(flatten(parts))
        flat_mapped = double.map(flatten(parts))
        flat_list = echo(flatten(nested()))
        flat_list_mapped = echo.map(flatten(nested()))
    state = flow.run()
    assert state.result[parts].result == [[0], [0, 1], [0, 1, 2]]
    assert state.result[flat_total].result == 4
    assert state.result[flat_mapped].result == [0, 0, 2, 0, 2, 4]
    assert state.result[flat_list].result == ["a", "b", "c"]
    assert state.result[flat_list_mapped].result == ["a", "b", "c"]


def test_mapping_over_different_lengths_is_a_clear_failure() -> None:
    with Flow("lengths") as flow:
        r = add.map([1, 2, 3], [1, 2])
    state = flow.run()
    s = state.result[r]
    assert type(s) is Failed
    assert "mapped over inputs of different lengths (x=3, y=2)" in s.message
    assert "must have the same length" in s.message


def test_mapping_over_a_non_iterable_is_a_clear_failure() -> None:
    @task
    def scalar() -> int:
        return 5

    with Flow("not-iterable") as flow:
        r = double.map(scalar())
    s = flow.run().result[r]
    assert type(s) is Failed
    assert "whose result int is not a list" in s.message
    assert "unmapped(...)" in s.message


def test_empty_list_maps_to_zero_children() -> None:
    calls: list[int] = []

    @task
    def record(x: int) -> int:
        calls.append(x)
        return x

    with Flow("empty") as flow:
        r = record.map([])
        again = record.map(r)
        s = total(r)
    state = flow.run()
    assert type(state.result[r]) is Mapped
    assert state.result[r].map_states == [] and state.result[r].result == []
    assert state.result[again].result == []
    assert state.result[s].result == 0
    assert calls == []
    assert state.is_successful()


def test_mapping_over_a_failed_upstream_is_trigger_failed() -> None:
    @task
    def broken() -> list[int]:
        raise RuntimeError("no list")

    with Flow("map-failed-upstream") as flow:
        r = double.map(broken())
    s = flow.run().result[r]
    assert type(s) is TriggerFailed
    assert "broken-1" in s.message


def test_mapped_children_retry_individually() -> None:
    attempts: dict[int, int] = {}
    transitions: list[tuple[str, str]] = []

    def handler(t: object, old: State, new: State) -> None:
        transitions.append((old.name, new.name))

    @task(max_retries=1, state_handlers=[handler])
    def shaky(x: int) -> int:
        attempts[x] = attempts.get(x, 0) + 1
        if x == 1 and attempts[x] == 1:
            raise ConnectionError("once")
        return x

    observed: list[tuple[str, int | None]] = []
    with Flow("map-retry") as flow:
        r = shaky.map([0, 1, 2])
    state = flow.run(on_task_state=lambda t, s, i: observed.append((s.name, i)))
    assert state.result[r].result == [0, 1, 2]
    assert attempts == {0: 1, 1: 2, 2: 1}
    assert transitions.count(("Running", "Retrying")) == 1
    assert ("Retrying", 1) in observed
    assert observed[-1] == ("Mapped", None)
    assert not any(isinstance(c, Retrying) for c in state.result[r].map_states)


def test_skip_inside_a_mapped_child_skips_only_that_item() -> None:
    @task
    def maybe(x: int) -> int:
        if x == 2:
            raise headwater.signals.SKIP("even")
        return x

    with Flow("map-skip") as flow:
        m = maybe.map([1, 2, 3])
        after = double.map(m)
    state = flow.run()
    assert [type(c) for c in state.result[m].map_states] == [Success, Skipped, Success]
    assert [type(c) for c in state.result[after].map_states] == [Success, Skipped, Success]
    assert state.result[after].result[0] == 2
    assert state.is_successful()


def test_map_outside_a_flow_is_an_error() -> None:
    with pytest.raises(headwater.TaskCallError, match="map\\(\\) needs a flow"):
        double.map([1])
