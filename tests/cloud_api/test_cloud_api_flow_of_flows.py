"""Flow of flows through the API: ``create_flow_run`` / ``wait_for_flow_run`` / ``get_task_run_result`` /
``StartFlowRun`` (``headwater.tasks.headwater``, Prefect 1's ``prefect.tasks.prefect``) run by a real agent,
children linked to their parent task run, idempotent per parent task run, and clear errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agent_helpers import AgentProcess, ServerProcess, register_flows
from headwater import states
from headwater.backend import FlowRunView
from headwater.client import Client
from headwater.signals import FAIL, SUCCESS
from headwater.tasks import flow_runs
from headwater.tasks.headwater import StartFlowRun, create_flow_run, get_task_run_result, wait_for_flow_run
from headwater.utilities.context import context

FLOWS = '''
from datetime import timedelta

from headwater import Flow, Parameter, task, unmapped
from headwater.backend.artifacts import create_markdown_artifact
from headwater.engine.results import LocalResult
from headwater.run_configs import LocalRun
from headwater.tasks.headwater import StartFlowRun, create_flow_run, get_task_run_result, wait_for_flow_run

RESULTS = {results!r}


@task(log_stdout=True)
def make_data(size):
    print(f"making {{size}} rows")
    create_markdown_artifact(f"# {{size}} rows")
    return list(range(size))


with Flow("child", run_config=LocalRun(labels=["fof"]), result=LocalResult(dir=RESULTS)) as child:
    make_data(Parameter("size", default=3))


@task
def total(values):
    create_markdown_artifact(f"total {{sum(values)}}")
    return sum(values)


with Flow("parent", run_config=LocalRun(labels=["fof"])) as parent:
    child_id = create_flow_run(flow_name="child", project_name="fof", parameters={{"size": 5}})
    finished = wait_for_flow_run(child_id, stream_logs=True, raise_final_state=True)
    total(get_task_run_result(child_id, "make_data-1", upstream_tasks=[finished], poll_time=1))


with Flow("fan", run_config=LocalRun(labels=["fof"])) as fan:
    ids = create_flow_run.map(flow_name=unmapped("child"), project_name=unmapped("fof"),
                              parameters=[{{"size": 1}}, {{"size": 2}}])
    wait_for_flow_run.map(ids, raise_final_state=unmapped(True))


with Flow("legacy", run_config=LocalRun(labels=["fof"])) as legacy:
    StartFlowRun(flow_name="child", project_name="fof", wait=True, poll_interval=timedelta(seconds=3))(parameters={{"size": 2}})
'''


@pytest.mark.slow
def test_parent_creates_waits_for_and_reads_a_child_run_through_an_agent(tmp_path: Path) -> None:
    path = tmp_path / "repo" / "flows.py"
    path.parent.mkdir()
    path.write_text(FLOWS.format(results=str(tmp_path / "results")))
    server = ServerProcess(f"sqlite:///{tmp_path / 'api.db'}", tmp_path, lease=10.0).start()
    agent = None
    try:
        with Client(api=server.api, api_key="") as api:
            register_flows(api, path, project="fof")
            agent = AgentProcess(server.api, tmp_path / "agent", ("fof",), "fof", poll_interval=0.2)
            run = api.flow(name="parent", project="fof").create_run()
            state = run.wait(180)
            logs = [r["message"] for r in run.logs()]
            assert state.name == "Success", (state, logs, agent.output())
            [child] = run.children()
            assert child["parent_task_slug"] == "create_flow_run-1" and child["parent_map_index"] == -1
            assert child["state"]["type"] == "Success"
            record = api.flow_run(id=child["id"]).query(
                "parameters parent_flow_run_id parent_task_run_id parent { id } artifacts { kind text task_slug }")
            assert record["parameters"] == {"size": 5}
            assert record["parent_flow_run_id"] == run.id and record["parent"] == {"id": run.id}
            created_by = next(t for t in run.task_runs() if t["task_slug"] == "create_flow_run-1")
            assert record["parent_task_run_id"] == created_by["id"]
            assert record["artifacts"] == [{"kind": "markdown", "text": "# 5 rows", "task_slug": "make_data-1"}]
            assert [a["text"] for a in run.artifacts()] == ["total 10"]  # the child's result was read back: 0+1+2+3+4
            made = api.graphql("query($id: String!) { task_runs(flow_run_id: $id) { task_slug states { serialized } } }",
                               {"id": child["id"]})["task_runs"]
            locations = [h["serialized"]["location"] for t in made if t["task_slug"] == "make_data-1"
                         for h in t["states"] if h["serialized"]]
            assert locations and locations[-1].startswith(str(tmp_path / "results"))  # read from where the state says
            shown = f"Flow {child['name']!r}: "  # the child's run name: <parent run name>-child
            assert child["name"].endswith("-child")
            assert any(m.startswith(shown) and "making 5 rows" in m for m in logs), logs  # stream_logs
            assert any(m.startswith(shown + "Entered state <Success>") for m in logs), logs

            fanned = api.flow(name="fan", project="fof").create_run()
            assert fanned.wait(180).name == "Success", (fanned.logs(), agent.output())
            kids = sorted(fanned.children(), key=lambda c: c["parent_map_index"])
            assert [(c["parent_task_slug"], c["parent_map_index"], c["state"]["type"]) for c in kids] == [
                ("create_flow_run-1", 0, "Success"), ("create_flow_run-1", 1, "Success")]
            assert [api.flow_run(id=c["id"]).get("parameters") for c in kids] == [{"size": 1}, {"size": 2}]

            legacy = api.flow(name="legacy", project="fof").create_run()
            assert legacy.wait(180).name == "Success", (legacy.logs(), agent.output())
            [legacy_child] = legacy.children()
            assert legacy_child["state"]["type"] == "Success"
            [link] = legacy.artifacts()
            assert link["kind"] == "link" and link["text"].endswith(f"/ui/flow-runs/{legacy_child['id']}")
    finally:
        if agent is not None:
            agent.stop()
        server.stop()


# --- in-process: the API server in a thread, the tasks' run() called under a flow run's context ---------------------

CHILD = {"name": "child", "tasks": [{"slug": "make", "name": "make"}], "edges": [],
         "parameters": [{"name": "size", "default": 1, "required": False}],
         "run_config": {"type": "LocalRun", "labels": ["fof"]}, "schedule": None, "storage": None}


@pytest.fixture
def api(sqlite_client: Client, monkeypatch: pytest.MonkeyPatch) -> Client:
    """The in-process server's client, also what ``headwater.Client()`` connects to; project ``fof`` with ``child``."""
    monkeypatch.setenv("HEADWATER__CLOUD__API", sqlite_client.api)
    sqlite_client.project(name="fof").create()
    sqlite_client.graphql("mutation($i: CreateFlowInput!) { create_flow(input: $i) { id } }",
                          {"i": {"serialized": CHILD, "project_name": "fof"}})
    return sqlite_client


