"""Mapped children in chunks: the lean path for plain tasks gives exactly the states ``run_task`` gives."""

from __future__ import annotations

import pickle
from typing import Any

import attrs
import cloudpickle
import pytest

import headwater
from headwater import Flow, Task, signals, task
from headwater.engine import task_runner
from headwater.engine.task_runner import run_task, run_task_batch
from headwater.executors import LocalExecutor, ThreadExecutor, pool
from headwater.states import Failed, Retrying, Skipped, Success


class Mixed(Task):
    """A child per behaviour: value, failure, signals, LOOP, a returned Task, the context."""

    def run(self, x: int) -> Any:
        if x == 1:
            raise ValueError("one")
        if x == 2:
            raise signals.SKIP("skip two")
        if x == 3:
            raise signals.FAIL("fail three")
        if x == 4:
            count = headwater.context.get("task_loop_count") or 1
            if count < 3:
                raise signals.LOOP(result=count)
            return ("looped", count, headwater.context.get("task_loop_result"))
        if x == 5:
            return Task(name="returned")
        if x == 6:
            raise signals.RETRY("again")
        return (x, headwater.context.get("map_index"), headwater.context.get("task_full_name"))


def _fields(state: Any) -> dict[str, Any]:
    values = {f.name: getattr(state, f.name) for f in attrs.fields(type(state))}
    values.pop("ts")
    for key in ("traceback",):
        if values.get(key):
            values[key] = values[key].splitlines()[-1]  # the frames differ (inlined call)
    if isinstance(values.get("result"), BaseException):
        values["result"] = repr(values["result"])
    if isinstance(values.get("start_time"), float):
        values["start_time"] = round(values["start_time"])
    return {"type": type(state).__name__, **values}


@pytest.mark.parametrize("keyed", [False, True], ids=["pairs", "keyed-chunk"])
@pytest.mark.parametrize("retries", [0, 2])
def test_lean_children_match_run_task_state_for_state(retries: int, keyed: bool) -> None:
    t = Mixed(name="mixed", max_retries=retries, retry_delay=None if not retries else __import__("datetime").timedelta(0))
    ctx = {"flow_name": "f", "task_name": "mixed", "task_slug": "mixed-1", "task_run_count": 1, "map_index": None}
    runs: Any = task_runner.KeyedChunk("x", 0, list(range(8))) if keyed else [(i, {"x": i}) for i in range(8)]
    assert task_runner._is_plain(t, None)
    lean = run_task_batch(t, runs, None, ctx)
    full = [run_task(t, {"x": i}, {**ctx, "map_index": i, "task_full_name": f"mixed[{i}]"}, 1) for i in range(8)]
    assert [_fields(s) for s in lean] == [_fields(s) for s in full]
    assert lean[0].result == (0, 0, "mixed[0]") and lean[4].result == ("looped", 3, 2)
    assert isinstance(lean[1], Retrying if retries else Failed) and isinstance(lean[2], Skipped)


def test_a_task_with_handlers_or_a_result_takes_the_full_path() -> None:
    seen: list[str] = []

    def handler(obj: Any, old: Any, new: Any) -> None:
        seen.append(type(new).__name__)

    t = Mixed(name="handled", state_handlers=[handler])
    assert not task_runner._is_plain(t, None)
    states = run_task_batch(t, [(0, {"x": 0})], None, {"task_name": "handled"})
    assert isinstance(states[0], Success) and seen == ["Running", "Success"]


def test_expand_all_builds_the_same_success_as_its_init() -> None:
    built = pool._expand_all([(41, 123.5), Failed("no")])
    reference = Success("Task run succeeded.", 41, ts=123.5)
    assert {f.name: getattr(built[0], f.name) for f in attrs.fields(Success)} == \
        {f.name: getattr(reference, f.name) for f in attrs.fields(Success)}
    assert type(built[0]) is Success and type(built[1]) is Failed
    columns = pool._columns([(1, 2.0), (3, 4.0)])
    assert columns == ([1, 3], [2.0, 4.0])
    assert [(s.result, s.ts, type(s)) for s in pool._expand_all(columns)] == [(1, 2.0, Success), (3, 4.0, Success)]
    mixed = [(1, 2.0), Failed("x")]
    assert pool._columns(mixed) is mixed


def test_dumps_uses_cloudpickle_for_what_only_it_can_send() -> None:
    plain = [(0, {"x": 1}), (1, {"x": "two"})]
    assert pool._dumps(plain) == pickle.dumps(plain, protocol=pickle.HIGHEST_PROTOCOL)

    def local(y: int) -> int:
        return y

    data = pool._dumps([(0, {"f": local})])
    assert pickle.loads(data)[0][1]["f"](3) == 3  # a local function: sent by value
    main_like = type("Shape", (), {"__module__": "__main__"})
    globals()["Shape"] = main_like
    assert pool._dumps([main_like]) == cloudpickle.dumps([main_like])


@task
def double(x: int) -> int:
    if x == 7:
        raise ValueError("seven")
    return 2 * x


@pytest.mark.parametrize("executor", [LocalExecutor(), ThreadExecutor(max_workers=2, chunksize=16)],
                         ids=["local", "threads"])
def test_chunked_maps_keep_every_child_state_and_the_reduce_sees_failures(executor: Any) -> None:
    with Flow("chunked") as flow:
        doubled = double.map(list(range(3000)))
        total = sum_all(doubled)
    state = flow.run(executor=executor)
    children = state.result[doubled].map_states
    assert len(children) == 3000 and sum(isinstance(c, Failed) for c in children) == 1
    assert [c.result for c in children[:3]] == [0, 2, 4]
    assert {c.ts for c in children} != {children[0].ts} or len(children) == 1  # each child has its own state
    assert state.result[total].is_failed() and "TriggerFailed" in type(state.result[total]).__name__


