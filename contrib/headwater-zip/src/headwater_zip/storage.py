"""``ZipStorage``: flows pickled into one zip archive on local disk.

One file holds every flow of a project, so it is easy to copy to another machine, attach to
a release or keep next to the code. Members are named like the other storages' locations,
``<flow-name>/<code-hash>.flow``, so the archive is content-addressed: building an unchanged
flow again adds nothing, a changed flow adds a new member beside the old one.

Writes are atomic: a new archive (the old members plus the new one) is written next to the
old one and renamed over it, so a reader never sees half an archive.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import attrs

from headwater.plugins import (
    FlowNotInStorageError,
    Storage,
    code_hash,
    content_location,
    dumps_flow,
    loads_flow,
    slugify,
)

__all__ = ["ZipStorage", "COMPRESSIONS"]

COMPRESSIONS = {"stored": zipfile.ZIP_STORED, "deflated": zipfile.ZIP_DEFLATED, "bzip2": zipfile.ZIP_BZIP2, "lzma": zipfile.ZIP_LZMA}
"""Names accepted by ``compression``."""


@attrs.define
class ZipStorage(Storage):
    """Flows in the zip archive ``path`` (created by the first ``build()``).

    ``compression`` is ``"deflated"`` (default), ``"stored"``, ``"bzip2"`` or ``"lzma"``.
    """

    path: str = attrs.field(default="")
    compression: str = attrs.field(default="deflated")

    @path.validator
    def _check_path(self, attribute: Any, value: str) -> None:
        if not value:
            raise ValueError("ZipStorage needs the path of its archive, e.g. ZipStorage(path='/srv/flows.zip').")

    @compression.validator
    def _check_compression(self, attribute: Any, value: str) -> None:
        if value not in COMPRESSIONS:
            raise ValueError(f"ZipStorage compression {value!r} is not one of {', '.join(COMPRESSIONS)}.")

    def archive(self) -> Path:
        """The archive's path on this machine."""
        return Path(self.path).expanduser()

    def location_for(self, flow: Any) -> str:
        return f"{slugify(flow.name)}/{code_hash(flow)}.flow"

    def members(self) -> list[str]:
        """The names in the archive (empty if it does not exist yet)."""
        try:
            with zipfile.ZipFile(self.archive()) as archive:
                return archive.namelist()
        except FileNotFoundError:
            return []

    def _write(self, flow: Any, location: str) -> None:
        target = self.archive()
        data = dumps_flow(flow)
        if location in self.members():
            with zipfile.ZipFile(target) as archive:
                if archive.read(location) == data:
                    return  # content-addressed: these very bytes are already there
            location = content_location(location, data)  # a location's bytes never change: new bytes, new location
            self.flows[flow.name] = location
            if location in self.members():
                return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", compression=COMPRESSIONS[self.compression]) as new:
                if target.exists():
                    with zipfile.ZipFile(target) as old:
                        for info in old.infolist():
                            with old.open(info) as src, new.open(info, "w") as dst:
                                shutil.copyfileobj(src, dst)
                new.writestr(location, data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_flow(self, location: str) -> Any:
        self._require(location)
        try:
            with zipfile.ZipFile(self.archive()) as archive:
                data = archive.read(location)
        except FileNotFoundError:
            raise FlowNotInStorageError(
                f"ZipStorage: the archive {str(self.archive())!r} does not exist on this machine; "
                "call build() where the flows were added, and copy the archive here."
            ) from None
        except KeyError:
            raise FlowNotInStorageError(
                f"ZipStorage: {str(self.archive())!r} has no member {location!r}; call build() after add_flow()."
            ) from None
        return loads_flow(data, f"ZipStorage {self.path}!{location}")
