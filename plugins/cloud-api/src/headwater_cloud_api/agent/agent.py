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

from headwater.states import FINISHED_STATE_NAMES, SCHEDULED_STATE_NAMES

__all__ = ["Agent", "AgentAuthError", "Backoff", "ManagedRun", "flow_run_command", "problem_kind"]

_log = logging.getLogger("headwater.agent")
_FINISHED = FINISHED_STATE_NAMES | {"Finished"}


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
    attempt: int | None = None
    """The attempt this agent claimed: its end-of-run writes and logs are fenced with it."""


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


AUTH_HINT = ("Agents need an API key once the server has one: pass it with HEADWATER__CLOUD__API_KEY (or "
             "[cloud] api_key) and restart the agent; create keys before starting agents.")


class AgentAuthError(RuntimeError):
    """The API refuses the agent's key (HTTP 401/403)."""


def problem_kind(exc: BaseException) -> str:
    """``"auth"`` (HTTP 401/403), ``"unreachable"`` (no connection, a proxy's 502/503/504) or ``"other"``."""
    from headwater_cloud_api.client.transport import APIClientError, AuthenticationError

    if isinstance(exc, AuthenticationError):
        return "auth"
    if isinstance(exc, APIClientError):
        text = str(exc)
        if exc.code in ("UNAUTHENTICATED", "FORBIDDEN", "PERMISSION_DENIED") or "HTTP 401" in text or "HTTP 403" in text:
            return "auth"
        if exc.code in ("CONNECTION", "BAD_RESPONSE") or any(f"HTTP {c}" in text for c in (502, 503, 504)):
            return "unreachable"
        return "other"
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return "unreachable"
    return "other"


class Backoff:
    """How long the agent waits after a failed poll: doubling from ``base`` up to ``cap`` on auth/unreachable errors.

    Each distinct error is logged once per backoff step (the first time it is seen at that
    delay), so a locked-out agent writes a handful of lines, not two per poll.
    """

    def __init__(self, base: float, cap: float = 60.0) -> None:
        self.base = max(base, 0.01)
        self.cap = max(cap, self.base)
        self.delay = 0.0
        self.failures = 0
        self._logged: set[tuple[float, str]] = set()

    def failed(self, exc: BaseException, agent: str) -> float:
        """Record a failed poll; returns the seconds to wait before the next one (logging the error if new at this step)."""
        kind = problem_kind(exc)
        self.failures += 1
        if kind in ("auth", "unreachable"):
            self.delay = min(self.cap, max(self.base * 2, self.delay * 2 if self.delay else self.base * 2))
        else:
            self.delay = self.base
        key = (self.delay, f"{kind}: {exc}")
        if key not in self._logged:
            self._logged.add(key)
            hint = f" {AUTH_HINT}" if kind == "auth" else ""
            _log.warning("Agent %s: %s;%s retrying in %.3g s (backing off up to %.3g s).", agent, exc, hint, self.delay, self.cap)
        return self.delay

    def succeeded(self, agent: str) -> None:
        """A poll worked: back to the normal pace."""
        if self.failures:
            _log.info("Agent %s: the API answers again after %d failed poll(s).", agent, self.failures)
        self.delay = 0.0
        self.failures = 0
        self._logged.clear()


