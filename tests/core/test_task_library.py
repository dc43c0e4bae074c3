"""The task library: ShellTask (real bash subprocesses) and case/merge/ifelse/switch branching."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from headwater import Flow, Parameter, signals, task
from headwater.executors.pool import ThreadExecutor
from headwater.states import Failed, Skipped, Success, TriggerFailed
from headwater.tasks import CompareValue, Merge, ShellTask, case, ifelse, merge, switch

# --- ShellTask ------------------------------------------------------------------------------


def test_returns_last_line_of_stdout() -> None:
    assert ShellTask(command="echo first; echo second").run() == "second"


def test_command_given_at_call_replaces_the_one_given_at_init() -> None:
    shell = ShellTask(command="echo from-init")
    assert shell.run() == "from-init"
    assert shell.run(command="echo from-call") == "from-call"


def test_return_all_gives_every_stdout_line_in_order() -> None:
    result = ShellTask(return_all=True).run(command="echo a; echo b; echo 'c d'")
    assert result == ["a", "b", "c d"]


def test_no_output_is_none_or_empty_list() -> None:
    assert ShellTask().run(command="true") is None
    assert ShellTask(return_all=True).run(command="true") == []


def test_stderr_is_not_the_result() -> None:
    assert ShellTask().run(command="echo out; echo err >&2") == "out"
    assert ShellTask(return_all=True).run(command="echo err >&2; echo out") == ["out"]


def test_multiline_command_runs_as_a_script() -> None:
    command = "total=0\nfor i in 1 2 3; do\n  total=$((total + i))\ndone\necho $total"
    assert ShellTask().run(command=command) == "6"


def test_non_zero_exit_raises_fail_with_command_code_and_tail() -> None:
    command = "for i in $(seq 1 30); do printf 'line %02d\\n' $i; done; exit 3"
    with pytest.raises(signals.FAIL) as info:
        ShellTask().run(command=command)
    message = str(info.value)
    assert "exit code 3" in message
    assert "seq 1 30" in message  # the command is named
    assert "line 11" in message and "line 30" in message  # the last 20 lines ...
    assert "line 10" not in message  # ... and not more
    assert isinstance(info.value.state, Failed)


def test_tail_includes_stderr_lines() -> None:
    with pytest.raises(signals.FAIL) as info:
        ShellTask().run(command="echo 'bad input: x' >&2; exit 1")
    assert "bad input: x" in str(info.value)
    assert "exit code 1" in str(info.value)


def test_failure_in_a_flow_ends_the_task_failed() -> None:
    with Flow("shell-fails") as flow:
        failing = ShellTask(name="failing")(command="echo partial; exit 7")
    state = flow.run()
    assert state.is_failed()
    task_state = state.result[failing]
    assert isinstance(task_state, Failed)
    assert "exit code 7" in (task_state.message or "")
    assert "partial" in (task_state.message or "")


def test_env_is_merged_over_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HW_TEST_OUTER", "outer")
    shell = ShellTask(env={"HW_TEST_INIT": "init", "HW_TEST_NUMBER": 5})
    assert shell.run(command='echo "$HW_TEST_OUTER-$HW_TEST_INIT-$HW_TEST_NUMBER"') == "outer-init-5"
    # run(env=...) is merged over the init env, and wins on conflicts
    result = shell.run(command='echo "$HW_TEST_OUTER-$HW_TEST_INIT-$HW_TEST_CALL"',
                       env={"HW_TEST_CALL": "call", "HW_TEST_INIT": "override"})
    assert result == "outer-override-call"


def test_env_value_none_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="HW_X.*is None"):
        ShellTask(env={"HW_X": None}).run(command="true")


def test_helper_script_runs_first_in_the_same_shell(tmp_path: Path) -> None:
    helper = f"cd {tmp_path}\ngreet() {{ echo \"hello $1\"; }}"
    shell = ShellTask(helper_script=helper, return_all=True)
    assert shell.run(command="greet world; pwd") == ["hello world", str(tmp_path)]
    assert shell.run(command="greet x", helper_script="greet() { echo \"bye $1\"; }") == ["bye x"]


def test_other_shell_can_be_chosen() -> None:
    assert ShellTask(shell="sh").run(command="echo from-sh") == "from-sh"


def test_missing_command_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no command to run"):
        ShellTask().run()
    with pytest.raises(ValueError, match="no command to run"):
        ShellTask(command="   ").run()


def test_missing_command_in_a_flow_fails_the_task() -> None:
    with Flow("no-command") as flow:
        shell = ShellTask(name="empty")()
    state = flow.run()
    assert "no command to run" in (state.result[shell].message or "")


def test_missing_shell_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match="no-such-shell-xyz.*was not found"):
        ShellTask(shell="no-such-shell-xyz").run(command="echo hi")


def test_bad_stream_output_level_is_rejected() -> None:
    with pytest.raises(ValueError, match="stream_output"):
        ShellTask(stream_output="LOUD")


def test_streamed_lines_reach_the_logger_while_the_command_runs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The command waits until the logger has seen its first line: only true streaming lets it go on.

    If lines were logged only after the command exits, the flag file would never appear in
    time and the command would print ``flag-missing``.
    """
    flag = tmp_path / "seen-first"

    class TouchOnFirst(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage() == "first":
                flag.touch()

    command = (
        'echo first\n'
        'for i in $(seq 1 200); do [ -f "$FLAG" ] && break; sleep 0.05; done\n'
        'if [ -f "$FLAG" ]; then echo flag-seen; else echo flag-missing; fi'
    )
    handler = TouchOnFirst()
    logger = logging.getLogger("headwater")
    logger.addHandler(handler)
    try:
        with caplog.at_level(logging.INFO, logger="headwater"):
            result = ShellTask(stream_output=True).run(command=command, env={"FLAG": str(flag)})
    finally:
        logger.removeHandler(handler)
    assert result == "flag-seen"
    assert [r.getMessage() for r in caplog.records if r.name == "headwater"] == ["first", "flag-seen"]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "headwater")


