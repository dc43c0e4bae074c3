"""Helpers for the agent tests: the server and agents as real OS processes on 127.0.0.1, flow files, waiting."""

from __future__ import annotations

import signal
from pathlib import Path

from headwater.testing import processes
from headwater.testing.processes import PYTHON, free_port, wait_for
from headwater_cloud_api.testing import register_flows, run_state

__all__ = ["PYTHON", "free_port", "wait_for", "ServerProcess", "AgentProcess", "write_flows", "register_flows", "run_state"]


class ServerProcess(processes.ServerProcess):
    """The server with the agent tests' defaults: a 3 s heartbeat lease, one resurrection."""

    def __init__(self, database_url: str, workdir: Path, lease: float = 3.0, max_resurrections: int = 1,
                 scheduler: bool = False, scheduler_interval: float = 0.5, port: int | None = None) -> None:
        super().__init__(database_url, workdir, port=port, lease=lease, max_resurrections=max_resurrections,
                         scheduler=scheduler, scheduler_interval=scheduler_interval, ready_timeout=30)


class AgentProcess(processes.AgentProcess):
    """An agent with the agent tests' defaults: fast polling, a 1 s cancel grace period."""

    def __init__(self, api: str, workdir: Path, labels: tuple[str, ...] = (), name: str = "agent", poll_interval: float = 0.1,
                 cancel_grace_period: float = 1.0, max_concurrent_runs: int = 10, extra: tuple[str, ...] = ()) -> None:
        super().__init__(api, workdir, labels, name, poll_interval=poll_interval, cancel_grace_period=cancel_grace_period,
                         max_concurrent_runs=max_concurrent_runs, extra=extra)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        return super().stop(sig, timeout)


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