class Agent:
    """``Agent(client, labels=["staging"]).start()`` blocks until SIGTERM/SIGINT or :meth:`stop`."""

    def __init__(self, client: Any, labels: list[str] | tuple[str, ...] = (), name: str | None = None,
                 max_concurrent_runs: int = 10, poll_interval: float = 0.5, cancel_grace_period: float = 10.0,
                 kill_grace_period: float = 2.0, accepts_unlabeled: bool | None = None, log_dir: str | Path | None = None,
                 env: dict[str, str] | None = None, max_backoff: float = 60.0) -> None:
        from headwater.plugins import headwater_home

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
        self.backoff = Backoff(poll_interval, max_backoff)

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
        """Register, then poll until stopped; unregister at the end.

        A refused key at start raises :class:`AgentAuthError` (one clear line, nothing to retry).
        While polling, a refused key (HTTP 401/403) or an unreachable API makes the agent back
        off exponentially (``poll_interval`` doubling up to ``max_backoff``), logging each
        distinct error once per backoff step; the first answer again resets the pace.
        """
        from headwater_cloud_api.execution.runner import retrying

        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            retrying(self.api.register, f"agent {self.name}: registering", stop=self._stop)
        except Exception as exc:
            if problem_kind(exc) == "auth":
                raise AgentAuthError(f"Agent {self.name} cannot register: {exc}. {AUTH_HINT}") from None
            raise
        _log.info("Agent %s (%s) started with labels %s; polling every %s s", self.name, self.api.id, self.api.labels, self.poll_interval)
        print(f"Agent {self.name} ({self.api.id}) started, labels {','.join(self.api.labels) or '(none)'}.", flush=True)
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception as exc:  # the API is down, refuses the key, or answered oddly: keep going
                    self._stop.wait(self.backoff.failed(exc, self.name))
                    continue
                self.backoff.succeeded(self.name)
                self._stop.wait(self.poll_interval)
        finally:
            try:
                self.api.unregister()
            except Exception as exc:
                why = f"the API refuses this agent's key ({exc}); the server stops listing it as alive once its heartbeats stop" \
                    if problem_kind(exc) == "auth" else str(exc)
                _log.warning("Agent %s: could not unregister: %s", self.name, why)
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
        if status is None or status["state"] in _FINISHED or status["state"] in SCHEDULED_STATE_NAMES:
            return  # finished, scheduled again, or Paused: the process was meant to exit
        code = run.handle.exit_code
        output = _tail(run.output)
        if status["state"] == "Cancelling":
            self._end(run.id, run.attempt, "Cancelled", f"The flow-run process exited (status {code}) while the run was being "
                      "cancelled.", "Cancelled")
            return
        if status["state"] != "Submitted":  # it was running: a lost run, rescheduled by the server's reaper
            self._log_run(run.id, run.attempt, f"The flow-run process exited with status {code} while {status['state']}; the "
                          "server's reaper reschedules the run when its heartbeat lease expires.", "WARNING")
            return
        message = (f"The flow-run process of flow run {run.id} exited with status {code} before the run started "
                   f"(agent {self.name}).")
        if output:
            message += f" Its last output:\n{output}"
        self._end(run.id, run.attempt, "Failed", message, "Failed")

    def _end(self, run_id: str, attempt: int | None, state: str, message: str, task_state: str | None = None) -> None:
        """End the run ``state`` unless it moved on to a newer attempt (rescheduled and claimed again: not ours to end)."""
        from headwater_cloud_api.client.transport import APIClientError

        try:
            self.api.end_run(run_id, state, message, task_state, attempt=attempt)
        except APIClientError as exc:
            if exc.code != "SUPERSEDED":
                raise
            _log.info("Agent %s: flow run %s belongs to a newer attempt than %s; not ending it %s.", self.name, run_id, attempt, state)

    def _log_run(self, run_id: str, attempt: int | None, message: str, level: str = "INFO") -> None:
        from headwater_cloud_api.client.transport import APIClientError

        try:
            self.api.log(run_id, message, level, attempt=attempt)
        except APIClientError as exc:
            if exc.code != "SUPERSEDED":
                raise
            _log.info("Agent %s: flow run %s belongs to a newer attempt than %s; not logging: %s", self.name, run_id, attempt, message)

    def _kill(self, run: ManagedRun, already: bool = False) -> None:
        run.environment.kill(run.handle, grace_period=self.kill_grace_period)
        if not already:
            self._end(
                run.id, run.attempt, "Cancelled",
                f"Agent {self.name} killed the flow-run process: it did not stop within the {self.cancel_grace_period:g} s "
                "grace period after the cancel request.",
                "Cancelled",
            )
        self.runs.pop(run.id, None)

    # --- deploying --------------------------------------------------------------------------------

    def environment_for(self, run: dict[str, Any]) -> Any:
        """The run config of the run as an Environment (from the ``environment`` registry; default UniversalRun)."""
        from headwater.plugins import from_dict

        data = run.get("run_config")
        if not data:
            from headwater.run_configs import UniversalRun

            return UniversalRun()
        return from_dict(data, "environment")

    def deploy(self, run: dict[str, Any]) -> ManagedRun | None:
        """Start the claimed run; on any failure end it Failed with the reason (never left in Submitted)."""
        from headwater.plugins import from_dict

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
            if run.get("attempt") is not None:  # the run process fences its writes with the attempt this agent claimed
                env["HEADWATER_FLOW_RUN_ATTEMPT"] = str(run["attempt"])
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
            self._end(rid, run.get("attempt"), "Failed", message)
            return None
        managed = ManagedRun(rid, environment, handle, output, attempt=run.get("attempt"))
        self.runs[rid] = managed
        self.deployed += 1
        try:
            self._log_run(rid, managed.attempt, f"Agent {self.name} deployed flow run {rid} with {type(environment).__name__} "
                          f"(pid {handle.pid}).")
        except Exception as exc:  # the run is started; a lost deploy log is not worth failing it
            _log.warning("Agent %s: could not log the deploy of %s: %s", self.name, rid, exc)
        return managed


def subprocess_stdout() -> int:
    """``stderr=subprocess.STDOUT``: the flow run's stderr goes to the same file as its stdout."""
    import subprocess

    return subprocess.STDOUT