def test_stream_output_level_name_and_stderr_lines(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="headwater"):
        ShellTask(stream_output="debug").run(command="echo to-out; echo to-err >&2")
    streamed = {r.getMessage(): r.levelno for r in caplog.records}
    assert streamed == {"to-out": logging.DEBUG, "to-err": logging.DEBUG}


def test_without_stream_output_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="headwater"):
        ShellTask().run(command="echo quiet; echo quiet-err >&2")
    assert caplog.records == []


def test_streaming_in_a_flow_uses_the_task_logger(caplog: pytest.LogCaptureFixture) -> None:
    with Flow("streaming") as flow:
        shell = ShellTask(name="lister", stream_output=logging.WARNING)(command="echo one; echo two")
    with caplog.at_level(logging.INFO, logger="headwater"):
        state = flow.run()
    assert state.result[shell].result == "two"
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records if r.name == "headwater.lister"]
    assert records == [("headwater.lister", logging.WARNING, "one"), ("headwater.lister", logging.WARNING, "two")]


def test_log_stderr_logs_the_stderr_of_a_failure(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="headwater"), pytest.raises(signals.FAIL):
        ShellTask(log_stderr=True).run(command="echo out-line; echo 'disk full' >&2; exit 2")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "disk full" in errors[0] and "out-line" not in errors[0]


def test_command_can_come_from_an_upstream_task() -> None:
    @task
    def build_command(word: str) -> str:
        return f"echo built-{word}"

    with Flow("upstream-command") as flow:
        word = Parameter("word")
        shell = ShellTask(return_all=True)(command=build_command(word), env={"HW_SUFFIX": "!"})
    state = flow.run(word="abc")
    assert state.result[shell].result == ["built-abc"]


