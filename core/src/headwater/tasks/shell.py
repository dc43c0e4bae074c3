"""``ShellTask``: run a shell command as a task (Prefect-1 compatible).

The command (with an optional helper script in front of it) is written to a temporary file
and run as ``<shell> <file>``, so multi-line commands and shell functions work as in a
script. The task's result is the last line the command printed to stdout, or every line
with ``return_all=True``; a non-zero exit status fails the task with the command, the exit
code and the tail of its output in the message.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Mapping
from typing import IO, Any

from headwater import signals
from headwater.core.task import Task
from headwater.utilities.context import context

__all__ = ["ShellTask", "TAIL_LINES"]

TAIL_LINES = 20
"""How many of the last output lines a failure message (and ``log_stderr``) shows."""


def _stream_level(value: bool | int | str | None) -> int | None:
    """``stream_output`` as a logging level: True is INFO, a name or number is that level, False/None is off."""
    if value is None or value is False:
        return None
    if value is True:
        return logging.INFO
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        level = logging.getLevelNamesMapping().get(value.strip().upper())
        if level is not None:
            return level
    raise ValueError(
        f"ShellTask: stream_output must be True/False or a logging level name or number "
        f"(e.g. 'DEBUG', 'INFO', 20), got {value!r}."
    )


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").rstrip("\r\n")


def _environment(*layers: Mapping[str, Any] | None) -> dict[str, str]:
    """``os.environ`` with each layer of ``layers`` merged over it (values made strings)."""
    merged = dict(os.environ)
    for layer in layers:
        for key, value in (layer or {}).items():
            if value is None:
                raise ValueError(
                    f"ShellTask: environment variable {key!r} is None; give it a string value or leave it out."
                )
            merged[str(key)] = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    return merged


class ShellTask(Task):
    """Run a shell command; the result is the last line of stdout (all lines with ``return_all``).

    Args:
        command: the command to run (a ``run(command=...)`` argument replaces it).
        env: environment variables merged over ``os.environ`` (``run(env=...)`` is merged over these).
        helper_script: shell code run before the command in the same shell (functions, ``cd``, exports).
        shell: the shell program, looked up on ``PATH`` (``bash`` by default; ``sh``, ``zsh`` ...).
        return_all: return every stdout line as a list instead of the last one.
        stream_output: send each stdout and stderr line to the task logger as it arrives:
            ``True`` logs at INFO, a level name or number logs at that level.
        log_stderr: when the command fails, also log the tail of its stderr at ERROR.
        **task_kwargs: the usual :class:`~headwater.Task` options (name, max_retries, timeout ...).

    The exit status is that of the last command in the script, as in any shell script; put
    ``set -e`` in ``helper_script`` to stop at the first failing command.
    """

    def __init__(
        self,
        command: str | None = None,
        env: Mapping[str, Any] | None = None,
        helper_script: str | None = None,
        shell: str = "bash",
        return_all: bool = False,
        stream_output: bool | int | str = False,
        log_stderr: bool = False,
        **task_kwargs: Any,
    ) -> None:
        if not shell or not isinstance(shell, str):
            raise ValueError(f"ShellTask: shell must be the name or path of a shell program, got {shell!r}.")
        self.command = command
        self.env = dict(env) if env is not None else None
        self.helper_script = helper_script
        self.shell = shell
        self.return_all = return_all
        _stream_level(stream_output)  # fail early on a bad level
        self.stream_output = stream_output
        self.log_stderr = log_stderr
        super().__init__(**task_kwargs)

    def run(
        self,
        command: str | None = None,
        env: Mapping[str, Any] | None = None,
        helper_script: str | None = None,
    ) -> str | list[str] | None:
        """Run ``command`` (or the one given at init); return the last stdout line, or all lines.

        Raises :class:`~headwater.signals.FAIL` when the command exits non-zero. A command
        that prints nothing returns None (``[]`` with ``return_all``).
        """
        command = command if command is not None else self.command
        if command is None or not str(command).strip():
            raise ValueError(
                f"Task {self.name!r}: no command to run. Pass one when creating the task, "
                f"ShellTask(command='echo hi'), or when calling it, task(command='echo hi')."
            )
        helper = helper_script if helper_script is not None else self.helper_script
        script = f"{helper}\n{command}\n" if helper else f"{command}\n"
        environment = _environment(self.env, env)
        logger: logging.Logger = context.get("logger") or logging.getLogger("headwater")
        level = _stream_level(self.stream_output)

        with tempfile.NamedTemporaryFile("w", prefix="headwater-shell-", suffix=".sh", encoding="utf-8") as tmp:
            tmp.write(script)
            tmp.flush()
            try:
                process = subprocess.Popen(
                    [self.shell, tmp.name],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    env=environment,
                )
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"Task {self.name!r}: shell {self.shell!r} was not found. Install it, or pass "
                    f"ShellTask(shell=...) with a shell that is on PATH (e.g. 'bash' or 'sh')."
                ) from None
            tail: deque[str] = deque(maxlen=TAIL_LINES)
            stderr_tail: deque[str] = deque(maxlen=TAIL_LINES)
            lock = threading.Lock()
            lines: list[str] = []
            last: str | None = None
            reader = threading.Thread(
                target=self._read_stderr,
                args=(process.stderr, tail, stderr_tail, lock, logger, level),
                name=f"headwater-shell-stderr-{self.name}",
                daemon=True,
            )
            reader.start()
            try:
                assert process.stdout is not None
                for raw in iter(process.stdout.readline, b""):
                    line = _decode(raw)
                    last = line
                    if self.return_all:
                        lines.append(line)
                    with lock:
                        tail.append(line)
                    if level is not None:
                        logger.log(level, line)
                returncode = process.wait()
                reader.join()
            finally:
                if process.poll() is None:  # the reading was interrupted: do not leave the command behind
                    process.kill()
                    process.wait()
                    reader.join(timeout=5)
                for pipe in (process.stdout, process.stderr):
                    if pipe is not None:
                        pipe.close()

        if returncode != 0:
            shown = command if len(command) <= 200 else command[:197] + "..."
            output = "\n".join(tail) if tail else "(no output)"
            if self.log_stderr:
                logger.error("stderr of the failed command:\n%s", "\n".join(stderr_tail) or "(empty)")
            raise signals.FAIL(
                f"Command failed with exit code {returncode}: {shown!r}\n"
                f"Last {len(tail)} line(s) of output:\n{output}"
            )
        return lines if self.return_all else last

    @staticmethod
    def _read_stderr(
        pipe: IO[bytes] | None,
        tail: deque[str],
        stderr_tail: deque[str],
        lock: threading.Lock,
        logger: logging.Logger,
        level: int | None,
    ) -> None:
        """Drain stderr line by line (in a thread, so a chatty stderr never blocks stdout)."""
        if pipe is None:
            return
        for raw in iter(pipe.readline, b""):
            line = _decode(raw)
            stderr_tail.append(line)
            with lock:
                tail.append(line)
            if level is not None:
                logger.log(level, line)