def _parent_run(api: Client) -> str:
    return api.flow(name="child", project="fof").create_run().id


def test_a_retried_parent_task_gets_the_child_it_created(api: Client) -> None:
    parent = _parent_run(api)
    with context(running_with_backend=True, flow_run_id=parent, task_slug="start-child", map_index=None):
        first = create_flow_run.run(flow_name="child", project_name="fof", parameters={"size": 2})
        again = create_flow_run.run(flow_name="child", project_name="fof", parameters={"size": 2})  # a retry
    with context(running_with_backend=True, flow_run_id=parent, task_slug="start-child", map_index=3):
        mapped = create_flow_run.run(flow_name="child", project_name="fof")
    assert first == again != mapped
    children = api.flow_run(id=parent).children()
    assert [(c["id"], c["parent_task_slug"], c["parent_map_index"]) for c in children] == [
        (first, "start-child", -1), (mapped, "start-child", 3)]
    assert api.flow_run(id=first).get("idempotency_key") == f"flow-of-flows:{parent}/start-child/-1"
    with context(running_with_backend=True, flow_run_id=parent, task_slug="start-child", map_index=None):
        explicit = create_flow_run.run(flow_name="child", project_name="fof", idempotency_key="mine")
    assert explicit not in (first, mapped)


def test_outside_an_api_run_children_have_no_parent_and_no_key(api: Client) -> None:
    a = create_flow_run.run(flow_name="child", labels=["other"], run_name="named")
    b = create_flow_run.run(flow_id=api.flow(name="child", project="fof").get("id"),
                            run_config={"type": "LocalRun", "labels": ["gpu"]})
    assert a != b
    ra = api.flow_run(id=a).query("name labels parent_flow_run_id idempotency_key")
    assert ra == {"name": "named", "labels": ["other"], "parent_flow_run_id": None, "idempotency_key": None}
    rb = api.flow_run(id=b).query("labels run_config")
    assert rb == {"labels": ["gpu"], "run_config": {"type": "LocalRun", "labels": ["gpu"]}}
    with context(flow_run_name="nightly"):
        c = create_flow_run.run(flow_name="child")
    assert api.flow_run(id=c).get("name") == "nightly-child"  # Prefect 1's sub-flow run name


