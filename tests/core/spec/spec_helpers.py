"""Functions that spec tests call through the ``python`` task type (also from worker subprocesses).

This directory is on ``sys.path`` in the tests (pytest puts it there) and on ``PYTHONPATH``
of the worker processes the tests start.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

_calls = 0


def add(a: float, b: float) -> float:
    return a + b


def boom(message: str = "boom") -> None:
    raise RuntimeError(message)


def not_json() -> object:
    return object()


def _write(log: str, record: dict[str, Any]) -> None:
    with open(log, "a", encoding="utf-8") as f:  # one short line per write: appends do not interleave
        f.write(json.dumps(record) + "\n")


def record(log: str, flow: str, task: str, sleep: float = 0.0) -> str:
    """Log that this process ran ``task`` of ``flow`` from a start to an end time.

    With ``HW_TEST_HANG_AT=N`` in the environment, the N-th call in this process logs a
    ``hang`` event and then sleeps until the process is killed (a worker dying mid-tick).
    """
    global _calls
    _calls += 1
    pid = os.getpid()
    start = time.time()
    if int(os.environ.get("HW_TEST_HANG_AT", "0")) == _calls:
        _write(log, {"event": "hang", "pid": pid, "flow": flow, "task": task, "start": start})
        time.sleep(3600)
    time.sleep(sleep)
    _write(log, {"event": "ran", "pid": pid, "flow": flow, "task": task, "start": start, "end": time.time()})
    return f"{task} done"
