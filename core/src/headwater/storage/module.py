"""``Module`` storage: the flow lives in an importable module, imported at run time."""

from __future__ import annotations

from typing import Any

import attrs

from headwater.storage.base import Storage

__all__ = ["Module"]


@attrs.define
class Module(Storage):
    """``Module("package.module")`` or ``Module("package.module:flow")``: import the module where the flow runs."""

    module: str = attrs.field(default="")

    @module.validator
    def _check(self, attribute: Any, value: str) -> None:
        if not value or not isinstance(value, str):
            raise ValueError("Module storage needs an importable module path, e.g. Module('my_package.flows').")

    def location_for(self, flow: Any) -> str:
        return f"{self.module}#{flow.name}"

    def add_flow(self, flow: Any) -> str:
        location = super().add_flow(flow)
        self._pending.clear()  # nothing to write
        return location

    def _write(self, flow: Any, location: str) -> None:
        return None

    def get_flow(self, location: str) -> Any:
        from headwater.utilities.flow_files import load_flows_from_module, pick_flow

        self._require(location)
        target, _, flow_name = location.partition("#")
        module, _, attr = target.partition(":")
        flows = load_flows_from_module(module)
        if attr:
            import importlib

            flow = getattr(importlib.import_module(module), attr, None)
            if flow is None:
                raise ValueError(f"Module storage: {module!r} has no attribute {attr!r}.")
            return flow
        return pick_flow(flows, flow_name or self._name_at(location), f"module {module!r}")
