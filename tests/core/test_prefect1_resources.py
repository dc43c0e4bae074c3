"""Prefect 1's ``resource_manager``, ``apply_map`` and the meta/class-hierarchy state helpers.

Each test mirrors a Prefect 1.4.1 test (named in its comment): tests/tasks/core/test_resource_manager.py
and tests/utilities/test_tasks.py::TestApplyMap of PrefectHQ/prefect.
"""

from __future__ import annotations

import json
import warnings

import pytest

from headwater import Flow, Parameter, Task, apply_map, case, context, resource_manager, states, task, unmapped
from headwater.core.collections import Constant
from headwater.core.edge import Edge, flatten
from headwater.core.resource_manager import ResourceManager, resource_cleanup_trigger
from headwater.plugins import from_dict, to_dict
from headwater.signals import SKIP, TRIGGERFAIL
from headwater.states import Failed, Pending, Queued, Retrying, Scheduled, Skipped, Submitted, Success
from headwater.tasks.control_flow import merge


class MyResource:
    def __init__(self, on_setup=None, on_cleanup=None):
        self.on_setup = on_setup
        self.on_cleanup = on_cleanup

    def setup(self):
        return self.on_setup() if callable(self.on_setup) else self.on_setup

    def cleanup(self, val):
        if self.on_cleanup:
            self.on_cleanup(val)


@task
def inc(x):
    return x + 1


@task
def add(x, y):
    return x + y


@task
def is_even(x):
    return x % 2 == 0


@task
def ranged(n):
    return range(n)


# --- resource_manager ------------------------------------------------------------------------------


def test_resource_manager_default_init():
    # Prefect 1: test_resource_manager_default_init
    manager = resource_manager(MyResource)
    assert isinstance(manager, ResourceManager)
    assert manager.name == "MyResource"
    assert manager.resource_class is MyResource
    assert manager.init_task_kwargs == {"name": "MyResource"}
    assert manager.setup_task_kwargs == {"name": "MyResource.setup", "checkpoint": False}
    assert manager.cleanup_task_kwargs == {
        "name": "MyResource.cleanup",
        "trigger": resource_cleanup_trigger,
        "skip_on_upstream_skip": False,
        "checkpoint": False,
    }


def test_resource_manager_init_overrides():
    # Prefect 1: test_resource_manager_init_overrides
    init_kw = {"name": "init_name", "tags": ["init"]}
    setup_kw = {"name": "setup_name", "tags": ["setup"], "checkpoint": True}
    cleanup_kw = {"name": "cleanup_name", "tags": ["cleanup"], "checkpoint": True}
    manager = resource_manager(
        MyResource, name="Test", init_task_kwargs=init_kw, setup_task_kwargs=setup_kw, cleanup_task_kwargs=cleanup_kw
    )
    assert manager.name == "Test"
    assert manager.init_task_kwargs == init_kw
    assert manager.setup_task_kwargs == setup_kw
    assert manager.cleanup_task_kwargs == {"trigger": resource_cleanup_trigger, "skip_on_upstream_skip": False, **cleanup_kw}
    assert manager.init_task_kwargs is not init_kw
    assert manager.setup_task_kwargs is not setup_kw
    assert manager.cleanup_task_kwargs is not cleanup_kw


def test_resource_manager_decorator_init():
    # Prefect 1: test_resource_manager_decorator_init
    manager = resource_manager(name="Test")(MyResource)
    assert manager.name == "Test"
    assert manager.init_task_kwargs["name"] == "Test"
    assert manager.setup_task_kwargs["name"] == "Test.setup"
    assert manager.cleanup_task_kwargs["name"] == "Test.cleanup"
    assert manager.resource_class is MyResource


def test_resource_manager_sets_and_clears_context():
    # Prefect 1: test_resource_manager_sets_and_clears_context
    manager = resource_manager(MyResource)
    with Flow("test"):
        m1 = manager(1)
        m2 = manager(2)
        assert "resource" not in context
        with m1:
            assert context["resource"] is m1
            with m2:
                assert context["resource"] is m2
            assert context["resource"] is m1
        assert "resource" not in context


def test_resource_manager_errors_no_flow_in_context():
    # Prefect 1: test_resource_manager_errors_no_flow_in_context
    manager = resource_manager(MyResource)
    with pytest.raises(ValueError, match="Could not infer an active Flow"):
        with manager():
            pass


