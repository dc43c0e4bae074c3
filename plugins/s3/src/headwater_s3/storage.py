"""``S3`` storage: flows' code in an S3 bucket (Prefect 1's ``S3`` storage).

```python
from headwater.storage import S3

flow.storage = S3(bucket="etl-flows", client_options={"endpoint_url": "http://127.0.0.1:9000"})
```

Flows are stored as pickles (default) or, with ``stored_as_script=True``, as their script
(``local_script_path``; with ``project_dir`` the whole project directory is uploaded beside it
so helper modules import on the agent). Keys are content-addressed:
``<prefix><flow-slug>/<code hash>.flow`` (or ``.../<source hash>.py``), so the same code gets the
same key and building again uploads nothing. ``key=`` stores one flow under exactly that key.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs

from headwater.plugins import (
    FlowLoadError,
    FlowNotInStorageError,
    Storage,
    code_hash,
    content_location,
    dumps_flow,
    flow_from_script,
    loads_flow,
    relative_path,
    script_path,
    script_source,
    slugify,
    source_hash,
)
from headwater_s3.connection import Connection, check_client_options
from headwater_s3.errors import S3CorruptObjectError, S3Error, S3KeyNotFoundError, translate

__all__ = ["S3", "S3FlowNotFoundError"]


class S3FlowNotFoundError(S3KeyNotFoundError, FlowNotInStorageError):
    """The flow's object is not in the bucket (never built, or deleted): both an S3 and a storage error."""

_SKIP_DIRS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache", ".tox", ".ruff_cache"}
_COMPLETE = ".complete"
_DIGEST_METADATA = "headwater-sha256"
"""User metadata of a flow object: the sha256 of its bytes, so a re-build compares without downloading."""


_FIX_BUILD = "register the flow again (headwater register ...) or call storage.build(), which uploads it"


def _project_files(root: Path) -> list[Path]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(filenames):
            if not name.endswith((".pyc", ".pyo")):
                files.append(Path(dirpath) / name)
    return files


def _check_bucket(_: Any, __: Any, value: str) -> None:
    if not isinstance(value, str) or len(value.strip()) < 3 or "/" in value or value.startswith("s3:"):
        raise ValueError(
            f"S3 storage needs a bucket name (3 to 63 characters, no 's3://' and no '/'), got {value!r}: "
            "S3(bucket='my-flows')."
        )


