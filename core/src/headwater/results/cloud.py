"""``GCSResult`` and ``AzureResult``: Prefect 1's cloud results, on fsspec (gcsfs, adlfs).

```python
from headwater.engine.results import GCSResult, AzureResult

@task(result=GCSResult(bucket="etl-results", location="{flow_name}/{task_name}/{today}.pkl"))
def extract(): ...
```

``location`` is the object name template inside the bucket (or container), formatted with the
task run's context and the flow's parameters by name, as in Prefect 1. The filesystem is
fsspec's: ``pip install gcsfs`` for Google Cloud Storage, ``pip install adlfs`` for Azure Blob
Storage; without it, the first read or write raises an ``ImportError`` that says so. Credentials
are never stored with the flow: ``credentials_secret`` / ``connection_string_secret`` name a
Secret resolved at run time. ``filesystem=`` takes any fsspec filesystem instead (tests use
``fsspec.filesystem("memory")``); it is not serialized either.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from typing import Any, ClassVar

import attrs
import fsspec

from headwater.results.result import (
    Result,
    ResultLocationError,
    _format_template,
    _has_fields,
    default_result_key,
)
from headwater.results.serializers import Serializer

__all__ = ["GCSResult", "AzureResult"]


def _values(context: Mapping[str, Any]) -> dict[str, Any]:
    """Template keys: the flow's parameters by name, then the context (Prefect 1 formats with both)."""
    values: dict[str, Any] = {}
    params = context.get("parameters")
    if isinstance(params, Mapping):
        values.update(params)
    values.update(context)
    return values


class _BucketResult(Result):
    """A result in a bucket of an fsspec filesystem: ``<protocol>://<bucket>/<key template>``."""

    protocol: ClassVar[str] = ""
    package: ClassVar[str] = ""
    what: ClassVar[str] = ""
    _filesystem: fsspec.AbstractFileSystem | None  # set by __init__; never serialized

    def _bucket(self) -> str:
        raise NotImplementedError

    def _storage_options(self) -> dict[str, Any]:
        raise NotImplementedError

    def _copy_private(self, new: _BucketResult) -> _BucketResult:
        new._filesystem = self._filesystem
        return new

    # --- locations -----------------------------------------------------------------------

    def format(self, **kwargs: Any) -> str:
        """The ``<protocol>://bucket/key`` URL for a task run with context ``kwargs``."""
        if self.location is None:
            key = self._default_key(kwargs)
        else:
            key = _format_template(self.location, _values(kwargs))
        return self._url(key)

    def _url(self, key: str) -> str:
        prefix = f"{self.protocol}://"
        if key.startswith(prefix):
            bucket, _, rest = key[len(prefix):].partition("/")
            if not bucket or not rest:
                raise ResultLocationError(f"{type(self).__name__} location {key!r} must look like {prefix}bucket/key.")
            return key
        return f"{prefix}{self._bucket()}/{key.lstrip('/')}"

    def _default_key(self, ctx: Mapping[str, Any]) -> str:
        return default_result_key(ctx, self.serializer)

    def _resolve(self, location: str | None, kwargs: Mapping[str, Any]) -> str:
        if location is None:
            return self.format(**kwargs)
        if kwargs or _has_fields(location):
            location = _format_template(location, _values(kwargs))
        return self._url(location)

    def _path(self, url: str) -> str:
        return url.split("://", 1)[1]

    # --- the filesystem ------------------------------------------------------------------

    def fs(self) -> fsspec.AbstractFileSystem:
        """The fsspec filesystem: the one given as ``filesystem=``, else ``fsspec.filesystem(protocol, ...)``."""
        if self._filesystem is not None:
            return self._filesystem
        try:
            cls = fsspec.get_filesystem_class(self.protocol)
        except (ImportError, ValueError):
            raise ImportError(
                f"{type(self).__name__} needs {self.package} to reach {self.what}, which is not installed: "
                f"pip install {self.package}"
            ) from None
        return cls(**self._storage_options())

    # --- reading and writing -------------------------------------------------------------

    def write(self, value: Any, **kwargs: Any) -> Result:
        """Serialize ``value`` and upload it to :meth:`format` ``(**kwargs)``; returns a new result there."""
        url = self.format(**kwargs)
        data = self.serializer.serialize(value)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"{type(self.serializer).__name__}.serialize() returned {type(data).__name__}, not bytes.")
        self.fs().pipe_file(self._path(url), bytes(data))
        return self._with(url, value)

    def read(self, location: str) -> Result:
        """Download and deserialize the result at ``location`` (a URL or a key in the bucket)."""
        url = self._url(location)
        try:
            data = self.fs().cat_file(self._path(url))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"No result at {url!r}: nothing was written there, or it was removed. Check the location "
                "(a task's Success state has it as state.location)."
            ) from None
        return self._with(url, self.serializer.deserialize(data))

    def exists(self, location: str | None = None, **kwargs: Any) -> bool:
        """Whether an object exists at ``location`` (a template formatted with ``kwargs``), or at this result's own."""
        return bool(self.fs().exists(self._path(self._resolve(location, kwargs))))

    def _with(self, location: str, value: Any) -> Result:
        new = attrs.evolve(self, location=location)
        self._copy_private(new)
        new.value = value
        return new


