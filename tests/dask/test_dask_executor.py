"""DaskExecutor on a real cluster: exact states at scale, faults, cancellation, scattering, lifecycle, security."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import dask_helpers as h
from headwater import Flow, Parameter
from headwater.core.edge import unmapped
from headwater.plugins import from_dict, registry, to_dict
from headwater.states import Mapped
from headwater_dask import DaskExecutor, LocalDaskExecutor

RUN_TIMEOUT = 120.0


class _Logs(logging.Handler):
    """Records reaching a logger of this process while installed."""

    def __init__(self, name: str = "headwater") -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(name)

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> list[logging.LogRecord]:
        self.saved_level = self.logger.level  # not self.level: that is this handler's own level
        self.logger.addHandler(self)
        self.logger.setLevel(logging.INFO)
        return self.records

    def __exit__(self, *exc: Any) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self.saved_level)


# --- Prefect 1 arguments, the registry, serialization ---------------------------------------------


def test_registered_under_the_prefect_names_and_round_trips() -> None:
    executors = registry("executor")
    assert executors.get("DaskExecutor") is DaskExecutor
    assert executors.get("LocalDaskExecutor") is LocalDaskExecutor
    original = DaskExecutor(cluster_class="dask.distributed.LocalCluster", cluster_kwargs={"n_workers": 2},
                            adapt_kwargs={"maximum": 4}, client_kwargs={"direct_to_workers": False})
    data = to_dict(original)
    json.dumps(data)
    assert data["cluster_class"] == "dask.distributed.LocalCluster" and data["adapt_kwargs"] == {"maximum": 4}
    restored = from_dict(json.loads(json.dumps(data)), executors.get(executors.name_for(DaskExecutor) or "?"))
    assert restored == original and restored is not original
    local = LocalDaskExecutor(scheduler="threads", num_workers=8)
    assert from_dict(to_dict(local), LocalDaskExecutor) == local


def test_executor_kind_round_trips_by_its_type_tag() -> None:
    data = to_dict(DaskExecutor(address="tcp://127.0.0.1:8786"))
    if "type" not in data:
        pytest.skip("the core does not register Executor as a polymorphic base yet "
                    "(_CORE_BASES['executor'] = 'headwater.executors.base:Executor')")
    assert data["type"] == "DaskExecutor"
    assert from_dict(data, "executor") == DaskExecutor(address="tcp://127.0.0.1:8786")


def test_user_facing_import_path() -> None:
    import headwater.executors as executors

    if not hasattr(type(executors), "__getattr__") and "__getattr__" not in vars(executors):
        pytest.skip("headwater.executors does not resolve plugin executors by name yet")
    from headwater.executors import DaskExecutor as Lazy
    from headwater.executors import LocalDaskExecutor as LazyLocal

    assert (Lazy, LazyLocal) == (DaskExecutor, LocalDaskExecutor)


def test_cluster_class_as_a_class_is_stored_as_its_path() -> None:
    from distributed import LocalCluster

    executor = DaskExecutor(cluster_class=LocalCluster)
    assert executor.cluster_class == "distributed.deploy.local.LocalCluster"
    with pytest.raises(TypeError, match="cluster class or its dotted path"):
        DaskExecutor(cluster_class=42)


def test_address_and_cluster_arguments_exclude_each_other() -> None:
    with pytest.raises(ValueError, match="address=.*either"):
        DaskExecutor(address="tcp://127.0.0.1:8786", cluster_kwargs={"n_workers": 2})


def test_unknown_local_scheduler_names_the_choices() -> None:
    with pytest.raises(ValueError, match="'threads', 'processes' or 'synchronous'"):
        LocalDaskExecutor(scheduler="gpu")
    assert LocalDaskExecutor(scheduler="sync").scheduler == "synchronous"


def test_pickling_a_running_executor_leaves_the_client_behind(dask_address: str) -> None:
    import cloudpickle

    executor = DaskExecutor(address=dask_address)
    with executor.start():
        assert executor.client is not None
        copy = cloudpickle.loads(cloudpickle.dumps(executor))
    assert copy == executor and copy.client is None and executor.client is None


# --- exact states at scale -------------------------------------------------------------------------


def test_a_thousand_mapped_items_with_retries_and_timeouts_get_exact_states(dask_address: str, tmp_path: Path) -> None:
    with Flow("dask-thousand") as flow:
        items = Parameter("items")
        doubled = h.retry_or_sleep.map(items, folder=unmapped(str(tmp_path)))
    history: dict[int, list[str]] = {}
    lock = threading.Lock()

    def record(task: Any, state: Any, map_index: int | None) -> None:
        if map_index is not None:
            with lock:
                history.setdefault(map_index, []).append(type(state).__name__)

    state = flow.run(parameters={"items": list(range(1000))}, executor=DaskExecutor(address=dask_address),
                     on_task_state=record, run_on_schedule=False)
    parent = state.result[doubled]
    assert isinstance(parent, Mapped) and len(parent.map_states) == 1000
    for x, child in enumerate(parent.map_states):
        if x % 250 == 3:  # slept past the timeout, then its retry did too
            assert history[x] == ["Retrying", "TimedOut"], (x, history[x])
            assert type(child).__name__ == "TimedOut"
        elif x % 100 == 7:
            assert history[x] == ["Retrying", "Success"], (x, history[x])
            assert child.result == 2 * x
        else:
            assert history[x] == ["Success"], (x, history[x])
        if x % 250 != 3:
            assert (type(child).__name__, child.result) == ("Success", 2 * x)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(str(x) for x in range(1000) if x % 100 == 7)


# --- faults ------------------------------------------------------------------------------------------


def test_a_worker_killed_mid_task_is_rescheduled_and_the_state_is_exact(
    dask_address: str, dask_client: Any, tmp_path: Path
) -> None:
    from headwater.plugins import hookimpl, register_plugin, unregister_plugin

    class Running:
        calls: list[tuple[str, int | None]] = []

        @hookimpl
        def before_task_run(self, task: Any, map_index: int | None, context: dict[str, Any]) -> None:
            self.calls.append((task.name, map_index))

    with Flow("dask-killed-worker") as flow:
        victim = h.pid_then_sleep(str(tmp_path), 60.0)
    worker_pids = set(dask_client.run(os.getpid).values())
    result: dict[str, Any] = {}
    spy = Running()
    name = register_plugin(spy, name="dask-test-running-spy")
    try:
        runner = threading.Thread(target=lambda: result.setdefault(
            "state", flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False)))
        runner.start()
        marker = tmp_path / "pid"
        deadline = time.monotonic() + RUN_TIMEOUT
        while not marker.exists() or not marker.read_text():
            assert time.monotonic() < deadline, "the task never started on a worker"
            time.sleep(0.05)
        pid = int(marker.read_text())
        assert pid in worker_pids, "the task body must run in a worker process, not in the flow-run process"
        assert pid != os.getpid()
        os.kill(pid, signal.SIGKILL)
        runner.join(RUN_TIMEOUT)
        assert not runner.is_alive()
    finally:
        unregister_plugin(name)
    state = result["state"]
    assert state.is_successful(), state
    assert state.result[victim].result == 2, "Dask ran the task again after its worker died"
    assert spy.calls == [("pid_then_sleep", None)], "one Running (one submission), then Success"
    _wait_for_workers(dask_client, 2)


def _wait_for_workers(client: Any, n: int) -> None:
    client.wait_for_workers(n, timeout=RUN_TIMEOUT)


def test_unpicklable_argument_names_the_task_and_the_type(dask_address: str) -> None:
    with Flow("dask-unpicklable-argument") as flow:
        h.take(threading.Lock())
    state = flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False)
    [task_state] = state.result.values()
    assert task_state.is_failed()
    assert "Task 'take'" in task_state.message
    assert "argument 'value'" in task_state.message and "_thread.lock" in task_state.message


def test_unpicklable_result_names_the_task_and_the_type(dask_address: str) -> None:
    with Flow("dask-unpicklable-result") as flow:
        h.make_lock()
    state = flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False)
    [task_state] = state.result.values()
    assert task_state.is_failed()
    assert "Task 'make_lock' returned a _thread.lock" in task_state.message
    assert "cannot be pickled" in task_state.message


def test_unreachable_scheduler_fails_the_run_with_the_address_and_the_fix() -> None:
    from socket import socket

    with socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with Flow("dask-unreachable") as flow:
        h.take(1)
    address = f"tcp://127.0.0.1:{port}"
    state = flow.run(executor=DaskExecutor(address=address, connect_timeout=1.0), run_on_schedule=False)
    assert state.is_failed()
    message = str(state.message)
    assert address in message
    assert "dask scheduler --host 127.0.0.1" in message and "DaskConnectionError" in message


# --- cancellation ------------------------------------------------------------------------------------


def _run_in_thread(flow: Any, executor: Any, cancel: threading.Event) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: out.setdefault(
        "state", flow.run(executor=executor, cancel=cancel, run_on_schedule=False)))
    thread.start()
    return thread, out


def _wait_started(folder: Path, n: int = 1) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT
    while not (folder / "started").exists() or len((folder / "started").read_text()) < n:
        assert time.monotonic() < deadline, "no task run started"
        time.sleep(0.05)


def test_cancelling_the_flow_run_cancels_its_futures_and_running_task_runs_end_cancelled(
    dask_address: str, dask_client: Any, tmp_path: Path
) -> None:
    with Flow("dask-cancel") as flow:
        naps = h.nap.map([2.0] * 6, folder=unmapped(str(tmp_path)))
    handlers_before = list(flow.state_handlers)
    cancel = threading.Event()
    thread, out = _run_in_thread(flow, DaskExecutor(address=dask_address), cancel)
    _wait_started(tmp_path)
    cancel.set()  # what the API's heartbeat does when the run is cancelled
    thread.join(RUN_TIMEOUT)
    state = out["state"]
    assert type(state).__name__ == "Cancelled"
    children = [type(c).__name__ for c in state.result[naps].map_states]
    assert set(children) == {"Cancelled"}, children
    assert "its Dask future was cancelled" in state.result[naps].map_states[0].message
    assert len((tmp_path / "started").read_text()) < 6, "queued task runs must never start"
    assert not [k for k in dask_client.who_has() if str(k).startswith("nap")], "no futures of the run are left"
    assert flow.state_handlers == handlers_before, "the cancel bridge leaves the flow as it was"


def test_cancel_on_the_local_scheduler_cancels_task_runs_not_started(tmp_path: Path) -> None:
    with Flow("dask-local-cancel") as flow:
        naps = h.nap.map([0.5] * 8, folder=unmapped(str(tmp_path)))
    cancel = threading.Event()
    thread, out = _run_in_thread(flow, LocalDaskExecutor(scheduler="threads", num_workers=1), cancel)
    _wait_started(tmp_path)
    cancel.set()
    thread.join(RUN_TIMEOUT)
    state = out["state"]
    assert type(state).__name__ == "Cancelled"
    children = [type(c).__name__ for c in state.result[naps].map_states]
    assert "Cancelled" in children and set(children) <= {"Success", "Cancelled"}
    assert len((tmp_path / "started").read_text()) < 8


# --- task ownership: payloads, scattering, logs ----------------------------------------------------


def test_a_large_constant_is_scattered_once_not_per_mapped_item(
    dask_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client

    import headwater_dask.executor as module

    scatters: list[int] = []
    payloads: list[int] = []
    original_scatter, original_dumps = Client.scatter, module.dumps_call

    def scatter(self: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        scatters.append(len(data))
        return original_scatter(self, data, *args, **kwargs)

    def dumps_call(*args: Any, **kwargs: Any) -> bytes:
        payload = original_dumps(*args, **kwargs)
        payloads.append(len(payload))
        return payload

    monkeypatch.setattr(Client, "scatter", scatter)
    monkeypatch.setattr(module, "dumps_call", dumps_call)
    blob = os.urandom(2_000_000)
    with Flow("dask-scatter") as flow:
        lengths = h.big_len.map(unmapped(blob), list(range(40)))
    state = flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False)
    assert state.is_successful(), state
    assert [c.result for c in state.result[lengths].map_states] == [len(blob) + i for i in range(40)]
    assert scatters == [1], "the constant is scattered exactly once"
    assert len(payloads) == 41  # the 40 items and the task that builds the list they map over
    assert sum(p > len(blob) for p in payloads) == 1, "only the first payload carries the constant itself"


def test_task_logs_and_prints_come_back_to_the_flow_run_process(dask_address: str) -> None:
    with Flow("dask-logs") as flow:
        h.shout.map(["alpha", "beta"])
    with _Logs() as records:
        state = flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False)
    assert state.is_successful(), state
    got = {(r.name, r.levelname, r.getMessage()) for r in records}
    for word in ("alpha", "beta"):
        assert ("headwater.shout", "INFO", f"shouting {word}") in got
        assert ("headwater.shout", "WARNING", f"warned about {word}") in got
    worker_records = [r for r in records if r.getMessage() == "shouting alpha"]
    assert worker_records[0].process != os.getpid(), "the record was made on the worker"


def test_task_bodies_run_on_workers_and_the_engine_stays_here(dask_address: str, dask_client: Any) -> None:
    with Flow("dask-where") as flow:
        pids = h.whoami.map(list(range(6)))
    state = flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False)
    workers = set(dask_client.run(os.getpid).values())
    ran = {c.result for c in state.result[pids].map_states}
    assert ran <= workers and os.getpid() not in ran


# --- cluster lifecycle ---------------------------------------------------------------------------------


def test_temporary_cluster_starts_with_the_run_and_closes_after_it() -> None:
    with Flow("dask-temporary") as flow:
        pids = h.whoami.map(list(range(4)))
    executor = DaskExecutor(cluster_class="dask.distributed.LocalCluster",
                            cluster_kwargs={"n_workers": 1, "threads_per_worker": 1, "processes": True},
                            adapt_kwargs={"minimum": 1, "maximum": 2})
    with _Logs() as records:
        state = flow.run(executor=executor, run_on_schedule=False)
    assert state.is_successful(), state
    assert os.getpid() not in {c.result for c in state.result[pids].map_states}
    [line] = [r.getMessage() for r in records if r.name == "headwater.DaskExecutor"]
    assert "a temporary LocalCluster at tcp://127.0.0.1:" in line
    assert "dashboard: http://127.0.0.1:" in line
    assert executor.client is None


def test_adapt_kwargs_are_passed_to_the_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    adapted: list[dict[str, Any]] = []
    closed: list[bool] = []
    original_adapt, original_close = LocalCluster.adapt, LocalCluster.close

    def adapt(self: Any, *args: Any, **kwargs: Any) -> Any:
        adapted.append(kwargs)
        return original_adapt(self, *args, **kwargs)

    def close(self: Any, *args: Any, **kwargs: Any) -> Any:
        closed.append(True)
        return original_close(self, *args, **kwargs)

    monkeypatch.setattr(LocalCluster, "adapt", adapt)
    monkeypatch.setattr(LocalCluster, "close", close)
    executor = DaskExecutor(cluster_class=LocalCluster, cluster_kwargs={"processes": False, "n_workers": 1},
                            adapt_kwargs={"minimum": 1, "maximum": 3})
    with Flow("dask-adapt") as flow:
        h.take(1)
    assert flow.run(executor=executor, run_on_schedule=False).is_successful()
    assert adapted == [{"minimum": 1, "maximum": 3}]
    assert closed, "the temporary cluster is closed after the run"


def test_external_cluster_is_only_connected_to(dask_address: str, dask_client: Any) -> None:
    with Flow("dask-external") as flow:
        h.take(1)
    for _ in range(2):
        assert flow.run(executor=DaskExecutor(address=dask_address), run_on_schedule=False).is_successful()
    assert len(dask_client.scheduler_info()["workers"]) == 2, "the shared cluster is still up with its workers"


def test_security_object_is_passed_to_the_client_and_the_cluster(tmp_path: Path) -> None:
    from distributed.security import Security

    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    done = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"openssl could not make a test certificate: {done.stderr}")
    files = {f"tls_{who}_{kind}": str(path) for who in ("client", "scheduler", "worker")
             for kind, path in (("key", key), ("cert", cert))}
    security = Security(tls_ca_file=str(cert), require_encryption=True, **files)
    executor = DaskExecutor(cluster_kwargs={"processes": False, "n_workers": 1, "protocol": "tls://"}, security=security)
    assert executor.security is not None and executor.security["tls_ca_file"] == str(cert)
    assert to_dict(executor)["security"]["require_encryption"] is True  # paths only, no key material
    with Flow("dask-tls") as flow:
        h.take(1)
    with _Logs() as records:
        state = flow.run(executor=executor, run_on_schedule=False)
    assert state.is_successful(), state
    assert any("tls://127.0.0.1:" in r.getMessage() for r in records if r.name == "headwater.DaskExecutor")
