"""Checkpointing under the API as Prefect 1 does it: ``[flows] checkpointing`` is on in the flow-run process, so
tasks with no ``result=`` are written to the default result (``$HEADWATER_HOME/results``), read back by
``get_task_run_result`` and kept by ``flow-run restart``; ``None`` is recorded, not written; an unpicklable value
leaves its task Success with a WARNING and a reason (Prefect 1 failed the task); ``checkpoint=False`` and
``HEADWATER__FLOWS__CHECKPOINTING=false`` opt out. Through a real server and agent, plus the parts on their own."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_helpers import agent_stack, wait_for
from headwater import Flow, task
from headwater.config import load_config
from headwater.results import Result
from headwater.results.default import NONE_MARK, NOT_PERSISTED_MARK, DefaultResult
from headwater.tasks.headwater import get_task_run_result
from headwater_cloud_api.execution.checkpointing import apply_default_result, checkpoint_note, checkpointing_enabled
from headwater_cloud_api.execution.task_states import TaskRunRecord, plan_task_states

pytestmark = pytest.mark.timeout(300)

FLOWS = '''
import threading
from pathlib import Path

from headwater import Flow, Parameter, task
from headwater.run_configs import LocalRun
from headwater.tasks.headwater import create_flow_run, get_task_run_result, wait_for_flow_run

WORK = Path({work!r})


def mark(name):
    with open(WORK / "ran.txt", "a") as f:
        f.write(name + "\\n")


@task
def make(size):
    mark("make")
    return list(range(size))


@task
def nothing():
    mark("nothing")


@task
def lock():
    mark("lock")
    return threading.Lock()


@task(checkpoint=False)
def opted_out():
    return "not kept"


@task
def flaky(values, none):
    mark("flaky")
    if (WORK / "fail").exists():
        raise RuntimeError("flaky fails while the marker file exists")
    return sum(values) + (0 if none is None else 1000)


def build(name, env=None):
    with Flow(name, run_config=LocalRun(labels=["ckpt"], env=env)) as flow:  # no result= anywhere, as most Prefect 1 flows
        flaky(make(Parameter("size", default=3)), nothing())
        lock()
        opted_out()
    return flow


child = build("child")


@task
def double(x):
    mark(f"double-{{x}}")
    return 2 * x


@task
def total_when_allowed(values):
    mark("total")
    if (WORK / "fail").exists():
        raise RuntimeError("total fails while the marker file exists")
    return sum(values)


with Flow("mapped", run_config=LocalRun(labels=["ckpt"])) as mapped:
    total_when_allowed(double.map(make(Parameter("size", default=3))))
child_off = build("child-off", env={{"HEADWATER__FLOWS__CHECKPOINTING": "false"}})


@task
def total(values):
    return sum(values)


with Flow("parent", run_config=LocalRun(labels=["ckpt"])) as parent:
    child_id = create_flow_run(flow_name="child", project_name="ckpt", parameters={{"size": 5}})
    finished = wait_for_flow_run(child_id, raise_final_state=True)
    total(get_task_run_result(child_id, "make-1", upstream_tasks=[finished], poll_time=1))
'''


# --- the parts on their own ------------------------------------------------------------------------------------------


def test_checkpointing_is_on_in_a_run_process_unless_configured(tmp_path: Path) -> None:
    assert load_config(home=tmp_path, env={}).flows.checkpointing is False  # Prefect 1's default (flow.run())
    assert checkpointing_enabled(load_config(home=tmp_path, env={})) is True  # ... turned on under the API
    assert checkpointing_enabled(load_config(home=tmp_path, env={"HEADWATER__FLOWS__CHECKPOINTING": "false"})) is False
    (tmp_path / "config.toml").write_text("[flows]\ncheckpointing = false\n")
    assert checkpointing_enabled(load_config(home=tmp_path, env={})) is False
    assert checkpointing_enabled(load_config(home=tmp_path, env={"HEADWATER__FLOWS__CHECKPOINTING": "true"})) is True


def test_the_default_result_goes_to_flows_without_one(tmp_path: Path) -> None:
    with Flow("plain") as plain:
        pass
    config = load_config(home=tmp_path, env={"HEADWATER__FLOWS__DEFAULT_RESULT_DIR": str(tmp_path / "r")})
    default = apply_default_result(plain, config)
    assert plain.result is default and isinstance(default, DefaultResult) and default.base() == str(tmp_path / "r")
    own = Result(str(tmp_path / "own.pkl"))
    with Flow("own", result=own) as with_result:
        pass
    assert apply_default_result(with_result, config) is None and with_result.result is own  # result= wins
    with Flow("off") as off:
        pass
    assert apply_default_result(off, load_config(home=tmp_path, env={"HEADWATER__FLOWS__CHECKPOINTING": "0"})) is None
    assert off.result is None


def test_default_checkpoints_write_values_skip_none_and_never_fail_on_unpicklable(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    @task
    def rows():
        return [1, 2]

    @task
    def nothing():
        return None

    @task
    def connection():
        return threading.Lock()

    @task(checkpoint=False)
    def skipped():
        return 5

    with Flow("defaults") as flow:
        r, n, c, s = rows(), nothing(), connection(), skipped()
    flow.result = DefaultResult(directory=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="headwater"):
        state = flow.run(context={"flow_run_id": "run-1"})
    assert state.is_successful()
    location = state.result[r].location
    assert re.fullmatch(re.escape(str(tmp_path / "defaults" / "run-1" / "checkpoints-")) + r"\d+-\w+\.pack#0:\d+", location)
    assert DefaultResult().read(location).value == [1, 2] and DefaultResult().exists(location)
    assert state.result[n].location is None
    assert state.result[c].is_successful() and state.result[c].location is None  # Prefect 1 failed this task
    [warning] = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.WARNING]
    assert warning.startswith(f"Task {c.name!r}: its value (type '_thread.lock') cannot be pickled")
    assert "Set checkpoint=False on task 'connection'" in warning and "result= with a serializer" in warning
    assert state.result[s].location is None

    note = checkpoint_note(c, state.result[c], flow.result)
    assert note is not None and "cannot be pickled" in note[NOT_PERSISTED_MARK]
    assert checkpoint_note(n, state.result[n], flow.result) == {NONE_MARK: True}
    assert checkpoint_note(s, state.result[s], flow.result) is None  # checkpoint=False: nothing to say
    assert checkpoint_note(r, state.result[r], flow.result) is None  # written: the location says it


def test_one_pack_file_per_run_and_process_holds_the_values(tmp_path: Path) -> None:
    default = DefaultResult(directory=str(tmp_path))
    ctx = {"flow_name": "f", "flow_run_id": "r"}
    a = default.write({"a": 1}, task_slug="a-1", **ctx).location
    b = default.write("bee", task_slug="b-1", map_index=3, **ctx).location
    assert a.split("#")[0] == b.split("#")[0] and len(list((tmp_path / "f" / "r").iterdir())) == 1
    assert default.read(a).value == {"a": 1} and default.read(b).value == "bee"
    default.close()
    c = default.write([3], task_slug="c-1", **ctx).location  # a closed pack: the next write opens a new one
    assert c.split("#")[0] != a.split("#")[0] and default.read(c).value == [3] and default.read(a).value == {"a": 1}
    pack, _, span = a.partition("#")
    offset, length = map(int, span.split(":"))
    with open(pack, "r+b") as fh:
        fh.truncate(offset + length - 1)  # a torn write
    assert not default.exists(a)
    with pytest.raises(FileNotFoundError, match="incomplete"):
        default.read(a)
    os.unlink(c.split("#")[0])
    with pytest.raises(FileNotFoundError, match="pack file was removed"):
        default.read(c)
    assert default.at("t.pkl").location == str(tmp_path / "t.pkl") and type(default.at("t.pkl")) is Result
    default.close()


def test_a_flow_carrying_the_default_result_serializes_and_process_workers_write_packs_of_their_own(tmp_path: Path) -> None:
    from headwater.executors import ProcessExecutor
    from headwater.plugins import from_dict, to_dict

    assert from_dict(to_dict(DefaultResult(directory=str(tmp_path))), "result") == DefaultResult(directory=str(tmp_path))

    @task
    def square(x):
        return x * x

    with Flow("squares") as flow:
        m = square.map(list(range(6)))
    flow.result = DefaultResult(directory=str(tmp_path))
    assert flow.serialize()["result"]["type"] == "DefaultResult"
    state = flow.run(executor=ProcessExecutor(max_workers=2), context={"flow_run_id": "r"})
    locations = [child.location for child in state.result[m].map_states]
    assert [DefaultResult().read(loc).value for loc in locations] == [0, 1, 4, 9, 16, 25]
    assert {loc.split("#")[0] for loc in locations} == {str(p) for p in (tmp_path / "squares" / "r").iterdir()}


def test_a_long_lived_process_keeps_a_bounded_number_of_packs_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.results import default as module

    monkeypatch.setattr(module, "MAX_OPEN_PACKS", 2)
    default = DefaultResult(directory=str(tmp_path))
    locations = [default.write(i, flow_name="f", flow_run_id=f"run-{i}", task_slug="t-1").location for i in range(4)]
    assert len([k for k in module._packs if k[0].startswith(str(tmp_path))]) == 2
    assert [default.read(loc).value for loc in locations] == [0, 1, 2, 3]
    assert default.write(9, flow_name="f", flow_run_id="run-0", task_slug="u-1").location.split("#")[0] != locations[0].split("#")[0]
    default.close()


def test_under_a_url_each_value_is_one_object() -> None:
    import fsspec

    default = DefaultResult(directory="memory://ckpt-test/results")
    location = default.write([1], flow_name="f", flow_run_id="r", task_slug="a-1").location
    assert location == "memory://ckpt-test/results/f/r/a-1.pkl"
    assert fsspec.filesystem("memory").exists("/ckpt-test/results/f/r/a-1.pkl") and default.read(location).value == [1]


def test_an_explicit_result_still_fails_loudly_on_an_unpicklable_value(tmp_path: Path) -> None:
    @task(result=Result(str(tmp_path / "x.pkl")))
    def connection():
        return threading.Lock()

    with Flow("explicit") as flow:
        c = connection()
    state = flow.run()
    assert state.result[c].is_failed() and "could not be checkpointed" in state.result[c].message


def test_a_restart_plan_gives_none_back_and_says_why_an_unpicklable_value_is_recomputed(tmp_path: Path) -> None:
    @task
    def nothing():
        return None

    @task
    def connection():
        return 1

    @task
    def use(a, b):
        return a, b

    with Flow("plan") as flow:
        n, c = nothing(), connection()
        u = use(n, c)
    records = [TaskRunRecord(n.slug, -1, "Success", serialized={NONE_MARK: True}),
               TaskRunRecord(c.slug, -1, "Success", serialized={NOT_PERSISTED_MARK: "its value cannot be pickled"}),
               TaskRunRecord(u.slug, -1, "Failed")]
    plan = plan_task_states(flow, records)
    assert plan.task_states[n].result is None and n.slug in plan.kept  # known to be None: not recomputed
    assert c not in plan.task_states
    assert plan.recomputed[c.slug] == f"{u.slug} needs its value; its result was not persisted: its value cannot be pickled"


# --- through a real server and agent -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One server and one agent (its own HEADWATER_HOME, no checkpointing setting) with the flows registered."""
    root = tmp_path_factory.mktemp("checkpoint")
    work = root / "work"
    work.mkdir()
    with agent_stack(root, FLOWS.format(work=str(work)), "ckpt", unset=("HEADWATER__FLOWS__CHECKPOINTING",)) as stack:
        yield {**stack, "work": work}


