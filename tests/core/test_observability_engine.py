"""When things go wrong the user sees why: tracebacks, retries, timeouts, the root cause, one log format.

In-process tests use ``caplog``; what a user sees on a terminal or in a pipe is checked with
real ``headwater``/``python`` subprocesses.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

import headwater
from headwater import Flow, task
from headwater.states import Failed, Mapped, Retrying, TimedOut, TriggerFailed
from headwater.utilities.logging import FORMAT, HeadwaterFormatter, mask_secrets, remember_secret

ISO_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR|DEBUG)\s+headwater\.[\w.]+ \| ")


def _python(code: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def _headwater(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "headwater", *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


FAILING_FLOW = '''
from datetime import timedelta

import headwater
from headwater import Flow, task


@task
def boom(x):
    raise ValueError("x is " + str(x) + " and the message is deliberately long enough to pass eighty columns")


@task(max_retries=1, retry_delay=timedelta(seconds=0.05))
def flaky():
    if headwater.context.get("task_run_count") == 1:
        raise ConnectionError("not yet")
    return "ok"


@task
def after(y):
    return y


with Flow("failing") as flow:
    after(after(boom(1)))
    flaky()
'''


# --- logging is configured by the CLI and flow.run(), never by `import headwater` ------------------

def test_import_headwater_installs_no_log_handler(headwater_home: Path) -> None:
    result = _python("""
        import logging
        import headwater
        print(len(logging.getLogger("headwater").handlers), len(logging.getLogger().handlers))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0"]


