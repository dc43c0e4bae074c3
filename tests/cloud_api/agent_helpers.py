"""Helpers for the agent tests: the server and agents as real OS processes on 127.0.0.1, flow files, waiting."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from headwater.testing import processes
from headwater.testing.processes import PYTHON, free_port, wait_for
from headwater_cloud_api.testing import register_flows, run_state

__all__ = ["PYTHON", "free_port", "wait_for", "ServerProcess", "AgentProcess", "write_flows", "register_flows", "run_state",
           "agent_stack"]


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


@contextmanager
def agent_stack(root: Path, flows: str, project: str, unset: tuple[str, ...] = (),
                **server_options: Any) -> Iterator[dict[str, Any]]:
    """A server in this process (SQLite under ``root``) with the flow file ``flows`` registered to ``project``, and one agent.

    Yields ``{"client", "server", "flows", "agent", "home"}``. ``HEADWATER_HOME`` (``root/home``) and
    ``HEADWATER__CLOUD__API`` are set while it runs, the ``unset`` variables removed, and all of
    them put back after.
    """
    from headwater.client import Client
    from headwater_cloud_api.server.run import ServerThread

    home = root / "home"
    home.mkdir()
    names = ("HEADWATER_HOME", "HEADWATER__CLOUD__API", *unset)
    saved = {k: os.environ.get(k) for k in names}
    os.environ["HEADWATER_HOME"] = str(home)
    for key in unset:
        os.environ.pop(key, None)
    try:
        with ServerThread(database_url=f"sqlite:///{root / 'api.db'}", **server_options) as server:
            os.environ["HEADWATER__CLOUD__API"] = server.api
            client = Client(api=server.api, api_key="")
            flows_file = root / "flows" / f"{project}.py"
            flows_file.parent.mkdir()
            flows_file.write_text(flows)
            registered = register_flows(client, flows_file, project=project)
            agent = AgentProcess(server.api, root / "agent", (project,), f"{project}-agent", poll_interval=0.1)
            try:
                yield {"client": client, "server": server, "flows": registered, "agent": agent, "home": home}
            finally:
                agent.stop()
                client.close()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
