"""``SubprocessEnvironment``: run each flow run in a child Python process on this machine.

The child is ``python -m headwater.environments.run_from_env`` with the run described by
``HEADWATER__RUN__*`` variables (see :func:`headwater.storage.base.env_runner_variables`);
agents replace that command line with their own (``run_context["command"]``), e.g.
``headwater execute flow-run --id ID``, and still get the variables.

Process handling:

* the child starts in a new session, so it leads its own process group; :meth:`kill` signals
  the whole group (the flow's own child processes too): SIGTERM, then SIGKILL after the grace
  period for anything still alive;
* its environment is ``os.environ``, then the environment's ``env``, then the run context's
  ``env``, then the run variables (which always win); ``PYTHONUNBUFFERED=1`` unless set;
* its output is inherited (it appears where the agent's output goes) unless the run context
  gives ``stdout`` / ``stderr``: a file path (appended to), an open file, or
  ``subprocess.DEVNULL``. ``stderr=subprocess.STDOUT`` merges the two.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from headwater.environments.base import Environment, RunHandle

__all__ = ["SubprocessEnvironment", "RUN_FROM_ENV_MODULE", "env_converter"]

RUN_FROM_ENV_MODULE = "headwater.environments.run_from_env"
"""The module the child runs by default: ``python -m headwater.environments.run_from_env``."""

_FINAL = ("success", "failed", "cancelled")


def env_converter(value: Any) -> dict[str, str]:
    """Environment variables as a ``{str: str}`` dict (None is empty)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"env must be a mapping of variable names to values, got {type(value).__name__}: {value!r}.")
    return {str(k): str(v) for k, v in value.items()}


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (Linux: /proc; elsewhere: signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def _group_alive(pgid: int) -> bool:
    """True while any process of group ``pgid`` exists (zombies included; the leader is reaped first)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _output(target: Any, what: str) -> tuple[Any, IO[bytes] | None]:
    """``(value for Popen, file we opened and must close)`` for a ``stdout``/``stderr`` run-context entry."""
    if target is None or isinstance(target, int) or hasattr(target, "fileno"):
        return target, None
    if isinstance(target, (str, os.PathLike)):
        path = Path(target).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "ab")  # noqa: SIM115 - closed right after the child started
        return fh, fh
    raise TypeError(f"run context {what!r} must be a path, an open file, subprocess.DEVNULL or None; got {target!r}.")


@attrs.define
class SubprocessEnvironment(Environment):
    """Run flow runs as child processes: ``python -m headwater.environments.run_from_env``.

    ``env`` adds variables; ``working_dir`` is the child's working directory (default: the
    agent's); ``python`` is the interpreter (default: the one running the agent, resolved on
    the machine that runs the flow, so no author path is serialized).
    """

    env: dict[str, str] = attrs.field(factory=dict, converter=env_converter, kw_only=True)
    working_dir: str | None = attrs.field(default=None, kw_only=True)
    python: str | None = attrs.field(default=None, kw_only=True)

    # --- what the child gets ----------------------------------------------------------------

    def command(self) -> list[str]:
        """The default command line of the child."""
        return [self.python or sys.executable, "-m", RUN_FROM_ENV_MODULE]

    def child_env(self, storage: Any, flow_location: str, **run_context: Any) -> dict[str, str]:
        """The child's environment variables (see the module docstring for the order)."""
        from headwater.storage.base import env_runner_variables

        context = dict(run_context.get("context") or {})
        if run_context.get("flow_run_id") is not None:
            context.setdefault("flow_run_id", run_context["flow_run_id"])
        return {
            "PYTHONUNBUFFERED": "1",  # the child's output reaches log files as it happens (overridable)
            **os.environ,
            **self.env,
            **env_converter(run_context.get("env")),
            **env_runner_variables(storage, flow_location, run_context.get("parameters"), context),
        }

    def _cwd(self) -> str | None:
        if not self.working_dir:
            return None
        path = Path(self.working_dir).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(
                f"{type(self).__name__}: working_dir {self.working_dir!r} does not exist (or is not a directory) "
                f"on this machine (cwd {os.getcwd()!r}); create it or change the run config's working_dir."
            )
        return str(path)

    # --- the interface ------------------------------------------------------------------------

    def execute(self, storage: Any, flow_location: str, **run_context: Any) -> RunHandle:
        """Start the child and return at once; ``status``/``wait``/``kill`` follow it.

        ``run_context``: ``parameters``, ``context``, ``env``, ``flow_run_id``, ``command`` (a
        list replacing the default command line), ``stdout`` and ``stderr``.
        """
        from headwater.environments.local import _tag

        command = run_context.get("command")
        if command is None:
            argv = self.command()
        elif isinstance(command, (str, bytes)) or not isinstance(command, Sequence):
            raise TypeError(f"run context 'command' must be a list of arguments, got {command!r}.")
        else:
            argv = [str(part) for part in command]
        env = self.child_env(storage, flow_location, **run_context)
        cwd = self._cwd()
        opened: list[IO[bytes]] = []
        try:
            stdout, out_fh = _output(run_context.get("stdout"), "stdout")
            opened += [out_fh] if out_fh is not None else []
            stderr, err_fh = _output(run_context.get("stderr"), "stderr")
            opened += [err_fh] if err_fh is not None else []
            process = subprocess.Popen(  # noqa: S603 - the command is ours or the agent's
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        except OSError as exc:
            raise RuntimeError(
                f"{type(self).__name__} could not start {argv[0]!r}: {exc}. Check the `python` setting or the command."
            ) from exc
        finally:  # the child has its own copies of the descriptors
            for fh in opened:
                fh.close()
        return RunHandle(
            environment=_tag(self),
            pid=process.pid,
            id=run_context.get("flow_run_id"),
            process=process,
        )

    def status(self, handle: RunHandle) -> str:
        """Poll the child: ``running``, ``success`` (exit 0), ``failed`` (exit != 0) or ``cancelled`` (killed by us).

        A handle without its process object (made in another process) only knows whether the
        pid is alive: ``running`` or ``failed``.
        """
        process = handle.process
        if process is None:
            if handle.status in _FINAL:
                return handle.status
            alive = handle.pid is not None and _pid_alive(handle.pid)
            handle.status = "running" if alive else "failed"
            return handle.status
        code = process.poll()
        if code is None:
            return "running" if handle.status != "cancelled" else "cancelled"
        handle.exit_code = code
        if handle.status != "cancelled":
            handle.status = "success" if code == 0 else "failed"
        return handle.status

    def kill(self, handle: RunHandle, grace_period: float = 10.0) -> None:
        """SIGTERM the child's process group; SIGKILL what is left after ``grace_period`` seconds.

        Marks the run ``cancelled`` if it was still running. Returns once the child is gone.
        """
        if handle.pid is None or self.status(handle) in ("success", "failed"):
            return
        handle.status = "cancelled"
        pgid = handle.pid  # start_new_session: the child leads its own group
        process = handle.process
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + max(0.0, grace_period)
        while time.monotonic() < deadline:
            leader_done = process.poll() is not None if process is not None else not _pid_alive(pgid)
            if leader_done and not _group_alive(pgid):
                break
            time.sleep(0.05)
        _signal_group(pgid, signal.SIGKILL)
        if process is not None:
            try:
                process.wait(timeout=max(5.0, grace_period))
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
                pass
            handle.exit_code = process.returncode
