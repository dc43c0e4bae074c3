"""The S3 task library (Prefect 1's ``prefect.tasks.aws.s3``): ``S3Download``, ``S3Upload``, ``S3List``.

```python
from headwater.tasks.aws.s3 import S3Download, S3List, S3Upload

upload = S3Upload(bucket="raw", boto_kwargs={"endpoint_url": "http://127.0.0.1:9000"})
with Flow("copy") as flow:
    key = upload(data="hello", key="greetings/hello.txt", compression="gzip")
```

Arguments given at run time win over those given when the task was made. ``credentials`` (a
run-time input, e.g. from a secret task) is Prefect 1's ``{"ACCESS_KEY", "SECRET_ACCESS_KEY",
"SESSION_TOKEN"}``; without it, ``credentials_secret`` names a headwater secret holding it,
else the boto credential chain applies. ``compression`` is ``"gzip"``, ``"bz2"`` or ``"lzma"``.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from headwater.plugins import Task
from headwater_s3.connection import Connection, check_client_options
from headwater_s3.errors import translate

__all__ = ["S3Download", "S3Upload", "S3List", "COMPRESSIONS"]

COMPRESSIONS: dict[str, tuple[Any, Any]] = {
    "gzip": (lambda data: gzip.compress(data, mtime=0), gzip.decompress),
    "bz2": (bz2.compress, bz2.decompress),
    "lzma": (lzma.compress, lzma.decompress),
}
"""Compression name -> ``(compress, decompress)``."""


def _codec(compression: str | None, owner: str) -> tuple[Any, Any] | None:
    if compression is None:
        return None
    codec = COMPRESSIONS.get(str(compression).lower())
    if codec is None:
        raise ValueError(
            f"{owner}: unknown compression {compression!r}; use one of {', '.join(sorted(COMPRESSIONS))} or None."
        )
    return codec


class _S3Task(Task):
    """Shared settings of the S3 tasks: bucket, boto client options, the credentials secret."""

    def __init__(
        self,
        bucket: str | None = None,
        boto_kwargs: Mapping[str, Any] | None = None,
        credentials_secret: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.bucket = bucket
        self.boto_kwargs = check_client_options(boto_kwargs, f"{type(self).__name__}(boto_kwargs=...)")
        self.credentials_secret = credentials_secret
        super().__init__(**kwargs)

    def _bucket(self, bucket: str | None) -> str:
        bucket = bucket or self.bucket
        if not bucket:
            raise ValueError(f"{self.name}: no bucket; pass bucket= when creating the task or when calling it.")
        return bucket

    def _client(self, credentials: Any) -> tuple[Any, Connection]:
        connection = Connection.resolve(self.boto_kwargs, self.credentials_secret, owner=type(self).__name__)
        return connection.client(credentials), connection

    def _raise(self, exc: BaseException, bucket: str, key: str | None, action: str, connection: Connection,
               credentials: Any) -> None:
        raise translate(
            exc, bucket=bucket, key=key, action=action, endpoint=connection.describe_endpoint(),
            credentials=connection.describe_credentials(credentials),
        ) from exc


class S3Download(_S3Task):
    """Download one object; returns its text (UTF-8), or its bytes with ``as_bytes=True``."""

    def run(
        self,
        key: str,
        credentials: Mapping[str, str] | None = None,
        bucket: str | None = None,
        compression: str | None = None,
        as_bytes: bool = False,
    ) -> str | bytes:
        """Download ``key`` from ``bucket``, decompressing it with ``compression``."""
        bucket = self._bucket(bucket)
        codec = _codec(compression, self.name)
        client, connection = self._client(credentials)
        try:  # one GET (download_fileobj would HEAD first, and a HEAD's error has no code)
            response = client.get_object(Bucket=bucket, Key=key)
            data = response["Body"].read()
        except Exception as exc:
            self._raise(exc, bucket, key, "download", connection, credentials)
        if codec is not None:
            try:
                data = codec[1](data)
            except Exception as exc:
                raise ValueError(
                    f"{self.name}: s3://{bucket}/{key} is not {compression}-compressed data ({exc}); "
                    "download it with the compression it was uploaded with (or None)."
                ) from exc
        return data if as_bytes else data.decode("utf-8")


class S3Upload(_S3Task):
    """Upload a string or bytes; returns the key (a new UUID when none is given)."""

    def run(
        self,
        data: str | bytes,
        key: str | None = None,
        credentials: Mapping[str, str] | None = None,
        bucket: str | None = None,
        compression: str | None = None,
    ) -> str:
        """Upload ``data`` to ``key`` in ``bucket``, compressed with ``compression``."""
        bucket = self._bucket(bucket)
        codec = _codec(compression, self.name)
        if isinstance(data, str):
            body = data.encode("utf-8")
        elif isinstance(data, (bytes, bytearray, memoryview)):
            body = bytes(data)
        else:
            raise TypeError(f"{self.name}: data must be str or bytes, got {type(data).__name__}; serialize it first.")
        if codec is not None:
            body = codec[0](body)
        key = key or str(uuid.uuid4())
        client, connection = self._client(credentials)
        try:
            client.upload_fileobj(io.BytesIO(body), Bucket=bucket, Key=key)
        except Exception as exc:
            self._raise(exc, bucket, key, "upload to", connection, credentials)
        return key


def _utc(value: str | datetime | None, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"S3List: {what} must be an ISO date/time such as '2026-01-31T00:00:00', got {value!r}.") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


class S3List(_S3Task):
    """List the keys under a prefix (optionally only those modified in a time window)."""

    def run(
        self,
        prefix: str = "",
        delimiter: str = "",
        page_size: int | None = None,
        max_items: int | None = None,
        credentials: Mapping[str, str] | None = None,
        bucket: str | None = None,
        last_modified_begin: str | datetime | None = None,
        last_modified_end: str | datetime | None = None,
    ) -> list[str]:
        """Keys in ``bucket`` starting with ``prefix`` (with ``delimiter``, the common prefixes too)."""
        bucket = self._bucket(bucket)
        begin = _utc(last_modified_begin, "last_modified_begin")
        end = _utc(last_modified_end, "last_modified_end")
        client, connection = self._client(credentials)
        pagination: dict[str, int] = {}
        if page_size is not None:
            pagination["PageSize"] = page_size
        if max_items is not None:
            pagination["MaxItems"] = max_items
        keys: list[str] = []
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix, Delimiter=delimiter, PaginationConfig=pagination
            )
            for page in pages:
                for obj in page.get("Contents", ()):
                    modified = obj.get("LastModified")
                    if begin is not None and modified is not None and modified < begin:
                        continue
                    if end is not None and modified is not None and modified > end:
                        continue
                    keys.append(obj["Key"])
                if delimiter:
                    keys.extend(p["Prefix"] for p in page.get("CommonPrefixes", ()))
        except Exception as exc:
            self._raise(exc, bucket, prefix or None, "list", connection, credentials)
        return keys


# --- declarative flow specs: task_type "s3_download" / "s3_upload" / "s3_list" -------------------

_INIT_PARAMS = ("bucket", "boto_kwargs", "credentials_secret")


def _run_spec(cls: type[_S3Task], type_name: str, params: Mapping[str, Any]) -> Any:
    import inspect

    allowed = [p for p in inspect.signature(cls.run).parameters if p != "self"]
    unknown = sorted(set(params) - set(allowed) - set(_INIT_PARAMS))
    if unknown:
        raise ValueError(
            f"task_type {type_name!r}: unknown task_params {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(sorted({*allowed, *_INIT_PARAMS}))}."
        )
    init = {k: params[k] for k in _INIT_PARAMS if k in params}
    run = {k: v for k, v in params.items() if k not in _INIT_PARAMS}
    return cls(**init).run(**run)


def s3_download_task(task: Any, ctx: Any) -> Any:
    """Spec task type ``s3_download``: :class:`S3Download` with ``task_params`` as its arguments."""
    return _run_spec(S3Download, "s3_download", ctx.params)


def s3_upload_task(task: Any, ctx: Any) -> Any:
    """Spec task type ``s3_upload``: :class:`S3Upload` with ``task_params`` as its arguments."""
    return _run_spec(S3Upload, "s3_upload", ctx.params)


def s3_list_task(task: Any, ctx: Any) -> Any:
    """Spec task type ``s3_list``: :class:`S3List` with ``task_params`` as its arguments."""
    return _run_spec(S3List, "s3_list", ctx.params)
