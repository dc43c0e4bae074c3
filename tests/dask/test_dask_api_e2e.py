"""A flow with a DaskExecutor run through the API: server, a real agent process, its flow-run process, the cluster.

Every task run's states (Running, Retrying, Success, per mapped item) and the logs its body
emitted on a Dask worker reach the API.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FLOW_FILE = '''
from pathlib import Path

from headwater import Flow, task
from headwater.run_configs import LocalRun
from headwater_dask import DaskExecutor

COUNTER = Path({counter!r})


@task(log_stdout=True)
def shout(x):
    import os
    print(f"dask says {{x}} from pid {{os.getpid()}}")
    return x * 10


@task(max_retries=1, retry_delay=0)
def flaky(values):
    with COUNTER.open("a") as fh:
        fh.write("x")
    if len(COUNTER.read_text()) == 1:
        raise RuntimeError("first attempt fails on purpose")
    return sum(values)


with Flow("dask-e2e", executor=DaskExecutor(address={address!r}), run_config=LocalRun(labels=["dask"])) as flow:
    flaky(shout.map([1, 2, 3]))
'''


@pytest.fixture
def api_server(headwater_home: Path, tmp_path: Path) -> Iterator[Any]:
    from headwater_cloud_api.server.run import ServerThread

    with ServerThread(database_url=f"sqlite:///{tmp_path / 'api.db'}", scheduler=False) as server:
        _enable_headwater_loggers()
        yield server
    _enable_headwater_loggers()


def _enable_headwater_loggers() -> None:
    """uvicorn's logging dictConfig (disable_existing_loggers) disables loggers that exist when the in-process
    server starts, ``headwater.*`` among them; later tests of this session need them (reported to the lead)."""
    import logging

    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger) and logger.name.startswith("headwater"):
            logger.disabled = False


def _wait_for(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def test_dask_flow_run_through_server_and_agent_reports_every_state_and_log(
    api_server: Any, dask_address: str, dask_client: Any, headwater_home: Path, tmp_path: Path
) -> None:
    from headwater.client import Client
    from headwater_cloud_api.registration import Registration, load_flows

    flow_file = tmp_path / "repo" / "dask_e2e.py"
    flow_file.parent.mkdir()
    flow_file.write_text(FLOW_FILE.format(counter=str(tmp_path / "attempts"), address=dask_address))
    env = {**os.environ, "HEADWATER__CLOUD__API": api_server.api, "HEADWATER_HOME": str(headwater_home),
           "PYTHONUNBUFFERED": "1"}
    log = tmp_path / "agent.log"
    with Client(api=api_server.api, api_key="") as api:
        api.project(name="test").create()
        flows, errors = load_flows([flow_file])
        assert not errors, errors
        [registered] = Registration(api).register_many(flows, "test")
        assert registered.status == "registered", registered
        with open(log, "ab") as out:
            agent = subprocess.Popen(
                [sys.executable, "-m", "headwater.cli", "agent", "start", "--name", "dask-agent", "--label", "dask",
                 "--poll-interval", "0.1"], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
        try:
            run = api.flow(name="dask-e2e", project="test").create_run()
            final = _wait_for(lambda: (s := run.state) and s.is_finished() and s, 180, "the flow run to finish")
            assert final.name == "Success", log.read_text()
            history = api.graphql(
                "query($r: String!) { task_runs(flow_run_id: $r) { task_slug map_index states { type } } }", {"r": run.id}
            )["task_runs"]
            got = {(t["task_slug"], t["map_index"]): [s["type"] for s in t["states"]] for t in history}
            shout = [key for key in got if key[0].startswith("shout")]
            children = sorted(key for key in shout if key[1] not in (None, -1))
            assert [i for _, i in children] == [0, 1, 2]
            for key in children:
                assert got[key] == ["Running", "Success"], (key, got[key])
            [flaky] = [key for key in got if key[0].startswith("flaky")]
            assert got[flaky] == ["Running", "Retrying", "Running", "Success"], got[flaky]
            messages = [r["message"] for r in run.logs()]
            worker_pids = {str(p) for p in dask_client.run(os.getpid).values()}
            said = [m for m in messages if m.startswith("dask says")]
            assert len(said) == 3, messages
            assert {m.rsplit(" ", 1)[1] for m in said} <= worker_pids, "the task bodies ran on the cluster's workers"
            assert any("Dask executor on tcp://127.0.0.1:" in m and "dashboard: http://127.0.0.1:" in m for m in messages)
        finally:
            agent.terminate()
            try:
                agent.wait(30)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
