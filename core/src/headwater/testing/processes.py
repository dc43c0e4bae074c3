"""The API server and agents as real OS processes on 127.0.0.1, for end-to-end tests and benchmarks.

``ServerProcess`` runs ``headwater server start`` and ``AgentProcess`` runs ``headwater agent
start`` (both need ``headwater-cloud-api`` installed). Each writes its output to a log file
in ``workdir`` and can be stopped, killed and started again on the same port and database,
so tests can inject faults. ``stop()`` never leaves a process behind: SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ServerProcess", "AgentProcess", "free_port", "wait_for", "stop_process", "PYTHON"]

PYTHON = sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60.0,
    interval: float = 0.1,
    what: str = "condition",
    *,
    error: type[Exception] = AssertionError,
) -> Any:
    """Poll ``predicate`` until it returns something truthy, and return that; after ``timeout`` s raise ``error``.

    ``error`` is ``AssertionError`` for tests (a failed expectation); benchmarks and scripts
    pass ``TimeoutError``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def stop_process(process: subprocess.Popen[Any] | None, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
    """Send ``sig`` and wait; SIGKILL after ``timeout`` s. The exit code (None: there was no process)."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ServerProcess:
    """``headwater server start`` in a child process, on ``port`` (a free one by default).

    ``lease``, ``max_resurrections`` and ``scheduler_interval`` map to the command's options
    (None: the server's default); ``scheduler=False`` passes ``--no-scheduler``. ``env`` is
    added to this process's environment, or is the whole environment with ``inherit_env=False``.
    """

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        port: int | None = None,
        lease: float | None = None,
        max_resurrections: int | None = None,
        scheduler: bool = False,
        scheduler_interval: float | None = None,
        auth: bool = False,
        env: Mapping[str, str] | None = None,
        log_level: str = "warning",
        extra: Sequence[str] = (),
        log_name: str | None = None,
        ready_timeout: float = 60.0,
        inherit_env: bool = True,
    ) -> None:
        self.database_url = database_url
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.lease = lease
        self.max_resurrections = max_resurrections
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.auth = auth
        self.env = {**(os.environ if inherit_env else {}), **(env or {})}
        self.log_level = log_level
        self.extra = tuple(extra)
        self.ready_timeout = ready_timeout
        self.log = self.workdir / (log_name or f"server-{self.port}.log")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return f"{self.url}/graphql"

    def args(self) -> list[str]:
        """The command line this process runs."""
        args = [PYTHON, "-m", "headwater.cli", "server", "start", "--port", str(self.port),
                "--database-url", self.database_url, "--log-level", self.log_level]
        if self.lease is not None:
            args += ["--heartbeat-lease", str(self.lease)]
        if self.max_resurrections is not None:
            args += ["--max-resurrections", str(self.max_resurrections)]
        if self.scheduler_interval is not None:
            args += ["--scheduler-interval", str(self.scheduler_interval)]
        if not self.scheduler:
            args.append("--no-scheduler")
        if self.auth:
            args.append("--auth")
        return [*args, *self.extra]

    def start(self) -> ServerProcess:
        """Start the server and wait until ``/health`` answers (the log is shown if it exits)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.args(), stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir,
                                            env=self.env)

        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.output()
            return _healthy(self.url)

        wait_for(ready, self.ready_timeout, 0.05, "the server to answer /health")
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the server (SIGKILL to simulate a crash); ``start()`` brings it back on the same port."""
        stop_process(self.process, sig, timeout=15)
        self.process = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AgentProcess:
    """``headwater agent start`` in a child process against ``api``, output in ``log``; starts at once.

    ``env`` is added to this process's environment, or is the whole environment with
    ``inherit_env=False``; ``HEADWATER__CLOUD__API`` is always ``api``.
    """

    def __init__(
        self,
        api: str,
        workdir: Path,
        labels: Sequence[str] = (),
        name: str = "agent",
        *,
        poll_interval: float = 0.2,
        cancel_grace_period: float | None = 1.0,
        max_concurrent_runs: int | None = None,
        env: Mapping[str, str] | None = None,
        extra: Sequence[str] = (),
        command: Sequence[str] = ("agent", "start"),
        log_name: str | None = None,
        inherit_env: bool = True,
    ) -> None:
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log = self.workdir / (log_name or f"{name}.log")
        args = [PYTHON, "-m", "headwater.cli", *command, "--name", name, "--poll-interval", str(poll_interval)]
        if cancel_grace_period is not None:
            args += ["--cancel-grace-period", str(cancel_grace_period)]
        if max_concurrent_runs is not None:
            args += ["--max-concurrent-runs", str(max_concurrent_runs)]
        args += list(extra)
        for label in labels:
            args += ["--label", label]
        full_env = {**(os.environ if inherit_env else {}), **(env or {}), "HEADWATER__CLOUD__API": api,
                    "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as out:
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir, env=full_env
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        """Stop the agent; its exit code."""
        code = stop_process(self.process, sig, timeout)
        return -1 if code is None else code

    def __enter__(self) -> AgentProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
