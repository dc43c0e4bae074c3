"""The "heavy" module: imported only when TestDir or TestInline is really used.

If ``HEADWATER_TESTPLUGIN_MARKER`` names a file, importing this module appends a line to it,
so the tests can tell whether a command imported it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import attrs

from headwater.environments.base import Environment, RunHandle
from headwater.storage.base import FlowNotInStorageError, Storage, code_hash, content_location, slugify
from headwater.storage.pickling import dumps_flow, loads_flow

if os.environ.get("HEADWATER_TESTPLUGIN_MARKER"):
    with open(os.environ["HEADWATER_TESTPLUGIN_MARKER"], "a", encoding="utf-8") as _marker:
        _marker.write("headwater_testplugin.heavy imported\n")


@attrs.define
class DirStorage(Storage):
    """Pickled flows in ``directory``."""

    directory: str = ""

    def location_for(self, flow: Any) -> str:
        return f"{slugify(flow.name)}/{code_hash(flow)}.flow"

    def _write(self, flow: Any, location: str) -> None:
        data = dumps_flow(flow)
        target = Path(self.directory) / location
        if target.exists():
            if target.read_bytes() == data:
                return
            location = content_location(location, data)  # a location's bytes never change: new bytes, new location
            self.flows[flow.name] = location
            target = Path(self.directory) / location
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def get_flow(self, location: str) -> Any:
        self._require(location)
        try:
            data = (Path(self.directory) / location).read_bytes()
        except FileNotFoundError:
            raise FlowNotInStorageError(f"TestDir storage: {location!r} was not built.") from None
        return loads_flow(data, f"TestDir storage {location!r}")


@attrs.define
class InlineEnvironment(Environment):
    """Runs the flow in a thread of this process; ``kill`` cancels it between tasks."""

    def execute(self, storage: Any, flow_location: str, **run_context: Any) -> RunHandle:
        cancel = threading.Event()
        handle = RunHandle(environment="TestInline")
        runner = storage.get_runner(flow_location)

        def target() -> None:
            try:
                handle.state = runner(parameters=run_context.get("parameters"), cancel=cancel)
            except BaseException as exc:  # noqa: BLE001 - reported as the run's status
                handle.state = exc

        thread = threading.Thread(target=target, name=f"TestInline {flow_location}", daemon=True)
        handle.process = (thread, cancel)
        thread.start()
        return handle

    def status(self, handle: RunHandle) -> str:
        thread, _ = handle.process
        if thread.is_alive():
            return "running"
        state = handle.state
        if getattr(state, "is_cancelled", lambda: False)():
            handle.status = "cancelled"
        elif getattr(state, "is_successful", lambda: False)():
            handle.status = "success"
        else:
            handle.status = "failed"
        return handle.status

    def kill(self, handle: RunHandle, grace_period: float = 10.0) -> None:
        thread, cancel = handle.process
        cancel.set()
        thread.join(grace_period)