@pytest.mark.parametrize("api", ["functional", "imperative"])
def test_resource_manager_generated_flow_structure(api):
    # Prefect 1: test_resource_manager_generated_flow_structure
    manager = resource_manager(MyResource)
    if api == "functional":
        with Flow("test") as flow:
            a = inc(1)
            ctx = manager(a)
            with ctx as resource:
                b = add(resource, a)
                c = inc(b)
                d = inc(2)
                e = inc(d)
                f = inc(3)
            g = inc(f)
    else:
        flow = Flow("test")
        a = inc(1, flow=flow)
        ctx = manager(a, flow=flow)
        with ctx as resource:
            b = add(resource, a, flow=flow)
            c = inc(b, flow=flow)
            d = inc(2, flow=flow)
            e = inc(d, flow=flow)
            f = inc(3, flow=flow)
        g = inc(f, flow=flow)

    assert ctx.init_task.name == "MyResource"
    assert ctx.setup_task.name == "MyResource.setup"
    assert ctx.cleanup_task.name == "MyResource.cleanup"
    assert not ctx.cleanup_task.skip_on_upstream_skip
    assert flow.upstream_tasks(a) == set()
    assert flow.upstream_tasks(ctx.init_task) == {a}
    assert flow.upstream_tasks(ctx.setup_task) == {ctx.init_task}
    assert flow.upstream_tasks(b) == {ctx.setup_task, a}
    assert flow.upstream_tasks(c) == {b}
    assert flow.upstream_tasks(d) == {ctx.setup_task}
    assert flow.upstream_tasks(e) == {d}
    assert flow.upstream_tasks(f) == {ctx.setup_task}
    assert flow.upstream_tasks(g) == {f}
    assert flow.upstream_tasks(ctx.cleanup_task) == {ctx.init_task, ctx.setup_task, c, e, f}
    # the cleanup task's inputs: the manager object and the resource
    assert {(e.upstream_task, e.key) for e in flow.edges_to(ctx.cleanup_task) if e.key} == {
        (ctx.init_task, "mgr"), (ctx.setup_task, "resource"),
    }


def test_resource_manager_reference_tasks_leave_cleanup_out():
    # Prefect 1: test_resource_manager_generated_flow_structure (reference tasks) and test_resource_cleanup_reference_tasks
    manager = resource_manager(MyResource)
    with Flow("test") as flow:
        with manager() as resource:
            a = inc(resource)
            b = inc(a)
            c = inc(2)
        d = inc(b)
    assert flow.reference_tasks() == {c, d}

    @task
    def post_cleanup():
        pass

    with Flow("test") as flow:
        ctx = manager()
        with ctx as resource:
            a = inc(resource)
            b = inc(a)
            c = inc(2)
        d = inc(b)
        e = post_cleanup(upstream_tasks=[ctx.cleanup_task])
    assert flow.reference_tasks() == {c, d, e}


def test_resource_manager_execution_success():
    # Prefect 1: test_resource_manager_execution_success
    cleaned = []
    manager = resource_manager(MyResource)
    with Flow("test") as flow:
        ctx = manager(on_setup=lambda: 100, on_cleanup=cleaned.append)
        with ctx as resource:
            a = inc(resource)
            b = inc(a)
    state = flow.run()
    assert cleaned == [100]
    assert state.is_successful()
    assert all(s.is_successful() for s in state.result.values())
    assert state.result[b].result == 102
    assert state.result[ctx.setup_task].result == 100


def _failing_resource(kind, calls):
    def raise_if(val):
        if kind == val:
            raise ValueError("Oh No!")

    @resource_manager
    class Resource:
        def __init__(self):
            raise_if("init")

        def setup(self):
            calls.append("setup")
            raise_if("setup")
            return 100

        def cleanup(self, val):
            calls.append(("cleanup", val))
            raise_if("cleanup")

    return Resource


