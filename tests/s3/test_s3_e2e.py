"""End to end with real processes: API server, registration, an agent elsewhere, S3 storage and S3Result on moto.

A flow file with ``S3`` storage and ``S3Result`` checkpointing is registered from a project
directory, which is then deleted; an agent started in another directory runs it from the bucket.
The results land in the bucket under the templated keys; a second run finds a task's ``target=``
object and reads it back instead of running the task. A second scenario kills the S3 server
while a task runs: the task fails with an error that names the endpoint, and nothing is written.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from s3_helpers import MotoProcess, boto3_client, free_port, keys, wait_for

pytestmark = pytest.mark.slow

FLOW_FILE = '''
from pathlib import Path

from headwater import Flow, Parameter, task
from headwater.results import S3Result
from headwater.run_configs import LocalRun
from headwater.storage import S3

MARKS = Path({marks!r})
RESULT = S3Result(bucket="e2e-results", location="{{flow_name}}/{{task_name}}/{{today}}-{{x}}.pickle")


@task(result=RESULT)
def extract(x):
    (MARKS / f"extract-{{x}}").write_text("ran")
    return list(range(x))


@task(result=RESULT, target="{{flow_name}}/targets/count-{{x}}.pickle")
def count(values):
    with open(MARKS / "count.log", "a") as log:
        log.write("ran\\n")
    return len(values) * 10


@task(result=RESULT)
def total(values, n):
    return sum(values) + n


with Flow(
    "s3-etl",
    storage=S3(bucket="e2e-flows", client_options={{"endpoint_url": {endpoint!r}}}),
    run_config=LocalRun(labels=["s3-e2e"]),
) as flow:
    x = Parameter("x", default=2)
    rows = extract(x)
    total(rows, count(rows))
'''

SLOW_FLOW_FILE = '''
import time
from pathlib import Path

from headwater import Flow, task
from headwater.results import S3Result
from headwater.run_configs import LocalRun
from headwater.storage import S3

MARKS = Path({marks!r})


@task(result=S3Result(bucket="doomed-results", location="{{flow_name}}/value.pickle",
                      boto3_kwargs={{"endpoint_url": {endpoint!r}}}))
def slow_value():
    (MARKS / "started").write_text("started")
    while not (MARKS / "go").exists():
        time.sleep(0.05)
    return "a value that cannot be checkpointed"


with Flow(
    "s3-doomed",
    storage=S3(bucket="doomed-flows", client_options={{"endpoint_url": {endpoint!r}}}),
    run_config=LocalRun(labels=["s3-e2e"]),
) as flow:
    slow_value()
'''


def _cli(*args: str, cwd: Path, env: dict[str, str], check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "headwater.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if check:
        assert done.returncode == 0, f"headwater {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


class _Processes:
    """The API server and one agent as child processes, stopped (and reaped) at the end."""

    def __init__(self, root: Path, s3_endpoint: str) -> None:
        self.root = root
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}/graphql"
        home = root / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HEADWATER__")}
        self.env = {**env, "HEADWATER_HOME": str(home), "HEADWATER__CLOUD__API": self.api, "PYTHONUNBUFFERED": "1"}
        self.agent_env = {**self.env, "HEADWATER__S3__ENDPOINT_URL": s3_endpoint, "HEADWATER__S3__MAX_ATTEMPTS": "2",
                          "HEADWATER__S3__CONNECT_TIMEOUT": "2"}
        self.children: list[tuple[subprocess.Popen[bytes], Any]] = []

    def _spawn(self, args: list[str], log: Path, cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        cwd.mkdir(parents=True, exist_ok=True)
        out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen([sys.executable, "-m", "headwater.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                                   cwd=cwd, env=env)
        self.children.append((process, out))
        return process

    def start(self) -> _Processes:
        self.server_log = self.root / "server.log"
        server = self._spawn(["server", "start", "--port", str(self.port), "--database-url",
                              f"sqlite:///{self.root / 'api.db'}", "--no-scheduler", "--log-level", "warning"],
                             self.server_log, self.root, self.env)

        def ready() -> bool:
            assert server.poll() is None, self.server_log.read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(ready, 60, 0.1, "the API server")
        _cli("project", "create", "test", cwd=self.root, env=self.env)
        self.agent_dir = self.root / "agent-elsewhere"
        self.agent_log = self.root / "agent.log"
        self._spawn(["agent", "start", "--label", "s3-e2e", "--name", "s3-agent", "--poll-interval", "0.2"],
                    self.agent_log, self.agent_dir, self.agent_env)
        return self

    def stop(self) -> None:
        for process, out in reversed(self.children):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            out.close()


@pytest.fixture(scope="module")
def moto_process(tmp_path_factory: pytest.TempPathFactory, aws_environment: None) -> Iterator[MotoProcess]:
    server = MotoProcess(tmp_path_factory.mktemp("moto")).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, moto_process: MotoProcess) -> Iterator[_Processes]:
    processes = _Processes(tmp_path_factory.mktemp("e2e"), moto_process.endpoint)
    try:
        yield processes.start()
    finally:
        processes.stop()


def _register(stack: _Processes, tmp_path: Path, source: str, name: str) -> tuple[Path, str]:
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    (project / "flows" / f"{name}.py").write_text(source)
    first = _cli("register", "--project", "test", "--path", "flows/", cwd=project, env=stack.env)
    return project, first.stdout + first.stderr


def test_flow_from_s3_runs_on_an_agent_elsewhere_with_s3_results(
    stack: _Processes, moto_process: MotoProcess, tmp_path: Path
) -> None:
    s3 = boto3_client(moto_process.endpoint)
    for name in ("e2e-flows", "e2e-results"):
        s3.create_bucket(Bucket=name)
    marks = tmp_path / "marks"
    marks.mkdir()
    source = FLOW_FILE.format(marks=str(marks), endpoint=moto_process.endpoint)
    project, out = _register(stack, tmp_path, source, "etl")
    assert "1 registered" in out, out
    stored = keys(s3, "e2e-flows")
    assert len(stored) == 1 and re.fullmatch(r"s3-etl/[0-9a-f]{16}\.flow", stored[0]), stored
    uploaded = s3.head_object(Bucket="e2e-flows", Key=stored[0])["ETag"]
    again = _cli("register", "--project", "test", "--path", "flows/", cwd=project, env=stack.env)
    assert "1 skipped" in again.stdout + again.stderr
    assert keys(s3, "e2e-flows") == stored and s3.head_object(Bucket="e2e-flows", Key=stored[0])["ETag"] == uploaded

    shutil.rmtree(project)  # the agent must load the flow from the bucket, not from the author's files
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    for attempt in (1, 2):  # the second run finds count's target in the bucket and does not run it
        run = _cli("run", "--name", "s3-etl", "--project", "test", "--watch", "-p", "x=4", cwd=elsewhere,
                   env=stack.env, check=False)
        assert run.returncode == 0, f"run {attempt}:\n{run.stdout}\n{run.stderr}\nagent log:\n{stack.agent_log.read_text()}"
        assert (marks / "count.log").read_text() == "ran\n", f"count ran again in run {attempt}"
        results = keys(s3, "e2e-results")
        assert [re.sub(r"\d{4}-\d{2}-\d{2}", "DATE", k) for k in results] == [
            "s3-etl/extract/DATE-4.pickle", "s3-etl/targets/count-4.pickle", "s3-etl/total/DATE-4.pickle"
        ], results
        values = {k.split("/")[1]: pickle.loads(s3.get_object(Bucket="e2e-results", Key=k)["Body"].read())
                  for k in results}
        assert values == {"extract": [0, 1, 2, 3], "targets": 40, "total": 46}
    assert "result found at target" in run.stdout.lower() or "Cached" in run.stdout, run.stdout
    assert (marks / "extract-4").read_text() == "ran"


def test_killing_the_s3_server_mid_run_fails_the_task_clearly(
    stack: _Processes, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    doomed = MotoProcess(tmp_path_factory.mktemp("doomed-moto")).start()
    try:
        s3 = boto3_client(doomed.endpoint)
        for name in ("doomed-flows", "doomed-results"):
            s3.create_bucket(Bucket=name)
        marks = tmp_path / "marks"
        marks.mkdir()
        _, out = _register(stack, tmp_path, SLOW_FLOW_FILE.format(marks=str(marks), endpoint=doomed.endpoint), "doomed")
        assert "1 registered" in out, out
        watcher = subprocess.Popen(
            [sys.executable, "-m", "headwater.cli", "run", "--name", "s3-doomed", "--project", "test", "--watch"],
            cwd=tmp_path, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        try:
            wait_for(lambda: (marks / "started").exists(), 120, 0.1, "the task to start on the agent")
            doomed.kill()  # the S3 server dies while the task runs
            (marks / "go").write_text("go")
            output, _ = watcher.communicate(timeout=180)
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait()
        assert watcher.returncode == 1, output
        assert "S3ConnectionError" in output and "could not be reached" in output, output
        assert doomed.endpoint in output, output
        assert "s3://doomed-results/s3-doomed/value.pickle" in output, output
    finally:
        doomed.kill()
