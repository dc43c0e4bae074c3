"""Task logs of a flow run on ProcessExecutor reach the API: they come back from the workers with their states."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_helpers import AgentProcess, ServerProcess, register_flows
from headwater.client import Client

FLOWS = '''
from headwater import Flow, task
from headwater.executors import ProcessExecutor
from headwater.run_configs import LocalRun


@task
def square(x):
    import os
    from headwater import context

    context.logger.info("squaring %d in worker %s", x, os.getpid())
    return x * x


@task(log_stdout=True)
def report(values):
    print(f"total of squares: {sum(values)}")
    if sum(values) != 30:
        raise ValueError("wrong total")


with Flow("process-logs", run_config=LocalRun(labels=["plogs"]), executor=ProcessExecutor(max_workers=2)) as flow:
    report(square.map([1, 2, 3, 4]))
'''


@pytest.mark.slow
def test_worker_task_logs_are_in_the_flow_runs_logs(tmp_path: Path) -> None:
    path = tmp_path / "repo" / "flows.py"
    path.parent.mkdir()
    path.write_text(FLOWS)
    server = ServerProcess(f"sqlite:///{tmp_path / 'api.db'}", tmp_path).start()
    agent = None
    try:
        with Client(api=server.api, api_key="") as api:
            register_flows(api, path, project="plogs")
            agent = AgentProcess(server.api, tmp_path / "agent", ("plogs",), "plogs", poll_interval=0.2)
            run = api.flow(name="process-logs", project="plogs").create_run()
            state = run.wait(180)
            logs = run.logs()
            messages = [r["message"] for r in logs]
            assert state.name == "Success", (state, messages, agent.output())
            squared = sorted(m.split(" in worker ")[0] for m in messages if m.startswith("squaring "))
            assert squared == [f"squaring {x}" for x in (1, 2, 3, 4)], messages
            workers = {m.split(" in worker ")[1] for m in messages if m.startswith("squaring ")}
            assert workers and str(agent.process.pid) not in workers
            assert "total of squares: 30" in messages, messages
            assert {r["name"] for r in logs if r["message"].startswith("squaring ")} == {"headwater.square"}
    finally:
        if agent is not None:
            agent.stop()
        server.stop()