@pytest.mark.parametrize("kind", ["init", "setup"])
def test_resource_manager_execution_with_failure_in_init_or_setup(kind):
    # Prefect 1: test_resource_manager_execution_with_failure_in_manager[init, setup]
    calls = []
    resource_cls = _failing_resource(kind, calls)
    with Flow("test") as flow:
        ctx = resource_cls()
        with ctx as resource:
            a = inc(resource)
    state = flow.run()
    assert state.result[ctx.init_task].is_failed() is (kind == "init")
    assert state.result[ctx.setup_task].is_failed()
    assert state.result[ctx.cleanup_task].is_skipped()
    assert state.result[a].is_failed()
    assert calls == ([] if kind == "init" else ["setup"])


@pytest.mark.parametrize("kind", ["init", "setup"])
def test_resource_manager_failure_in_init_or_setup_fails_the_flow(kind):
    # Prefect 1: test_resource_manager_execution_with_failure_in_manager[init, setup] (state.is_failed())
    resource_cls = _failing_resource(kind, [])
    with Flow("test") as flow:
        with resource_cls() as resource:
            inc(resource)
    assert flow.run().is_failed()


def test_resource_manager_cleanup_failure_runs_and_fails_the_task():
    # Prefect 1: test_resource_manager_execution_with_failure_in_manager[cleanup] (the task states)
    calls = []
    resource_cls = _failing_resource("cleanup", calls)
    with Flow("test") as flow:
        ctx = resource_cls()
        with ctx as resource:
            a = inc(resource)
    state = flow.run()
    assert state.result[ctx.init_task].is_successful()
    assert state.result[ctx.setup_task].is_successful()
    assert state.result[ctx.cleanup_task].is_failed()
    assert state.result[a].is_successful()
    assert calls == ["setup", ("cleanup", 100)]


def test_resource_manager_cleanup_failure_does_not_fail_the_flow():
    # Prefect 1: test_resource_manager_execution_with_failure_in_manager[cleanup] (state.is_successful())
    resource_cls = _failing_resource("cleanup", [])
    with Flow("test") as flow:
        with resource_cls() as resource:
            inc(resource)
    assert flow.run().is_successful()


def test_cleanup_runs_when_a_task_in_the_block_fails():
    # Prefect 1: resource_cleanup_trigger runs cleanup whatever the block's tasks did
    cleaned = []

    @task
    def boom(r):
        raise RuntimeError("task in the block failed")

    manager = resource_manager(MyResource)
    with Flow("test") as flow:
        ctx = manager(on_setup=lambda: "conn", on_cleanup=cleaned.append)
        with ctx as resource:
            a = boom(resource)
            b = inc(a)  # TriggerFailed downstream of the failure
    state = flow.run()
    assert cleaned == ["conn"]
    assert state.result[ctx.cleanup_task].is_successful()
    assert state.result[a].is_failed()
    assert isinstance(state.result[b], states.TriggerFailed)


def test_resource_init_arguments_may_be_tasks_and_parameters():
    # Prefect 1 docs: `with DaskCluster(n_workers=n_workers) as client` with a Parameter
    seen = []

    @resource_manager
    class Pool:
        def __init__(self, size, prefix="p"):
            self.size, self.prefix = size, prefix

        def setup(self):
            return [f"{self.prefix}{i}" for i in range(self.size)]

        def cleanup(self, workers):
            seen.extend(workers)

    with Flow("test") as flow:
        size = Parameter("size", default=2)
        with Pool(inc(size), prefix="w") as workers:
            n = task(lambda workers: len(workers), name="count")(workers)
    state = flow.run(size=2)
    assert state.result[n].result == 3
    assert seen == ["w0", "w1", "w2"]


def test_resource_tasks_always_rerun_on_flow_restart():
    # Prefect 1: test_resource_tasks_always_rerun_on_flow_restart
    ran = {"init": False, "setup": False, "cleanup": False}

    @resource_manager
    class Resource:
        def __init__(self):
            ran["init"] = True

        def setup(self):
            ran["setup"] = True
            return 1

        def cleanup(self, val):
            ran["cleanup"] = True

    with Flow("test") as flow:
        ctx = Resource()
        with ctx as resource:
            a = inc(resource)
            b = inc(resource)
            c = add(a, b)

    task_states = {
        ctx.init_task: Success(result=Resource.resource_class()),
        ctx.setup_task: Success(),
        ctx.cleanup_task: Success(),
        a: Success(result=2),
    }
    ran.update(init=False, setup=False, cleanup=False)
    res = flow.run(task_states=task_states)
    assert res.is_successful()
    assert res.result[a].result == 2
    assert res.result[b].result == 2
    assert res.result[c].result == 4
    assert not ran["init"]
    assert ran["setup"]
    assert ran["cleanup"]


