"""{{ cookiecutter.storage_class }}: flows pickled into files under ``root``. Swap the file I/O for your backend's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from headwater.plugins import (FlowNotInStorageError, Storage, atomic_write, code_hash, content_location, dumps_flow,
                               loads_flow, slugify)

__all__ = ["{{ cookiecutter.storage_class }}"]


@attrs.define
class {{ cookiecutter.storage_class }}(Storage):
    """Keeps each flow's code in ``root`` (a directory), where a flow-run process can load it."""

    root: str = attrs.field(validator=attrs.validators.min_len(1))

    def location_for(self, flow: Any) -> str:  # pure and content-addressed: same code, same location
        return f"{slugify(flow.name)}/{code_hash(flow)}.flow"

    def _write(self, flow: Any, location: str) -> None:  # build() calls it once per added flow
        path, data = Path(self.root, location), dumps_flow(flow)
        if not path.is_file():
            atomic_write(path, data)
        elif path.read_bytes() != data:  # a stored location never gets new bytes: new bytes, new location
            self.flows[flow.name] = location = content_location(location, data)
            atomic_write(Path(self.root, location), data)

    def get_flow(self, location: str) -> Any:
        self._require(location)
        path = Path(self.root, location)
        if not path.is_file():
            raise FlowNotInStorageError(f"{{ cookiecutter.storage_class }}: {str(path)!r} is missing; run build() first.")
        return loads_flow(path.read_bytes(), f"{{ cookiecutter.storage_class }} {location!r}")
