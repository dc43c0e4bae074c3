"""The session-end orphan check of ``tests/conftest.py``, run in an inner pytest session (a subprocess).

The inner session loads the real hooks, so a deliberately leaked process fails it without
failing this (outer) session; the check kills what it reports, so nothing is left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

INNER_CONFTEST = f'''
import importlib.util
import sys

sys.path.insert(0, {str(TESTS)!r})
_spec = importlib.util.spec_from_file_location("headwater_real_conftest", {str(TESTS / "conftest.py")!r})
_real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_real)
pytest_configure = _real.pytest_configure
pytest_sessionfinish = _real.pytest_sessionfinish
'''

LEAKY = '''
import subprocess
import sys


def test_leaks_a_headwater_process(tmp_path_factory):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "headwater-leak"])
    (tmp_path_factory.getbasetemp().parent / "leaked.pid").write_text(str(proc.pid))
'''

TIDY = '''
import subprocess
import sys


def test_stops_what_it_starts():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "headwater-tidy"])
    proc.terminate()
    proc.wait(10)
'''


def _inner_session(tmp_path: Path, test_source: str) -> subprocess.CompletedProcess[str]:
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / "conftest.py").write_text(INNER_CONFTEST)
    (inner / "test_inner.py").write_text(textwrap.dedent(test_source))
    env = {**os.environ, "HEADWATER_ORPHAN_GRACE": "0.5"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "base"), str(inner)],
        capture_output=True, text=True, timeout=120, cwd=inner, env=env,
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_leaked_headwater_process_fails_the_session_and_is_killed(tmp_path: Path) -> None:
    result = _inner_session(tmp_path, LEAKY)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "1 passed" in output  # the test itself passed: the session fails because of the orphan
    assert "orphan processes" in output
    assert "1 headwater process(es) started by this test session outlived it (now killed)" in output
    assert "headwater-leak" in output
    pid = int((tmp_path / "leaked.pid").read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), f"the leaked process {pid} is still running"


def test_a_session_that_stops_its_processes_passes(tmp_path: Path) -> None:
    result = _inner_session(tmp_path, TIDY)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "orphan processes" not in output