@task
def sum_all(xs: list[int]) -> int:
    return sum(xs)


@task
def maybe_skip(x: int) -> int:
    if x == 3:
        raise signals.SKIP("not three")
    return x


def test_a_clean_map_releases_its_reduce_without_checking_each_child(monkeypatch: pytest.MonkeyPatch) -> None:
    from headwater.engine import flow_runner

    checked: list[str] = []
    real = flow_runner.check_upstream

    def counting(task: Any, upstream: Any, resumed: bool = False) -> Any:
        checked.append(task.name)
        return real(task, upstream, resumed)

    monkeypatch.setattr(flow_runner, "check_upstream", counting)
    with Flow("clean") as flow:
        total = sum_all(double.map(list(range(7))))
    state = flow.run()
    assert state.result[total].result == sum(2 * x for x in range(7)) and "sum_all" not in checked
    with Flow("skipping") as flow:
        total = sum_all(maybe_skip.map(list(range(5))))
    state = flow.run()
    assert isinstance(state.result[total], Skipped) and "sum_all" in checked


class ReadsContext(Task):
    def run(self, x: int) -> Any:
        before = headwater.context.to_dict()
        headwater.context.update(scratch=x)  # copy on write: never seen by a sibling
        return before, len(headwater.context), sorted(headwater.context), headwater.context.scratch


def test_a_childs_context_is_a_full_mapping_of_its_own() -> None:
    with Flow("ctx-view") as flow:
        out = ReadsContext(name="reads").map([10, 11, 12])
    state = flow.run(context={"team": "blue"})
    values = [c.result for c in state.result[out].map_states]
    for i, (before, size, keys, scratch) in enumerate(values):
        assert before["map_index"] == i and before["task_full_name"] == f"reads[{i}]" and before["team"] == "blue"
        assert "scratch" not in before and scratch == 10 + i
        assert size == len(before) + 1 and keys == sorted({*before, "scratch"})
    view = task_runner._ChildContext.__new__(task_runner._ChildContext)
    view._base, view._index, view._prefix = {"a": 1, "map_index": None}, 4, "t["
    assert dict(view) == {"a": 1, "map_index": 4, "task_full_name": "t[4]"} and len(view) == 3


def test_a_keyed_chunk_reads_as_its_list_of_pairs() -> None:
    chunk = task_runner.KeyedChunk("x", 5, [10, 11, 12, 13])
    pairs = [(5, {"x": 10}), (6, {"x": 11}), (7, {"x": 12}), (8, {"x": 13})]
    assert list(chunk) == pairs and len(chunk) == 4 and chunk[0] == pairs[0] and chunk[-1] == pairs[-1]
    assert list(chunk[1:3]) == pairs[1:3] and chunk[1:3].start == 6 and chunk[::2] == pairs[::2]
    assert list(chunk.indices()) == [5, 6, 7, 8]
    again = pickle.loads(pickle.dumps(chunk))
    assert list(again) == pairs and bool(task_runner.KeyedChunk("x", 0, [])) is False


def _first(y: int, x: int = 0) -> tuple[int, int]:
    return y, x


def _keyword_only(*, x: int) -> int:
    return x


def _positional_only(x: int, /) -> int:
    return x


@pytest.mark.parametrize(("fn", "expected"), [
    (lambda x: x * 10, [0, 10, 20]),         # the mapped argument comes first: called positionally
    (_first, [TypeError, TypeError, TypeError]),  # a required ``y`` first: ``x`` must go by keyword
    (lambda y=7, x=0: (y, x), [(7, 0), (7, 1), (7, 2)]),  # ``x`` is not first: by keyword
    (_keyword_only, [0, 1, 2]),
    (_positional_only, [TypeError, TypeError, TypeError]),  # as run_task: ``x=`` cannot reach it
], ids=["first", "required-before", "defaulted-before", "keyword-only", "positional-only"])
def test_a_keyed_chunk_binds_its_key_as_run_task_does(fn: Any, expected: list[Any]) -> None:
    t = task(fn, name="bind")
    ctx = {"task_name": "bind", "map_index": None}
    lean = run_task_batch(t, task_runner.KeyedChunk("x", 0, [0, 1, 2]), None, ctx)
    full = [run_task(t, {"x": i}, {**ctx, "map_index": i, "task_full_name": f"bind[{i}]"}, 1) for i in range(3)]
    assert [_fields(s) for s in lean] == [_fields(s) for s in full]
    got = [type(s.result) if isinstance(s.result, BaseException) else s.result for s in lean]
    assert got == expected


def test_a_chunk_leaves_the_callers_context_as_it_was() -> None:
    seen: list[Any] = []

    @task
    def reads(x: int) -> int:
        seen.append((headwater.context.get("map_index"), headwater.context.get("scratch")))
        headwater.context.update(scratch=x)  # lasts for this child only
        if x == 1:
            raise ValueError("a failing child leaves no context behind either")
        return x

    with headwater.context(outer="kept"):
        before = headwater.context.to_dict()
        states = run_task_batch(reads, task_runner.KeyedChunk("x", 0, [0, 1, 2]), None, {"task_name": "reads"})
        assert headwater.context.to_dict() == before
    assert [type(s).__name__ for s in states] == ["Success", "Failed", "Success"]
    assert seen == [(0, None), (1, None), (2, None)]