def test_resource_cleanup_trigger():
    # Prefect 1: test_resource_cleanup_trigger
    def generate(init, setup, other):
        return {
            Edge(Task(), Task(), key="mgr"): init,
            Edge(Task(), Task(), key="resource"): setup,
            Edge(Task(), Task()): other,
        }

    assert resource_cleanup_trigger(generate(Success(), Success(), Success()))
    assert resource_cleanup_trigger(generate(Success(), Success(), Failed()))
    assert resource_cleanup_trigger(generate(Success(), Success(), Skipped()))
    with pytest.raises(TRIGGERFAIL):
        resource_cleanup_trigger(generate(Success(), Success(), Pending()))
    with pytest.raises(SKIP, match="init failed"):
        resource_cleanup_trigger(generate(Failed(), Success(), Success()))
    with pytest.raises(SKIP, match="init skipped"):
        resource_cleanup_trigger(generate(Skipped(), Success(), Success()))
    with pytest.raises(SKIP, match="setup failed"):
        resource_cleanup_trigger(generate(Success(), Failed(), Success()))
    with pytest.raises(SKIP, match="setup skipped"):
        resource_cleanup_trigger(generate(Success(), Skipped(), Success()))


def test_nested_resources_claim_only_their_own_tasks():
    # Prefect 1: the innermost resource block (context["resource"]) owns the tasks created in it
    manager = resource_manager(MyResource)
    with Flow("test") as flow:
        outer = manager(on_setup=1)
        with outer as r1:
            inner = manager(on_setup=2)
            with inner as r2:
                x = add(r1, r2)
            y = inc(r1)
    assert flow.upstream_tasks(x) == {outer.setup_task, inner.setup_task}
    assert inner.cleanup_task in flow.downstream_tasks(x)
    assert outer.cleanup_task not in flow.downstream_tasks(x)
    # the inner resource's own tasks are work of the outer block
    assert outer.setup_task in flow.upstream_tasks(inner.init_task)
    assert inner.cleanup_task in flow.upstream_tasks(outer.cleanup_task)
    assert y in flow.upstream_tasks(outer.cleanup_task)
    state = flow.run()
    assert state.result[x].result == 3


def test_resource_block_creates_no_unused_task_warning():
    manager = resource_manager(MyResource)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Flow("test") as flow:
            with manager(on_setup=5) as r:
                out = inc(r)
    assert flow.run().result[out].result == 6


# --- apply_map -------------------------------------------------------------------------------------


def test_apply_map_raises_no_flow_found():
    # Prefect 1: TestApplyMap.test_raises_no_flow_found
    with pytest.raises(ValueError, match="flow in the current context"):
        apply_map(lambda x: inc(x), range(10))


def test_apply_map_raises_non_sequence_args():
    # Prefect 1: TestApplyMap.test_raises_non_sequence_args
    with Flow("test"):
        with pytest.raises(TypeError, match="non-sequence object"):
            apply_map(lambda x: inc(x), 1)
        with pytest.raises(TypeError, match="non-sequence object"):
            apply_map(lambda x: inc(x), x=1)


@pytest.mark.parametrize("method", ["map", "set_dependencies", "add_edge"])
def test_apply_map_raises_use_map_in_mapped_function(method):
    # Prefect 1: TestApplyMap.test_raises_use_map_in_mapped_function
    if method == "map":
        def func(x):
            inc.map(x)
        pass_flow = False
    elif method == "set_dependencies":
        def func(x, flow):
            t = inc.copy()
            flow.add_task(t)
            flow.set_dependencies(t, keyword_tasks={"x": x}, mapped=True)
        pass_flow = True
    else:
        def func(x, flow):
            t = inc.copy()
            flow.add_task(t)
            flow.add_edge(x, t, key="x", mapped=True)
        pass_flow = True
    flow = Flow("test")
    with pytest.raises(ValueError, match="running from inside a mapped context"):
        if pass_flow:
            apply_map(func, range(3), flow=flow)
        else:
            with flow:
                apply_map(func, range(3))


