"""Authoring API: @task and Task subclasses, Flow construction, every wiring style, parameters, bad input."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import headwater
from headwater import CycleError, Flow, Parameter, Task, TaskCallError, task
from headwater.core.collections import Dict, List, Set, Tuple
from headwater.engine import ParameterError
from headwater.engine.cache import all_inputs
from headwater.executors import LocalExecutor
from headwater.run_configs import LocalRun
from headwater.states import Failed, Success
from headwater.triggers import all_finished


@task
def one() -> int:
    return 1


@task
def add(x: int, y: int = 10) -> int:
    return x + y


@task
def inc(x: int) -> int:
    return x + 1


# --- the guide's file -------------------------------------------------------------------------

GUIDE = '''
import headwater
from headwater import Flow, task
from headwater.run_configs import LocalRun

@task(name="my_task")
def my_task():
    logger = headwater.context.get("logger")
    logger.info("my_task!")

with Flow("my_flow", run_config=LocalRun(labels=["test"])) as flow:
    flow.add_task(my_task)

if __name__ == "__main__":
    flow.run()
'''


def test_guide_file_runs_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "my_flow.py"
    path.write_text(GUIDE)
    proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "my_task!" in output
    assert "SUCCESS" in output


def test_guide_flow_in_process_logs_through_task_logger(caplog: pytest.LogCaptureFixture) -> None:
    @task(name="my_task")
    def my_task() -> None:
        headwater.context.get("logger").info("my_task!")

    with Flow("my_flow", run_config=LocalRun(labels=["test"])) as flow:
        flow.add_task(my_task)

    assert flow.run_config.labels == ("test",)
    with caplog.at_level("INFO", logger="headwater"):
        state = flow.run()
    assert state.is_successful()
    records = [r for r in caplog.records if r.getMessage() == "my_task!"]
    assert len(records) == 1
    assert records[0].name == "headwater.my_task"


# --- @task and Task subclasses ------------------------------------------------------------------


def test_task_decorator_bare_and_with_options() -> None:
    @task
    def plain(x: int) -> int:
        return x * 2

    @task(name="named", tags=["io", "db"], max_retries=2, retry_delay=timedelta(seconds=3), timeout=5)
    def configured() -> None:
        """Docstring kept."""

    assert plain.name == "plain"
    assert plain.inputs() == ["x"]
    assert plain(4) == 8  # outside a flow a call runs the function
    assert configured.name == "named"
    assert configured.tags == {"io", "db"}
    assert configured.max_retries == 2
    assert configured.retry_delay == 3.0
    assert configured.timeout == 5.0
    assert configured.__doc__ == "Docstring kept."


def test_task_subclass_with_run() -> None:
    class Multiply(Task):
        def __init__(self, factor: int, **kwargs: object) -> None:
            self.factor = factor
            super().__init__(**kwargs)

        def run(self, x: int) -> int:
            return x * self.factor

    with Flow("subclass") as flow:
        r = Multiply(3, name="times3")(x=one)
    state = flow.run()
    assert state.is_successful()
    assert state.result[r].result == 3
    assert r.name == "times3"
    assert Multiply(2).name == "Multiply"


def test_task_without_run_fails_clearly() -> None:
    with Flow("no-run") as flow:
        t = Task(name="empty")()
    state = flow.run()
    assert state.is_failed()
    assert isinstance(state.result[t].result, NotImplementedError)
    assert "does not implement run()" in state.result[t].message


def test_every_task_option_is_accepted() -> None:
    class FakeResult:
        def write(self, value: object, **ctx: object) -> object:
            return self

    handler_calls: list[str] = []

    t = Task(
        name="opts",
        tags=["a"],
        max_retries=1,
        retry_delay=0.5,
        timeout=timedelta(seconds=2),
        trigger=all_finished,
        skip_on_upstream_skip=False,
        cache_for=timedelta(minutes=1),
        cache_key="k",
        cache_validator=all_inputs,
        checkpoint=True,
        result=FakeResult(),
        state_handlers=[lambda t, o, n: handler_calls.append(n.name)],
        nout=2,
    )
    assert t.retry_delay == 0.5
    assert t.timeout == 2.0
    assert t.trigger is all_finished
    assert t.skip_on_upstream_skip is False
    assert t.cache_for == 60.0
    assert t.cache_key == "k"
    assert t.cache_validator is all_inputs
    assert t.checkpoint is True
    assert isinstance(t.result, FakeResult)
    assert len(t.state_handlers) == 1
    assert t.nout == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_retries": -1}, "max_retries must be a whole number"),
        ({"timeout": 0}, "timeout must be positive"),
        ({"retry_delay": "soon"}, "retry_delay must be seconds"),
        ({"nout": -2}, "nout must be a whole number"),
    ],
)
def test_bad_task_options_are_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Task(name="bad", **kwargs)  # type: ignore[arg-type]


def test_run_argument_named_like_a_wiring_argument_is_rejected() -> None:
    with pytest.raises(TaskCallError, match="'upstream_tasks'.*reserved"):

        @task
        def bad(upstream_tasks: list[int]) -> None: ...


def test_nout_unpacks_a_call_into_tasks() -> None:
    @task(nout=2)
    def pair() -> tuple[int, str]:
        return 7, "seven"

    with Flow("nout") as flow:
        n, s = pair()
        total = inc(n)
    state = flow.run()
    assert state.result[n].result == 7
    assert state.result[s].result == "seven"
    assert state.result[total].result == 8


def test_iterating_a_task_without_nout_is_an_error() -> None:
    with Flow("no-nout"):
        r = one()
        with pytest.raises(TaskCallError, match="set nout=N"):
            a, b = r


# --- Flow construction and the static DAG ---------------------------------------------------------


def test_flow_constructor_options_are_kept() -> None:
    seen: list[str] = []

    def handler(flow: Flow, old: object, new: object) -> None:
        seen.append(type(new).__name__)

    class RecordingResult:
        location: str | None = None

        def __init__(self) -> None:
            self.written: list[object] = []

        def write(self, value: object, **ctx: object) -> RecordingResult:
            self.written.append(value)
            self.location = f"mem://{ctx['task_slug']}"
            return self

    schedule, storage, result = object(), object(), RecordingResult()
    executor = LocalExecutor()
    with Flow(
        "opts",
        schedule=schedule,
        executor=executor,
        storage=storage,
        run_config=LocalRun(labels=["x"]),
        result=result,
        state_handlers=[handler],
    ) as flow:
        one()
    assert flow.schedule is schedule
    assert flow.executor is executor
    assert flow.storage is storage
    assert flow.result is result
    assert flow.environment is flow.run_config
    state = flow.run(run_on_schedule=False)
    assert state.is_successful(), state.message
    assert seen == ["Running", "Success"]
    # the flow's result checkpoints every task by default
    assert result.written == [1]
    (t,) = flow.tasks
    assert state.result[t].location == "mem://one-1"


def test_flow_needs_a_name_and_one_run_config() -> None:
    with pytest.raises(ValueError, match="non-empty string name"):
        Flow("")
    with pytest.raises(ValueError, match="not both"):
        Flow("x", run_config=LocalRun(), environment=LocalRun())


def test_data_edges_and_upstream_tasks() -> None:
    order: list[str] = []

    @task
    def first() -> int:
        order.append("first")
        return 2

    @task
    def side() -> None:
        order.append("side")

    @task
    def second(x: int) -> int:
        order.append("second")
        return x * 10

    with Flow("dag") as flow:
        s = side()
        f = first()
        r = second(f, upstream_tasks=[s])

    assert flow.upstream_tasks(r) == {f, s}
    keys = {(e.upstream_task, e.key) for e in flow.edges_to(r)}
    assert keys == {(f, "x"), (s, None)}
    assert flow.root_tasks() == {f, s}
    assert flow.terminal_tasks() == {r}
    state = flow.run()
    assert state.result[r].result == 20
    assert order.index("second") > max(order.index("first"), order.index("side"))


def test_calling_a_task_twice_makes_two_nodes_with_unique_slugs() -> None:
    with Flow("slugs") as flow:
        a = one()
        b = one()
    assert a is not b and a is not one
    assert {a.slug, b.slug} == {"one-1", "one-2"}
    assert flow.task_by_slug("one-2") is b
    with pytest.raises(KeyError, match="no task with slug 'nope'"):
        flow.task_by_slug("nope")


def test_keyword_binding_and_constants() -> None:
    with Flow("kw") as flow:
        a = one()
        r1 = add(y=a, x=100)
        r2 = add(a)
    state = flow.run()
    assert state.result[r1].result == 101
    assert state.result[r2].result == 11
    assert flow.constants[r1] == {"x": 100}


def test_getitem_on_a_task_result() -> None:
    @task
    def data() -> dict[str, list[int]]:
        return {"xs": [1, 2, 3]}

    with Flow("getitem") as flow:
        d = data()
        xs = d["xs"]
        second = xs[1]
    state = flow.run()
    assert state.result[xs].result == [1, 2, 3]
    assert state.result[second].result == 2


@pytest.mark.parametrize(
    ("make", "cls", "expected"),
    [
        (lambda a, b: [a, b, 5], List, [1, 2, 5]),
        (lambda a, b: (a, b), Tuple, (1, 2)),
        (lambda a, b: {a, b}, Set, {1, 2}),
        (lambda a, b: {"a": a, "b": b, "c": 3}, Dict, {"a": 1, "b": 2, "c": 3}),
    ],
)
def test_collections_of_task_results_become_edges(make, cls, expected) -> None:  # type: ignore[no-untyped-def]
    @task
    def echo(value: object) -> object:
        return value

    @task
    def two() -> int:
        return 2

    with Flow("collections") as flow:
        a, b = one(), two()
        r = echo(make(a, b))
    (collector,) = flow.upstream_tasks(r)
    assert isinstance(collector, cls)

    def ancestors(t: Task) -> set[Task]:
        found: set[Task] = set()
        for u in flow.upstream_tasks(t):
            found |= {u} | ancestors(u)
        return found

    assert {a, b} <= ancestors(collector)
    state = flow.run()
    assert state.result[r].result == expected


# --- every wiring style ------------------------------------------------------------------------------


def _recorder(order: list[str], name: str) -> Task:
    @task(name=name)
    def record() -> None:
        order.append(name)

    return record


def _run_order(flow: Flow, order: list[str]) -> list[str]:
    state = flow.run()
    assert state.is_successful(), state.message
    return order


def test_wiring_with_chain() -> None:
    order: list[str] = []
    a, b, c = (_recorder(order, n) for n in "abc")
    flow = Flow("chain")
    edges = flow.chain(c, b, a)
    assert [(e.upstream_task, e.downstream_task) for e in edges] == [(c, b), (b, a)]
    assert _run_order(flow, order) == ["c", "b", "a"]


def test_wiring_with_add_task_and_add_edge() -> None:
    order: list[str] = []
    a, b, c = (_recorder(order, n) for n in "abc")
    flow = Flow("edges")
    flow.add_task(c)
    flow.add_edge(b, a)
    flow.add_edge(c, b)
    assert len(flow.tasks) == 3 and len(flow.edges) == 2
    assert flow.add_edge(c, b) in flow.edges and len(flow.edges) == 2  # adding twice is a no-op
    assert _run_order(flow, order) == ["c", "b", "a"]


def test_add_edge_with_a_key_passes_data() -> None:
    flow = Flow("keyed")
    a = one.copy()
    r = inc.copy()
    flow.add_edge(a, r, key="x")
    assert flow.run().result[r].result == 2
    with pytest.raises(TaskCallError, match="has no argument 'nope'"):
        flow.add_edge(a, r, key="nope")
    with pytest.raises(headwater.FlowValidationError, match="already bound"):
        flow.add_edge(one.copy(), r, key="x")


def test_wiring_with_set_upstream_and_set_downstream() -> None:
    order: list[str] = []
    a, b, c = (_recorder(order, n) for n in "abc")
    with Flow("updown") as flow:
        b.set_upstream(c)
        b.set_downstream(a)
    assert flow.upstream_tasks(b) == {c} and flow.downstream_tasks(b) == {a}
    assert _run_order(flow, order) == ["c", "b", "a"]


def test_set_upstream_with_a_key_passes_data() -> None:
    r = inc.copy()
    a = one.copy()
    with Flow("keyed-upstream") as flow:
        r.set_upstream(a, key="x")
    assert flow.run().result[r].result == 2


def test_wiring_with_task_set_dependencies() -> None:
    order: list[str] = []
    a, b, c = (_recorder(order, n) for n in "abc")
    flow = Flow("deps")
    b.set_dependencies(upstream_tasks=[c], downstream_tasks=[a], flow=flow)
    assert flow.edges_to(b) and flow.upstream_tasks(a) == {b}
    assert _run_order(flow, order) == ["c", "b", "a"]


def test_imperative_wiring_outside_a_flow_is_an_error() -> None:
    a, b = one.copy(), inc.copy()
    with pytest.raises(TaskCallError, match="needs a flow"):
        b.set_upstream(a)


def test_add_task_rejects_non_tasks() -> None:
    with pytest.raises(TypeError, match="Did you forget @task"):
        Flow("x").add_task(lambda: 1)  # type: ignore[arg-type]


# --- reference tasks, copy, validate ------------------------------------------------------------------


def test_set_reference_tasks() -> None:
    @task
    def boom() -> None:
        raise ValueError("boom")

    with Flow("refs") as flow:
        ok = one()
        bad = boom()
    assert flow.reference_tasks() == {ok, bad}
    assert flow.run().is_failed()
    flow.set_reference_tasks([ok])
    assert flow.reference_tasks() == {ok}
    state = flow.run()
    assert state.is_successful()
    assert state.result[bad].is_failed()  # still ran and failed, it just does not count
    with pytest.raises(headwater.FlowValidationError, match="must be in the flow"):
        flow.set_reference_tasks([inc.copy()])


def test_flow_copy_has_an_independent_graph() -> None:
    with Flow("orig") as flow:
        a = one()
        b = inc(a)
    twin = flow.copy()
    extra = inc.copy()
    twin.add_edge(b, extra, key="x")
    twin.name = "twin"
    assert extra in twin.tasks and extra not in flow.tasks
    assert len(flow.edges) == 1 and len(twin.edges) == 2
    assert flow.terminal_tasks() == {b}
    assert twin.terminal_tasks() == {extra}
    assert flow.name == "orig"
    assert twin.run().result[extra].result == 3
    assert flow.run().result[b].result == 2


def test_cycle_is_refused_naming_the_cycle() -> None:
    flow = Flow("cyclic")
    a = one.copy(name="a")
    b = one.copy(name="b")
    flow.add_edge(a, b)
    with pytest.raises(CycleError, match="a-1 -> b-1 -> a-1") as info:
        flow.add_edge(b, a)
    assert info.value.cycle == [a, b, a]
    with pytest.raises(CycleError, match="cannot depend on itself"):
        flow.add_edge(a, a)
    flow.validate()  # the refused edge was not added


def test_validate_names_a_deferred_cycle_and_run_refuses_it() -> None:
    ran: list[str] = []

    @task
    def mark() -> None:
        ran.append("x")

    flow = Flow("deferred")
    a, b, c = mark.copy(name="a"), mark.copy(name="b"), mark.copy(name="c")
    flow.add_edge(a, b)
    flow.add_edge(b, c)
    flow.add_edge(c, a, validate=False)
    with pytest.raises(CycleError, match="a-1 -> b-1 -> c-1 -> a-1") as info:
        flow.validate()
    assert info.value.cycle == [a, b, c, a]
    with pytest.raises(CycleError):
        flow.run()
    assert ran == []


def test_bind_refuses_a_cycle() -> None:
    with Flow("bind-cycle"):
        a = one()
        b = inc(a)
        with pytest.raises(CycleError, match="would make a cycle"):
            a.bind(upstream_tasks=[b])


# --- parameters -----------------------------------------------------------------------------------------


def test_parameters_defaults_required_and_values() -> None:
    with Flow("params") as flow:
        x = Parameter("x")
        y = Parameter("y", default=5)
        z = Parameter("z", required=False)
        r = add(x, y)

        @task
        def show(value: object) -> object:
            return value

        zz = show(z)
    assert flow.parameters() == {x, y, z}
    assert x.required and not y.required and not z.required
    state = flow.run(parameters={"x": 1})
    assert state.result[r].result == 6
    assert state.result[zz].result is None
    state = flow.run(parameters={"x": 1, "y": 2, "z": "zed"})
    assert state.result[r].result == 3
    assert state.result[zz].result == "zed"
    assert flow.run(x=4).result[r].result == 9  # keyword arguments are parameters too


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({}, r"missing required parameter\(s\) 'x'.*flow.run\(parameters=\{'x': ...\}\)"),
        ({"x": 1, "typo": 2}, r"has no parameter 'typo'; its parameters are: x, y"),
    ],
)
def test_bad_parameters_are_errors_before_anything_runs(parameters: dict[str, int], message: str) -> None:
    ran: list[str] = []

    @task
    def early() -> None:
        ran.append("early")

    with Flow("bad-params") as flow:
        early()
        add(Parameter("x"), Parameter("y", default=1))
    with pytest.raises(ParameterError, match=message):
        flow.run(parameters=parameters)
    assert ran == []


def test_parameter_names_are_unique_in_a_flow() -> None:
    with Flow("dup") as flow:
        flow.add_task(Parameter("p"))
        with pytest.raises(headwater.FlowValidationError, match="slug 'p'"):
            flow.add_task(Parameter("p"))


def test_parameter_cannot_be_called_with_arguments_or_copied() -> None:
    p = Parameter("p", default=1)
    with Flow("pcall"):
        assert p() is p
        with pytest.raises(TypeError, match="takes no arguments"):
            p(3)
    with pytest.raises(TypeError, match="cannot be copied"):
        p.copy()


# --- bad calls ----------------------------------------------------------------------------------------------


def test_flow_only_arguments_outside_a_flow_are_task_call_errors() -> None:
    a = one.copy()
    with pytest.raises(TaskCallError, match=r"'inc' was called outside a flow with flow-only argument 'upstream_tasks'"):
        inc(1, upstream_tasks=[a])
    with pytest.raises(TaskCallError, match="flow-only argument 'task_args'"):
        inc(1, task_args={"name": "x"})
    with pytest.raises(TaskCallError, match="another task's result as an argument"):
        inc(a)
    with pytest.raises(TaskCallError, match="map\\(\\) needs a flow"):
        inc.map([1, 2])


def test_wrong_arguments_name_the_task_and_its_arguments() -> None:
    with pytest.raises(TaskCallError, match=r"Task 'add': missing a required argument: 'x'.*run\(\) takes \(x, y\)"):
        add()
    with Flow("wrong-args"):
        with pytest.raises(TaskCallError, match=r"Task 'add': got an unexpected keyword argument 'z'.*\(x, y\)"):
            add(1, z=2)
        with pytest.raises(TaskCallError, match=r"Task 'inc': too many positional arguments.*\(x\)"):
            inc(1, 2)


def test_task_args_override_options_for_one_call() -> None:
    with Flow("task-args") as flow:
        r = inc(1, task_args={"name": "renamed", "max_retries": 3, "tags": ["t"]})
        with pytest.raises(TaskCallError, match="unknown task option 'colour'"):
            inc(1, task_args={"colour": "red"})
    assert r.name == "renamed" and r.max_retries == 3 and r.tags == {"t"}
    assert inc.max_retries == 0 and inc.name == "inc"
    assert flow.run().result[r].result == 2


def test_task_failure_state_carries_the_exception_and_traceback() -> None:
    @task
    def boom() -> None:
        raise KeyError("missing")

    with Flow("boom") as flow:
        b = boom()
    state = flow.run()
    assert isinstance(state, Failed)
    assert state.message == "boom-1 raised KeyError('missing')"
    s = state.result[b]
    assert type(s) is Failed
    assert isinstance(s.result, KeyError)
    assert "KeyError" in s.message and "missing" in s.message
    assert s.traceback is not None and "raise KeyError" in s.traceback
    assert not isinstance(state.result[b], Success)


def test_explicit_flow_argument_works_for_an_empty_flow() -> None:
    # an empty flow has len() 0; it must still be used, not mistaken for "no flow"
    flow = Flow("explicit")
    r = inc(1, flow=flow)
    assert flow.tasks == {r}
    m = inc.map([1, 2], flow=Flow("explicit-map"))
    assert m.slug == "inc-1"
    other = Flow("explicit-deps")
    one.copy().set_dependencies(flow=other)
    assert len(other) == 1
    assert bool(Flow("empty")) is True
    assert flow.run().result[r].result == 2