def test_shell_task_in_a_thread_pool() -> None:
    with Flow("shell-threads", executor=ThreadExecutor(max_workers=2)) as flow:
        first = ShellTask()(command="echo one")
        second = ShellTask()(command="echo two")
    state = flow.run()
    assert (state.result[first].result, state.result[second].result) == ("one", "two")


# --- control flow ---------------------------------------------------------------------------


@task
def label(value: Any) -> Any:
    return value


@task
def shout(text: str) -> str:
    return f"{text}!"


@task
def is_positive(n: int) -> bool:
    return n > 0


def _case_flow() -> tuple[Flow, dict[str, Any]]:
    with Flow("branches") as flow:
        cond = Parameter("cond")
        with case(cond, True):
            yes = label("yes", task_args={"name": "yes"})
            yes_loud = shout(yes, task_args={"name": "yes_loud"})
        with case(cond, False):
            no = label("no", task_args={"name": "no"})
        result = merge(yes_loud, no)
        after = shout(result, task_args={"name": "after"})
    return flow, {"yes": yes, "yes_loud": yes_loud, "no": no, "merge": result, "after": after}


@pytest.mark.parametrize("executor", [None, ThreadExecutor(max_workers=2)], ids=["local", "threads"])
def test_case_and_merge_take_the_branch_the_parameter_picks(executor: Any) -> None:
    flow, t = _case_flow()

    state = flow.run(cond=True, executor=executor)
    assert state.is_successful()
    s = state.result
    assert isinstance(s[t["yes"]], Success) and not isinstance(s[t["yes"]], Skipped)
    assert s[t["yes_loud"]].result == "yes!"
    assert isinstance(s[t["no"]], Skipped)
    assert s[t["merge"]].result == "yes!"
    assert s[t["after"]].result == "yes!!"

    state = flow.run(cond=False, executor=executor)
    s = state.result
    assert isinstance(s[t["yes"]], Skipped)
    assert isinstance(s[t["yes_loud"]], Skipped)  # downstream of a skipped branch task
    assert s[t["no"]].result == "no" and not isinstance(s[t["no"]], Skipped)
    assert s[t["merge"]].result == "no"
    assert s[t["after"]].result == "no!"


def test_value_matching_no_case_skips_every_branch_and_the_merge() -> None:
    flow, t = _case_flow()
    state = flow.run(cond="neither")
    s = state.result
    for name in ("yes", "yes_loud", "no", "merge", "after"):
        assert isinstance(s[t[name]], Skipped), name
    assert s[t["merge"]].result is None
    assert state.is_successful()


def test_case_gates_only_the_roots_of_its_block() -> None:
    with Flow("structure") as flow:
        cond = Parameter("cond")
        outside = label("outside")
        with case(cond, 1) as one:
            first = label("first")
            second = shout(first)
            joined = merge(second, outside)
    compares = [t for t in flow.tasks if isinstance(t, CompareValue)]
    assert len(compares) == 1 and compares[0].value == 1
    compare = compares[0]
    assert flow.upstream_tasks(compare) == {cond}
    assert flow.upstream_tasks(first) == {compare}
    assert compare not in flow.upstream_tasks(second)
    assert compare not in flow.upstream_tasks(joined)
    assert compare not in flow.upstream_tasks(outside)
    assert flow._cases == [] and one._added == []


def test_empty_case_block_adds_no_comparison() -> None:
    with Flow("empty") as flow:
        cond = Parameter("cond")
        with case(cond, True):
            pass
    assert flow.tasks == {cond}


def test_condition_task_first_bound_inside_its_own_case_makes_no_cycle() -> None:
    @task
    def decide() -> str:
        return "go"

    with Flow("self-condition") as flow:
        with case(decide, "go"):
            echoed = label(decide)
    state = flow.run()
    assert state.result[echoed].result == "go"
    assert not isinstance(state.result[decide], Skipped)