@attrs.define
class S3(Storage):
    """Flows in ``bucket`` on S3 (or any S3-compatible service through ``client_options["endpoint_url"]``).

    - ``key``: store the (single) flow under exactly this key instead of a content-addressed one;
    - ``prefix``: a key prefix for content-addressed keys (``"flows/"``);
    - ``stored_as_script``/``local_script_path``: store the script instead of a pickle;
    - ``project_dir``: with ``stored_as_script``, upload this directory too (helper modules import);
    - ``client_options``: boto client options (``endpoint_url``, ``region_name``, ``verify``...), never credentials;
    - ``upload_options``: extra ``PutObject`` arguments (``ServerSideEncryption``, ``ACL``...);
    - ``credentials_secret``: name of a secret with ``ACCESS_KEY``/``SECRET_ACCESS_KEY`` (default: the boto chain);
    - ``secrets``: Prefect 1's list of secret names; ``["AWS_CREDENTIALS"]`` means ``credentials_secret="AWS_CREDENTIALS"``.
    """

    bucket: str = attrs.field(default="", validator=_check_bucket)
    key: str | None = None
    stored_as_script: bool = False
    local_script_path: str | None = attrs.field(default=None, converter=relative_path)
    project_dir: str | None = attrs.field(default=None, converter=relative_path)
    prefix: str = ""
    client_options: dict[str, Any] = attrs.field(factory=dict)
    upload_options: dict[str, Any] = attrs.field(factory=dict)
    credentials_secret: str | None = None
    secrets: list[str] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.client_options = check_client_options(self.client_options, f"S3(bucket={self.bucket!r})")
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        if self.project_dir and not self.stored_as_script:
            raise ValueError(
                f"S3(bucket={self.bucket!r}): project_dir is uploaded only with stored_as_script=True "
                "(pickled flows carry their helper modules by value)."
            )

    # --- settings ------------------------------------------------------------------------

    def connection(self) -> Connection:
        """The resolved S3 settings (endpoint, region, where the credentials come from)."""
        secret = self.credentials_secret
        if secret is None and "AWS_CREDENTIALS" in self.secrets:
            secret = "AWS_CREDENTIALS"
        return Connection.resolve(self.client_options, secret, owner=f"S3(bucket={self.bucket!r})")

    def _error(self, exc: BaseException, key: str, action: str, connection: Connection) -> BaseException:
        return translate(
            exc, bucket=self.bucket, key=key, action=action, endpoint=connection.describe_endpoint(),
            credentials=connection.describe_credentials(), missing_key_fix=_FIX_BUILD,
        )

    # --- locations -----------------------------------------------------------------------

    def add_flow(self, flow: Any) -> str:
        if self.key and self.flows:
            raise ValueError(
                f"S3(bucket={self.bucket!r}, key={self.key!r}) stores one flow under that key and already holds "
                f"{next(iter(self.flows))!r}; use key=None (content-addressed keys) for several flows."
            )
        return super().add_flow(flow)

    def location_for(self, flow: Any) -> str:
        if self.key:
            return self.key
        slug = slugify(flow.name)
        if not self.stored_as_script:
            return f"{self.prefix}{slug}/{code_hash(flow)}.flow"
        script = script_path(flow, self.local_script_path)
        root = Path(self.project_dir) if self.project_dir else None
        if root is None:
            return f"{self.prefix}{slug}/{source_hash(script_source(flow, self.local_script_path))}.py"
        digest = hashlib.sha256()
        for file in _project_files(root):
            digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
        rel = Path(os.path.relpath(script.resolve(), root.resolve())).as_posix()
        if rel.startswith("../"):
            raise ValueError(
                f"S3(bucket={self.bucket!r}): the script {str(script)!r} of flow {flow.name!r} is not inside "
                f"project_dir {self.project_dir!r}; set project_dir to a directory that contains it."
            )
        return f"{self.prefix}{slug}/{digest.hexdigest()[:16]}/{rel}"

    def _project_prefix(self, location: str) -> tuple[str, str]:
        """``(prefix of the project upload, script path inside it)`` for a project location."""
        body = location[len(self.prefix):] if self.prefix and location.startswith(self.prefix) else location
        slug, digest, rel = body.split("/", 2)
        return f"{self.prefix}{slug}/{digest}", rel

    # --- writing -------------------------------------------------------------------------

    def _exists(self, fs: Any, key: str, connection: Connection) -> bool:
        try:
            fs.call_s3("head_object", Bucket=self.bucket, Key=key)
        except Exception as exc:
            error = self._error(exc, key, "check", connection)
            if isinstance(error, S3KeyNotFoundError):
                return False
            if isinstance(error, FileNotFoundError) and not isinstance(error, S3Error):
                return False
            raise error from exc
        return True

    def _stored_digest(self, fs: Any, key: str, connection: Connection) -> str | None:
        """The sha256 of the object at ``key`` (from its metadata, else by downloading it); None when there is none."""
        try:
            head = fs.call_s3("head_object", Bucket=self.bucket, Key=key)
        except Exception as exc:
            error = self._error(exc, key, "check", connection)
            if isinstance(error, S3KeyNotFoundError) or (isinstance(error, FileNotFoundError) and not isinstance(error, S3Error)):
                return None
            raise error from exc
        recorded = ((head or {}).get("Metadata") or {}).get(_DIGEST_METADATA)
        if recorded:
            return str(recorded)
        try:  # written without the digest (an older headwater-s3): compare the bytes themselves
            return hashlib.sha256(fs.cat_file(f"{self.bucket}/{key}")).hexdigest()
        except Exception as exc:
            raise self._error(exc, key, "read", connection) from exc

    def _put(self, fs: Any, key: str, data: bytes, connection: Connection, digest: str | None = None) -> None:
        options = dict(self.upload_options)
        if digest is not None:
            options["Metadata"] = {**(options.get("Metadata") or {}), _DIGEST_METADATA: digest}
        try:
            fs.call_s3("put_object", Bucket=self.bucket, Key=key, Body=data, **options)
        except Exception as exc:
            raise self._error(exc, key, "upload the flow to", connection) from exc

    def _write(self, flow: Any, location: str) -> None:
        connection = self.connection()
        fs = connection.filesystem()
        if self.stored_as_script and self.project_dir and not self.key:
            prefix, _ = self._project_prefix(location)
            if self._exists(fs, f"{prefix}/{_COMPLETE}", connection):
                return  # the same project was uploaded completely before: nothing to do
            root = Path(self.project_dir)
            for file in _project_files(root):
                self._put(fs, f"{prefix}/{file.relative_to(root).as_posix()}", file.read_bytes(), connection)
            self._put(fs, f"{prefix}/{_COMPLETE}", b"", connection)  # last: loaders trust complete uploads only
            return
        data = script_source(flow, self.local_script_path).encode() if self.stored_as_script else dumps_flow(flow)
        if self.key:  # an explicit key is overwritten (Prefect 1's S3(key=...)): the user chose a mutable name
            self._put(fs, location, data, connection)
            return
        digest = hashlib.sha256(data).hexdigest()
        stored = self._stored_digest(fs, location, connection)
        if stored == digest:
            return  # content-addressed: this very object is already there
        if stored is not None:
            # A location's bytes never change (issue 10 #12): the same code pickled with other values
            # captured at import (a datetime.now(), a KV value) goes to a key named by its own bytes,
            # so the registered version that points at the old key keeps running what it ran.
            location = content_location(location, data)
            self.flows[flow.name] = location
            if self._stored_digest(fs, location, connection) == digest:
                return
        self._put(fs, location, data, connection, digest)

    # --- loading -------------------------------------------------------------------------

    def get_flow(self, location: str) -> Any:
        self._require(location)
        name = self._name_at(location)
        connection = self.connection()
        fs = connection.filesystem()
        where = f"S3 storage s3://{self.bucket}/{location}"
        if self.stored_as_script and self.project_dir and not self.key:
            return self._load_project(fs, location, name, connection)
        try:
            data = fs.cat_file(f"{self.bucket}/{location}")
        except Exception as exc:
            error = self._error(exc, location, "download the flow from", connection)
            if isinstance(error, S3KeyNotFoundError):
                error = S3FlowNotFoundError(str(error), error.bucket, error.key, error.code)
            raise error from exc
        if self.stored_as_script:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise self._corrupt(location, f"it is not UTF-8 text ({exc})") from exc
            return flow_from_script(text, name, where)
        try:
            return loads_flow(data, where)
        except FlowLoadError as exc:
            raise self._corrupt(location, str(exc)) from exc

    def _corrupt(self, location: str, why: str) -> S3CorruptObjectError:
        return S3CorruptObjectError(
            f"The flow at s3://{self.bucket}/{location} cannot be loaded: {why}. The object was changed or "
            f"truncated after it was uploaded. Fix: {_FIX_BUILD}.",
            self.bucket, location, "Corrupt",
        )

    def _load_project(self, fs: Any, location: str, name: str, connection: Connection) -> Any:
        prefix, rel = self._project_prefix(location)
        if not self._exists(fs, f"{prefix}/{_COMPLETE}", connection):
            raise FlowNotInStorageError(
                f"S3 storage: no complete project upload at s3://{self.bucket}/{prefix}/ (its {_COMPLETE} marker "
                f"is missing). Fix: {_FIX_BUILD}."
            )
        local = Path(tempfile.mkdtemp(prefix="headwater-s3-project-"))
        try:
            fs.get(f"{self.bucket}/{prefix}/", str(local) + "/", recursive=True)
        except Exception as exc:
            raise self._error(exc, f"{prefix}/", "download the project from", connection) from exc
        script = local / rel
        if not script.is_file():
            raise self._corrupt(location, f"the project upload has no script {rel!r}")
        for path in (str(script.parent), str(local)):
            if path not in sys.path:
                sys.path.insert(0, path)
        return flow_from_script(script.read_text(), name, f"S3 storage s3://{self.bucket}/{location}", str(script))
