"""Prefect 1 compatibility: ``context.update``, ``case`` with context blocks, ``flatten``, ``Retrying`` defaults.

Each expectation here was checked against Prefect 1.4.1 (the same script run with ``prefect``
imports): the values, states and graph sizes are the ones Prefect 1 gives.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import headwater
from headwater import Flow, case, flatten, task
from headwater.engine import signals
from headwater.engine.state import Failed, Mapped, Retrying, Skipped, State, Success
from headwater.tasks.control_flow import merge

context = headwater.context


@pytest.fixture(autouse=True)
def _clean_context() -> Any:
    """Every test starts and ends with the thread's top-level context it found."""
    before = context.to_dict()
    yield
    context.clear()
    context.update(before)


# --- headwater.context as Prefect 1's mutable DotDict --------------------------------------------------------


def test_update_get_attribute_and_to_dict() -> None:
    assert context.get("nope") is None and context.get("nope", 3) == 3
    with pytest.raises(AttributeError, match="nope"):
        _ = context.nope
    context.update(a=1)
    assert context.a == 1 and context["a"] == 1 and "a" in context
    context.update({"d": 4}, e=5)
    assert (context.d, context.e) == (4, 5)
    exported = context.to_dict()
    assert type(exported) is dict and exported["a"] == 1 and exported["d"] == 4
    exported["a"] = 99  # a copy: changing it changes nothing
    assert context.a == 1
    assert context.copy() == context.to_dict() and context == exported | {"a": 1}
    assert len(context) == len(exported) and set(context.items()) >= {("a", 1), ("d", 4)}


def test_item_and_attribute_assignment_pop_setdefault() -> None:
    context.x = 9
    assert context.get("x") == 9
    context["y"] = 10
    assert context.y == 10
    del context["y"]
    assert "y" not in context
    del context.x
    assert context.get("x") is None
    with pytest.raises(KeyError):
        del context["never"]
    with pytest.raises(AttributeError, match="never"):
        del context.never
    context.update(p=1)
    assert context.pop("p") == 1 and context.pop("p", "gone") == "gone"
    with pytest.raises(KeyError):
        context.pop("p")
    assert context.setdefault("s", 5) == 5 and context.setdefault("s", 6) == 5
    with pytest.raises(TypeError, match="strings"):
        context.update({1: "x"})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="at most one"):
        context.update({"a": 1}, {"b": 2})


def test_a_with_block_undoes_its_updates_and_takes_mappings() -> None:
    context.update(a=1)
    with context({"b": 2}, c=3) as ctx:
        assert ctx is context
        context.update(c=30, inner=True)
        context.a = 10
        assert (context.a, context.b, context.c, context.inner) == (10, 2, 30, True)
    assert context.a == 1 and "b" not in context and "c" not in context and "inner" not in context
    with context(a=2):
        del context["a"]
        assert "a" not in context
    assert context.a == 1
    with context(z=1):
        context.clear()
        assert len(context) == 0
    assert context.a == 1


def test_updates_stay_in_their_thread() -> None:
    context.update(main=1)
    seen: dict[str, Any] = {}

    def worker() -> None:
        seen["main"] = context.get("main")
        context.update(thread=True)
        seen["thread"] = context.get("thread")

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == {"main": None, "thread": True}  # Prefect 1's context is thread-local too
    assert "thread" not in context


def test_update_in_a_task_lasts_for_that_task_run_only() -> None:
    @task
    def first() -> tuple[Any, Any, Any]:
        headwater.context.update(inner=1)
        headwater.context["tag"] = "x"
        return headwater.context.get("who"), headwater.context.get("inner"), headwater.context.tag

    @task
    def second(_: Any) -> Any:
        return headwater.context.get("inner")

    with Flow("ctx-update") as flow:
        a = first()
        b = second(a)
    with context(who="team"):
        state = flow.run()
        assert context.who == "team"
    assert state.result[a].result == ("team", 1, "x")
    assert state.result[b].result is None  # as in Prefect 1: not passed downstream
    assert "inner" not in context and "who" not in context