def test_parameter_first_used_inside_a_case_is_not_gated() -> None:
    with Flow("param-in-case") as flow:
        cond = Parameter("cond")
        text = Parameter("text")
        with case(cond, True):
            loud = shout(text)
        with case(cond, False):
            plain = label(text)
        result = merge(loud, plain)
    state = flow.run(cond=False, text="hi")
    assert not isinstance(state.result[text], Skipped)
    assert isinstance(state.result[loud], Skipped)
    assert state.result[result].result == "hi"


def _nested_flow() -> tuple[Flow, dict[str, Any]]:
    with Flow("nested") as flow:
        outer_cond = Parameter("outer")
        inner_cond = Parameter("inner")
        with case(outer_cond, True):
            with case(inner_cond, "a"):
                a = label("A", task_args={"name": "a"})
            with case(inner_cond, "b"):
                b = label("B", task_args={"name": "b"})
            inner = merge(a, b)
        with case(outer_cond, False):
            z = label("Z", task_args={"name": "z"})
        outer = merge(inner, z)
    return flow, {"a": a, "b": b, "z": z, "inner": inner, "outer": outer}


@pytest.mark.parametrize(
    ("outer", "inner", "ran", "inner_result", "outer_result"),
    [
        (True, "a", {"a"}, "A", "A"),
        (True, "b", {"b"}, "B", "B"),
        (False, "a", {"z"}, None, "Z"),  # the inner merge is Skipped and hands None to the outer one
        (True, "c", set(), None, None),
    ],
)
def test_nested_cases(outer: bool, inner: str, ran: set[str], inner_result: Any, outer_result: Any) -> None:
    flow, t = _nested_flow()
    state = flow.run(outer=outer, inner=inner)
    s = state.result
    for name in ("a", "b", "z"):
        assert isinstance(s[t[name]], Skipped) == (name not in ran), name
    assert s[t["inner"]].result == inner_result
    assert s[t["outer"]].result == outer_result
    assert isinstance(s[t["outer"]], Skipped) == (outer_result is None)


def test_inner_comparison_belongs_to_the_outer_branch() -> None:
    flow, t = _nested_flow()
    inner_compares = {c for c in flow.upstream_tasks(t["a"]) | flow.upstream_tasks(t["b"])}
    assert all(isinstance(c, CompareValue) for c in inner_compares) and len(inner_compares) == 2
    for compare in inner_compares:
        outer_gate = [u for u in flow.upstream_tasks(compare) if isinstance(u, CompareValue)]
        assert [g.value for g in outer_gate] == [True]


def test_merge_returns_first_non_none_result_in_argument_order() -> None:
    with Flow("merge-order") as flow:
        results = [label(None)] + [label(f"r{i}") for i in range(1, 12)]
        # put a None first, then order the rest so that lexical key order (task10 < task2) would differ
        merged = merge(*results)
        merged_none_first = merge(label(None), label("x"), label("y"))
    state = flow.run()
    assert state.result[merged].result == "r1"
    assert state.result[merged_none_first].result == "x"


def test_merge_orders_keys_numerically() -> None:
    values = {f"task{i}": None for i in range(1, 13)}
    values["task2"] = "second"
    values["task10"] = "tenth"
    assert Merge().run(**values) == "second"


def test_merge_of_a_task_that_raised_skip_gets_none_from_it() -> None:
    @task
    def skipper() -> str:
        raise signals.SKIP("not today")

    with Flow("skip-signal") as flow:
        skipped = skipper()
        merged = merge(skipped, label("fallback"))
    state = flow.run()
    assert isinstance(state.result[skipped], Skipped)
    assert state.result[skipped].result is None
    assert state.result[merged].result == "fallback"


def test_merge_trigger_fails_when_a_branch_failed() -> None:
    @task
    def broken() -> None:
        raise RuntimeError("boom")

    with Flow("merge-fail") as flow:
        merged = merge(broken(), label("ok"))
    state = flow.run()
    assert isinstance(state.result[merged], TriggerFailed)


