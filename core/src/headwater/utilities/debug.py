"""Debugging helpers (Prefect 1's ``prefect.utilities.debug``).

``with raise_on_exception(): flow.run()`` re-raises the first exception a task raises, out of
``flow.run()``, instead of turning it into a Failed state: step into it with a debugger.
``is_serializable(obj)`` says whether ``obj`` survives cloudpickle in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["raise_on_exception", "is_serializable", "RAISE_ON_EXCEPTION"]

RAISE_ON_EXCEPTION = [False]
"""Set by :func:`raise_on_exception` (a list, so the task runner reads the live value)."""


class RaisedInTask(BaseException):  # noqa: N818 - not an error of its own, a carrier
    """Carries a task's exception out of the engine (a BaseException, so no ``except Exception`` stops it)."""

    def __init__(self, exc: BaseException) -> None:
        super().__init__(exc)
        self.exc = exc


@contextmanager
def raise_on_exception() -> Iterator[None]:
    """Within the block, an exception raised by a task propagates out of ``flow.run()`` unchanged.

    Works with the executors that run tasks in this process (the default LocalExecutor and
    ThreadExecutor); a process pool's workers do not see the switch.
    """
    previous = RAISE_ON_EXCEPTION[0]
    RAISE_ON_EXCEPTION[0] = True
    try:
        yield
    except RaisedInTask as carrier:
        raise carrier.exc.with_traceback(carrier.exc.__traceback__) from None
    finally:
        RAISE_ON_EXCEPTION[0] = previous


def is_serializable(obj: Any, raise_on_error: bool = False) -> bool:
    """Whether ``obj`` pickles with cloudpickle here and unpickles in a fresh Python process.

    As in Prefect 1, the check is done in a subprocess so a missing import (a class defined in
    ``__main__``, a module not installed) is caught. ``raise_on_error=True`` raises
    ``subprocess.CalledProcessError`` with the unpickling error instead of returning False.
    """
    import cloudpickle

    try:
        data = cloudpickle.dumps(obj)
    except Exception:
        if raise_on_error:
            raise
        return False
    with tempfile.NamedTemporaryFile(suffix=".pkl") as fh:
        fh.write(data)
        fh.flush()
        code = f"import cloudpickle; cloudpickle.load(open({fh.name!r}, 'rb'))"
        try:
            subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120)
        except subprocess.CalledProcessError:
            if raise_on_error:
                raise
            return False
    return True