@pytest.mark.parametrize("executor", ["local", "threads"])
def test_mapped_children_do_not_see_each_others_updates(executor: str) -> None:
    from headwater.executors import LocalExecutor, ThreadExecutor

    @task
    def child(x: int) -> Any:
        before = headwater.context.get("mine")
        headwater.context.update(mine=x)
        return before

    with Flow("ctx-map") as flow:
        r = child.map(list(range(6)))
    state = flow.run(executor=LocalExecutor() if executor == "local" else ThreadExecutor(max_workers=2))
    assert state.result[r].result == [None] * 6  # as in Prefect 1 (LocalExecutor and LocalDaskExecutor threads)


def test_update_before_a_run_is_visible_in_tasks() -> None:
    @task
    def read() -> Any:
        return headwater.context.get("region")

    with Flow("ctx-top") as flow:
        r = read()
    context.update(region="north")
    assert flow.run().result[r].result == "north"


# --- case with context blocks ---------------------------------------------------------------------------------


@task
def cond() -> bool:
    return True


@task
def yes() -> str:
    return "yes"


@task
def no() -> str:
    return "no"


@task
def val(x: Any) -> Any:
    return x


@task
def add(x: int, y: int) -> int:
    return x + y


def names(state: State, *tasks: Any) -> list[str]:
    return [type(state.result[t]).__name__ for t in tasks]


def test_case_inside_a_context_block() -> None:
    with Flow("case-in-ctx") as flow:
        c = cond()
        with headwater.context(foo=1):
            with case(c, True):
                y = yes()
            with case(c, False):
                n = no()
        m = merge(y, n)
    state = flow.run()
    assert names(state, y, n) == ["Success", "Skipped"]
    assert state.result[m].result == "yes"
    assert len(flow.tasks) == 6  # cond, yes, no, two comparisons, merge: as Prefect 1 builds it


def test_context_block_inside_a_case() -> None:
    with Flow("ctx-in-case") as flow:
        c = cond()
        with case(c, True):
            with headwater.context(bar=2):
                y = yes()
        with case(c, False):
            n = no()
    state = flow.run()
    assert names(state, y, n) == ["Success", "Skipped"]


def test_case_nested_in_case() -> None:
    with Flow("nested") as flow:
        a = val(1)
        b = val(2)
        with case(a, 1):
            with case(b, 2):
                deep = yes()
            with case(b, 3):
                other = no()
    state = flow.run()
    assert names(state, deep, other) == ["Success", "Skipped"]
    assert (len(flow.tasks), len(flow.edges)) == (7, 7)  # Prefect 1.4.1: 7 tasks, 7 edges


def test_outer_case_not_taken_skips_the_inner_cases() -> None:
    with Flow("nested-skip") as flow:
        a = val(1)
        b = val(2)
        with case(a, 5):
            with case(b, 2):
                deep = yes()
    state = flow.run()
    assert names(state, deep) == ["Skipped"]


def test_one_case_object_used_twice() -> None:
    with Flow("twice") as flow:
        c = cond()
        branch = case(c, True)
        with branch:
            a1 = yes()
        with branch:
            a2 = no()
    state = flow.run()
    assert names(state, a1, a2) == ["Success", "Success"]
    assert (len(flow.tasks), len(flow.edges)) == (5, 5)  # Prefect 1 keeps the first block's tasks


def test_case_in_a_flow_entered_twice() -> None:
    with Flow("re-enter") as flow:
        c = cond()
    with flow:
        with case(c, False):
            z = yes()
    state = flow.run()
    assert names(state, z) == ["Skipped"]
    assert (len(flow.tasks), len(flow.edges)) == (3, 2)


