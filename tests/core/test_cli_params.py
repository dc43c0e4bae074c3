"""``--param``: values parse as JSON, and numbers JSON cannot carry are refused with a clear error."""

from __future__ import annotations

import click
import pytest

from headwater.cli.run import parse_params


def test_values_parse_as_json_or_stay_text() -> None:
    assert parse_params(("n=3", "x=1.5", "ok=true", "xs=[1,2]", "name=etl")) == {
        "n": 3, "x": 1.5, "ok": True, "xs": [1, 2], "name": "etl",
    }


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_naming_the_parameter(raw: str) -> None:
    with pytest.raises(click.BadParameter, match=rf"n={raw}: .* is not a number a flow run can take"):
        parse_params((f"n={raw}",))
    assert parse_params((f'n="{raw}"',)) == {"n": raw}  # quoted, it is text


def test_executor_option_builds_registered_executors(headwater_plugin_manager: object) -> None:
    from headwater.cli.run import parse_executor
    from headwater.executors import ProcessExecutor, ThreadExecutor

    threads = parse_executor('threads:{"max_workers": 3}')
    assert isinstance(threads, ThreadExecutor) and threads.max_workers == 3
    assert isinstance(parse_executor("ProcessExecutor"), ProcessExecutor)
    with pytest.raises(click.BadParameter, match="pip install headwater-dask"):
        parse_executor("dask")  # built-ins only here
    with pytest.raises(click.BadParameter, match="must be a JSON object"):
        parse_executor("threads:[1]")
    with pytest.raises(click.BadParameter, match="unexpected keyword argument 'bogus'"):
        parse_executor('threads:{"bogus": 1}')


def test_headwater_run_takes_the_executor(tmp_path: object) -> None:
    import subprocess
    import sys
    from pathlib import Path

    flow_file = Path(str(tmp_path)) / "flow.py"
    flow_file.write_text(
        "from headwater import Flow, task\n\n@task\ndef double(x):\n    return 2 * x\n\n"
        "with Flow('exec') as flow:\n    double.map([1, 2, 3])\n"
    )
    done = subprocess.run([sys.executable, "-m", "headwater", "run", str(flow_file), "--executor", "threads", "-q"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Flow run Success" in done.stdout
