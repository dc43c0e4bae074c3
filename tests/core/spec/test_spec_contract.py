"""The issue's example and the flow-dict format contract, verbatim; round trips and resuming elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import headwater
from headwater.spec import FlowEngine, Status

FLOW_SPEC = {
    "label": "example_flow",
    "tasks": [
        {"key": "task_1", "task_type": "print", "task_params": {"msg": "I am task_1."}},
        {"key": "task_2", "task_type": "print", "task_params": {"msg": "I am task_2."}},
    ],
}

EXPECTED_JSON = """\
{
  "cfg": {
    "fail_fast": true
  },
  "data": {},
  "depth": 0,
  "graph": {
    "edges": [
      {
        "dest_key": "task_1",
        "src_key": "ROOT"
      },
      {
        "dest_key": "task_2",
        "src_key": "task_1"
      }
    ],
    "tasks": {
      "ROOT": {
        "key": "ROOT",
        "status": "COMPLETED"
      },
      "task_1": {
        "key": "task_1",
        "precursors": [
          "ROOT"
        ],
        "status": "PENDING",
        "task_params": {
          "msg": "I am task_1."
        },
        "task_type": "print"
      },
      "task_2": {
        "key": "task_2",
        "precursors": [
          "task_1"
        ],
        "status": "PENDING",
        "task_params": {
          "msg": "I am task_2."
        },
        "task_type": "print"
      }
    }
  },
  "label": "example_flow",
  "num_tickable_tasks": 1,
  "parent_key": null,
  "status": "PENDING"
}"""


def test_the_issue_example_prints_exactly_this(capsys: pytest.CaptureFixture[str]) -> None:
    engine = FlowEngine()
    flow = engine.flow_spec_to_flow(FLOW_SPEC)
    engine.tick_flow_until_has_no_pending(flow)
    print("flow.status:", flow.status)
    assert capsys.readouterr().out == "I am task_1.\nI am task_2.\nflow.status: COMPLETED\n"
    assert isinstance(flow, headwater.Flow)
    assert flow.status == "COMPLETED" and flow.status is Status.COMPLETED
    assert flow.state.is_successful()


def test_the_flow_dict_is_exactly_the_contract() -> None:
    got = json.dumps(headwater.Flow.from_flow_spec(FLOW_SPEC).to_flow_dict(), indent=2, sort_keys=True)
    assert got == EXPECTED_JSON


def test_the_engine_and_the_flow_class_build_the_same_flow() -> None:
    a = FlowEngine().flow_spec_to_flow(FLOW_SPEC).to_flow_dict()
    b = headwater.Flow.from_flow_spec(FLOW_SPEC).to_flow_dict()
    assert a == b


def test_a_key_appears_at_the_top_level_when_the_flow_has_one() -> None:
    d = headwater.Flow.from_flow_spec({**FLOW_SPEC, "key": "flow:abc"}).to_flow_dict()
    assert d["key"] == "flow:abc"
    assert "key" not in headwater.Flow.from_flow_spec(FLOW_SPEC).to_flow_dict()


def test_spec_flows_share_the_core_graph() -> None:
    flow = headwater.Flow.from_flow_spec(FLOW_SPEC)
    assert [t.key for t in flow.sorted_tasks()] == ["ROOT", "task_1", "task_2"]
    assert {t.key for t in flow.upstream_tasks(flow.task_by_slug("task_2"))} == {"task_1"}
    assert len(flow.edges) == 2
    with pytest.raises(headwater.CycleError):
        flow.add_edge(flow.task_by_slug("task_2"), flow.task_by_slug("task_1"))


def test_flow_status_moves_pending_running_completed() -> None:
    engine = FlowEngine()
    flow = engine.flow_spec_to_flow(FLOW_SPEC)
    seen = [flow.status]
    while flow.status not in (Status.COMPLETED, Status.FAILED):
        engine.tick_flow(flow)
        seen.append(flow.status)
    assert seen == ["PENDING", "RUNNING", "COMPLETED"]
    assert flow.to_flow_dict()["num_tickable_tasks"] == 0


@pytest.mark.parametrize("ticks", [0, 1, 2, 3])
def test_round_trip_is_lossless_at_every_tick(ticks: int, capsys: pytest.CaptureFixture[str]) -> None:
    engine = FlowEngine()
    flow = engine.flow_spec_to_flow({**FLOW_SPEC, "data": {"n": [1, {"x": None}]}, "cfg": {"fail_fast": False, "mine": 1}})
    for _ in range(ticks):
        engine.tick_flow(flow)
    d = flow.to_flow_dict()
    again = headwater.Flow.from_flow_dict(json.loads(json.dumps(d)))
    assert again.to_flow_dict() == d
    assert again.status == flow.status
    assert [t.state.name for t in again.sorted_tasks()] == [t.state.name for t in flow.sorted_tasks()]


_CONTINUE = textwrap.dedent(
    """
    import json, sys
    import headwater
    from headwater.spec import FlowEngine
    flow = headwater.Flow.from_flow_dict(json.loads(sys.stdin.read()))
    FlowEngine().tick_flow_until_has_no_pending(flow)
    print("STATUS", flow.status)
    print("DICT", json.dumps(flow.to_flow_dict(), sort_keys=True))
    """
)

DIAMOND = {
    "label": "diamond",
    "data": {"who": "world"},
    "tasks": [
        {"key": "a", "task_type": "python", "task_params": {"callable": "spec_helpers:add", "args": [1, 2]}},
        {"key": "b", "task_type": "print", "task_params": {"msg": "$ctx.flow.tasks.a.data.result"}, "precursors": ["a"]},
        {"key": "c", "task_type": "print", "task_params": {"msg": "$ctx.flow.data.who"}, "precursors": ["a"]},
        {"key": "d", "task_type": "wire", "precursors": ["b", "c"],
         "task_params": {"wirings": [{"src": "flow.tasks.a.data.result", "dest": "flow.tasks.e.task_params.msg"}]}},
        {"key": "e", "task_type": "print", "task_params": {"msg": "unset"}},
    ],
}


def _strip_times(d: dict) -> dict:
    """The flow dict without state timestamps (which differ between any two runs)."""
    d = json.loads(json.dumps(d))
    for obj in [d, *d["graph"]["tasks"].values()]:
        obj.get("state", {}).pop("ts", None)
    return d


def test_a_flow_ticked_halfway_finishes_in_another_process_as_if_uninterrupted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = FlowEngine()
    whole = engine.flow_spec_to_flow(DIAMOND)
    engine.tick_flow_until_has_no_pending(whole)
    whole_out = capsys.readouterr().out

    half = engine.flow_spec_to_flow(DIAMOND)
    engine.tick_flow(half)
    engine.tick_flow(half)
    first_out = capsys.readouterr().out
    assert half.status == "RUNNING"
    import spec_helpers

    done = subprocess.run(
        [sys.executable, "-c", _CONTINUE],
        input=json.dumps(half.to_flow_dict()),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": os.path.dirname(spec_helpers.__file__)},
    )
    lines = done.stdout.splitlines()
    status = next(line for line in lines if line.startswith("STATUS "))
    resumed = json.loads(next(line for line in lines if line.startswith("DICT "))[5:])
    printed = [line for line in lines if not line.startswith(("STATUS ", "DICT "))]
    assert status == "STATUS COMPLETED"
    assert first_out + "".join(f"{line}\n" for line in printed) == whole_out == "3\nworld\n3\n"
    assert _strip_times(resumed) == _strip_times(whole.to_flow_dict())
