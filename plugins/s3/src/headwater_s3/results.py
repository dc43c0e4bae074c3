"""``S3Result``: checkpoint task results to S3 (Prefect 1's ``S3Result``, an S3 flavour of :class:`Result`).

```python
from headwater.results import S3Result

@task(result=S3Result(bucket="etl-results", location="{flow_name}/{task_name}/{today}.pickle"))
def extract(): ...
```

``location`` is the object *key* template inside ``bucket`` (or a full ``s3://bucket/key``
template). It is formatted with the task run's context (``flow_name``, ``task_name``,
``task_slug``, ``map_index``, ``today``, ``flow_run_id``, ``task_run_count`` ...), the flow's
parameters by name, and ``parameters`` itself. Writes are atomic from a reader's point of view:
small results are one ``PutObject``; results of ``[s3] multipart_threshold`` and more are a
multipart upload that S3 makes visible only when it completes (a failed upload is aborted), so
a half-written object is never read as a result.

Requests go through one cached boto3 client per settings (one synchronous request per small
result, s3transfer for multipart): per result this costs what plain boto3 costs
(``benchmarks/s3.py``). Large objects are read into one buffer of their size.
"""

from __future__ import annotations

import io
import re
import string
from collections.abc import Mapping
from typing import Any, cast

import attrs

from headwater.plugins import Result, ResultLocationError, Serializer, default_result_key
from headwater_s3.connection import Connection, check_client_options
from headwater_s3.errors import S3CorruptObjectError, S3Error, S3KeyNotFoundError, translate

__all__ = ["S3Result", "split_s3_url"]

_MIN_PART = 5 * 2**20


def split_s3_url(location: str, default_bucket: str | None = None) -> tuple[str, str]:
    """``("bucket", "key")`` of ``s3://bucket/key``, or of a plain key in ``default_bucket``."""
    if location.startswith(("s3://", "s3a://")):
        rest = location.split("://", 1)[1]
        bucket, _, key = rest.partition("/")
        if not bucket or not key:
            raise ResultLocationError(f"S3 location {location!r} must look like s3://bucket/key.")
        return bucket, key
    if not default_bucket:
        raise ResultLocationError(f"S3 location {location!r} is a key but no bucket is known; write s3://bucket/key.")
    return default_bucket, location.lstrip("/")


