"""Fixtures shared by every test folder, and the session-end check that no headwater process outlives the tests.

PostgreSQL: ``postgres_server``, ``postgres_url`` and ``postgres_db_url`` start one real
PostgreSQL 15 server per session on 127.0.0.1 (see ``tests/pg.py``).
"""

import os as _os
import signal as _signal
import time as _time
import uuid as _uuid
from pathlib import Path as _Path

import pytest as _pytest

from pg import postgres_db_url, postgres_server, postgres_url  # noqa: F401  (fixtures)

# --- no orphans: a headwater process a test started must not outlive the session ---------------------
#
# The session marks its environment with HEADWATER_TEST_SESSION=<uuid>; every process a test starts
# inherits it (also once re-parented to init, so the check does not depend on the process tree). At
# the end, a live process carrying the marker whose command line names headwater fails the session;
# it is listed, then killed so it does not keep running (e.g. retrying a server that is gone).


_SESSION_VAR = "HEADWATER_TEST_SESSION"
_ORPHAN_GRACE = float(_os.environ.get("HEADWATER_ORPHAN_GRACE", "5"))


def _is_worker(config: _pytest.Config) -> bool:
    return hasattr(config, "workerinput")  # an xdist worker: the controller checks once for all


def pytest_configure(config: _pytest.Config) -> None:
    if not _is_worker(config):
        _os.environ[_SESSION_VAR] = _uuid.uuid4().hex


def _ancestors() -> set[int]:
    pids, pid = set(), _os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            stat = _Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return pids


def marked_headwater_processes(marker: str) -> list[tuple[int, str]]:
    """``(pid, command line)`` of live processes (not zombies, not this one or its parents) started under ``marker``."""
    found = []
    needle = f"{_SESSION_VAR}={marker}".encode()
    skip = _ancestors()
    for entry in _Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state != "Z" and "headwater" in cmdline:
            found.append((int(entry.name), cmdline))
    return found


def pytest_sessionfinish(session: _pytest.Session, exitstatus: int) -> None:
    if _is_worker(session.config) or not _os.environ.get(_SESSION_VAR):
        return
    marker = _os.environ[_SESSION_VAR]
    deadline = _time.monotonic() + _ORPHAN_GRACE  # processes just told to stop get a moment to exit
    orphans = marked_headwater_processes(marker)
    while orphans and _time.monotonic() < deadline:
        _time.sleep(0.2)
        orphans = marked_headwater_processes(marker)
    if not orphans:
        return
    lines = "\n".join(f"  pid {pid}: {cmd[:300]}" for pid, cmd in orphans)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = (f"{len(orphans)} headwater process(es) started by this test session outlived it (now killed):\n{lines}\n"
               "Every test must stop what it starts, also when it fails (a fixture with a finalizer, or try/finally).")
    if reporter is not None:
        reporter.write_sep("=", "orphan processes", red=True)
        reporter.write_line(message)
    else:  # pragma: no cover
        print(message)
    for pid, _ in orphans:
        try:
            _os.kill(pid, _signal.SIGKILL)
        except OSError:
            pass
    session.exitstatus = _pytest.ExitCode.TESTS_FAILED