def test_wait_for_flow_run_returns_the_view_or_raises_the_final_state(api: Client) -> None:
    ok, bad = _parent_run(api), _parent_run(api)
    api.flow_run(id=ok).set_state(states.Success("done"))
    api.flow_run(id=bad).set_state(states.Failed("boom"))
    view = wait_for_flow_run.run(ok)
    assert view.flow_run_id == ok and view.state.is_successful() and view.flow_name == "child"
    with pytest.raises(SUCCESS):
        wait_for_flow_run.run(ok, raise_final_state=True)
    with pytest.raises(FAIL) as failed:
        wait_for_flow_run.run(bad, stream_states=False, raise_final_state=True)
    assert f"{bad} finished in state" in str(failed.value) and failed.value.state.result.flow_run_id == bad
    cancelled = _parent_run(api)
    api.flow_run(id=cancelled).cancel()  # Scheduled -> Cancelled: no signal leads there, so the waiting task fails
    with pytest.raises(FAIL, match="finished in state <Cancelled"):
        wait_for_flow_run.run(cancelled, raise_final_state=True)
    waiting = _parent_run(api)
    with pytest.raises(RuntimeError, match="exceeded the maximum duration"):
        wait_for_flow_run.run(waiting, max_duration=timedelta(seconds=0))


def test_start_flow_run_legacy_task(api: Client) -> None:
    parent = _parent_run(api)
    with context(running_with_backend=True, flow_run_id=parent, task_slug="Flow child", map_index=None):
        child = StartFlowRun(flow_name="child", project_name="fof", parameters={"size": 4}).run()
        assert StartFlowRun(flow_name="child", project_name="fof").run() == child  # idempotent per task run
    assert api.flow_run(id=child).get("parameters") == {"size": 4}
    links = api.flow_run(id=parent).artifacts()  # one per call, as in Prefect 1
    assert len(links) == 2 and all(link["kind"] == "link" and link["text"].endswith(f"/ui/flow-runs/{child}")
                                   and link["task_slug"] == "Flow child" for link in links)
    assert StartFlowRun(flow_name="child").name == "Flow child"
    with pytest.raises(ValueError, match="Must provide a project name"):
        StartFlowRun(flow_name="child").run()
    with pytest.raises(ValueError, match="'nope' not found in project 'fof'"):
        StartFlowRun(flow_name="nope", project_name="fof").run()
    with pytest.raises(ValueError, match="at least 3 seconds"):
        StartFlowRun(flow_name="child", poll_interval=timedelta(seconds=1))


