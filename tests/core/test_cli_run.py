"""``headwater run``, ``headwater version`` and ``headwater --help`` as a user runs them (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HEADWATER = [sys.executable, "-m", "headwater.cli"]
ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [*HEADWATER, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120
    )


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def test_demo_runs_and_succeeds() -> None:
    result = run_cli("run", str(ROOT / "examples" / "demo.py"), "--param", "n=6")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "loaded 6 values (source ok), total 91" in result.stderr  # logs go to stderr
    assert "Mapped (6 items)" in result.stdout
    assert "Flow run Success" in result.stdout


def test_failed_flow_exits_non_zero_and_shows_the_failed_task(tmp_path: Path) -> None:
    flow_file = write(tmp_path / "bad.py", """
        from headwater import Flow, task

        @task
        def boom():
            raise RuntimeError("kaput")

        with Flow("bad") as flow:
            boom()
    """)
    result = run_cli("run", str(flow_file))
    assert result.returncode == 1
    assert "boom-1" in result.stdout and "Failed" in result.stdout
    assert "kaput" in result.stdout


def test_params_are_parsed_as_json_when_they_parse(tmp_path: Path) -> None:
    flow_file = write(tmp_path / "p.py", """
        from headwater import Flow, Parameter, task

        @task
        def show(n, name, items):
            print(f"n={n!r} name={name!r} items={items!r}")

        with Flow("p") as flow:
            show(Parameter("n"), Parameter("name"), Parameter("items"))
    """)
    result = run_cli("run", str(flow_file), "--param", "n=3", "--param", "name=ada", "-p", "items=[1, 2]", "-q")
    assert result.returncode == 0, result.stderr
    # stdout of tasks goes to the terminal as printed
    assert "n=3 name='ada' items=[1, 2]" in result.stdout


def test_missing_required_parameter_is_an_error_before_running(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    flow_file = write(tmp_path / "p.py", f"""
        from pathlib import Path
        from headwater import Flow, Parameter, task

        @task
        def touch(x):
            Path({str(marker)!r}).write_text("ran")

        with Flow("p") as flow:
            touch(Parameter("x"))
    """)
    result = run_cli("run", str(flow_file))
    assert result.returncode == 2
    assert "missing required parameter(s) 'x'" in result.stderr
    assert not marker.exists()


def test_file_with_several_flows_needs_a_name(tmp_path: Path) -> None:
    flow_file = write(tmp_path / "two.py", """
        from headwater import Flow, task

        @task
        def hello(who):
            print("hello", who)

        with Flow("first") as first:
            hello("first")
        with Flow("second") as second:
            hello("second")
    """)
    result = run_cli("run", str(flow_file))
    assert result.returncode == 2
    assert "several flows ('first', 'second')" in result.stderr
    chosen = run_cli("run", f"{flow_file}:second", "-q")
    assert chosen.returncode == 0
    assert "hello second" in chosen.stdout and "hello first" not in chosen.stdout
    unknown = run_cli("run", f"{flow_file}:third")
    assert unknown.returncode == 2 and "no flow named 'third'; flows found: 'first', 'second'" in unknown.stderr


def test_file_without_flow_and_broken_file(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.py", "x = 1\n")
    result = run_cli("run", str(empty))
    assert result.returncode == 2 and "defines no flow" in result.stderr
    broken = write(tmp_path / "broken.py", "import headwater\n\ndef f(:\n")
    result = run_cli("run", str(broken))
    assert result.returncode == 2
    assert "broken.py" in result.stderr and "failed to import" in result.stderr and "SyntaxError" in result.stderr
    raising = write(tmp_path / "raising.py", "raise ImportError('no module named pandas_for_tests')\n")
    result = run_cli("run", str(raising))
    assert result.returncode == 2
    assert "Traceback" in result.stderr and "pandas_for_tests" in result.stderr
    missing = run_cli("run", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_flow_file_is_not_run_as_main(tmp_path: Path) -> None:
    flow_file = write(tmp_path / "guarded.py", """
        from headwater import Flow, task

        @task
        def hi():
            print("task ran")

        with Flow("guarded") as flow:
            hi()

        if __name__ == "__main__":
            print("MAIN BLOCK RAN")
    """)
    result = run_cli("run", str(flow_file), "-q")
    assert result.returncode == 0
    assert "task ran" in result.stdout and "MAIN BLOCK RAN" not in result.stdout


def test_version_and_help() -> None:
    from headwater import __version__

    result = run_cli("version")
    assert result.returncode == 0 and f"headwater {__version__}" in result.stdout
    helped = run_cli("--help")
    assert helped.returncode == 0
    for command in ("run", "version", "plugins"):
        assert command in helped.stdout


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys\n"
        "from headwater.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('boto3', 'kubernetes', 'sqlalchemy', 'headwater.storage', 'headwater.spec.store') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize("bad", ["novalue", "=3"])
def test_bad_param_syntax(tmp_path: Path, bad: str) -> None:
    flow_file = write(tmp_path / "ok.py", """
        from headwater import Flow, task

        @task
        def hi():
            pass

        with Flow("ok") as flow:
            hi()
    """)
    result = run_cli("run", str(flow_file), "--param", bad)
    assert result.returncode == 2 and "KEY=VALUE" in result.stderr