def test_apply_map_imperative_args_are_added_to_flow_before_mapping():
    # Prefect 1: TestApplyMap.test_imperative_args_are_added_to_flow_before_mapping
    @task
    def data():
        return range(3)

    def func(a, flow):
        return inc.copy().bind(a, flow=flow)

    flow = Flow("test")
    res = apply_map(func, data, flow=flow)
    assert flow.run().result[res].result == [1, 2, 3]


@pytest.mark.parametrize("api", ["functional", "imperative"])
def test_apply_map_simple(api):
    # Prefect 1: TestApplyMap.test_apply_map_simple
    if api == "functional":
        def func(x, y, z):
            a = add(x, y)
            a.name = "add-a"
            b = add(a, z)
            b.name = "add-b"
            c = add(b, 1)
            c.name = "add-c"
            return inc(c)

        with Flow("test") as flow:
            y = ranged(3)
            z = unmapped(1)
            res = apply_map(func, range(3, 6), y=y, z=z)
    else:
        def func(x, y, z, flow):
            a = add.copy(name="add-a").bind(x, y, flow=flow)
            b = add.copy(name="add-b").bind(a, z, flow=flow)
            c = add.copy(name="add-c").bind(b, 1, flow=flow)
            return inc.copy().bind(c, flow=flow)

        flow = Flow("test")
        y = ranged.copy().bind(3, flow=flow)
        z = unmapped(1)
        res = apply_map(func, range(3, 6), y=y, z=z, flow=flow)

    consts = {t.name: c for t, c in flow.constants.items()}
    assert consts == {"ranged": {"n": 3}, "add-b": {"y": 1}, "add-c": {"y": 1}}
    for t in flow.tasks:
        if t.name != "ranged":
            for e in flow.edges_to(t):
                assert e.mapped
    assert flow.run().result[res].result == [6, 8, 10]


def test_apply_map_return_multiple():
    # Prefect 1: TestApplyMap.test_apply_map_return_multiple
    def func(x, y):
        return inc(x), inc(y)

    with Flow("test") as flow:
        a, b = apply_map(func, range(3), range(3, 6))
    state = flow.run()
    assert state.result[a].result == [1, 2, 3]
    assert state.result[b].result == [4, 5, 6]


def test_apply_map_disparate_length_args_fail_by_name():
    # Prefect 1: TestApplyMap.test_apply_map_disparate_length_args. Every task waits for every mapped
    # input, as in Prefect 1; Prefect 1 then zipped to the shortest input, headwater's mapping fails
    # and names the lengths (docs/concepts/mapping.md), so the mismatch is not silently truncated.
    def func(x, y):
        return inc(x), inc(y)

    with Flow("test") as flow:
        a, b = apply_map(func, range(3), range(3, 300))
    assert {e.upstream_task.name for e in flow.edges_to(a)} == {"Constant[range]"}
    assert len(flow.edges_to(a)) == 2 and len(flow.edges_to(b)) == 2
    state = flow.run()
    assert state.result[a].is_failed()
    assert "same length" in state.result[a].message


@pytest.mark.parametrize("api", ["functional", "imperative"])
def test_apply_map_control_flow(api):
    # Prefect 1: TestApplyMap.test_apply_map_control_flow
    if api == "functional":
        def func(x):
            with case(is_even(x), True):
                x2 = add(x, 1)
            return merge(x2, x)

        with Flow("test") as flow:
            res = apply_map(func, range(4))
    else:
        def func(x, flow):
            cond = is_even.copy().bind(x, flow=flow)
            with case(cond, True):
                x2 = add.copy().bind(x, 1, flow=flow)
            return merge(x2, x, flow=flow)

        flow = Flow("test")
        res = apply_map(func, range(4), flow=flow)
    assert flow.run().result[res].result == [1, 1, 3, 3]