def _check_name(value: Any, cls: str, arg: str, example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{cls} needs a {arg} name: {cls}({arg}={example!r}, location='{{flow_name}}/...').")
    if "://" in value or "/" in value:
        raise ValueError(
            f"{cls}({arg}={value!r}): give the bare {arg} name and put the path in location, e.g. "
            f"{cls}({arg}={example!r}, location='{{flow_name}}/{{task_name}}.pkl')."
        )
    return value


@attrs.define(slots=False, init=False)
class GCSResult(_BucketResult):
    """Task results as objects in a Google Cloud Storage bucket (Prefect 1's ``GCSResult``), through gcsfs.

    - ``bucket``: the bucket;
    - ``location``: the object name template (default ``<flow_name>/<flow_run_id>/<task_slug>[-<map_index>]<ext>``);
    - ``serializer``: any serializer (default: pickle);
    - ``credentials_secret``: the name of a Secret holding a service account's JSON key (a dict or
      its JSON text); None reads the secret ``GCP_CREDENTIALS`` when it is set (as Prefect 1 does),
      else Google's default credentials (``GOOGLE_APPLICATION_CREDENTIALS``, ...);
    - ``project``: the Google Cloud project, when the credentials do not name it.
    """

    protocol: ClassVar[str] = "gs"
    package: ClassVar[str] = "gcsfs"
    what: ClassVar[str] = "Google Cloud Storage"

    bucket: str = attrs.field(default="")
    credentials_secret: str | None = None
    project: str | None = None

    def __init__(
        self,
        bucket: str,
        location: str | None = None,
        serializer: Serializer | None = None,
        credentials_secret: str | None = None,
        project: str | None = None,
        filesystem: fsspec.AbstractFileSystem | None = None,
    ) -> None:
        self.__attrs_init__(location=location, serializer=serializer, bucket=_check_name(bucket, "GCSResult", "bucket",
                            "etl-results"), credentials_secret=credentials_secret, project=project)
        self._filesystem = filesystem
        _register(GCSResult)

    def _bucket(self) -> str:
        return self.bucket

    def _storage_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.project:
            options["project"] = self.project
        from headwater.secrets import Secret, SecretNotFoundError

        info: Any = None
        if self.credentials_secret:
            info = Secret(self.credentials_secret).get()
        else:
            try:
                info = Secret("GCP_CREDENTIALS").get()
            except SecretNotFoundError:
                info = None  # Google's default credentials
        if info is not None:
            if isinstance(info, str):
                try:
                    info = json.loads(info)
                except ValueError:
                    raise ValueError(
                        f"GCSResult: the secret {self.credentials_secret or 'GCP_CREDENTIALS'!r} is not a service "
                        "account key (JSON); store the key file's content in it."
                    ) from None
            options["token"] = info
        return options

    def at(self, target: str) -> GCSResult:
        """This result writing to ``target`` (a task's ``target=``): an object name template in ``bucket``."""
        new = GCSResult(self.bucket, location=target, serializer=self.serializer,
                        credentials_secret=self.credentials_secret, project=self.project)
        new._filesystem = self._filesystem
        return new


@attrs.define(slots=False, init=False)
class AzureResult(_BucketResult):
    """Task results as blobs in an Azure Blob Storage container (Prefect 1's ``AzureResult``), through adlfs.

    - ``container``: the container;
    - ``location``: the blob name template;
    - ``connection_string_secret``: the name of a Secret holding the storage account's connection
      string; without it, ``connection_string=`` (kept in memory only, never serialized), then the
      ``AZURE_STORAGE_CONNECTION_STRING`` environment variable, as in Prefect 1.
    """

    protocol: ClassVar[str] = "abfs"
    package: ClassVar[str] = "adlfs"
    what: ClassVar[str] = "Azure Blob Storage"

    container: str = attrs.field(default="")
    connection_string_secret: str | None = None

    def __init__(
        self,
        container: str,
        connection_string: str | None = None,
        connection_string_secret: str | None = None,
        location: str | None = None,
        serializer: Serializer | None = None,
        filesystem: fsspec.AbstractFileSystem | None = None,
    ) -> None:
        self.__attrs_init__(location=location, serializer=serializer,
                            container=_check_name(container, "AzureResult", "container", "results"),
                            connection_string_secret=connection_string_secret)
        if connection_string is not None and connection_string_secret is None:
            warnings.warn(
                "AzureResult(connection_string=...) is kept in this process only: it is a secret, so it is never "
                "serialized with the flow. Store it in a Secret and pass connection_string_secret='NAME' so "
                "agents can use it too.",
                UserWarning,
                stacklevel=2,
            )
        self._connection_string = connection_string
        self._filesystem = filesystem
        _register(AzureResult)

    def _copy_private(self, new: _BucketResult) -> _BucketResult:
        super()._copy_private(new)
        new._connection_string = self._connection_string  # type: ignore[attr-defined]
        return new

    def _bucket(self) -> str:
        return self.container

    def _storage_options(self) -> dict[str, Any]:
        if self.connection_string_secret:
            from headwater.secrets import Secret

            value = str(Secret(self.connection_string_secret).get())
        else:
            value = self._connection_string or os.environ.get("AZURE_STORAGE_CONNECTION_STRING") or ""
        if not value:
            raise ValueError(
                "AzureResult has no connection string: pass connection_string_secret='NAME' (a Secret holding it) "
                "or set AZURE_STORAGE_CONNECTION_STRING."
            )
        return {"connection_string": value}

    def at(self, target: str) -> AzureResult:
        """This result writing to ``target`` (a task's ``target=``): a blob name template in ``container``."""
        new = AzureResult(self.container, connection_string_secret=self.connection_string_secret, location=target,
                          serializer=self.serializer)
        new._connection_string = self._connection_string
        new._filesystem = self._filesystem
        return new


def _register(cls: type) -> None:
    from headwater.schedules.clocks import ensure_registered

    ensure_registered("result", cls)


for _cls in (GCSResult, AzureResult):
    _register(_cls)