def test_a_mapped_task_in_a_branch_not_taken_is_skipped() -> None:
    with Flow("map-in-case") as flow:
        c = val(True)
        outside = val(5)
        with case(c, True):
            taken = inc.map([1, 2])
            s = add(outside, 1)
        with case(c, False):
            not_taken = inc.map([3, 4])
    state = flow.run()
    assert state.is_successful(), state.message
    assert names(state, taken, s, outside) == ["Mapped", "Success", "Success"]
    assert state.result[taken].result == [2, 3]
    # Prefect 1.4.1: the mapped task itself is Skipped (its non-mapped upstream, the comparison, was skipped).
    assert names(state, not_taken) == ["Skipped"]
    assert (len(flow.tasks), len(flow.edges)) == (9, 8)


def test_case_value_cannot_be_a_task_and_a_case_belongs_to_one_flow() -> None:
    with pytest.raises(TypeError, match="cannot be a task"):
        case(cond, yes)
    branch = case(cond, True)
    with Flow("one"):
        with branch:
            yes()
    with Flow("two"), pytest.raises(ValueError, match="(?i)multiple flows cannot be used with the same case"):
        with branch:
            no()


def test_constants_and_parameters_made_in_a_case_are_not_branch_work() -> None:
    from headwater.core.collections import Constant

    with Flow("consts") as flow:
        c = cond()
        with case(c, False):
            k = Constant(5)
            flow.add_task(k)
            r = val(k)
    state = flow.run()
    assert names(state, k, r) == ["Success", "Skipped"]


# --- flatten --------------------------------------------------------------------------------------------------


def test_flatten_result_matches_prefect1() -> None:
    from headwater.core.collections import flatten_result

    assert flatten_result([[1, 2], [3]]) == [1, 2, 3]
    assert flatten_result([[1, [2]], [3]]) == [1, [2], 3]  # one level only
    assert flatten_result(["ab", "c"]) == ["a", "b", "c"]
    assert flatten_result([[1, 2], 3]) == [[1, 2], 3]  # not a list of iterables: unchanged
    assert flatten_result(None) is None
    assert flatten_result(5) == 5
    assert flatten_result([]) == []


def test_flatten_map_states_keeps_children_that_did_not_succeed(caplog: pytest.LogCaptureFixture) -> None:
    from headwater.core.collections import flatten_map_states

    ok, skipped, failed, scalar = Success(result=[1, 2]), Skipped("no"), Failed(result=ValueError("x")), Success(result=5)
    items, item_states = flatten_map_states([ok, skipped, failed, scalar, Success(result=[])])
    assert items[:3] == [1, 2, None] and isinstance(items[3], ValueError) and items[4] == 5
    assert item_states == [ok, ok, skipped, failed, scalar]
    assert "not a list" in caplog.text
    assert flatten_map_states([Success(result={"a": 1})]) == ([{"a": 1}], [Success(result={"a": 1})])


@task
def nested() -> list[list[int]]:
    return [[1, 2], [3]]


@task
def deep() -> list[Any]:
    return [[1, [2]], [3]]


@task
def strs() -> list[str]:
    return ["ab", "c"]


@task
def mixed() -> list[Any]:
    return [[1, 2], 3]


@task
def nothing() -> None:
    return None


@task
def listify(x: int) -> list[int]:
    if x == 2:
        raise signals.SKIP("skip 2")
    return [x, x * 10]


@task
def inc(x: Any) -> Any:
    return x + 1


@task(skip_on_upstream_skip=False)
def collect(x: Any) -> Any:
    return x


def mapped_results(state: State) -> list[tuple[str, Any]]:
    assert isinstance(state, Mapped)
    return [(type(c).__name__, c.result) for c in state.map_states]