def test_clear_errors(api: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="Only one flow identifier"):
        create_flow_run.run(flow_id="x", flow_name="child")
    with pytest.raises(ValueError, match="You must pass a flow identifier"):
        create_flow_run.run()
    with pytest.raises(ValueError, match="No flow found with name 'missing'"):
        create_flow_run.run(flow_name="missing")
    run = _parent_run(api)
    with context(flow_run_id=run):
        with pytest.raises(ValueError, match="same as the currently running flow"):
            get_task_run_result.run(run, "make")
    with pytest.raises(ValueError, match="`task_slug` is empty"):
        get_task_run_result.run(run, "")
    api.graphql("mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { status } }",
                {"s": [{"flow_run_id": run, "task_slug": "make", "state": {"type": "Success"}}]})
    api.flow_run(id=run).set_state(states.Success())
    with pytest.raises(ValueError, match="no checkpointed result.*give the task or its flow 'child' a result"):
        get_task_run_result.run(run, "make", poll_time=0)
    with pytest.raises(ValueError, match="no task run with slug 'other'"):
        get_task_run_result.run(run, "other", poll_time=0)
    assert flow_runs.create_flow_run is create_flow_run  # the plain alias module

    from headwater.client import Client as CoreClient

    monkeypatch.setattr(CoreClient, "resource_names", staticmethod(lambda: []))
    with pytest.raises(ImportError, match="create_flow_run talks to the orchestration API.*pip install headwater-cloud-api"):
        create_flow_run.run(flow_name="child")


def test_get_task_run_result_loads_through_the_tasks_result(api: Client, tmp_path: Path) -> None:
    from headwater.engine.results import LocalResult

    result = LocalResult(dir=str(tmp_path))
    written = result.write([1, 2, 3], flow_name="child", flow_run_id="r", task_full_name="make")
    flow = dict(CHILD, name="stored", tasks=[{"slug": "make", "name": "make", "result": _to_dict(result)}])
    api.graphql("mutation($i: CreateFlowInput!) { create_flow(input: $i) { id } }", {"i": {"serialized": flow, "project_name": "fof"}})
    run = api.flow(name="stored", project="fof").create_run().id
    api.graphql("mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { status } }",
                {"s": [{"flow_run_id": run, "task_slug": "make", "state": {"type": "Success", "serialized": {"location": written.location}}}]})
    api.flow_run(id=run).set_state(states.Success())
    assert get_task_run_result.run(run, "make") == [1, 2, 3]  # the location recorded in the state


def _to_dict(obj: object) -> dict:
    from headwater.plugins import to_dict

    return to_dict(obj)  # type: ignore[no-any-return]


def test_a_mapped_tasks_results_are_every_childs(api: Client, tmp_path: Path) -> None:
    from headwater.backend.flow import FlowView
    from headwater.backend.task_run import TaskRunView
    from headwater.engine.results import LocalResult

    result = LocalResult(dir=str(tmp_path))
    flow = dict(CHILD, name="mapped", tasks=[{"slug": "square-1", "name": "square", "result": _to_dict(result)}])
    api.graphql("mutation($i: CreateFlowInput!) { create_flow(input: $i) { id } }", {"i": {"serialized": flow, "project_name": "fof"}})
    assert FlowView.from_flow_name("mapped").project_name == "fof"
    run = api.flow(name="mapped", project="fof").create_run().id
    writes = [{"flow_run_id": run, "task_slug": "square-1", "state": {"type": "Mapped"}}]
    for i in (2, 0, 1):
        written = result.write(i * i, flow_name="mapped", flow_run_id=run, task_full_name=f"square[{i}]")
        writes.append({"flow_run_id": run, "task_slug": "square-1", "map_index": i,
                       "state": {"type": "Success", "serialized": {"location": written.location}}})
    api.graphql("mutation($s: [TaskRunStateInput!]!) { set_task_run_states(states: $s) { status } }", {"s": writes})
    api.flow_run(id=run).set_state(states.Success())
    assert get_task_run_result.run(run, "square-1") == [0, 1, 4]  # map_index=-1: every child, in index order
    assert get_task_run_result.run(run, "square-1", map_index=2) == 4
    view = FlowRunView.from_flow_run_id(run).get_task_run("square-1", map_index=1)
    assert isinstance(view, TaskRunView) and view.get_result() == 1
