"""Which task states a new attempt of a flow run keeps (``execution.task_states.plan_task_states``), from real flows and results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from headwater import Flow, Parameter, states, task
from headwater.plugins import Result
from headwater.triggers import always_run
from headwater_cloud_api.execution.task_states import TaskRunRecord, plan_task_states, records_from_api


@task
def load(n: int) -> list[int]:
    return list(range(n))


@task
def double(x: int) -> int:
    return 2 * x


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task(trigger=always_run)
def cleanup() -> str:
    return "done"


def _flow(result: Any = None) -> tuple[Flow, dict[str, Any]]:
    with Flow("resume-plan", result=result) as flow:
        n = Parameter("n", default=3)
        items = load(n)
        doubled = double.map(items)
        summed = total(doubled)
        end = cleanup(upstream_tasks=[summed])
    return flow, {"n": n, "load": items, "double": doubled, "total": summed, "cleanup": end}


def _written(result: Result, tmp_path: Path, name: str, value: Any) -> dict[str, Any]:
    return {"location": result.write(value, flow_name="resume-plan", flow_run_id="r1", task_slug=name).location}


def _records(t: dict[str, Any], result: Result | None, tmp_path: Path, *, total_state: str = "Failed",
             child_states: tuple[str, ...] = ("Success", "Success", "Success")) -> list[TaskRunRecord]:
    def loc(name: str, value: Any) -> dict[str, Any] | None:
        return _written(result, tmp_path, name, value) if result is not None else None

    records = [
        TaskRunRecord(t["n"].slug, -1, "Success", None, None),
        TaskRunRecord(t["load"].slug, -1, "Success", None, loc("load", [0, 1, 2])),
        TaskRunRecord(t["double"].slug, -1, "Mapped", "Mapped 3 item(s).", None),
        TaskRunRecord(t["total"].slug, -1, total_state, "boom", None),
        TaskRunRecord(t["cleanup"].slug, -1, "Success", None, loc("cleanup", "done")),
    ]
    for i, s in enumerate(child_states):
        records.append(TaskRunRecord(t["double"].slug, i, s, None, loc(f"double-{i}", 2 * i) if s == "Success" else None))
    return records


def test_failed_task_and_its_downstream_run_again_successes_are_kept_with_their_values(tmp_path: Path) -> None:
    result = Result(str(tmp_path / "{task_slug}.pkl"))
    flow, t = _flow(result)
    plan = plan_task_states(flow, _records(t, result, tmp_path))
    assert t["total"] not in plan.task_states and t["cleanup"] not in plan.task_states
    assert plan.rerun[t["total"].slug] == "it was Failed"
    assert "downstream of" in plan.rerun[t["cleanup"].slug]  # succeeded "anyway" after the failure: runs again
    mapped = plan.task_states[t["double"]]
    assert isinstance(mapped, states.Mapped) and [s.result for s in mapped.map_states] == [0, 2, 4]  # read back: total needs them
    assert all(isinstance(s, states.Success) for s in mapped.map_states)
    assert plan.task_states[t["load"]].result == [0, 1, 2]  # the engine expands the kept mapped task again: it needs its items
    assert plan.recomputed == {}


def test_values_nothing_needs_are_not_read(tmp_path: Path) -> None:
    result = Result(str(tmp_path / "{task_slug}.pkl"))
    flow, t = _flow(result)
    plan = plan_task_states(flow, _records(t, result, tmp_path, total_state="Success"))  # only cleanup runs again? no: all kept
    assert plan.rerun == {} and plan.task_states[t["total"]].result is None  # cleanup takes no data from total: not read
    assert plan.task_states[t["cleanup"]].result is None


def test_a_needed_value_that_was_not_persisted_is_recomputed_and_said_why(tmp_path: Path) -> None:
    flow, t = _flow()
    plan = plan_task_states(flow, _records(t, None, tmp_path))
    assert t["double"] not in plan.task_states  # total needs double's values, none persisted
    assert "no result was persisted" in plan.recomputed[t["double"].slug]
    assert f"{t['total'].slug} needs its value" in plan.recomputed[t["double"].slug]
    assert t["load"] not in plan.task_states and t["load"].slug in plan.recomputed  # ... and double needs load's
    assert t["n"] not in plan.task_states and t["n"].slug not in plan.recomputed  # parameters: silently recomputed


def test_only_failed_mapped_children_run_again(tmp_path: Path) -> None:
    result = Result(str(tmp_path / "{task_slug}.pkl"))
    flow, t = _flow(result)
    records = _records(t, result, tmp_path, child_states=("Success", "Failed", "Success"))
    plan = plan_task_states(flow, records)
    mapped = plan.task_states[t["double"]]
    assert isinstance(mapped, states.Mapped)
    assert [type(s).__name__ for s in mapped.map_states] == ["Success", "Pending", "Success"]
    assert [mapped.map_states[0].result, mapped.map_states[2].result] == [0, 4]
    assert plan.mapped_rerun == {t["double"].slug: [1]}
    assert plan.task_states[t["load"]].result == [0, 1, 2]  # the children that run again need load's items


def test_a_missing_result_file_is_recomputed_not_an_error(tmp_path: Path) -> None:
    result = Result(str(tmp_path / "{task_slug}.pkl"))
    flow, t = _flow(result)
    records = _records(t, result, tmp_path)
    (tmp_path / "double-1.pkl").unlink()
    plan = plan_task_states(flow, records)
    assert t["double"] not in plan.task_states
    assert "could not be read" in plan.recomputed[t["double"].slug]


def test_paused_and_resumed_tasks(tmp_path: Path) -> None:
    flow, t = _flow()
    records = [TaskRunRecord(t["n"].slug, -1, "Success"), TaskRunRecord(t["load"].slug, -1, "Paused", "wait", {"start_time": 5.0})]
    plan = plan_task_states(flow, records)
    paused = plan.task_states[t["load"]]
    assert isinstance(paused, states.Paused) and paused.start_time == 5.0
    assert plan.paused == [t["load"].slug]
    records[1] = TaskRunRecord(t["load"].slug, -1, "Resume")
    plan = plan_task_states(flow, records)
    assert isinstance(plan.task_states[t["load"]], states.Resume) and plan.resumed == [t["load"].slug]


def test_a_fresh_run_gets_no_states_and_unknown_slugs_are_ignored() -> None:
    flow, _ = _flow()
    assert plan_task_states(flow, []).task_states == {}
    assert plan_task_states(flow, [TaskRunRecord("not-a-task", -1, "Success")]).task_states == {}


def test_records_from_api_take_the_final_states_serialized() -> None:
    [r] = records_from_api([{"task_slug": "a", "map_index": -1, "state": {"type": "Success", "message": "ok"},
                             "states": [{"type": "Running", "serialized": None},
                                        {"type": "Success", "serialized": {"location": "/x.pkl"}}]}])
    assert (r.state, r.message, r.serialized) == ("Success", "ok", {"location": "/x.pkl"})


@pytest.mark.parametrize("state", ["Cancelled", "TriggerFailed", "TimedOut", "Pending", "Running"])
def test_unfinished_or_failed_states_run_again(state: str, tmp_path: Path) -> None:
    result = Result(str(tmp_path / "{task_slug}.pkl"))
    flow, t = _flow(result)
    plan = plan_task_states(flow, _records(t, result, tmp_path, total_state=state))
    assert t["total"] not in plan.task_states and plan.rerun[t["total"].slug] == f"it was {state}"


def test_internal_collection_tasks_are_recomputed_silently(tmp_path: Path) -> None:
    with Flow("collections") as flow:
        pair = total([load(2), load(3)])  # a List task joins the two results
    listing = next(t for t in flow.graph.tasks if type(t).__module__ == "headwater.core.collections")
    loads = [t for t in flow.graph.tasks if t.name == "load"]
    records = [TaskRunRecord(t.slug, -1, "Success") for t in (*loads, listing)] + [TaskRunRecord(pair.slug, -1, "Failed")]
    plan = plan_task_states(flow, records)
    assert listing not in plan.task_states and listing.slug not in plan.recomputed  # recomputed, not listed
    assert sorted(plan.recomputed) == sorted(t.slug for t in loads)  # the real tasks are named


def test_the_log_line_stays_short_for_big_runs(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from headwater_cloud_api.execution.task_states import ResumePlan

    plan = ResumePlan(kept=[f"k-{i}" for i in range(5000)], rerun={f"r-{i}": "it was Failed" for i in range(5000)},
                      mapped_rerun={"m-1": list(range(3000))})
    with caplog.at_level(logging.INFO, logger="headwater.execute"):
        plan.log()
    [line] = [r.getMessage() for r in caplog.records]
    assert "kept 5000 finished task(s)" in line and "and 4980 more" in line and "3000 child run(s) again" in line
    assert len(line) < 3000
