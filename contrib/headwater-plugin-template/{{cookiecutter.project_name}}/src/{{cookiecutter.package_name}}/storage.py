"""``{{ cookiecutter.storage_class }}``: keeps flows where a flow-run process can load them.

The template stores pickled flows as files under ``root``; replace ``_write`` and
``get_flow`` with your backend's I/O. What the conformance kit checks:

- ``add_flow`` (the base class) only assigns a location: ``location_for`` must be pure and
  content-addressed (flow name + code hash, never a timestamp);
- ``build`` (the base class) calls ``_write`` once per new flow: make it safe to repeat;
- ``get_flow`` loads what ``_write`` wrote, also in a storage restored from ``serialize()``
  (that is what an agent gets), and raises ``FlowNotInStorageError`` for what is missing;
- every field is an attrs field of JSON-ready values, so the object round-trips.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import attrs

from headwater.storage.base import FlowNotInStorageError, Storage, code_hash, slugify
from headwater.storage.pickling import dumps_flow, loads_flow

__all__ = ["{{ cookiecutter.storage_class }}"]


@attrs.define
class {{ cookiecutter.storage_class }}(Storage):
    """Flows pickled into files under ``root`` (a directory on this machine)."""

    root: str = attrs.field(default="")

    @root.validator
    def _check_root(self, attribute: Any, value: str) -> None:
        if not value:
            raise ValueError("{{ cookiecutter.storage_class }} needs a root directory, e.g. {{ cookiecutter.storage_class }}(root='/srv/flows').")

    def location_for(self, flow: Any) -> str:
        return f"{slugify(flow.name)}/{code_hash(flow)}.flow"

    def _write(self, flow: Any, location: str) -> None:
        target = Path(self.root).expanduser() / location
        data = dumps_flow(flow)
        if target.exists() and target.read_bytes() == data:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "wb") as fh:  # write then rename: readers never see half a file
            fh.write(data)
        os.replace(tmp, target)

    def get_flow(self, location: str) -> Any:
        self._require(location)
        path = Path(self.root).expanduser() / location
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise FlowNotInStorageError(
                f"{{ cookiecutter.storage_class }}: {str(path)!r} does not exist; call build() after add_flow()."
            ) from None
        return loads_flow(data, f"{{ cookiecutter.storage_class }} {location!r}")
