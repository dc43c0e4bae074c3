"""Spec parsing and validation: chains, precursors/successors, generated keys, files, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import headwater
from headwater.spec import SpecError, UnknownTaskTypeError, load_spec, spec_to_flow_dict


def edges(spec: dict) -> list[tuple[str, str]]:
    return [(e["src_key"], e["dest_key"]) for e in spec_to_flow_dict(spec)["graph"]["edges"]]


def t(key: str, **extra: object) -> dict:
    return {"key": key, "task_type": "noop", **extra}


def test_a_list_is_a_chain() -> None:
    assert edges({"tasks": [t("a"), t("b"), t("c")]}) == [("ROOT", "a"), ("a", "b"), ("b", "c")]


def test_precursors_and_successors_make_a_graph() -> None:
    spec = {
        "tasks": [
            t("a"),
            t("b", precursors=["a"]),
            t("c", precursors="a"),
            t("d", precursors=["b", "c"]),
            t("e", successors=["d"]),  # names a successor: not chained, runs after ROOT
        ]
    }
    assert edges(spec) == [("ROOT", "a"), ("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("e", "d"), ("ROOT", "e")]
    tasks = spec_to_flow_dict(spec)["graph"]["tasks"]
    assert tasks["d"]["precursors"] == ["b", "c", "e"]
    assert tasks["e"]["precursors"] == ["ROOT"]


def test_an_empty_precursor_list_means_after_root() -> None:
    assert edges({"tasks": [t("a"), t("b", precursors=[])]}) == [("ROOT", "a"), ("ROOT", "b")]


def test_missing_keys_are_generated_without_colliding() -> None:
    spec = {"tasks": [{"task_type": "noop"}, {"task_type": "noop"}, t("task_1")]}
    keys = list(spec_to_flow_dict(spec)["graph"]["tasks"])
    assert keys == ["ROOT", "task_1_", "task_2", "task_1"]


def test_defaults_for_an_empty_spec() -> None:
    d = spec_to_flow_dict({})
    assert d["cfg"] == {"fail_fast": True}
    assert d["data"] == {} and d["label"] is None and d["depth"] == 0
    flow = headwater.Flow.from_flow_spec({})
    assert flow.name == "flow" and flow.key is None and flow.label is None


def test_task_options_carry_into_the_task() -> None:
    flow = headwater.Flow.from_flow_spec(
        {"tasks": [t("a", label="A", data={"x": 1}, max_retries=2, retry_delay=0.5, timeout=3)]}
    )
    task = flow.task_by_slug("a")
    assert (task.label, task.data, task.max_retries, task.retry_delay, task.timeout) == ("A", {"x": 1}, 2, 0.5, 3.0)
    assert headwater.Flow.from_flow_dict(flow.to_flow_dict()).to_flow_dict() == flow.to_flow_dict()


def test_the_spec_is_copied_not_shared() -> None:
    spec = {"data": {"x": [1]}, "tasks": [t("a", task_params={"p": [1]})]}
    flow = headwater.Flow.from_flow_spec(spec)
    flow.data["x"].append(2)
    flow.task_by_slug("a").task_params["p"].append(2)
    assert spec == {"data": {"x": [1]}, "tasks": [t("a", task_params={"p": [1]})]}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"tasks": [t("a")], "labl": "x"}, "unknown field(s) 'labl'"),
        ({"tasks": [{"key": "a", "task_type": "noop", "params": {}}]}, "unknown field(s) 'params'"),
        ({"tasks": [t("a"), t("a")]}, "two tasks have the key 'a'"),
        ({"tasks": [t("a", precursors=["nope"])]}, "names task 'nope', which is not in the spec"),
        ({"tasks": [{"key": "a"}]}, "'task_type' is required"),
        ({"tasks": [t("ROOT")]}, "reserved"),
        ({"tasks": [t("a.b")]}, "contains '.'"),
        ({"tasks": "a"}, "'tasks' must be a list"),
        ({"cfg": {"fail_fast": "yes"}}, "cfg.fail_fast must be true or false"),
        ({"tasks": [t("a", task_params=[1])]}, "'task_params' must be a mapping"),
        ({"tasks": [t("a", successors=["ROOT"])]}, "cannot be a successor"),
    ],
)
def test_invalid_specs_say_what_is_wrong(spec: dict, message: str) -> None:
    with pytest.raises(SpecError) as info:
        headwater.Flow.from_flow_spec(spec)
    assert message in str(info.value)


def test_a_cycle_is_refused_with_the_core_cycle_error() -> None:
    with pytest.raises(headwater.CycleError) as info:
        headwater.Flow.from_flow_spec({"tasks": [t("a", precursors=["b"]), t("b", precursors=["a"])]})
    assert "cycle" in str(info.value)


def test_an_unknown_task_type_names_it_lists_the_installed_ones_and_the_hook() -> None:
    with pytest.raises(UnknownTaskTypeError) as info:
        headwater.Flow.from_flow_spec({"tasks": [{"key": "a", "task_type": "teleport"}]})
    message = str(info.value)
    assert "'teleport'" in message and "task 'a'" in message
    assert "print" in message and "shell" in message and "spread" in message
    assert "register_task_types" in message and "headwater.spec.register" in message


def test_specs_load_from_yaml_and_json_files(tmp_path: Path) -> None:
    (tmp_path / "f.yaml").write_text(
        "label: from_yaml\ntasks:\n  - key: a\n    task_type: print\n    task_params: {msg: hi}\n"
    )
    (tmp_path / "f.json").write_text(json.dumps({"label": "from_json", "tasks": [t("a")]}))
    assert headwater.Flow.from_flow_spec(str(tmp_path / "f.yaml")).label == "from_yaml"
    assert headwater.Flow.from_flow_spec(tmp_path / "f.json").label == "from_json"
    assert load_spec(tmp_path / "f.yaml")["tasks"][0]["task_params"] == {"msg": "hi"}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.yaml", "tasks: [\n", "is not valid YAML"),
        ("bad.json", "{", "is not valid JSON"),
        ("list.yaml", "- a\n", "must hold a mapping"),
    ],
)
def test_bad_spec_files_are_named(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / name)
    assert message in str(info.value) and name in str(info.value)


def test_a_missing_spec_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(extra=1), "unknown field(s) extra"),
        (lambda d: d["graph"]["tasks"].pop("ROOT"), "no 'ROOT' task"),
        (lambda d: d["graph"]["edges"].append({"src_key": "task_1", "dest_key": "zz"}), "names task 'zz'"),
        (lambda d: d["graph"]["tasks"]["task_1"].update(status="DONE"), "unknown status 'DONE'"),
        (lambda d: d["graph"]["tasks"]["task_1"].update(state={"type": "Happy"}), "unknown state type 'Happy'"),
    ],
)
def test_invalid_flow_dicts_say_what_is_wrong(mutate: object, message: str) -> None:
    d = headwater.Flow.from_flow_spec({"tasks": [t("task_1")]}).to_flow_dict()
    mutate(d)  # type: ignore[operator]
    with pytest.raises(SpecError) as info:
        headwater.Flow.from_flow_dict(d)
    assert message in str(info.value)


def test_a_minimal_hand_written_flow_dict_loads_from_statuses() -> None:
    flow = headwater.Flow.from_flow_dict(
        {
            "graph": {
                "edges": [{"src_key": "ROOT", "dest_key": "a"}, {"src_key": "a", "dest_key": "b"}],
                "tasks": {"ROOT": {}, "a": {"task_type": "noop", "status": "COMPLETED"}, "b": {"task_type": "noop"}},
            }
        }
    )
    assert [t.status for t in flow.sorted_tasks()] == ["COMPLETED", "COMPLETED", "PENDING"]
    assert flow.to_flow_dict()["num_tickable_tasks"] == 1


def test_python_flows_are_not_flow_dicts() -> None:
    @headwater.task
    def one() -> int:
        return 1

    with headwater.Flow("py") as flow:
        one()
    with pytest.raises(SpecError) as info:
        flow.to_flow_dict()
    assert "not a spec flow" in str(info.value)