def test_flow_run_configures_one_iso_format_and_logs_the_traceback(headwater_home: Path, tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FAILING_FLOW)
    result = _python("""
        import runpy
        state = runpy.run_path("failing.py")["flow"].run()
        print(state.message)
    """, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    header = [line for line in lines if ISO_LINE.match(line)]
    assert header, result.stderr
    error = [line for line in header if "ERROR" in line and "headwater.boom" in line]
    assert error and error[0].endswith("Task 'boom': exception encountered during task execution"), result.stderr
    at = lines.index(error[0])
    assert lines[at + 1] == "Traceback (most recent call last):"
    assert 'failing.py", line 10, in boom' in lines[at + 2]  # starts in the user's code, not the engine's
    assert "engine/task_runner.py" not in result.stderr
    assert "ValueError: x is 1" in result.stderr
    assert "\x1b[" not in result.stderr  # no colour when stderr is not a terminal
    assert result.stdout.strip() == (
        "boom-1 raised ValueError('x is 1 and the message is deliberately long enough to pass eighty columns'); "
        "2 downstream tasks did not run"
    )


def test_flow_run_leaves_an_application_logging_setup_alone(headwater_home: Path, tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FAILING_FLOW)
    result = _python("""
        import logging, runpy, sys
        logging.basicConfig(stream=sys.stderr, format="APP %(levelname)s %(name)s %(message)s")
        runpy.run_path("failing.py")["flow"].run()
        print(len(logging.getLogger("headwater").handlers))
    """, cwd=tmp_path)
    assert result.stdout.strip() == "0"
    assert "APP ERROR headwater.boom Task 'boom': exception encountered during task execution" in result.stderr
    assert not any(ISO_LINE.match(line) for line in result.stderr.splitlines())


def test_logging_level_and_format_come_from_the_config(headwater_home: Path, tmp_path: Path) -> None:
    (headwater_home / "config.toml").write_text('[logging]\nlevel = "WARNING"\nformat = "CUSTOM %(levelname)s %(message)s"\n')
    (tmp_path / "failing.py").write_text(FAILING_FLOW)
    result = _python("import runpy; runpy.run_path('failing.py')['flow'].run()", cwd=tmp_path)
    assert "CUSTOM ERROR Task 'boom': exception encountered during task execution" in result.stderr
    assert "CUSTOM WARNING Task 'flaky': attempt 1 of 2 failed" in result.stderr
    assert "Beginning flow run" not in result.stderr  # INFO is below the configured level


def test_formatter_iso_timestamp_and_colour_only_when_asked() -> None:
    record = logging.LogRecord("headwater.engine", logging.WARNING, __file__, 1, "careful %s", ("now",), None)
    record.created = 0.5
    plain = HeadwaterFormatter(FORMAT).format(record)
    assert plain == "1970-01-01T00:00:00.500Z WARNING headwater.engine | careful now"
    coloured = HeadwaterFormatter(FORMAT, colour=True).format(record)
    assert "\x1b[33m" in coloured and coloured.endswith("headwater.engine | careful now")


# --- the failed state keeps the exception and its traceback ---------------------------------------

@task
def explode(x: int) -> int:
    raise KeyError(f"no row {x}")


@task
def passthrough(x: object) -> object:
    return x


def test_failed_state_keeps_exception_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with Flow("f") as flow:
        e = explode(3)
    state = flow.run()
    failed = state.result[e]
    assert isinstance(failed, Failed)
    assert isinstance(failed.exception, KeyError) and failed.exception is failed.result
    assert failed.message == "Error during execution of task: KeyError('no row 3')"
    assert failed.traceback is not None
    assert failed.traceback.startswith("Traceback (most recent call last):")
    assert "in explode" in failed.traceback and failed.traceback.rstrip().endswith("KeyError: 'no row 3'")
    records = [r for r in caplog.records if r.name == "headwater.explode" and r.levelno == logging.ERROR]
    assert len(records) == 1
    assert records[0].getMessage().startswith("Task 'explode': exception encountered during task execution\nTraceback")
    assert "KeyError: 'no row 3'" in records[0].getMessage()


def test_secrets_are_masked_in_traceback_message_and_logs(monkeypatch: pytest.MonkeyPatch, headwater_home: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__DB_PASSWORD", "hunter2-very-secret")
    from headwater.secrets import Secret

    @task
    def connect() -> None:
        password = Secret("DB_PASSWORD").get()
        raise ConnectionError(f"login failed for password {password}")

    with Flow("secret") as flow:
        c = connect()
    state = flow.run()
    failed = state.result[c]
    assert "hunter2-very-secret" not in failed.message and "********" in failed.message
    assert "hunter2-very-secret" not in (failed.traceback or "") and "********" in (failed.traceback or "")
    assert "hunter2-very-secret" not in caplog.text
    assert "login failed for password ********" in caplog.text


def test_remembered_secret_values_are_masked() -> None:
    remember_secret({"token": "tok-1234-abcd", "short": "x"})
    assert mask_secrets("Authorization: Bearer tok-1234-abcd") == "Authorization: Bearer ********"
    assert mask_secrets("x marks the spot") == "x marks the spot"  # too short to mask safely


# --- retries and timeouts are logged ---------------------------------------------------------------

def test_retries_are_logged_with_attempts_and_next_start(caplog: pytest.LogCaptureFixture) -> None:
    @task(max_retries=2, retry_delay=timedelta(seconds=0.01))
    def flaky() -> str:
        if headwater.context.get("task_run_count") < 3:
            raise OSError("reset")
        return "ok"

    seen = []
    with Flow("retry") as flow:
        f = flaky()
    state = flow.run(on_task_state=lambda t, s, i: seen.append(s))
    assert state.is_successful() and state.result[f].result == "ok"
    assert [type(s) for s in seen] == [Retrying, Retrying, type(state.result[f])]
    retries = [r.getMessage() for r in caplog.records if r.name == "headwater.flaky" and r.levelno == logging.WARNING]
    assert len(retries) == 2
    assert re.fullmatch(r"Task 'flaky': attempt 1 of 3 failed \(OSError\('reset'\)\); retrying at "
                        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \(in \d+\.\d s\)\.", retries[0]), retries[0]
    assert retries[1].startswith("Task 'flaky': attempt 2 of 3 failed")


def test_timeouts_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    import time

    @task(timeout=0.1)
    def slow() -> None:
        time.sleep(1)

    with Flow("timeout") as flow:
        s = slow()
    state = flow.run()
    assert isinstance(state.result[s], TimedOut)
    assert "Task 'slow': Task 'slow' timed out after 0.1 seconds." in caplog.text
    assert state.message == "slow-1 timed out (Task 'slow' timed out after 0.1 seconds.)"


# --- the root cause comes first --------------------------------------------------------------------

def test_final_message_names_the_raising_task_then_counts_downstream() -> None:
    with Flow("root-cause") as flow:
        e = explode(1)
        p1 = passthrough(e)
        passthrough(p1)
    state = flow.run()
    assert isinstance(state.result[p1], TriggerFailed)
    assert state.message == "explode-1 raised KeyError('no row 1'); 2 downstream tasks did not run"


def test_final_message_for_a_mapped_failure() -> None:
    @task
    def pick(x: int) -> int:
        if x % 2:
            raise ValueError(f"odd {x}")
        return x

    with Flow("mapped") as flow:
        m = pick.map([0, 1, 2, 3])
    state = flow.run()
    assert isinstance(state.result[m], Mapped)
    assert state.message == "pick-1[1] raised ValueError('odd 1') (and 1 more of 4 mapped runs)"


# --- the CLI --------------------------------------------------------------------------------------

def test_cli_run_shows_traceback_retry_root_cause_and_full_width_tables(headwater_home: Path, tmp_path: Path) -> None:
    path = tmp_path / "failing.py"
    path.write_text(FAILING_FLOW)
    result = _headwater("run", str(path), env={"COLUMNS": "80"})
    assert result.returncode == 1
    assert "Task 'boom': exception encountered during task execution\nTraceback (most recent call last):" in result.stderr
    assert "ValueError: x is 1" in result.stderr
    assert "Task 'flaky': attempt 1 of 2 failed (ConnectionError('not yet')); retrying at" in result.stderr
    assert all(ISO_LINE.match(line) for line in result.stderr.splitlines() if " headwater." in line and " | " in line)
    assert "\x1b[" not in result.stderr + result.stdout
    # piped: the table is not cut at 80 columns, and names are shown as written (no Constant-1)
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("│")}
    assert {"boom", "flaky", "after-1", "after-2"} == set(rows)
    assert "deliberately long enough to pass eighty columns')" in rows["boom"]
    assert result.stdout.rstrip().splitlines()[-1] == (
        "Flow run Failed: boom-1 raised ValueError('x is 1 and the message is deliberately long enough to pass "
        "eighty columns'); 2 downstream tasks did not run"
    )


def test_version_flag_and_python_dash_m_headwater() -> None:
    result = _headwater("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"headwater {headwater.__version__}"
    short = _headwater("-V")
    assert short.stdout == result.stdout
    help_text = _headwater("--help")
    assert help_text.returncode == 0 and "Usage: headwater" in help_text.stdout


def test_a_command_from_an_uninstalled_plugin_names_the_distribution(headwater_home: Path) -> None:
    result = _headwater("server", "start", env={"HEADWATER_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert result.returncode == 2
    assert "`headwater server` comes from the plugin headwater-cloud-api" in result.stderr
    assert "pip install headwater-cloud-api" in result.stderr
    unknown = _headwater("no-such-command", env={"HEADWATER_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert unknown.returncode == 2 and "No such command 'no-such-command'" in unknown.stderr
    assert "pip install" not in unknown.stderr


def test_the_demo_shows_its_retry(headwater_home: Path) -> None:
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo.py"
    result = _headwater("run", str(demo), "--param", "n=4")
    assert result.returncode == 0, result.stderr
    assert ("WARNING headwater.check_source | Task 'check_source': attempt 1 of 3 failed "
            "(ConnectionError('source not ready yet')); retrying at") in result.stderr
    assert "Flow run Success: All reference tasks succeeded." in result.stdout


def test_secrets_a_task_logs_are_masked_before_any_handler(monkeypatch: pytest.MonkeyPatch, headwater_home: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("HEADWATER__CONTEXT__SECRETS__API_TOKEN", "tok-abcdef-123456")
    from headwater.secrets import Secret

    @task(log_stdout=True)
    def chatty() -> None:
        token = Secret("API_TOKEN").get()
        headwater.context.get("logger").info("calling with %s", token)
        print(f"printed {token}")

    with Flow("chatty") as flow:
        chatty()
    assert flow.run().is_successful()
    messages = [r.getMessage() for r in caplog.records if r.name == "headwater.chatty"]
    assert messages == ["calling with ********", "printed ********"]
