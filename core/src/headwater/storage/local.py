"""``Local`` storage: flows in a directory on this machine (default ``$HEADWATER_HOME/flows``).

Unlike Prefect 1's Local storage it never records the author's absolute paths: the default
directory is resolved on the machine that loads the flow, locations are relative to it, and
the code itself is stored (pickled by value, or the script's source).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from headwater.config.loader import headwater_home
from headwater.storage.base import FlowNotInStorageError, Storage, code_hash, content_location, slugify
from headwater.storage.pickling import dumps_flow, loads_flow
from headwater.storage.script import flow_from_script, relative_path, script_source, source_hash
from headwater.utilities.files import atomic_write

__all__ = ["Local"]


@attrs.define
class Local(Storage):
    """Flows in ``directory`` (None: ``$HEADWATER_HOME/flows`` of whichever machine loads them).

    ``stored_as_script=True`` stores the script's source (from ``path``, or the file the flow
    was loaded from) instead of a pickle.
    """

    directory: str | None = None
    stored_as_script: bool = False
    path: str | None = attrs.field(default=None, converter=relative_path)

    def root(self) -> Path:
        return Path(self.directory).expanduser() if self.directory else headwater_home() / "flows"

    def location_for(self, flow: Any) -> str:
        if self.stored_as_script:
            return f"{slugify(flow.name)}/{source_hash(script_source(flow, self.path))}.py"
        return f"{slugify(flow.name)}/{code_hash(flow)}.flow"

    def _write(self, flow: Any, location: str) -> None:
        data = script_source(flow, self.path).encode() if self.stored_as_script else dumps_flow(flow)
        target = self.root() / location
        if target.exists():
            if target.read_bytes() == data:
                return
            location = content_location(location, data)  # a location's bytes never change: new bytes, new location
            self.flows[flow.name] = location
            target = self.root() / location
            if target.exists():  # named by its own content: already the same bytes
                return
        atomic_write(target, data)

    def get_flow(self, location: str) -> Any:
        self._require(location)
        file = self.root() / location
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise FlowNotInStorageError(
                f"Local storage: {str(file)!r} does not exist on this machine. The flow was built into "
                f"{self.directory or '$HEADWATER_HOME/flows'} on the machine that registered it; run the agent where "
                "that directory is, or use a shared storage (FileSystem, S3, git)."
            ) from None
        if location.endswith(".py"):
            return flow_from_script(data.decode(), self._name_at(location), f"Local storage {location!r}", str(file))
        return loads_flow(data, f"Local storage {location!r}")
