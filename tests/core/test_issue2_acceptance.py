"""Acceptance checks for issue 2 that the feature test files did not cover.

Each test names the bullet it proves: retry transitions seen by state handlers, ``log_stdout``
with parallel tasks, tasks calling or returning tasks, wiring calls that fail leaving the flow
as it was, state handlers that raise, the full run-time context, a third-party executor
written against the interface, ``flow.copy()`` and parameters, and the CLI's error paths.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import headwater
from headwater import CycleError, Flow, FlowValidationError, Parameter, Task, TaskCallError, task
from headwater.engine import ParameterError
from headwater.executors import Executor, LocalExecutor, ProcessExecutor, ThreadExecutor
from headwater.executors.base import FIRST_COMPLETED
from headwater.states import Cancelled, Failed, Mapped, Retrying, Running, State, Success, TimedOut


@task
def one() -> int:
    return 1


@task
def inc(x: int) -> int:
    return x + 1


@task
def add(x: int, y: int) -> int:
    return x + y


def _graph(flow: Flow) -> tuple[Any, ...]:
    """Everything wiring can change, as plain comparable data."""
    return (
        list(flow._tasks),
        list(flow._edges),
        {t: list(es) for t, es in flow._upstream.items()},
        {t: list(es) for t, es in flow._downstream.items()},
        dict(flow._slugs),
        dict(flow._slug_counts),
        {t: dict(c) for t, c in flow.constants.items()},
        {t: dict(k) for t, k in flow._bound_keys.items()},
        [t.slug for t in flow._tasks],
    )


# --- state handlers: a retry is Retrying -> Running ----------------------------------------------------


@pytest.mark.parametrize("executor", [LocalExecutor(), ThreadExecutor(2)], ids=["local", "threads"])
def test_state_handlers_see_a_retry_start_as_retrying_to_running(executor: Executor) -> None:
    transitions: list[tuple[State, State]] = []
    attempts = {"n": 0}

    @task(max_retries=1, state_handlers=[lambda t, old, new: transitions.append((old, new))])
    def flaky() -> str:
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise ConnectionError("first attempt")
        return "second"

    with Flow("retry-transitions") as flow:
        f = flaky()
    state = flow.run(executor=executor)
    assert state.result[f].result == "second"
    names = [(o.name, n.name) for o, n in transitions]
    assert names == [("Pending", "Running"), ("Running", "Retrying"), ("Retrying", "Running"), ("Running", "Success")]
    # the old state of the second start is the very Retrying state the first attempt ended in
    assert transitions[2][0] is transitions[1][1]
    assert isinstance(transitions[2][0], Retrying) and transitions[2][0].run_count == 1


def test_a_retrying_mapped_child_is_also_seen_as_retrying_to_running() -> None:
    transitions: list[tuple[str, str, Any]] = []
    failed_once: set[int] = set()

    def record(t: Task, old: State, new: State) -> None:
        transitions.append((old.name, new.name, headwater.context.get("map_index")))

    @task(max_retries=1, state_handlers=[record])
    def child(x: int) -> int:
        if x == 2 and x not in failed_once:
            failed_once.add(x)
            raise RuntimeError("once")
        return x * 10

    with Flow("mapped-retry-transitions") as flow:
        m = child.map([1, 2, 3])
    state = flow.run()
    assert state.result[m].result == [10, 20, 30]
    item_two = [(o, n) for o, n, i in transitions if i == 1]
    retried = [("Pending", "Running"), ("Running", "Retrying"), ("Retrying", "Running"), ("Running", "Success")]
    assert item_two == retried
    assert [(o, n) for o, n, i in transitions if i == 0] == [("Pending", "Running"), ("Running", "Success")]


# --- state handlers that raise -----------------------------------------------------------------------


def test_a_task_state_handler_that_raises_fails_that_task_and_names_the_handler() -> None:
    def broken_handler(t: Task, old: State, new: State) -> None:
        if new.is_successful():
            raise KeyError("no such channel")

    ran: list[str] = []

    @task(state_handlers=[broken_handler])
    def notifies() -> int:
        ran.append("notifies")
        return 1

    with Flow("bad-task-handler") as flow:
        n = notifies()
        other = one()
        after = inc(n)
    state = flow.run()
    failed = state.result[n]
    assert type(failed) is Failed
    assert "broken_handler" in failed.message and "Running -> Success" in failed.message
    assert "KeyError('no such channel')" in failed.message
    assert isinstance(failed.result, KeyError)
    assert ran == ["notifies"]  # it ran; the handler failed afterwards
    assert state.result[other].is_successful()
    assert state.result[after].name == "TriggerFailed"
    assert state.is_failed()


def test_a_flow_state_handler_that_raises_on_start_fails_the_run_before_any_task() -> None:
    ran: list[str] = []

    def refuses(flow: Flow, old: State, new: State) -> None:
        if isinstance(new, Running):
            raise RuntimeError("maintenance window")

    @task
    def work() -> None:
        ran.append("work")

    with Flow("bad-flow-handler", state_handlers=[refuses]) as flow:
        work()
    state = flow.run()
    assert type(state) is Failed
    assert "refuses" in state.message and "maintenance window" in state.message
    assert "Pending -> Running" in state.message
    assert ran == []


def test_a_flow_state_handler_that_raises_at_the_end_keeps_the_task_states() -> None:
    def fails_on_finish(flow: Flow, old: State, new: State) -> None:
        if new.is_finished():
            raise ValueError("cannot post summary")

    with Flow("bad-final-handler", state_handlers=[fails_on_finish]) as flow:
        a = one()
    state = flow.run()
    assert type(state) is Failed and "cannot post summary" in state.message
    assert state.result[a].result == 1


def test_flow_state_handlers_see_a_cancelled_run_go_through_cancelling() -> None:
    seen: list[tuple[str, str]] = []
    requested: list[bool] = []

    @task
    def first() -> None:
        requested.append(True)

    with Flow("cancel-states", state_handlers=[lambda f, o, n: seen.append((o.name, n.name))]) as flow:
        f = first()
        s = inc(f)
    state = flow.run(cancel=lambda: bool(requested))
    assert type(state) is Cancelled and type(state.result[s]) is Cancelled
    assert seen == [("Pending", "Running"), ("Running", "Cancelling"), ("Cancelling", "Cancelled")]


# --- log_stdout ------------------------------------------------------------------------------------


def test_log_stdout_with_parallel_tasks_logs_each_print_under_its_own_task(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    both_printing = threading.Barrier(2, timeout=10)
    a_printed = threading.Event()
    b_printed = threading.Event()

    @task(log_stdout=True)
    def left() -> str:
        both_printing.wait()  # both tasks are inside their stdout capture now
        print("printed by left")
        a_printed.set()
        b_printed.wait(10)
        return "l"

    @task(log_stdout=True)
    def right() -> str:
        both_printing.wait()
        a_printed.wait(10)
        print("printed by right")
        b_printed.set()
        return "r"

    stdout_before = sys.stdout
    with Flow("parallel-prints") as flow:
        left()
        right()
    with caplog.at_level(logging.INFO, logger="headwater"):
        state = flow.run(executor=ThreadExecutor(2))
    assert state.is_successful(), state.message
    by_logger = {(r.name, r.getMessage()) for r in caplog.records if r.getMessage().startswith("printed by")}
    assert by_logger == {("headwater.left", "printed by left"), ("headwater.right", "printed by right")}
    assert sys.stdout is stdout_before  # nothing left swapped
    print("after the run")
    assert "after the run" in capsys.readouterr().out


def test_log_stdout_under_a_timeout_and_plain_prints_are_untouched(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    @task(log_stdout=True, timeout=10)
    def chatty() -> int:
        print("line one\nline two")
        print("partial", end="")
        return 7

    @task
    def quiet() -> None:
        print("to the terminal")

    with Flow("timeout-prints") as flow:
        c = chatty()
        quiet(upstream_tasks=[c])
    with caplog.at_level(logging.INFO, logger="headwater"):
        state = flow.run()
    assert state.result[c].result == 7
    lines = [r.getMessage() for r in caplog.records if r.name == "headwater.chatty"]
    assert lines == ["line one", "line two", "partial"]
    out = capsys.readouterr().out
    assert "to the terminal" in out and "line one" not in out


def test_process_executor_with_timeout_and_log_stdout() -> None:
    with Flow("process-timeouts") as flow:
        slow = _sleeper.copy(timeout=0.5)(3)
        fast = _sleeper.copy(timeout=30)(0)
        printing = _printer()
    state = flow.run(executor=ProcessExecutor(2))
    assert type(state.result[slow]) is TimedOut
    assert state.result[slow].message == "Task '_sleeper' timed out after 0.5 seconds."
    assert state.result[fast].result == "slept 0"
    assert state.result[printing].result == "printed"
    assert state.is_failed()


@task
def _sleeper(seconds: float) -> str:
    time.sleep(seconds)
    return f"slept {seconds:g}"


@task(log_stdout=True)
def _printer() -> str:
    print("from a worker process")
    return "printed"


def test_process_executor_names_a_result_it_cannot_send_back() -> None:
    with Flow("unpicklable") as flow:
        lock = _makes_lock()
    state = flow.run(executor=ProcessExecutor(1))
    failed = state.result[lock]
    assert type(failed) is Failed
    assert "could not send a lock result back from the worker process" in failed.message
    assert "ThreadExecutor or LocalExecutor" in failed.message


@task
def _makes_lock() -> Any:
    return threading.Lock()


# --- tasks that call or return tasks ---------------------------------------------------------------


def test_calling_a_task_inside_a_task_runs_it_even_when_run_inside_the_with_block() -> None:
    @task
    def double(x: int) -> int:
        return x * 2

    @task
    def uses_helper() -> int:
        return double(21)

    with Flow("call-inside") as flow:
        u = uses_helper()
        before = _graph(flow)
        state = flow.run()  # the flow is still the active one here
        assert _graph(flow) == before  # nothing was wired while it ran
    assert state.result[u].result == 42
    assert flow.run().result[u].result == 42


def test_a_task_returning_a_task_fails_clearly_without_retrying() -> None:
    calls: list[int] = []

    @task(max_retries=2)
    def returns_task() -> Task:
        calls.append(1)
        return inc

    with Flow("returns-task") as flow:
        r = returns_task()
        after = inc(r)
    state = flow.run()
    failed = state.result[r]
    assert type(failed) is Failed
    assert "returned the task <Task: inc> instead of a value" in failed.message
    assert "inc.run(...)" in failed.message
    assert calls == [1]
    assert state.result[after].name == "TriggerFailed"


# --- bad wiring leaves nothing half-done -------------------------------------------------------------


def test_set_dependencies_that_closes_a_cycle_adds_none_of_its_edges() -> None:
    with Flow("atomic-deps") as flow:
        a = one()
        b = inc(a)
        c = inc(b)
    extra = one.copy(name="extra")
    before = _graph(flow)
    with pytest.raises(CycleError, match="would make a cycle"):
        flow.set_dependencies(a, upstream_tasks=[extra, c], keyword_tasks={})
    assert _graph(flow) == before
    assert extra not in flow.tasks and extra.slug is None
    with pytest.raises(CycleError):
        b.set_dependencies(flow=flow, upstream_tasks=[extra], downstream_tasks=[a])
    assert _graph(flow) == before
    assert flow.run().is_successful()


def test_chain_that_closes_a_cycle_adds_none_of_its_edges() -> None:
    flow = Flow("atomic-chain")
    a, b, c = (one.copy(name=n) for n in "abc")
    flow.add_edge(a, b)
    before = _graph(flow)
    with pytest.raises(CycleError, match="b-1 -> a-1"):
        flow.chain(c, b, a)
    assert _graph(flow) == before and c not in flow.tasks


def test_a_task_call_with_a_bad_argument_leaves_no_half_wired_task() -> None:
    with Flow("atomic-call") as flow:
        x = Parameter("x", default=1)
        first = add(x, 1)
        o = one()
        before = _graph(flow)
        with pytest.raises(FlowValidationError, match="slug 'x'"):
            add(o, Parameter("x", default=2))  # a second parameter named x
        assert _graph(flow) == before  # neither add-2 nor its edge from one-1 stayed
        with pytest.raises(FlowValidationError, match="slug 'x'"):
            add([o, Parameter("x")], 5)  # the failure is inside a collection argument
        assert _graph(flow) == before  # no List task either
        second = add(first, 2)
    assert second.slug == "add-2"  # the failed calls used up no slug
    assert flow.run(x=10).result[second].result == 13


def test_add_edge_with_an_unknown_key_does_not_add_its_tasks() -> None:
    flow = Flow("atomic-edge")
    a, b = one.copy(), inc.copy()
    with pytest.raises(TaskCallError, match="has no argument 'y'"):
        flow.add_edge(a, b, key="y")
    assert len(flow) == 0 and a.slug is None and b.slug is None


def test_rebinding_with_constants_and_a_cycle_keeps_the_old_constants() -> None:
    with Flow("atomic-bind") as flow:
        s = add.copy()
        s.bind(x=1, y=2)
        d = inc(s)
        before = _graph(flow)
        with pytest.raises(CycleError):
            s.bind(x=5, y=6, upstream_tasks=[d])  # constants are set before the cycle is found
        assert _graph(flow) == before
    assert flow.constants[s] == {"x": 1, "y": 2}
    assert flow.run().result[d].result == 4


# --- headwater.context: everything a task reads at run time --------------------------------------------


def test_context_has_every_documented_key_in_plain_and_mapped_runs() -> None:
    seen: list[dict[str, Any]] = []
    keys = (
        "flow_name", "flow_run_id", "flow_run_name", "task_name", "task_slug", "task_full_name", "task_tags",
        "map_index", "parameters", "task_run_count", "scheduled_start_time", "date", "today", "today_nodash",
        "yesterday", "yesterday_nodash", "tomorrow", "tomorrow_nodash", "logger",
    )

    @task(tags=["etl"])
    def look(item: int = 0, p: int = 0) -> None:
        seen.append({k: headwater.context.get(k) for k in keys})

    with Flow("ctx-all") as flow:
        p = Parameter("p", default=3)
        look(p=p)
        look.map([5, 6], p=headwater.unmapped(p))
    assert flow.run().is_successful()
    plain, *children = seen
    assert all(v is not None for k, v in plain.items() if k != "map_index"), plain
    assert plain["flow_run_name"].startswith("ctx-all-") and plain["flow_run_id"][:8] in plain["flow_run_name"]
    assert plain["task_full_name"] == "look" and plain["map_index"] is None
    assert plain["task_tags"] == {"etl"} and plain["parameters"] == {} and plain["task_run_count"] == 1
    assert plain["today_nodash"] == plain["today"].replace("-", "")
    assert sorted(c["task_full_name"] for c in children) == ["look[0]", "look[1]"]
    assert {c["flow_run_id"] for c in seen} == {plain["flow_run_id"]}  # one run


# --- the executor interface, as a plugin would implement it --------------------------------------------


class _PluginStyleExecutor(Executor):
    """An executor written only against the interface (as headwater-dask would): no engine internals."""

    def __init__(self) -> None:
        self.starts = 0
        self.submitted: list[str] = []
        self.waits: list[str] = []
        self._pool: ThreadPoolExecutor | None = None

    @contextmanager
    def start(self) -> Iterator[Executor]:
        self.starts += 1
        with ThreadPoolExecutor(max_workers=2) as pool:
            self._pool = pool
            try:
                yield self
            finally:
                self._pool = None

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        assert self._pool is not None, "submit() outside start()"
        self.submitted.append(args[0].name)
        return self._pool.submit(fn, *args, **kwargs)

    def wait(
        self, futures: Iterable[Any], timeout: float | None = None, return_when: str = FIRST_COMPLETED
    ) -> tuple[set[Any], set[Any]]:
        self.waits.append(return_when)
        done, not_done = futures_wait(list(futures), timeout=timeout, return_when=return_when)
        return set(done), set(not_done)


def test_an_executor_written_against_the_interface_runs_a_mapped_flow_with_retries() -> None:
    attempts: dict[int, int] = {}

    @task(max_retries=1)
    def square(x: int) -> int:
        attempts[x] = attempts.get(x, 0) + 1
        if x == 3 and attempts[x] == 1:
            raise RuntimeError("flaky")
        return x * x

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    executor = _PluginStyleExecutor()
    with Flow("plugin-executor", executor=executor) as flow:
        t = total(square.map([1, 2, 3]))
    state = flow.run()  # Flow(executor=...) is the default for this flow's runs
    assert state.result[t].result == 14
    assert executor.starts == 1
    assert sorted(n for n in executor.submitted if not n.startswith("Constant")) == ["square"] * 4 + ["total"]
    assert executor.waits and set(executor.waits) == {FIRST_COMPLETED}
    state = flow.run(executor=LocalExecutor())  # an argument overrides the flow's executor
    assert state.is_successful() and executor.starts == 1


# --- flow.copy(), parameters, flow.run(**kwargs) -------------------------------------------------------


def test_flow_copy_is_independent_in_references_constants_handlers_and_parameters() -> None:
    with Flow("orig") as flow:
        x = Parameter("x", default=1)
        a = add(x, 10)
        b = inc(a)
    flow.set_reference_tasks([b])
    twin = flow.copy()
    twin.set_reference_tasks([a])
    twin.state_handlers.append(lambda f, o, n: None)
    twin.constants[a]["y"] = 100
    with twin:
        y = Parameter("y", default=0)
        extra = add(b, y)
    assert flow.reference_tasks() == {b} and twin.reference_tasks() == {a}
    assert flow.state_handlers == [] and flow.constants[a] == {"y": 10}
    assert flow.parameters() == {x} and twin.parameters() == {x, y}
    assert extra not in flow.tasks and len(flow) == 3
    assert flow.run(x=1).result[b].result == 12
    assert twin.run(x=1, y=5).result[extra].result == 107


def test_one_parameter_used_twice_is_one_node_and_feeds_both() -> None:
    with Flow("param-twice") as flow:
        n = Parameter("n", default=2)
        a = inc(n)
        b = add(n, n)  # twice in one call, too
    assert [t for t in flow.tasks if isinstance(t, Parameter)] == [n]
    assert flow.upstream_tasks(b) == {n}
    state = flow.run(n=5)
    assert state.result[a].result == 6 and state.result[b].result == 10
    assert state.result[n].result == 5


def test_run_keyword_arguments_are_parameters_and_an_unknown_one_runs_nothing() -> None:
    ran: list[object] = []

    @task
    def record(v: object) -> None:
        ran.append(v)

    with Flow("run-kwargs") as flow:
        record(Parameter("value"))
    assert flow.run(value="kw").is_successful()
    assert flow.run(parameters={"value": "dict"}, value="kw-wins").is_successful()
    assert ran == ["kw", "kw-wins"]
    with pytest.raises(ParameterError, match="no parameter 'valeu'; its parameters are: value"):
        flow.run(value=1, valeu=2)
    with pytest.raises(ParameterError, match="missing required parameter"):
        flow.run()
    assert ran == ["kw", "kw-wins"]


# --- the command line ------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "headwater.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_cli_progress_summary_and_unknown_parameter(tmp_path: Path) -> None:
    flow_file = tmp_path / "etl.py"
    flow_file.write_text(textwrap.dedent("""
        from headwater import Flow, Parameter, task

        @task(max_retries=1)
        def extract(n):
            return list(range(n))

        @task
        def double(x):
            return 2 * x

        @task
        def load(xs):
            print("loaded", sum(xs))

        with Flow("etl") as flow:
            load(double.map(extract(Parameter("n", default=3))))
    """))
    result = _cli("run", str(flow_file), "--param", "n=4")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "loaded 12" in out
    assert "flow 'etl'" in out and "4/4" in out  # the progress display's final frame
    rows = [("n", "Success"), ("extract", "Success"), ("double", "Mapped (4 items)"), ("load", "Success")]  # names as written
    for slug, shown in rows:
        assert any(slug in line and shown in line for line in out.splitlines()), (slug, out)
    assert "Flow run Success" in out
    unknown = _cli("run", str(flow_file), "--param", "m=4")
    assert unknown.returncode == 2
    assert "Flow 'etl' has no parameter 'm'; its parameters are: n." in unknown.stderr
    assert "loaded" not in unknown.stdout


def test_cli_summary_counts_failed_mapped_items_and_exits_one(tmp_path: Path) -> None:
    flow_file = tmp_path / "partial.py"
    flow_file.write_text(textwrap.dedent("""
        from headwater import Flow, task

        @task
        def check(x):
            if x == 2:
                raise ValueError("bad item")
            return x

        with Flow("partial") as flow:
            check.map([1, 2, 3])
    """))
    result = _cli("run", str(flow_file), "-q")
    assert result.returncode == 1
    assert "Mapped (3 items, 1 failed)" in result.stdout
    assert "Flow run Failed" in result.stdout


def test_mapped_state_keeps_per_item_states_after_a_failed_item() -> None:
    @task
    def check(x: int) -> int:
        if x == 2:
            raise ValueError("bad item")
        return x

    with Flow("per-item") as flow:
        m = check.map([1, 2, 3])
    state = flow.run()
    mapped = state.result[m]
    assert isinstance(mapped, Mapped)
    assert [type(s) for s in mapped.map_states] == [Success, Failed, Success]
    assert mapped.result[0] == 1 and mapped.result[2] == 3
    assert state.is_failed()
