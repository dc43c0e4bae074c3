"""Cancelling a flow run cancels its Dask work (a bridge until the engine calls ``Executor.cancel()`` itself).

The engine turns a cancel request into the flow state ``Cancelling`` (in the thread that
runs the flow, the one that entered ``executor.start()``) and then only stops starting
tasks: running ones are awaited. While a flow runs, the plugin's ``before_flow_run`` hook
adds :func:`on_flow_state` to the flow's state handlers (``after_flow_run`` takes it away
again); on ``Cancelling`` it calls ``cancel()`` of the Dask executors running in that thread,
so their futures are cancelled and their task runs end ``Cancelled``. Standard library only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["cancelling_cancels", "attach", "detach", "on_flow_state"]

_lock = threading.Lock()
_active: dict[int, list[Callable[[], int]]] = {}
_attached: dict[int, int] = {}  # id(flow) -> flow runs in progress that added the handler


@contextmanager
def cancelling_cancels(cancel: Callable[[], int]) -> Iterator[None]:
    """While the block runs, ``Cancelling`` of a flow run in this thread calls ``cancel()``."""
    ident = threading.get_ident()
    with _lock:
        _active.setdefault(ident, []).append(cancel)
    try:
        yield
    finally:
        with _lock:
            callbacks = _active.get(ident, [])
            if cancel in callbacks:
                callbacks.remove(cancel)
            if not callbacks:
                _active.pop(ident, None)


def on_flow_state(flow: Any, old: Any, new: Any) -> None:
    """A flow state handler: on ``Cancelling``, cancel the Dask work of this thread's flow run."""
    if type(new).__name__ != "Cancelling":
        return None
    with _lock:
        callbacks = list(_active.get(threading.get_ident(), ()))
    for cancel in callbacks:
        cancel()
    return None


def attach(flow: Any) -> None:
    handlers = getattr(flow, "state_handlers", None)
    if not isinstance(handlers, list):
        return
    with _lock:
        count = _attached.get(id(flow), 0)
        if count == 0 and on_flow_state not in handlers:
            handlers.append(on_flow_state)
        _attached[id(flow)] = count + 1


def detach(flow: Any) -> None:
    handlers = getattr(flow, "state_handlers", None)
    with _lock:
        count = _attached.get(id(flow), 0) - 1
        if count > 0:
            _attached[id(flow)] = count
            return
        _attached.pop(id(flow), None)
        if isinstance(handlers, list) and on_flow_state in handlers:
            handlers.remove(on_flow_state)
