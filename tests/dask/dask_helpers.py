"""Tasks and helpers of the headwater-dask tests (pickled by value, so Dask workers need not import this file)."""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from headwater import context, task

__all__ = ["bump", "retry_or_sleep", "pid_then_sleep", "nap", "big_len", "make_lock", "take", "shout", "whoami",
           "plus_one", "blob_of", "sleep_then", "task_prefixes"]


def bump(path: Path) -> int:
    """Count one call in ``path`` (one file per counter, appended atomically); the new count."""
    import fcntl

    with open(path, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        count = len(fh.read()) + 1
        fh.write("x")
    return count


@task(max_retries=1, retry_delay=timedelta(0), timeout=2.0)
def retry_or_sleep(x: int, folder: str) -> int:
    """Items x % 100 == 7 fail their first attempt; items x % 250 == 3 sleep past the timeout; the rest return 2x."""
    if x % 250 == 3:
        time.sleep(4)
    if x % 100 == 7 and bump(Path(folder) / f"{x}") == 1:
        raise RuntimeError(f"item {x}: first attempt fails on purpose")
    return 2 * x


@task
def pid_then_sleep(folder: str, seconds: float) -> int:
    """First attempt: write this worker's pid to ``folder/pid`` and sleep (to be killed); later ones return at once."""
    marker = Path(folder) / "pid"
    attempts = bump(Path(folder) / "attempts")
    if attempts == 1:
        marker.write_text(str(os.getpid()))
        time.sleep(seconds)
    return attempts


@task
def nap(seconds: float, folder: str | None = None) -> float:
    if folder:
        bump(Path(folder) / "started")
    time.sleep(seconds)
    return seconds


@task
def big_len(blob: bytes, i: int) -> int:
    return len(blob) + i


@task
def make_lock() -> Any:
    return threading.Lock()


@task
def take(value: Any) -> str:
    return type(value).__name__


@task(log_stdout=True)
def shout(word: str) -> str:
    print(f"shouting {word}")
    context.get("logger").warning("warned about %s", word)
    return word.upper()


@task
def whoami(i: int = 0) -> int:
    return os.getpid()


@task
def plus_one(x: int) -> int:
    return x + 1


@task
def blob_of(size: int) -> bytes:
    return b"x" * size


def sleep_then(value: Any, seconds: float) -> Any:
    time.sleep(seconds)
    return value


def task_prefixes(dask_scheduler: Any) -> list[str]:
    """The scheduler's task prefixes (Dask keeps one per key prefix, with its duration statistics)."""
    return [str(name) for name in dask_scheduler.task_prefixes]
