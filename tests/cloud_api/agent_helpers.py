"""Helpers for the agent tests: the server and agents as real OS processes on 127.0.0.1, flow files, waiting."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class ServerProcess:
    """``headwater server start`` in a child process (so it can be killed and restarted on the same port and database)."""

    def __init__(self, database_url: str, workdir: Path, lease: float = 3.0, max_resurrections: int = 1,
                 scheduler: bool = False, scheduler_interval: float = 0.5, port: int | None = None) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.lease = lease
        self.max_resurrections = max_resurrections
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"server-{self.port}.log"

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def start(self) -> ServerProcess:
        args = [PYTHON, "-m", "headwater.cli", "server", "start", "--port", str(self.port), "--database-url", self.database_url,
                "--heartbeat-lease", str(self.lease), "--max-resurrections", str(self.max_resurrections), "--log-level", "warning",
                "--scheduler-interval", str(self.scheduler_interval)]
        if not self.scheduler:
            args.append("--no-scheduler")
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        def ready() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(ready, 30, 0.05, "the server to answer /health")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


class AgentProcess:
    """``headwater agent start`` in a child process, output in ``log``."""

    def __init__(self, api: str, workdir: Path, labels: tuple[str, ...] = (), name: str = "agent", poll_interval: float = 0.1,
                 cancel_grace_period: float = 1.0, max_concurrent_runs: int = 10, extra: tuple[str, ...] = ()) -> None:
        self.name = name
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / f"{name}.log"
        args = [PYTHON, "-m", "headwater.cli", "agent", "start", "--name", name, "--poll-interval", str(poll_interval),
                "--cancel-grace-period", str(cancel_grace_period), "--max-concurrent-runs", str(max_concurrent_runs), *extra]
        for label in labels:
            args += ["--label", label]
        env = {**os.environ, "HEADWATER__CLOUD__API": api, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


FLOWS = '''
import time
from headwater import Flow, Parameter, task
from headwater.run_configs import LocalRun


@task
def add(x, y):
    return x + y


@task(log_stdout=True)
def shout(value):
    print(f"value is {value}")
    return value


@task
def nap(seconds):
    time.sleep(seconds)
    return seconds


@task
def step(previous, seconds):
    time.sleep(seconds)
    return (previous or 0) + 1


with Flow("quick", run_config=LocalRun(labels=[{labels}])) as quick:
    x = Parameter("x", default=1)
    shout(add(x, 2))

with Flow("sleepy", run_config=LocalRun(labels=[{labels}])) as sleepy:
    nap(Parameter("seconds", default=60))

with Flow("steps", run_config=LocalRun(labels=[{labels}])) as steps:
    seconds = Parameter("seconds", default=0.3)
    value = None
    for i in range(30):
        value = step(value, seconds)
'''


def write_flows(path: Path, labels: tuple[str, ...] = ()) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(FLOWS.replace("{labels}", ", ".join(repr(label) for label in labels)))
    return path


def register_flows(client: Any, path: Path, project: str = "test") -> dict[str, str]:
    """Register every flow in ``path``; returns ``{name: flow id}``."""
    from headwater_cloud_api.registration import Registration, load_flows

    try:
        client.project(name=project).create()
    except Exception:
        pass
    flows, errors = load_flows([path])
    assert not errors, errors
    results = Registration(client).register_many(flows, project)
    assert all(r.status in ("registered", "skipped") for r in results), results
    return {r.name: r.id for r in results}


def run_state(client: Any, run_id: str) -> str:
    return client.flow_run(id=run_id).query("state { type }")["state"]["type"]