def test_apply_map_tasks_have_all_non_unmapped_constant_args_as_transitive_upstream_deps():
    # Prefect 1: TestApplyMap.test_tasks_have_all_non_unmapped_constant_args_as_transitive_upstream_deps
    def func(a, b, c, d):
        m = inc.copy(name="m").bind(1)
        n = inc.copy(name="n").bind(a)
        o = inc.copy(name="o").bind(b)
        p = add.copy(name="p").bind(n, o)
        q = add.copy(name="q").bind(c, d)
        r = add.copy(name="r").bind(q, m)
        return m, n, o, p, q, r

    with Flow("test") as flow:
        a = ranged.copy(name="a").bind(3)
        b = inc.copy(name="b").bind(1)
        c = Constant(1, name="c")
        d = Constant(range(3), name="d")
        m, n, o, p, q, r = apply_map(func, a, unmapped(b), c=unmapped(c), d=d)

    def edge_info(t):
        return {e.upstream_task: (e.key is not None, e.mapped) for e in flow.edges_to(t)}

    assert edge_info(m) == {a: (False, True), b: (False, False), d: (False, True)}
    assert edge_info(n) == {a: (True, True), b: (False, False), d: (False, True)}
    assert edge_info(o) == {a: (False, True), b: (True, False), d: (False, True)}
    assert edge_info(p) == {n: (True, True), o: (True, True)}
    assert edge_info(q) == {a: (False, True), b: (False, False), d: (True, True)}
    assert edge_info(r) == {q: (True, True), m: (True, True)}
    assert flow.constants[q] == {"x": 1}

    state = flow.run()
    assert {t: state.result[t].result for t in [m, n, o, p, q, r]} == {
        m: [2, 2, 2], n: [1, 2, 3], o: [3, 3, 3], p: [4, 5, 6], q: [1, 2, 3], r: [3, 4, 5],
    }


def test_apply_map_can_be_used_on_apply_map_result():
    # Prefect 1: TestApplyMap.test_apply_map_can_be_used_on_apply_map_result
    @task
    def combine(pair):
        return pair[0] + pair[1]

    def apply_map_one(item):
        return inc(item), inc(inc(item))

    def apply_map_two(item):
        return combine(item)

    with Flow("test") as flow:
        one = apply_map(apply_map_one, [1, 2, 3])
        two = apply_map(apply_map_two, one)
    state = flow.run()
    assert state.is_successful()
    assert state.result[one[0]].result == [2, 3, 4]
    assert state.result[one[1]].result == [3, 4, 5]
    assert state.result[two].result == [5, 7, 9]


def test_apply_map_inside_case_statement_works():
    # Prefect 1: TestApplyMap.test_apply_map_inside_case_statement_works
    def func(x, a):
        return add(x, 1), add(x, a)

    with Flow("test") as flow:
        branch = Parameter("branch")
        with case(branch, True):
            a = inc(1)
            b, c = apply_map(func, range(4), unmapped(a))
            d = add.map(b, c)

    state = flow.run(branch=True)
    assert state.result[a].result == 2
    assert state.result[b].result == [1, 2, 3, 4]
    assert state.result[c].result == [2, 3, 4, 5]
    assert state.result[d].result == [3, 5, 7, 9]
    state = flow.run(branch=False)
    for t in (a, b, c, d):
        assert state.result[t].is_skipped()


def test_apply_map_inside_resource_manager_works():
    # Prefect 1: TestApplyMap.test_apply_map_inside_resource_manager_works
    @resource_manager
    class Res:
        def setup(self):
            return 1

        def cleanup(self, _):
            pass

    def func(x, a):
        return add(x, a), add(x, 2)

    with Flow("test") as flow:
        ctx = Res()
        with ctx as a:
            b, c = apply_map(func, range(4), unmapped(a))
            d = add.map(b, c)
    state = flow.run()
    assert state.result[a].result == 1
    assert state.result[b].result == [1, 2, 3, 4]
    assert state.result[c].result == [2, 3, 4, 5]
    assert state.result[d].result == [3, 5, 7, 9]
    assert state.result[ctx.cleanup_task].is_successful()
    assert flow.upstream_tasks(ctx.cleanup_task) >= {d}


def test_apply_map_inputs_added_to_subflow_before_calling_func():
    # Prefect 1: TestApplyMap.test_apply_map_inputs_added_to_subflow_before_calling_func
    def func(cond, a, b):
        with case(cond, True):
            res1 = a + 1
        with case(cond, False):
            res2 = b + 1
        return merge(res1, res2)

    @task
    def identity(x):
        return x

    with Flow("test") as flow:
        cond = identity([True, False, True])
        a = identity([1, 2, 3])
        b = identity([4, 5, 6])
        c = apply_map(func, cond, a, b)
    assert flow.run().result[c].result == [2, 6, 4]