def _fields(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ResultLocationError(
            f"S3Result location {template!r} is not a valid template ({exc}). Write keys as {{key}} and a literal "
            "brace as {{ or }}."
        ) from exc


def format_location(template: str, context: Mapping[str, Any]) -> str:
    """``template`` filled from ``context`` (flow parameters are keys too, as in Prefect 1)."""
    values: dict[str, Any] = {}
    params = context.get("parameters")
    if isinstance(params, Mapping):
        values.update(params)
    values.update(context)
    for field in _fields(template):
        root = re.split(r"[.\[]", field, maxsplit=1)[0]
        if root == "" or root.isdigit():
            raise ResultLocationError(
                f"S3Result location {template!r} has a positional field {{{field}}}; use named keys such as "
                "{flow_name} or {task_slug}."
            )
        if root not in values:
            available = ", ".join(sorted(str(k) for k in values if k != "logger")) or "none"
            raise ResultLocationError(
                f"S3Result location {template!r} uses the key {root!r}, which is not in the task run's context. "
                f"Available keys: {available}. Change the template, or add the key with "
                f"flow.run(context={{{root!r}: ...}})."
            )
    try:
        return template.format_map(values)
    except (KeyError, IndexError, AttributeError, TypeError, ValueError) as exc:
        raise ResultLocationError(f"S3Result location {template!r} could not be formatted: {exc!r}.") from exc


def _has_fields(template: str) -> bool:
    try:
        return bool(_fields(template))
    except ResultLocationError:
        return False


@attrs.define(slots=False, init=False)
class S3Result(Result):
    """Task results as objects in an S3 bucket.

    - ``bucket``: the bucket (required);
    - ``location``: the key template (default ``<flow_name>/<flow_run_id>/<task_slug>[-<map_index>]<ext>``);
    - ``serializer``: any serializer (default: pickle);
    - ``boto3_kwargs``: client options such as ``endpoint_url``, ``region_name``, ``verify`` (never credentials);
    - ``credentials_secret``: the name of a secret with ``ACCESS_KEY`` / ``SECRET_ACCESS_KEY``
      (/ ``SESSION_TOKEN``); None: ``[s3] credentials_secret``, else the boto credential chain.
    """

    bucket: str = attrs.field(default="")
    boto3_kwargs: dict[str, Any] = attrs.field(factory=dict)
    credentials_secret: str | None = None

    def __init__(
        self,
        bucket: str,
        location: str | None = None,
        serializer: Serializer | None = None,
        boto3_kwargs: Mapping[str, Any] | None = None,
        credentials_secret: str | None = None,
    ) -> None:
        if not isinstance(bucket, str) or not bucket.strip():
            raise ValueError("S3Result needs a bucket name: S3Result(bucket='my-results', location='{flow_name}/...').")
        if bucket.startswith("s3://") or "/" in bucket:
            raise ValueError(
                f"S3Result(bucket={bucket!r}): give the bare bucket name and put the key in location, "
                "e.g. S3Result(bucket='my-results', location='{flow_name}/{task_name}.pkl')."
            )
        self.__attrs_init__(
            location=location,
            serializer=serializer,
            bucket=bucket,
            boto3_kwargs=check_client_options(boto3_kwargs, "S3Result(boto3_kwargs=...)"),
            credentials_secret=credentials_secret,
        )

    # --- connection ----------------------------------------------------------------------

    def connection(self) -> Connection:
        """The resolved S3 settings (endpoint, region, credentials source) for this result."""
        return Connection.resolve(self.boto3_kwargs, self.credentials_secret, owner="S3Result")

    def _fail(self, exc: BaseException, bucket: str, key: str, action: str, connection: Connection) -> BaseException:
        return translate(
            exc, bucket=bucket, key=key, action=action, endpoint=connection.describe_endpoint(),
            credentials=connection.describe_credentials(),
            missing_key_fix="nothing was written there, or it was removed; check the location "
            "(a task's Success state has it as state.location)",
        )

    # --- locations -----------------------------------------------------------------------

    def format(self, **kwargs: Any) -> str:
        """The ``s3://bucket/key`` URL for a task run with context ``kwargs``."""
        if self.location is None:
            key = self._default_key(kwargs)
        else:
            key = format_location(self.location, kwargs)
        bucket, key = split_s3_url(key, self.bucket)
        return f"s3://{bucket}/{key}"

    def _default_key(self, ctx: Mapping[str, Any]) -> str:
        return default_result_key(ctx, self.serializer)

    def at(self, target: str) -> S3Result:
        """This S3Result writing to ``target`` (a task's ``target=``): a key template in ``bucket``, as in Prefect 1.

        ``target="{flow_name}/{task_name}-{today}.pkl"`` names ``s3://<bucket>/<flow>/<task>-<date>.pkl``;
        a full ``s3://other-bucket/...`` template is used as it is.
        """
        return S3Result(
            bucket=self.bucket, location=target, serializer=self.serializer, boto3_kwargs=self.boto3_kwargs,
            credentials_secret=self.credentials_secret,
        )

    def _resolve(self, location: str | None, kwargs: Mapping[str, Any]) -> tuple[str, str]:
        if location is None:
            return split_s3_url(self.format(**kwargs), self.bucket)
        if kwargs or _has_fields(location):
            location = format_location(location, kwargs)
        return split_s3_url(location, self.bucket)

    # --- reading and writing -------------------------------------------------------------

    def write(self, value: Any, **kwargs: Any) -> S3Result:
        """Serialize ``value`` and upload it to :meth:`format` ``(**kwargs)``; returns a new S3Result there."""
        location = self.format(**kwargs)
        bucket, key = split_s3_url(location)
        data = self.serializer.serialize(value)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"{type(self.serializer).__name__}.serialize() returned {type(data).__name__}, not bytes: "
                "a serializer must return bytes."
            )
        connection = self.connection()
        upload(connection, bucket, key, bytes(data) if not isinstance(data, bytes) else data, self)
        return self._located(location, value)

    def read(self, location: str) -> S3Result:
        """Download and deserialize the result at ``location`` (``s3://bucket/key`` or a key in ``bucket``)."""
        bucket, key = split_s3_url(location, self.bucket)
        connection = self.connection()
        data = download(connection, bucket, key, self)
        try:
            value = self.serializer.deserialize(cast(bytes, data))  # a bytearray for large objects: bytes-like
        except Exception as exc:
            raise S3CorruptObjectError(
                f"The result at s3://{bucket}/{key} ({len(data)} bytes) cannot be read with "
                f"{type(self.serializer).__name__}: {exc}. Fix: read it with the serializer it was written with, "
                "or delete the object so the task runs again.",
                bucket, key, "Corrupt",
            ) from exc
        return self._located(f"s3://{bucket}/{key}", value)

    def exists(self, location: str | None = None, **kwargs: Any) -> bool:
        """Whether an object exists at ``location`` (a key / URL or template, formatted with ``kwargs``).

        A denied or failed check raises (an error is not taken for "missing").
        """
        bucket, key = self._resolve(location, kwargs)
        connection = self.connection()
        try:
            connection.client().head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            error = self._fail(exc, bucket, key, "check the result", connection)
            if isinstance(error, (FileNotFoundError, S3KeyNotFoundError)):
                return False
            raise error from exc
        return True

    def _located(self, location: str, value: Any) -> S3Result:
        new = S3Result(
            bucket=self.bucket, location=location, serializer=self.serializer, boto3_kwargs=self.boto3_kwargs,
            credentials_secret=self.credentials_secret,
        )
        new.value = value
        return new


