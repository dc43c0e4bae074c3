"""Built-in task types, ``$ctx.`` interpolation, and registering task types (in-process and via the hook)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import pytest

import headwater
from headwater.spec import FlowEngine, InterpolationError, SpecError, get_handler, register, task_types, unregister
from headwater.spec.interpolation import interpolate
from headwater.spec.task_types import print_task

engine = FlowEngine()


def run(spec: dict[str, Any]) -> headwater.Flow:
    flow = headwater.Flow.from_flow_spec(spec)
    engine.tick_flow_until_has_no_pending(flow)
    return flow


def t(key: str, task_type: str, **params: Any) -> dict[str, Any]:
    return {"key": key, "task_type": task_type, "task_params": params}


def test_the_builtin_types_are_installed() -> None:
    assert {"print", "noop", "log", "shell", "python", "wire", "switch", "spread", "flow"} <= set(task_types())


def test_print_noop_and_log(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="headwater.spec"):
        flow = run({"tasks": [t("p", "print", msg="hello"), t("n", "noop"), t("l", "log", msg="logged", level="WARNING")]})
    assert flow.status == "COMPLETED"
    assert capsys.readouterr().out == "hello\n"
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.getMessage() == "logged"] == [("WARNING", "logged")]


def test_log_refuses_an_unknown_level() -> None:
    flow = run({"tasks": [t("l", "log", msg="x", level="LOUD")]})
    assert flow.status == "FAILED" and "unknown level 'LOUD'" in flow.data["errors"][0]["message"]


def test_shell_records_output_and_exit_code(tmp_path: Path) -> None:
    flow = run(
        {
            "cfg": {"fail_fast": False},
            "tasks": [
                t("ok", "shell", command="echo out; echo err >&2", cwd=str(tmp_path)),
                {**t("argv", "shell", command=[sys.executable, "-c", "import os; print(os.environ['HW_X'])"],
                     env={"HW_X": "from env"}), "precursors": []},
                {**t("bad", "shell", command="echo partial; echo oops >&2; exit 3"), "precursors": []},
            ],
        }
    )
    assert flow.task_by_slug("ok").data == {"stdout": "out\n", "stderr": "err\n", "exit_code": 0}
    assert flow.task_by_slug("argv").data["stdout"] == "from env\n"
    bad = flow.task_by_slug("bad")
    assert bad.status == "FAILED" and bad.data == {"stdout": "partial\n", "stderr": "oops\n", "exit_code": 3}
    assert "exited with code 3" in bad.state.message and "oops" in bad.state.message


def test_python_calls_module_function_with_args_and_kwargs() -> None:
    flow = run({"tasks": [t("a", "python", callable="spec_helpers:add", args=[1], kwargs={"b": 41})]})
    assert flow.task_by_slug("a").data == {"result": 42}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"callable": "spec_helpers.add"}, "must look like 'package.module:function'"),
        ({"callable": "no_such_module_xyz:f"}, "cannot import 'no_such_module_xyz:f'"),
        ({}, "task_params needs 'callable'"),
    ],
)
def test_python_errors_name_the_problem(params: dict[str, Any], message: str) -> None:
    flow = run({"tasks": [t("a", "python", **params)]})
    assert flow.status == "FAILED" and message in flow.data["errors"][0]["message"]


def test_interpolation_reads_the_tick_context(capsys: pytest.CaptureFixture[str]) -> None:
    flow = run(
        {
            "label": "interp",
            "data": {"items": [10, 20], "name": "world"},
            "tasks": [
                t("a", "python", callable="spec_helpers:add", args=["$ctx.flow.data.items.0", "$ctx.flow.data.items.1"]),
                t("b", "print", msg="$ctx.flow.tasks.a.data.result"),
                t("c", "print", msg="\\$ctx.flow.label is literal"),
                t("d", "print", msg="$ctx.flow.label"),
                t("e", "print", msg="$ctx.task.key"),
                t("f", "print", msg="$ctx.flow.tasks.a.status"),
                t("g", "python", callable="spec_helpers:add", args=["$ctx.flow.data.items", [30]]),
                t("h", "print", msg="not $ctx. at the start"),
            ],
        }
    )
    assert flow.status == "COMPLETED"
    assert capsys.readouterr().out.splitlines() == [
        "30", "$ctx.flow.label is literal", "interp", "e", "COMPLETED", "not $ctx. at the start",
    ]
    assert flow.task_by_slug("g").data["result"] == [10, 20, 30], "a whole-string reference keeps the value's type"
    assert flow.task_by_slug("c").task_params == {"msg": "\\$ctx.flow.label is literal"}, "stored params are raw"


def test_an_interpolated_value_is_a_copy() -> None:
    root = {"flow": {"data": {"items": [1]}}}
    value = interpolate({"x": "$ctx.flow.data.items"}, root)
    value["x"].append(2)
    assert root["flow"]["data"]["items"] == [1]


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("$ctx.flow.tasks.nope.data", "flow.tasks has no 'nope' (it has: ROOT, a)"),
        ("$ctx.flow.data.items.5", "flow.data.items is a list of 1 item(s); '5' is not an index"),
        ("$ctx.flow.label.x", "flow.label is str 'L', which has no 'x'"),
        ("$ctx.flow..x", "empty part"),
    ],
)
def test_a_bad_reference_fails_the_task_naming_the_path(ref: str, message: str) -> None:
    flow = run({"label": "L", "data": {"items": [1]}, "tasks": [t("a", "print", msg=ref)]})
    assert flow.status == "FAILED"
    assert message in flow.data["errors"][0]["message"]
    assert ref in flow.data["errors"][0]["message"] or "empty part" in message


def test_wire_copies_between_tasks(capsys: pytest.CaptureFixture[str]) -> None:
    flow = run(
        {
            "tasks": [
                t("src", "python", callable="spec_helpers:add", args=[2, 3]),
                t("w", "wire", wirings=[
                    {"src": "flow.tasks.src.data.result", "dest": "flow.tasks.dst.task_params.msg"},
                    {"value": "$ctx.flow.tasks.src.data.result", "dest": "flow.data.copied.deep"},
                    {"value": "literal", "dest": "flow.tasks.dst.data.note"},
                ]),
                t("dst", "print", msg="unset"),
            ]
        }
    )
    assert capsys.readouterr().out == "5\n"
    assert flow.data == {"copied": {"deep": 5}}
    assert flow.task_by_slug("dst").task_params == {"msg": 5}
    assert flow.task_by_slug("dst").data == {"note": "literal"}


@pytest.mark.parametrize(
    ("wiring", "message"),
    [
        ({"dest": "flow.data.x"}, "one of 'src' (a path) or 'value'"),
        ({"value": 1, "dest": "flow.label.x"}, "is not writable"),
        ({"value": 1, "dest": "flow.tasks.nope.data.x"}, "flow.tasks has no 'nope'"),
    ],
)
def test_wire_errors(wiring: dict[str, Any], message: str) -> None:
    flow = run({"label": "L", "tasks": [t("w", "wire", wirings=[wiring])]})
    assert flow.status == "FAILED" and message in flow.data["errors"][0]["message"]


SWITCH = {
    "data": {"mode": "fast"},
    "tasks": [
        {**t("sw", "switch", control_value="$ctx.flow.data.mode", cases={"fast": "f", "slow": ["s1"]}, default="d"),
         "successors": ["f", "s1", "d"]},
        {**t("f", "print", msg="fast"), "precursors": ["sw"]},
        {**t("s1", "print", msg="slow"), "precursors": ["sw"]},
        {**t("s2", "print", msg="slow again"), "precursors": ["s1"]},
        {**t("d", "print", msg="default"), "precursors": ["sw"]},
        {**t("join", "print", msg="joined"), "precursors": ["f", "s2", "d"]},
    ],
}


@pytest.mark.parametrize(
    ("mode", "out", "skipped"),
    [
        ("fast", "fast\njoined\n", ["d", "s1", "s2"]),
        ("slow", "slow\nslow again\njoined\n", ["d", "f"]),
        ("other", "default\njoined\n", ["f", "s1", "s2"]),
    ],
)
def test_switch_runs_one_branch_skips_the_rest_and_joins(
    mode: str, out: str, skipped: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    flow = run({**SWITCH, "data": {"mode": mode}})
    assert flow.status == "COMPLETED"
    assert capsys.readouterr().out == out
    assert sorted(task.key for task in flow.sorted_tasks() if task.status == "SKIPPED") == skipped
    assert flow.task_by_slug("sw").data["control_value"] == mode


def test_switch_without_a_matching_case_or_default_fails() -> None:
    spec = {**SWITCH, "tasks": [{**SWITCH["tasks"][0], "task_params": {"control_value": "x", "cases": {"a": "f"}}},
                                *SWITCH["tasks"][1:]]}
    flow = run(spec)
    assert flow.status == "FAILED" and "no case for control value 'x'" in flow.data["errors"][0]["message"]


def test_switch_targets_must_be_successors() -> None:
    flow = run({"tasks": [t("sw", "switch", control_value=1, cases={"1": "elsewhere"}),
                          {**t("elsewhere", "noop"), "precursors": []}]})
    assert flow.status == "FAILED" and "not a successor of the switch" in flow.data["errors"][0]["message"]


def test_spread_maps_a_skeleton_over_items_in_a_child_flow(capsys: pytest.CaptureFixture[str]) -> None:
    flow = run(
        {
            "label": "parent",
            "tasks": [
                t("sp", "spread", items=["x", "y"], item_param="msg", skeleton={"task_type": "print"}),
                t("empty", "spread", items=[], skeleton={"task_type": "noop"}),
            ],
        }
    )
    assert flow.status == "COMPLETED"
    assert capsys.readouterr().out == "x\ny\n"
    sp = flow.task_by_slug("sp")
    assert sp.data["results"] == [{}, {}]
    assert sp.task_params["skeleton"] == {"task_type": "print"}, "the stored params are untouched"
    [child] = sp.children.values()
    assert child["depth"] == 1 and child["parent_key"] == flow.key and child["label"] == "parent.sp"
    assert flow.key.startswith("flow:"), "a parent gets a key when it spawns a child"
    assert [e["dest_key"] for e in child["graph"]["edges"]] == ["item_0", "item_1"]
    assert {e["src_key"] for e in child["graph"]["edges"]} == {"ROOT"}, "the copies run side by side"
    assert flow.task_by_slug("empty").data == {"results": []}


def test_spread_results_collect_each_copy_data() -> None:
    flow = run(
        {
            "tasks": [
                t("sp", "spread", items=[[1, 2], [3, 4]], item_param="args",
                  skeleton={"task_type": "python", "task_params": {"callable": "spec_helpers:add"}}),
                t("total", "python", callable="spec_helpers:add",
                  args=["$ctx.flow.tasks.sp.data.results.0.result", "$ctx.flow.tasks.sp.data.results.1.result"]),
            ]
        }
    )
    assert flow.task_by_slug("sp").data["results"] == [{"result": 3}, {"result": 7}]
    assert flow.task_by_slug("total").data["result"] == 10


def test_spread_skeleton_references_belong_to_the_generated_task(capsys: pytest.CaptureFixture[str]) -> None:
    run({"tasks": [t("sp", "spread", items=["a", "b"],
                     skeleton={"task_type": "print", "task_params": {"msg": "$ctx.task.task_params.item"}})]})
    assert capsys.readouterr().out == "a\nb\n"


def test_a_failed_spread_item_fails_the_spread() -> None:
    flow = run({"tasks": [t("sp", "spread", items=["x"], item_param="message",
                            skeleton={"task_type": "python", "task_params": {"callable": "spec_helpers:boom"}})]})
    assert flow.status == "FAILED"
    assert "Child flow" in flow.data["errors"][0]["message"] and "x" in flow.data["errors"][0]["message"]


def test_flow_runs_a_nested_child_and_waits_for_it(capsys: pytest.CaptureFixture[str]) -> None:
    flow = run(
        {
            "key": "flow:parent",
            "data": {"greeting": "hi"},
            "tasks": [
                t("child", "flow", data={"greeting": "$ctx.flow.data.greeting"}, flow_spec={
                    "label": "kid",
                    "tasks": [
                        t("k1", "print", msg="$ctx.flow.data.greeting"),
                        t("k2", "wire", wirings=[{"value": "$ctx.flow.depth", "dest": "flow.data.depth"}]),
                        t("k3", "print", msg="$ctx.flow.parent_key"),
                    ],
                }),
                t("after", "print", msg="$ctx.flow.tasks.child.data.flow_data.depth"),
            ],
        }
    )
    assert flow.status == "COMPLETED"
    assert capsys.readouterr().out == "hi\nflow:parent\n1\n"
    child = flow.task_by_slug("child")
    assert child.data["flow_data"] == {"greeting": "hi", "depth": 1}
    assert child.data["child_key"] in child.children


def test_the_parent_task_stays_running_while_its_child_runs() -> None:
    flow = headwater.Flow.from_flow_spec(
        {"tasks": [t("child", "flow", flow_spec={"tasks": [t("a", "noop"), t("b", "noop")]})]}
    )
    engine.tick_flow(flow)  # spawns the child
    assert flow.task_by_slug("child").status == "RUNNING" and flow.task_by_slug("child").waiting_on
    engine.tick_flow(flow)  # child: a
    engine.tick_flow(flow)  # child: b, child completes -> parent task completes
    assert flow.status == "COMPLETED"


def test_a_failed_child_fails_the_flow_task() -> None:
    flow = run({"tasks": [t("child", "flow", flow_spec={"tasks": [t("x", "python", callable="spec_helpers:boom")]})]})
    assert flow.status == "FAILED" and "Child flow" in flow.data["errors"][0]["message"]


def test_an_invalid_child_spec_fails_the_task_with_the_reason() -> None:
    flow = run({"tasks": [t("child", "flow", flow_spec={"tasks": [{"key": "a", "task_type": "teleport"}]})]})
    assert flow.status == "FAILED" and "Unknown task_type 'teleport'" in flow.data["errors"][0]["message"]


def test_register_a_task_type_in_process() -> None:
    def shout(task: Any, ctx: Any) -> str:
        task.data["said"] = ctx.params["word"].upper()
        return "done"

    register("shout", shout)
    try:
        assert "shout" in task_types()
        flow = run({"tasks": [t("s", "shout", word="hey")]})
        assert flow.task_by_slug("s").data == {"said": "HEY", "result": "done"}
    finally:
        unregister("shout")
    with pytest.raises(SpecError):
        headwater.Flow.from_flow_spec({"tasks": [t("s", "shout")]})


def test_register_a_lazy_task_type_and_override_a_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    import spec_helpers

    register("recorder", "spec_helpers:record")
    register("print", lambda task, ctx: print("overridden:", ctx.params["msg"]))
    try:
        run({"tasks": [t("p", "print", msg="m")]})
        assert capsys.readouterr().out == "overridden: m\n"
        assert get_handler("recorder") is spec_helpers.record
    finally:
        register("print", print_task)
        unregister("recorder")


def test_bad_registrations_are_refused() -> None:
    with pytest.raises(ValueError, match="must look like 'package.module:function'"):
        register("x", "no_colon")
    with pytest.raises(TypeError, match="must be callable"):
        register("x", 42)  # type: ignore[arg-type]
    register("broken", "no_such_module_xyz:handler")
    try:
        with pytest.raises(SpecError, match="registered as 'no_such_module_xyz:handler', but importing it failed"):
            headwater.Flow.from_flow_spec({"tasks": [t("b", "broken")]})
    finally:
        unregister("broken")


def test_a_plugin_adds_task_types_through_the_hook(capsys: pytest.CaptureFixture[str]) -> None:
    from headwater.plugins import hookimpl, register_plugin, unregister_plugin

    class Plugin:
        @hookimpl
        def register_task_types(self, register: Any) -> None:
            register(lambda task, ctx: print("greetings,", ctx.params["name"]), "greet")

    name = register_plugin(Plugin(), name="spec-test-plugin")
    try:
        run({"tasks": [t("g", "greet", name="plugin")]})
        assert capsys.readouterr().out == "greetings, plugin\n"
        assert "greet" in task_types()
    finally:
        unregister_plugin(name)
        unregister("greet")


def test_interpolation_errors_are_spec_errors() -> None:
    assert issubclass(InterpolationError, SpecError)