@pytest.mark.parametrize("input_type", ["constant", "task"])
def test_apply_map_flatten_works(input_type):
    # Prefect 1: TestApplyMap.test_apply_map_flatten_works
    def func(a):
        return a * 2

    @task
    def nested_list():
        return [[1], [1, 2], [1, 2, 3]]

    constant_nested = nested_list.run()
    with Flow("test") as flow:
        nested = nested_list()
        if input_type == "constant":
            a = apply_map(func, flatten(constant_nested))
        else:
            a = apply_map(func, flatten(nested))
    assert flow.run().result[a].result == [2, 2, 4, 2, 4, 6]


def test_apply_map_mixed_edge_types():
    # Prefect 1: TestApplyMap.test_apply_map_mixed_edge_types
    @task
    def get_mixed_types():
        return 3, [1, 2, 3], [[1, 2], [3]]

    @task
    def identity(a, b, c):
        return a, b, c

    def func(u, m, f):
        return identity(u, m, f)

    with Flow("test") as flow:
        m = get_mixed_types()
        a = apply_map(func, unmapped(m[0]), m[1], flatten(m[2]))
    assert flow.run().result[a].result == [(3, 1, 1), (3, 2, 2), (3, 3, 3)]


def test_apply_map_warns_about_nothing_it_used():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Flow("test") as flow:
            res = apply_map(lambda x, y: add(x, y), [1, 2], unmapped(10))
    assert flow.run().result[res].result == [11, 12]


# --- states ----------------------------------------------------------------------------------------


def test_submitted_and_queued_hold_the_state_they_wrap():
    # Prefect 1: tests/engine/test_state.py (Submitted(state=...), Queued(state=..., start_time=...))
    retrying = Retrying("again", start_time=5.0, run_count=2)
    sub = Submitted("handled", state=retrying)
    assert isinstance(sub.state, Retrying)
    assert (sub.state.message, sub.state.start_time, sub.state.run_count) == ("again", 5.0, 2)
    assert sub.is_meta_state() and sub.is_submitted()
    queued = Queued("waiting", state=Scheduled(start_time=3.0), start_time=7.0)
    assert queued.state.start_time == 3.0 and queued.start_time == 7.0
    assert queued.is_queued() and queued.is_meta_state()
    assert Submitted().state is None
    with pytest.raises(TypeError, match="state= must be a State"):
        Submitted(state="Retrying")


@pytest.mark.parametrize(
    "state",
    [
        Submitted("m", state=Retrying("r", start_time=5.0, run_count=2)),
        Queued(state=Scheduled(start_time=3.0), start_time=7.0),
        Submitted(),
        Submitted(state=Queued(state=Failed("x", traceback="tb"))),
        Retrying("plain", start_time=1.0, run_count=3),
    ],
)
def test_meta_states_round_trip_through_the_converter(state):
    data = json.loads(json.dumps(to_dict(state)))
    back = from_dict(data, type(state))
    assert type(back) is type(state)
    assert back == state
    assert to_dict(back) == to_dict(state)
    inner, inner_back = getattr(state, "state", None), getattr(back, "state", None)
    while inner is not None:
        assert type(inner_back) is type(inner)
        assert to_dict(inner_back) == to_dict(inner)
        inner, inner_back = getattr(inner, "state", None), getattr(inner_back, "state", None)


def test_state_parents_and_children():
    # Prefect 1: State.parents() / State.children() (the class hierarchy)
    assert Retrying.parents() == [Scheduled, Pending, states.State]
    assert states.State.parents() == []
    assert set(states.Failed.children()) == {states.TriggerFailed, states.TimedOut, states.ValidationFailed}
    assert states.TimedOut.children() == []
    assert set(states.State.children()) == set(states.STATE_CLASSES.values()) - {states.State}
    assert Queued in Submitted.children()
    assert Submitted in Queued.parents()
    assert all(issubclass(c, states.Pending) for c in states.Pending.children())


def test_prefect1_module_paths_of_apply_map_and_resource_manager():
    import headwater
    from headwater.tasks.core.resource_manager import ResourceManager, resource_manager
    from headwater.utilities.tasks import apply_map

    assert apply_map is headwater.apply_map and resource_manager is headwater.resource_manager
    assert ResourceManager is headwater.ResourceManager