def test_flatten_in_a_flow_un_nests_one_level() -> None:
    with Flow("flat") as flow:
        a = val(flatten(nested))
        b = val(flatten(deep))
        d = val(flatten(strs))
        e = val.map(flatten(nested))
        m = listify.map([1, 3])
        g = val(flatten(m))
        h = inc.map(flatten(m))
    state = flow.run()
    r = state.result
    assert r[a].result == [1, 2, 3] and r[b].result == [1, [2], 3] and r[d].result == ["a", "b", "c"]
    assert mapped_results(r[e]) == [("Success", 1), ("Success", 2), ("Success", 3)]
    assert r[g].result == [1, 10, 3, 30]
    assert mapped_results(r[h]) == [("Success", 2), ("Success", 11), ("Success", 4), ("Success", 31)]


def test_reduce_over_flatten_of_a_mapped_task_with_a_skipped_child_is_skipped() -> None:
    with Flow("flat-skip-reduce") as flow:
        m = listify.map([1, 2, 3])
        g = val(flatten(m))
    assert isinstance(flow.run().result[g], Skipped)  # Prefect 1: Skipped (skip_on_upstream_skip)


def test_map_over_flatten_keeps_a_skipped_child_as_one_skipped_item() -> None:
    with Flow("flat-skip-map") as flow:
        m = listify.map([1, 2, 3])
        h = inc.map(flatten(m))
        g = collect(flatten(m))
    state = flow.run()
    # Prefect 1.4.1: [('Success', 2), ('Success', 11), ('Skipped', None), ('Success', 4), ('Success', 31)]
    assert mapped_results(state.result[h]) == [("Success", 2), ("Success", 11), ("Skipped", None),
                                               ("Success", 4), ("Success", 31)]
    assert state.result[g].result == [1, 10, None, 3, 30]


def test_flatten_of_a_result_that_is_not_nested_passes_it_unchanged() -> None:
    with Flow("flat-mixed") as flow:
        c = val(flatten(mixed))
        n = val(flatten(nothing))
    state = flow.run()
    assert state.is_successful()
    assert state.result[c].result == [[1, 2], 3]  # Prefect 1: unchanged (today: the whole run fails)
    assert state.result[n].result is None  # Prefect 1: None (today: [])


# --- Retrying -------------------------------------------------------------------------------------------------


def test_retrying_defaults_match_prefect1() -> None:
    r = Retrying()
    assert r.message is None and r.result is None and r.run_count == 1
    assert r.start_time is not None and abs(r.start_time - datetime.now(UTC).timestamp()) < 60
    assert r.is_pending() and r.is_scheduled() and r.is_retrying() and not r.is_finished() and not r.is_failed()
    with context(task_run_count=3):
        assert Retrying().run_count == 3 and Retrying(run_count=7).run_count == 7
    when = datetime.now(UTC) + timedelta(minutes=5)
    assert Retrying("later", start_time=when).start_time == when.timestamp()
    assert Retrying(start_time=123.0).start_time == 123.0
    with pytest.raises(ValueError, match="naive"):
        Retrying(start_time=datetime(2030, 1, 1))  # noqa: DTZ001 - the point of the test


def test_retrying_made_in_a_task_counts_its_run() -> None:
    from headwater.engine.state import Failed as FailedState

    @task(max_retries=2, retry_delay=timedelta(0))
    def flaky() -> int:
        if headwater.context.task_run_count < 3:
            raise ValueError("not yet")
        return headwater.context.task_run_count

    seen: list[int] = []

    def handler(t: Any, old: State, new: State) -> State:
        if isinstance(new, Retrying):
            seen.append(new.run_count)
        return new

    flaky.state_handlers = [handler]
    with Flow("retry") as flow:
        f = flaky()
    state = flow.run()
    assert state.result[f].result == 3 and seen == [1, 2]
    assert not isinstance(state.result[f], FailedState)


def test_retry_signal_accepts_a_datetime_start_time() -> None:
    when = datetime.now(UTC) + timedelta(hours=1)
    sig = signals.RETRY("later", start_time=when)
    assert isinstance(sig.state, Retrying) and sig.state.start_time == when.timestamp()
