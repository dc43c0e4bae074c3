"""``FileSystem`` storage: flows at any fsspec URL (``file://``, ``memory://``, ``s3://``, ``gcs://``, ``sftp://`` ...)."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs

from headwater.storage.base import FlowNotInStorageError, Storage, code_hash, content_location, slugify
from headwater.storage.pickling import dumps_flow, loads_flow
from headwater.storage.script import flow_from_script, relative_path, script_path, script_source, source_hash

__all__ = ["FileSystem"]

_SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache", ".tox"}


def _project_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            if not name.endswith((".pyc", ".pyo")):
                files.append(Path(dirpath) / name)
    return files


@attrs.define
class FileSystem(Storage):
    """Flows under ``url`` on any fsspec filesystem.

    ``stored_as_script=True`` stores the script (``path``) instead of a pickle; with
    ``project_dir`` the whole directory is uploaded too and fetched next to the script at run
    time, so sibling modules import. ``storage_options`` go to fsspec (credentials, endpoint).
    """

    url: str = attrs.field(default="")
    stored_as_script: bool = False
    path: str | None = attrs.field(default=None, converter=relative_path)
    project_dir: str | None = attrs.field(default=None, converter=relative_path)
    storage_options: dict[str, Any] = attrs.field(factory=dict, repr=False)

    @url.validator
    def _check_url(self, attribute: Any, value: str) -> None:
        if not value:
            raise ValueError("FileSystem storage needs a url, e.g. FileSystem('s3://bucket/flows') or 'file:///srv/flows'.")

    def _fs(self) -> tuple[Any, str]:
        import fsspec

        try:
            fs, root = fsspec.core.url_to_fs(self.url, **self.storage_options)
        except (ImportError, ValueError) as exc:
            from headwater.plugins.known import protocol_hint

            protocol = self.url.split("://", 1)[0]
            hint = protocol_hint(protocol) or f"install the fsspec implementation for {protocol!r}"
            raise RuntimeError(f"FileSystem storage cannot open {self.url!r}: {exc}. Fix: {hint}.") from exc
        return fs, root.rstrip("/")

    def _project_root(self) -> Path | None:
        return Path(self.project_dir) if self.project_dir else None

    def location_for(self, flow: Any) -> str:
        if not self.stored_as_script:
            return f"{slugify(flow.name)}/{code_hash(flow)}.flow"
        root = self._project_root()
        if root is None:
            return f"{slugify(flow.name)}/{source_hash(script_source(flow, self.path))}.py"
        digest = hashlib.sha256()
        for file in _project_files(root):
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes())
        script = script_path(flow, self.path)
        rel = os.path.relpath(script, root)
        return f"{slugify(flow.name)}/{digest.hexdigest()[:16]}/{rel}"

    def _write(self, flow: Any, location: str) -> None:
        fs, root = self._fs()
        root_dir = self._project_root()
        if self.stored_as_script and root_dir is not None:
            base = location.split("/", 2)
            prefix = f"{root}/{base[0]}/{base[1]}"
            if fs.exists(f"{prefix}/.complete"):
                return
            for file in _project_files(root_dir):
                rel = file.relative_to(root_dir).as_posix()
                fs.makedirs(f"{prefix}/{os.path.dirname(rel)}".rstrip("/"), exist_ok=True)
                fs.pipe_file(f"{prefix}/{rel}", file.read_bytes())
            fs.pipe_file(f"{prefix}/.complete", b"")  # written last: readers only trust complete uploads
            return
        data = script_source(flow, self.path).encode() if self.stored_as_script else dumps_flow(flow)
        target = f"{root}/{location}"
        if fs.exists(target):
            if fs.cat_file(target) == data:
                return
            location = content_location(location, data)  # a location's bytes never change: new bytes, new location
            self.flows[flow.name] = location
            target = f"{root}/{location}"
            if fs.exists(target):
                return
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        fs.pipe_file(target, data)

    def get_flow(self, location: str) -> Any:
        self._require(location)
        fs, root = self._fs()
        name = self._name_at(location)
        if self.stored_as_script and self.project_dir:
            slug, digest, rel = location.split("/", 2)
            prefix = f"{root}/{slug}/{digest}"
            if not fs.exists(f"{prefix}/.complete"):
                raise FlowNotInStorageError(f"FileSystem storage: no complete project upload at {prefix!r}; run build().")
            local = Path(tempfile.mkdtemp(prefix="headwater-project-"))
            fs.get(f"{prefix}/", str(local) + "/", recursive=True)
            script = local / rel
            sys.path.insert(0, str(script.parent))
            if str(local) not in sys.path:
                sys.path.insert(0, str(local))
            return flow_from_script(script.read_text(), name, f"FileSystem storage {location!r}", str(script))
        target = f"{root}/{location}"
        try:
            data = fs.cat_file(target)
        except FileNotFoundError:
            raise FlowNotInStorageError(f"FileSystem storage: {self.url.rstrip('/')}/{location} does not exist; run build().") from None
        if location.endswith(".py"):
            return flow_from_script(data.decode(), name, f"FileSystem storage {location!r}")
        return loads_flow(data, f"FileSystem storage {location!r}")