def _failure(exc: BaseException, connection: Connection, bucket: str, key: str, action: str) -> BaseException:
    if isinstance(exc, S3Error):
        return exc
    return translate(
        exc, bucket=bucket, key=key, action=action, endpoint=connection.describe_endpoint(),
        credentials=connection.describe_credentials(),
        missing_key_fix="nothing was written there, or it was removed; check the location "
        "(a task's Success state has it as state.location)",
    )


def upload(connection: Connection, bucket: str, key: str, data: bytes, owner: Any = None) -> None:
    """Put ``data`` at ``s3://bucket/key`` atomically: one PUT, or a multipart upload over the threshold.

    A multipart upload (parts of ``[s3] multipart_chunksize``, four at a time) is completed only
    after every part arrived and aborted when one fails, so readers see the old object (or none)
    until the new one is whole. Parts are read from ``data`` one at a time: memory stays at the
    value plus a few parts.
    """
    client = connection.client()
    try:
        if len(data) < connection.multipart_threshold:
            client.put_object(Bucket=bucket, Key=key, Body=data)
        else:
            from boto3.s3.transfer import TransferConfig

            config = TransferConfig(
                multipart_threshold=connection.multipart_threshold,
                multipart_chunksize=max(_MIN_PART, connection.multipart_chunksize),
                max_concurrency=4,
            )
            client.upload_fileobj(io.BytesIO(data), bucket, key, Config=config)  # BytesIO shares data's buffer
    except Exception as exc:
        raise _failure(exc, connection, bucket, key, "write the result") from exc


def download(connection: Connection, bucket: str, key: str, owner: Any = None) -> bytes | bytearray:
    """The bytes of ``s3://bucket/key`` in one GET, streamed into one buffer of the object's size."""
    client = connection.client()
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        size = int(response.get("ContentLength") or 0)
        body = response["Body"]
        if size < connection.multipart_threshold:
            data: bytes | bytearray = body.read()
        else:  # large: no intermediate copies, one preallocated buffer
            buffer = bytearray(size)
            view = memoryview(buffer)
            position = 0
            for chunk in body.iter_chunks(chunk_size=_MIN_PART):
                view[position:position + len(chunk)] = chunk
                position += len(chunk)
            view.release()
            data = buffer
            if position != size:
                raise S3CorruptObjectError(
                    f"The result at s3://{bucket}/{key} ended after {position} of {size} bytes. Fix: run the task "
                    "again (the connection broke, or the object was replaced while it was read).",
                    bucket, key, "Truncated",
                )
    except Exception as exc:
        raise _failure(exc, connection, bucket, key, "read the result") from exc
    return data