def test_merge_requires_skip_on_upstream_skip_false() -> None:
    with pytest.raises(ValueError, match="skip_on_upstream_skip=False"):
        Merge(skip_on_upstream_skip=True)
    merge_task = Merge()
    assert merge_task.skip_on_upstream_skip is False
    assert merge_task.trigger.__name__ == "not_all_skipped"


def test_merge_needs_tasks() -> None:
    with Flow("nothing"), pytest.raises(ValueError, match="at least one task"):
        merge()


@pytest.mark.parametrize(("n", "taken", "skipped"), [(5, "pos", "neg"), (-2, "neg", "pos"), (0, "neg", "pos")])
def test_ifelse(n: int, taken: str, skipped: str) -> None:
    with Flow("ifelse") as flow:
        number = Parameter("n")
        pos = label("positive", task_args={"name": "pos"})
        neg = label("not positive", task_args={"name": "neg"})
        ifelse(is_positive(number), pos, neg)
        loud_pos = shout(pos)
        result = merge(loud_pos, neg)
    branches = {"pos": pos, "neg": neg}
    state = flow.run(n=n)
    assert not isinstance(state.result[branches[taken]], Skipped)
    assert isinstance(state.result[branches[skipped]], Skipped)
    assert isinstance(state.result[loud_pos], Skipped) == (taken == "neg")
    assert state.result[result].result == ("positive!" if taken == "pos" else "not positive")


def test_ifelse_with_only_a_true_branch() -> None:
    with Flow("ifelse-one") as flow:
        flag = Parameter("flag")
        run_me = label("ran")
        ifelse(flag, run_me, None)
    assert isinstance(flow.run(flag="").result[run_me], Skipped)  # falsy
    assert flow.run(flag="yes").result[run_me].result == "ran"
    with Flow("ifelse-none"), pytest.raises(ValueError, match="true_task or a false_task"):
        ifelse(True, None, None)


@pytest.mark.parametrize("choice", ["red", "green", "blue", "other"])
def test_switch(choice: str) -> None:
    with Flow("switch") as flow:
        colour = Parameter("colour")
        branches = {name: label(name.upper(), task_args={"name": name}) for name in ("red", "green", "blue")}
        switch(colour, branches)
        result = merge(*branches.values())
    state = flow.run(colour=choice)
    for name, branch in branches.items():
        assert isinstance(state.result[branch], Skipped) == (name != choice), name
    assert state.result[result].result == (choice.upper() if choice != "other" else None)


def test_switch_needs_cases() -> None:
    with Flow("switch-empty"), pytest.raises(ValueError, match="non-empty dict"):
        switch(Parameter("x"), {})


def test_case_outside_a_flow_is_a_clear_error() -> None:
    cond = Parameter("cond")
    with pytest.raises(ValueError, match=r"case\(True\) needs a flow.*with Flow"):
        with case(cond, True):
            pass  # pragma: no cover - never reached


@pytest.mark.parametrize(
    "call",
    [lambda: merge(label), lambda: switch(label, {1: label}), lambda: ifelse(label, label, None)],
    ids=["merge", "switch", "ifelse"],
)
def test_helpers_outside_a_flow_are_a_clear_error(call: Any) -> None:
    with pytest.raises(ValueError, match="no flow is active"):
        call()


def test_error_inside_a_case_block_leaves_the_flow_clean() -> None:
    with Flow("raises") as flow:
        cond = Parameter("cond")
        with pytest.raises(KeyError):
            with case(cond, True):
                label("x")
                raise KeyError("oops")
        assert flow._cases == []
        after = label("after")
    assert not any(isinstance(t, CompareValue) for t in flow.tasks)
    assert flow.upstream_tasks(after) == set()


def test_compare_value_skips_on_mismatch() -> None:
    compare = CompareValue("a")
    assert compare.run("a") is None
    with pytest.raises(signals.SKIP, match="did not match"):
        compare.run("b")
