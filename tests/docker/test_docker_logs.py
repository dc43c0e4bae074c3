"""The pieces that bring a container's output into the API's run logs: the line filter and the batching forwarder.

The forwarder is tested against a real API server (in this process, SQLite); the end-to-end tests
in test_docker_e2e.py run real containers through an agent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from docker_helpers import ROOT, Engine
from headwater_docker.logs import MAX_LINE, LogForwarder, OutputFilter

STAMP = b"2026-12-02T00:53:06.123456789Z "


def _lines(output: OutputFilter, *frames: bytes) -> list[str]:
    return [line for frame in frames for _, line in output.feed(frame)]


def test_frames_become_lines_without_timestamps_and_partial_lines_are_joined() -> None:
    output = OutputFilter()
    assert _lines(output, STAMP + b"raw out", STAMP + b"\n", STAMP + b"two\nthree\n", STAMP + b"tail") == [
        "raw out", "two", "three"]
    assert [line for _, line in output.close(crashed=False)] == ["tail"]
    stamp, _ = OutputFilter().feed(STAMP + b"x\n")[0]
    assert stamp == "2026-12-02T00:53:06.123456+00:00"  # nanoseconds cut to what datetime parses


def test_headwater_records_and_their_continuations_are_dropped() -> None:
    output = OutputFilter()
    lines = _lines(
        output,
        STAMP + b"2026-12-02T00:53:06.100Z INFO    headwater.flow_runner | Beginning flow run for 'x'\n",
        STAMP + b"2026-12-02T00:53:06.200Z ERROR   headwater.task.boom | Task 'boom' failed\n",
        STAMP + b"Traceback (most recent call last):\n",
        STAMP + b'  File "flows.py", line 3, in boom\n',
        STAMP + b"ValueError: no\n",
        STAMP + b"a print after the record\n",
        STAMP + b"  indented, but after a print\n",
    )
    assert lines == ["a print after the record", "  indented, but after a print"]


def test_a_crash_right_after_a_record_keeps_its_traceback() -> None:
    output = OutputFilter()
    frames = [
        STAMP + b"2026-12-02T00:53:06.100Z INFO    headwater.runner | Loading the flow\n",
        STAMP + b"Traceback (most recent call last):\n",
        STAMP + b'  File "/usr/lib/python3.11/runpy.py", line 198, in _run_module_as_main\n',
        STAMP + b"ImportError: cannot import name 'x'\n",
    ]
    assert _lines(output, *frames) == []
    assert [line for _, line in output.close(crashed=True)] == [
        "Traceback (most recent call last):", '  File "/usr/lib/python3.11/runpy.py", line 198, in _run_module_as_main',
        "ImportError: cannot import name 'x'"]
    clean = OutputFilter()
    _lines(clean, *frames)
    assert clean.close(crashed=False) == []  # exit 0: it was the record's own traceback


class _Recorder:
    """A client whose write_logs goes to a real API server, failing the first ``fail`` calls like a down API."""

    def __init__(self, client: Any, fail: int = 0, reject_attempt: bool = False) -> None:
        self.client, self.fail, self.reject_attempt = client, fail, reject_attempt
        self.calls: list[list[dict[str, Any]]] = []

    def graphql(self, query: str, variables: dict[str, Any]) -> Any:
        self.calls.append(variables["l"])
        if self.fail:
            self.fail -= 1
            raise ConnectionError("the API is restarting")
        if self.reject_attempt and any("attempt" in r for r in variables["l"]):
            raise ValueError("Field 'attempt' is not defined by type 'LogInput'.")
        return self.client.graphql(query, variables)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from headwater_cloud_api.server.run import ServerThread

    work: Path = tmp_path_factory.mktemp("api")
    with ServerThread(database_url=f"sqlite:///{work / 'api.db'}", scheduler=False) as srv:
        yield srv


@pytest.fixture
def api(server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    from headwater.client import Client

    monkeypatch.setenv("HEADWATER__CLOUD__API", server.api)
    with Client(api=server.api, api_key="") as client:
        if not client.graphql('{ projects { name } }')["projects"]:
            client.project(name="logs").create()
        yield client


@pytest.fixture
def run_id(api: Any, tmp_path: Path) -> str:
    from headwater import Flow, task
    from headwater.storage import Local

    @task
    def one() -> int:
        return 1

    with Flow(f"forwarded-{time.monotonic_ns()}", storage=Local(directory=str(tmp_path / "flows"))) as flow:
        one()
    flow.register(project_name="logs")
    return str(api.flow(name=flow.name, project="logs").create_run().id)


def _messages(api: Any, run_id: str) -> list[dict[str, Any]]:
    return api.flow_run(id=run_id).logs()


def test_lines_reach_the_run_logs_in_batches_after_the_api_came_back(api: Any, run_id: str) -> None:
    recorder = _Recorder(api, fail=2, reject_attempt=True)
    forwarder = LogForwarder(lambda: recorder, run_id, attempt=0, flush_interval=0.05, max_batch=10)
    for i in range(25):
        forwarder.put("2026-12-02T00:53:06+00:00", f"line {i}", "WARNING" if i % 2 else "INFO", "stderr" if i % 2 else "stdout")
    forwarder.put("2026-12-02T00:53:07+00:00", "x" * (MAX_LINE + 10))
    forwarder.close()
    logs = _messages(api, run_id)
    messages = [r["message"] for r in logs]
    assert messages[:25] == [f"line {i}" for i in range(25)]
    assert messages[25].startswith("x" * 100) and messages[25].endswith(f"[truncated: the line had {MAX_LINE + 10} characters]")
    assert {r["name"] for r in logs} == {"headwater.docker.container.stdout", "headwater.docker.container.stderr"}
    assert [r["level"] for r in logs[:2]] == ["INFO", "WARNING"]
    assert all(len(batch) <= 10 for batch in recorder.calls)
    assert any("attempt" in r for r in recorder.calls[2]) and not any("attempt" in r for r in recorder.calls[-1])


def test_a_full_queue_keeps_the_newest_lines_and_says_how_many_were_dropped(api: Any, run_id: str) -> None:
    gate = threading.Event()

    class Slow(_Recorder):
        def graphql(self, query: str, variables: dict[str, Any]) -> Any:
            gate.wait(30)
            return super().graphql(query, variables)

    forwarder = LogForwarder(lambda: Slow(api), run_id, flush_interval=0.05, max_batch=5, max_pending=20)
    for i in range(100):
        forwarder.put("2026-12-02T00:53:06+00:00", f"line {i}")  # never blocks, even with the API stuck
    gate.set()
    forwarder.close()
    messages = [r["message"] for r in _messages(api, run_id)]
    assert messages[-1].startswith("[headwater] ") and "older line(s) of the container's output were not sent" in messages[-1]
    assert "line 99" in messages and "line 0" not in messages


def test_the_attempt_fences_the_lines_and_a_superseded_attempt_stops_sending(api: Any, run_id: str) -> None:
    current = LogForwarder(lambda: _Recorder(api), run_id, attempt=0, flush_interval=0.05)
    current.put("2026-12-02T00:53:06+00:00", "from the current attempt")
    current.close()
    recorder = _Recorder(api)
    stale = LogForwarder(lambda: recorder, run_id, attempt=7, flush_interval=0.05, max_batch=2)
    for i in range(6):
        stale.put("2026-12-02T00:53:06+00:00", f"from a superseded attempt {i}")
    stale.close()
    assert stale.superseded
    assert len(recorder.calls) == 1  # the server's SUPERSEDED answer stops it: no retries, no further batches
    assert [r["message"] for r in _messages(api, run_id)] == ["from the current attempt"]


def test_a_container_killed_for_memory_leaves_its_last_lines_and_the_reason_in_the_run_logs(
        built: Any, api: Any, run_id: str, tmp_path: Path, engine: Engine) -> None:
    """A real container on podman, followed as an agent does (run context with the API): no runner inside it.

    An OOM kill makes podman's conmon create an empty file ``oom`` in its working directory, the podman
    service's: that is the session's engine directory, never the checkout (nor this process's cwd)."""
    from headwater_docker.environment import DockerRun

    assert engine.service_pid is not None
    assert Path(f"/proc/{engine.service_pid}/cwd").resolve() == engine.workdir.resolve()
    strays = [d / "oom" for d in {ROOT, Path.cwd()} if not (d / "oom").exists()]

    run = DockerRun(host_config={"network_mode": "none", "mem_limit": "24m"})
    output = tmp_path / "run.log"
    script = "print('allocating 400 MB', flush=True); import sys; print('on stderr', file=sys.stderr, flush=True); " \
             "x = bytearray(400 * 1024 * 1024); print('survived')"
    handle = run.execute(built.storage, built.storage.flows["docker-hello"], flow_run_id=run_id,
                         command=["python3", "-c", script], env={"HEADWATER__CLOUD__API": api.api},
                         stdout=str(output))
    assert run.wait(handle, timeout=120) == "failed"
    assert handle.exit_code == 137
    logs = _messages(api, run_id)
    by_message = {r["message"]: r for r in logs}
    assert by_message["allocating 400 MB"]["name"] == "headwater.docker.container.stdout"
    assert by_message["on stderr"]["level"] == "WARNING"
    assert "survived" not in by_message
    [reason] = [r for r in logs if r["level"] == "ERROR"]
    assert "exited with status 137" in reason["message"] and "out of memory" in reason["message"]
    assert "24m" in reason["message"], reason
    tail = output.read_text()  # what the agent's Failed message quotes for a run that had not started
    assert "allocating 400 MB" in tail and "exited with status 137" in tail
    assert [p for p in strays if p.exists()] == []
