"""The ``[s3]`` configuration section: defaults for every S3 storage, result and task.

```toml
[s3]
endpoint_url = "http://127.0.0.1:9000"   # MinIO, Ceph, moto ... (or HEADWATER__S3__ENDPOINT_URL)
region_name = "eu-west-1"
credentials_secret = "AWS_CREDENTIALS"  # a secret holding ACCESS_KEY / SECRET_ACCESS_KEY / SESSION_TOKEN
```

Arguments of a storage, result or task win over this section; without either, the standard
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` variables and the boto credential chain apply.
The section holds no credentials itself, only the *name* of the secret that does.
"""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["S3Section", "s3_settings", "MiB"]

MiB = 2**20


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"[s3] {attribute.name} must be a positive number, got {value!r}.")


def _part_size(_: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 5 * MiB:
        raise ValueError(
            f"[s3] {attribute.name} must be at least 5 MiB ({5 * MiB} bytes), S3's smallest multipart part; got {value!r}."
        )


@attrs.define
class S3Section:
    """Defaults for S3 access (``[s3]`` in config.toml, ``HEADWATER__S3__<KEY>`` variables)."""

    endpoint_url: str | None = None
    """An S3-compatible endpoint (MinIO, moto, Ceph...); None: AWS (or ``AWS_ENDPOINT_URL``)."""
    region_name: str | None = None
    """The region; None: the boto chain's (``AWS_DEFAULT_REGION``, ~/.aws/config)."""
    credentials_secret: str | None = None
    """Name of a headwater secret with ``ACCESS_KEY``, ``SECRET_ACCESS_KEY`` (and ``SESSION_TOKEN``); None: the boto chain."""
    profile_name: str | None = None
    """An AWS profile of ~/.aws/credentials to use instead of the default one."""
    max_attempts: int = attrs.field(default=5, validator=_positive)
    """Attempts per request (botocore's standard retry mode) before an operation fails."""
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)
    """Seconds to wait for a connection to the endpoint."""
    read_timeout: float = attrs.field(default=60.0, validator=_positive)
    """Seconds to wait for data on an open connection."""
    multipart_threshold: int = attrs.field(default=16 * MiB, validator=_part_size)
    """Results at least this large are uploaded in parts (multipart upload) instead of one PUT."""
    multipart_chunksize: int = attrs.field(default=16 * MiB, validator=_part_size)
    """Size of each part of a multipart upload (memory per upload is about two parts)."""


def s3_settings() -> S3Section:
    """The effective ``[s3]`` section (the defaults when the section is not registered or absent)."""
    try:
        from headwater.plugins import get_config

        section = get_config().section("s3")
    except KeyError:
        return S3Section()
    if isinstance(section, S3Section):
        return section
    if isinstance(section, dict):  # the plugin's hook has not run in this process: structure it ourselves
        known = {a.name for a in attrs.fields(S3Section)}
        return S3Section(**{k: v for k, v in section.items() if k in known})
    return S3Section()