@pytest.fixture(autouse=True)
def _api(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if "stack" in request.fixturenames:
        monkeypatch.setenv("HEADWATER__CLOUD__API", request.getfixturevalue("stack")["server"].api)


def _run(stack: dict[str, Any], flow: str, **parameters: Any) -> str:
    return str(stack["client"].flow(name=flow, project="ckpt").create_run(parameters=parameters).id)


def _wait(stack: dict[str, Any], run_id: str, timeout: float = 120) -> str:
    client = stack["client"]

    def state() -> str | None:
        s = str(client.flow_run(id=run_id).query("state { type }")["state"]["type"])
        return s if s in ("Success", "Failed", "Cancelled") else None

    return str(wait_for(state, timeout, 0.2, f"flow run {run_id} to finish (agent log:\n{stack['agent'].output()[-3000:]})"))


def _ran(stack: dict[str, Any]) -> list[str]:
    path = stack["work"] / "ran.txt"
    return path.read_text().split() if path.exists() else []


def _logs(stack: dict[str, Any], run_id: str) -> str:
    return "\n".join(r["message"] for r in stack["client"].flow_run(id=run_id).all_logs())


def test_get_task_run_result_reads_a_child_task_that_has_no_result(stack: dict[str, Any]) -> None:
    parent = _run(stack, "parent")
    assert _wait(stack, parent) == "Success", _logs(stack, parent)
    assert get_task_run_result.run(parent, "total-1") == 10  # the parent read 0+1+2+3+4 from the child; its own too
    [child] = stack["client"].flow_run(id=parent).children()
    assert get_task_run_result.run(child["id"], "make-1") == [0, 1, 2, 3, 4]
    locations = [h["serialized"]["location"] for t in stack["client"].graphql(
        "query($id: String!) { task_runs(flow_run_id: $id) { task_slug states { serialized } } }",
        {"id": child["id"]})["task_runs"] if t["task_slug"] == "make-1" for h in t["states"] if h["serialized"]]
    assert locations and locations[-1].startswith(str(stack["home"] / "results" / "child" / child["id"]))
    assert get_task_run_result.run(child["id"], "nothing-1") is None  # recorded as None, nothing written
    with pytest.raises(ValueError, match=r"'lock-1' .* succeeded but its result was not persisted: its value "
                                         r"\(type '_thread.lock'\) cannot be pickled.*checkpoint=False on task 'lock'"):
        get_task_run_result.run(child["id"], "lock-1")
    with pytest.raises(ValueError, match="no checkpointed result"):
        get_task_run_result.run(child["id"], "opted_out-1")  # checkpoint=False
    logs = _logs(stack, child["id"])
    assert "Task 'lock': its value (type '_thread.lock') cannot be pickled" in logs
    states = {t["task_slug"]: t["state"]["type"] for t in stack["client"].flow_run(id=child["id"]).task_runs()}
    assert states["lock-1"] == "Success" and states["flaky-1"] == "Success"


def _fail_then_restart(stack: dict[str, Any], flow: str) -> tuple[str, int]:
    """Run ``flow`` with its failing task on, restart it with the task fixed: ``(run id, tasks run before)``."""
    (stack["work"] / "fail").touch()
    try:
        run_id = _run(stack, flow)
        assert _wait(stack, run_id) == "Failed"
    finally:
        (stack["work"] / "fail").unlink()
    before = len(_ran(stack))
    stack["client"].flow_run(id=run_id).restart()
    assert _wait(stack, run_id) == "Success", _logs(stack, run_id)
    return run_id, before


def test_a_restart_keeps_the_values_checkpointed_by_default(stack: dict[str, Any]) -> None:
    run_id, before = _fail_then_restart(stack, "child")
    assert _ran(stack)[before:] == ["flaky"]  # make's list and nothing's None were read back, not recomputed
    assert get_task_run_result.run(run_id, "flaky-1") == 3
    assert "Picking up the earlier attempt's task states: kept" in _logs(stack, run_id)


def test_a_restart_reads_mapped_children_back_from_the_default_checkpoint(stack: dict[str, Any]) -> None:
    run_id, before = _fail_then_restart(stack, "mapped")
    assert _ran(stack)[before:] == ["total"]  # make and the three double children were kept with their values
    assert get_task_run_result.run(run_id, "total_when_allowed-1") == 6
    assert get_task_run_result.run(run_id, "double-1") == [0, 2, 4]


def test_checkpointing_false_opts_a_run_out(stack: dict[str, Any]) -> None:
    run_id = _run(stack, "child-off")
    assert _wait(stack, run_id) == "Success", _logs(stack, run_id)
    with pytest.raises(ValueError, match="no checkpointed result.*leave \\[flows\\] checkpointing on"):
        get_task_run_result.run(run_id, "make-1")
    assert not (stack["home"] / "results" / "child-off").exists()
