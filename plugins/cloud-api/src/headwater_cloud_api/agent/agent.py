"""The agent: claims due flow runs whose labels it has and deploys each with the environment its run config names.

One loop, every ``poll_interval`` seconds:

1. check its flow-run processes (``environment.status``): one that exited while its run is
   still Submitted becomes Failed with the exit status and the tail of its output (a run is
   never left in Submitted); one that was being cancelled becomes Cancelled; one that died
   while Running is logged and left to the server's reaper (rescheduled, then Failed);
2. heartbeat (one request) with the ids of its runs, renewing the lease of those whose process
   is alive (a process still starting has not sent its own heartbeat), which returns their states: a run in
   Cancelling gets ``cancel_grace_period`` seconds to stop by itself (its runner sees
   Cancelling through its own heartbeat and starts no new tasks); after that the agent kills
   the environment's process and ends the run and its unfinished task runs Cancelled;
3. claim up to ``max_concurrent_runs`` minus running runs (atomic on the server) and deploy
   each: restore storage and environment through the plugin registries, then
   ``environment.execute(storage, location, command=[python, -m, headwater.cli, execute,
   flow-run, --id, ID], ...)``. Any failure to deploy ends the run Failed with the reason.

Every deploy and deploy failure is also a run log. SIGTERM/SIGINT stop claiming, leave running
flow runs alone (they are separate processes with their own heartbeats) and unregister.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import attrs

__all__ = ["Agent", "ManagedRun", "flow_run_command"]

_log = logging.getLogger("headwater.agent")
_FINISHED = {"Success", "Cached", "Mapped", "Skipped", "Failed", "TriggerFailed", "TimedOut", "Cancelled", "Finished"}


def flow_run_command(flow_run_id: str) -> list[str]:
    """The command line an environment starts for a flow run."""
    return [sys.executable, "-m", "headwater.cli", "execute", "flow-run", "--id", flow_run_id]


@attrs.define
class ManagedRun:
    """A flow run this agent deployed: its environment, handle and output file."""

    id: str
    environment: Any
    handle: Any
    output: Path
    cancel_seen: float | None = None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class Agent:
    """``Agent(client, labels=["staging"]).start()`` blocks until SIGTERM/SIGINT or :meth:`stop`."""

    def __init__(self, client: Any, labels: list[str] | tuple[str, ...] = (), name: str | None = None,
                 max_concurrent_runs: int = 10, poll_interval: float = 0.5, cancel_grace_period: float = 10.0,
                 kill_grace_period: float = 2.0, accepts_unlabeled: bool | None = None, log_dir: str | Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        from headwater.config import headwater_home

        self.client = client
        self.api = client.agent(name=name or f"agent-{socket.gethostname()}-{os.getpid()}", labels=labels,
                                accepts_unlabeled=accepts_unlabeled)
        self.max_concurrent_runs = max_concurrent_runs
        self.poll_interval = poll_interval
        self.cancel_grace_period = cancel_grace_period
        self.kill_grace_period = kill_grace_period
        self.log_dir = Path(log_dir) if log_dir else headwater_home() / "agent-logs"
        self.env = dict(env or {})
        self.runs: dict[str, ManagedRun] = {}
        self._stop = threading.Event()
        self.deployed = 0

    @property
    def name(self) -> str:
        return self.api.name

    # --- lifecycle ----------------------------------------------------------------------------

    def stop(self, *_: Any) -> None:
        """Stop claiming and leave the loop (running flow runs continue)."""
        self._stop.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def start(self) -> None:
        """Register, then poll until stopped; unregister at the end."""
        from headwater_cloud_api.execution.runner import retrying

        self.log_dir.mkdir(parents=True, exist_ok=True)
        retrying(self.api.register, f"agent {self.name}: registering", stop=self._stop)
        _log.info("Agent %s (%s) started with labels %s; polling every %s s", self.name, self.api.id, self.api.labels, self.poll_interval)
        print(f"Agent {self.name} ({self.api.id}) started, labels {','.join(self.api.labels) or '(none)'}.", flush=True)
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception as exc:  # the API is down or answered oddly: keep going
                    _log.warning("Agent %s: %s", self.name, exc)
                    print(f"Agent {self.name}: {exc}", file=sys.stderr, flush=True)
                self._stop.wait(self.poll_interval)
        finally:
            try:
                self.api.unregister()
            except Exception as exc:
                print(f"Agent {self.name}: could not unregister: {exc}", file=sys.stderr, flush=True)
            running = [r for r in self.runs.values() if r.environment.status(r.handle) == "running"]
            print(f"Agent {self.name} stopped; {len(running)} flow run(s) still running on their own.", flush=True)

    # --- one pass -------------------------------------------------------------------------------

    def tick(self) -> None:
        exited = {rid: run for rid, run in self.runs.items() if run.environment.status(run.handle) != "running"}
        alive = [rid for rid in self.runs if rid not in exited]
        try:
            states = self.api.heartbeat(list(self.runs), renew=alive)
        except Exception as exc:
            from headwater_cloud_api.client.transport import APIClientError

            if isinstance(exc, APIClientError) and exc.code == "NOT_FOUND":  # unregistered meanwhile: register again
                self.api.register()
                states = self.api.heartbeat(list(self.runs), renew=alive)
            else:
                raise
        for rid, run in exited.items():
            self._exited(run, states.get(rid))
        now = time.monotonic()
        for rid, run in list(self.runs.items()):
            status = states.get(rid)
            if status is None:
                continue
            if status["state"] == "Cancelling":
                if run.cancel_seen is None:
                    run.cancel_seen = now
                elif now - run.cancel_seen >= self.cancel_grace_period:
                    self._kill(run)
            elif status["state"] in _FINISHED and run.environment.status(run.handle) == "running" and status["state"] == "Cancelled":
                self._kill(run, already=True)
        if self._stop.is_set():
            return
        slots = self.max_concurrent_runs - len(self.runs)
        if slots > 0:
            for run in self.api.claim(slots):
                self.deploy(run)

    def _exited(self, run: ManagedRun, status: dict[str, Any] | None) -> None:
        del self.runs[run.id]
        if status is None or status["state"] in _FINISHED or status["state"] == "Scheduled":
            return
        code = run.handle.exit_code
        output = _tail(run.output)
        if status["state"] == "Cancelling":
            self.api.end_run(run.id, "Cancelled", f"The flow-run process exited (status {code}) while the run was being cancelled.", "Cancelled")
            return
        if status["state"] != "Submitted":  # it was running: a lost run, rescheduled by the server's reaper
            self.api.log(run.id, f"The flow-run process exited with status {code} while {status['state']}; the server's "
                         "reaper reschedules the run when its heartbeat lease expires.", "WARNING")
            return
        message = (f"The flow-run process of flow run {run.id} exited with status {code} before the run started "
                   f"(agent {self.name}).")
        if output:
            message += f" Its last output:\n{output}"
        self.api.end_run(run.id, "Failed", message, "Failed")

    def _kill(self, run: ManagedRun, already: bool = False) -> None:
        run.environment.kill(run.handle, grace_period=self.kill_grace_period)
        if not already:
            self.api.end_run(
                run.id, "Cancelled",
                f"Agent {self.name} killed the flow-run process: it did not stop within the {self.cancel_grace_period:g} s "
                "grace period after the cancel request.",
                "Cancelled",
            )
        self.runs.pop(run.id, None)

    # --- deploying --------------------------------------------------------------------------------

    def environment_for(self, run: dict[str, Any]) -> Any:
        """The run config of the run as an Environment (from the ``environment`` registry; default UniversalRun)."""
        from headwater.serialization.converter import from_dict

        data = run.get("run_config")
        if not data:
            from headwater.run_configs import UniversalRun

            return UniversalRun()
        return from_dict(data, "environment")

    def deploy(self, run: dict[str, Any]) -> ManagedRun | None:
        """Start the claimed run; on any failure end it Failed with the reason (never left in Submitted)."""
        from headwater.serialization.converter import from_dict

        rid = run["id"]
        flow = run["flow"]
        output = self.log_dir / f"{rid}.log"
        stage = "restoring the run config"
        try:
            environment = self.environment_for(run)
            stage = "restoring the storage"
            if not flow.get("storage"):
                raise ValueError("the flow has no storage metadata; register it with `headwater register`.")
            storage = from_dict(flow["storage"], "storage")
            location = storage.flows.get(flow["name"])
            if location is None:
                raise KeyError(f"the storage holds no flow named {flow['name']!r}")
            stage = f"setting up {type(environment).__name__}"
            environment.setup(storage)
            stage = f"starting {type(environment).__name__}"
            env = {"HEADWATER__CLOUD__API": self.client.api, **self.env}
            if self.client.api_key:
                env["HEADWATER__CLOUD__API_KEY"] = self.client.api_key
            handle = environment.execute(
                storage, location, command=flow_run_command(rid), flow_run_id=rid, parameters=run.get("parameters"),
                context=run.get("context"), env=env, stdout=str(output), stderr=subprocess_stdout(),
            )
        except Exception as exc:
            message = (f"Agent {self.name} could not deploy flow run {rid} of flow {flow.get('name')!r} while {stage}: "
                       f"{type(exc).__name__}: {exc}")
            _log.error(message)
            print(message, file=sys.stderr, flush=True)
            self.api.end_run(rid, "Failed", message)
            return None
        managed = ManagedRun(rid, environment, handle, output)
        self.runs[rid] = managed
        self.deployed += 1
        try:
            self.api.log(rid, f"Agent {self.name} deployed flow run {rid} with {type(environment).__name__} (pid {handle.pid}).")
        except Exception as exc:  # the run is started; a lost deploy log is not worth failing it
            print(f"Agent {self.name}: could not log the deploy of {rid}: {exc}", file=sys.stderr, flush=True)
        return managed


def subprocess_stdout() -> int:
    """``stderr=subprocess.STDOUT``: the flow run's stderr goes to the same file as its stdout."""
    import subprocess

    return subprocess.STDOUT
