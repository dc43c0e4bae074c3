"""``target=``: Prefect 1's target caching. A task whose target exists is not run; its result is read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headwater import Flow, task
from headwater.results import JSONSerializer, Result
from headwater.states import Cached, Success


def _flow(tmp_path: Path, calls: list[int], **options: Any) -> tuple[Flow, Any, Any]:
    options.setdefault("result", Result(location=str(tmp_path / "results" / "default.pkl")))

    @task(**options)
    def extract() -> int:
        calls.append(1)
        return 21

    @task
    def double(x: int) -> int:
        return 2 * x

    with Flow("etl") as flow:
        got = extract()
        out = double(got)
    return flow, got, out


def test_an_existing_target_skips_the_task_and_reads_its_result(tmp_path: Path) -> None:
    calls: list[int] = []
    flow, extract, double = _flow(tmp_path, calls, target="{flow_name}/{task_name}.pkl")
    first = flow.run()
    assert type(first.result[extract]) is Success and first.result[double].result == 42
    assert (tmp_path / "results" / "etl" / "extract.pkl").is_file()  # relative to the result's directory
    second = flow.run()
    state = second.result[extract]
    assert isinstance(state, Cached) and state.result == 21
    assert state.location == str(tmp_path / "results" / "etl" / "extract.pkl")
    assert second.result[double].result == 42 and calls == [1]


def test_mapped_children_have_one_target_each(tmp_path: Path) -> None:
    seen: list[int] = []

    @task(target="item-{map_index}.json", result=Result(location=str(tmp_path / "r.json"), serializer=JSONSerializer()))
    def square(x: int) -> int:
        seen.append(x)
        return x * x

    with Flow("map") as flow:
        squares = square.map([1, 2, 3])
    assert flow.run().result[squares].result == [1, 4, 9]
    (tmp_path / "item-1.json").unlink()  # only this one is computed again
    again = flow.run().result[squares]
    assert again.result == [1, 4, 9] and seen == [1, 2, 3, 2]
    assert [type(s).__name__ for s in again.map_states] == ["Cached", "Success", "Cached"]


def test_a_callable_target_and_the_default_result(tmp_path: Path, headwater_home: Path) -> None:
    calls: list[int] = []
    flow, extract, _ = _flow(tmp_path, calls, result=None, target=lambda **ctx: f"{ctx['task_name']}-cache.pkl")
    flow.run()
    flow.run()
    assert calls == [1]
    assert list(Path(headwater_home).rglob("extract-cache.pkl")), "a target without result= goes to the results directory"


def test_an_unreadable_target_runs_the_task_again(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    flow, extract, double = _flow(tmp_path, calls, target="t.pkl")
    flow.run()
    (tmp_path / "results" / "t.pkl").write_bytes(b"not a pickle")
    state = flow.run()
    assert calls == [1, 1] and type(state.result[extract]) is Success and state.result[double].result == 42
    assert "could not be read" in caplog.text


def test_checkpoint_false_turns_the_target_off(tmp_path: Path) -> None:
    calls: list[int] = []
    flow, _, _ = _flow(tmp_path, calls, target="t.pkl", checkpoint=False)
    flow.run()
    flow.run()
    assert calls == [1, 1] and not (tmp_path / "results" / "t.pkl").exists()


def test_a_bad_target_is_refused_when_the_task_is_made() -> None:
    with pytest.raises(ValueError, match="target must be a location template"):
        task(target=3)(lambda: 1)
