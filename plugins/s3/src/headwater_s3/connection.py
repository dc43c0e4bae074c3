"""How headwater-s3 reaches S3: endpoint, region, credentials, retries, resolved at run time.

Every S3 object of this plugin (storage, result, task) keeps only *settings*: client options
such as ``endpoint_url`` and the *name* of a secret. :class:`Connection` resolves them where the
work happens (on the agent, in the flow-run process), in this order:

- ``endpoint_url`` / ``region_name``: the object's own options, then ``[s3]`` in config.toml
  (``HEADWATER__S3__ENDPOINT_URL``), then the standard ``AWS_ENDPOINT_URL_S3`` /
  ``AWS_ENDPOINT_URL`` variables, then AWS itself;
- credentials: credentials passed at run time (a task's ``credentials=`` input), then the
  secret named by ``credentials_secret`` (or ``[s3] credentials_secret``) holding Prefect 1's
  ``{"ACCESS_KEY": ..., "SECRET_ACCESS_KEY": ..., "SESSION_TOKEN": ...}``, then the boto chain
  (``AWS_ACCESS_KEY_ID``..., ~/.aws, an instance role).

Credentials are never stored on the objects, never part of their ``repr`` or serialized form,
and never put in error messages: those name the secret they came from.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any

import attrs

from headwater_s3.config import S3Section, s3_settings
from headwater_s3.errors import S3ConfigurationError

__all__ = ["Connection", "Credentials", "check_client_options", "CREDENTIAL_OPTIONS"]

CREDENTIAL_OPTIONS = frozenset(
    {"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "key", "secret", "token", "password"}
)
"""Client options that would put credentials into serialized flows: refused, use a secret instead."""

_lock = threading.Lock()
_clients: dict[Any, Any] = {}


def check_client_options(options: Mapping[str, Any] | None, owner: str) -> dict[str, Any]:
    """``options`` as a dict; credentials in it are refused (they would be serialized with the flow)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError(f"{owner}: client options must be a dict such as {{'endpoint_url': ...}}, got {type(options).__name__}.")
    bad = sorted(k for k in options if str(k).lower() in CREDENTIAL_OPTIONS)
    if bad:
        raise S3ConfigurationError(
            f"{owner}: client options may not contain credentials ({', '.join(bad)}): they would be stored with "
            "the flow and shown in its metadata. Fix: put them in a headwater secret "
            '(e.g. AWS_CREDENTIALS = {ACCESS_KEY = "...", SECRET_ACCESS_KEY = "..."}) and pass '
            "credentials_secret='AWS_CREDENTIALS', or rely on the AWS credential chain."
        )
    return dict(options)


@attrs.frozen(repr=False)
class Credentials:
    """An access key pair (and session token). Its ``repr`` shows none of them."""

    access_key: str
    secret_key: str
    session_token: str | None = None
    source: str = "credentials passed at run time"

    def __repr__(self) -> str:
        return f"Credentials(<from {self.source}>)"

    @classmethod
    def parse(cls, value: Any, source: str) -> Credentials:
        """Prefect 1's ``{"ACCESS_KEY", "SECRET_ACCESS_KEY", "SESSION_TOKEN"}`` (a dict or its JSON text)."""
        if isinstance(value, Credentials):
            return value
        if isinstance(value, (str, bytes)):
            try:
                value = json.loads(value)
            except ValueError:
                raise S3ConfigurationError(
                    f"The AWS credentials from {source} are not a table/JSON object. Fix: set it to "
                    '{"ACCESS_KEY": "...", "SECRET_ACCESS_KEY": "...", "SESSION_TOKEN": "..."} '
                    "(SESSION_TOKEN is optional)."
                ) from None
        if not isinstance(value, Mapping):
            raise S3ConfigurationError(
                f"The AWS credentials from {source} must be a table with ACCESS_KEY and SECRET_ACCESS_KEY, "
                f"got a {type(value).__name__}."
            )
        folded = {str(k).upper(): v for k, v in value.items()}
        access = folded.get("ACCESS_KEY") or folded.get("AWS_ACCESS_KEY_ID")
        secret = folded.get("SECRET_ACCESS_KEY") or folded.get("AWS_SECRET_ACCESS_KEY")
        token = folded.get("SESSION_TOKEN") or folded.get("AWS_SESSION_TOKEN")
        if not access or not secret:
            missing = [name for name, v in (("ACCESS_KEY", access), ("SECRET_ACCESS_KEY", secret)) if not v]
            raise S3ConfigurationError(
                f"The AWS credentials from {source} lack {' and '.join(missing)} (keys present: "
                f"{', '.join(sorted(folded)) or 'none'}). Fix: set ACCESS_KEY and SECRET_ACCESS_KEY (and SESSION_TOKEN "
                "for temporary credentials)."
            )
        return cls(str(access), str(secret), str(token) if token else None, source)


def _env_endpoint() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@attrs.frozen
class Connection:
    """Resolved S3 settings for one storage, result or task (hashable: clients are cached by it)."""

    endpoint_url: str | None = None
    region_name: str | None = None
    credentials_secret: str | None = None
    profile_name: str | None = None
    options: tuple[tuple[str, Any], ...] = ()
    """Other boto client options (``verify``, ``use_ssl``, ``config``...), sorted by name."""
    max_attempts: int = 5
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    multipart_threshold: int = S3Section().multipart_threshold
    multipart_chunksize: int = S3Section().multipart_chunksize

    @classmethod
    def resolve(
        cls, options: Mapping[str, Any] | None = None, credentials_secret: str | None = None, owner: str = "S3"
    ) -> Connection:
        """Settings from ``options`` (client options) and ``credentials_secret``, over ``[s3]`` and the environment."""
        opts = check_client_options(options, owner)
        settings = s3_settings()
        endpoint = opts.pop("endpoint_url", None) or settings.endpoint_url or _env_endpoint()
        region = opts.pop("region_name", None) or settings.region_name
        profile = opts.pop("profile_name", None) or settings.profile_name
        return cls(
            endpoint_url=endpoint,
            region_name=region,
            credentials_secret=credentials_secret or settings.credentials_secret,
            profile_name=profile,
            options=tuple(sorted(opts.items(), key=lambda kv: str(kv[0]))),
            max_attempts=settings.max_attempts,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            multipart_threshold=settings.multipart_threshold,
            multipart_chunksize=settings.multipart_chunksize,
        )

    # --- credentials ----------------------------------------------------------------------

    def describe_credentials(self, credentials: Any = None) -> str:
        """Where the credentials come from, for messages (never the credentials)."""
        if credentials is not None:
            return "the credentials passed to the task at run time"
        if self.credentials_secret:
            return f"the headwater secret {self.credentials_secret!r}"
        if self.profile_name:
            return f"the AWS profile {self.profile_name!r}"
        return "the default AWS credential chain (AWS_ACCESS_KEY_ID..., ~/.aws, an instance role)"

    def credentials(self, credentials: Any = None) -> Credentials | None:
        """Run-time credentials, else those of the named secret, else None (the boto chain)."""
        if credentials is not None:
            return Credentials.parse(credentials, "the credentials passed at run time")
        if not self.credentials_secret:
            return None
        from headwater.plugins import Secret

        source = f"the headwater secret {self.credentials_secret!r}"
        return Credentials.parse(Secret(self.credentials_secret).get(), source)

    # --- clients --------------------------------------------------------------------------

    def _botocore_config(self) -> dict[str, Any]:
        return {
            "retries": {"max_attempts": self.max_attempts, "mode": "standard"},
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
        }

    def filesystem(self, credentials: Any = None) -> Any:
        """An ``s3fs.S3FileSystem`` for these settings (s3fs caches one per distinct settings)."""
        import s3fs

        creds = self.credentials(credentials)
        client_kwargs: dict[str, Any] = dict(self.options)
        if self.endpoint_url:
            client_kwargs["endpoint_url"] = self.endpoint_url
        if self.region_name:
            client_kwargs["region_name"] = self.region_name
        kwargs: dict[str, Any] = {
            "client_kwargs": client_kwargs,
            "config_kwargs": self._botocore_config(),
            "use_listings_cache": False,
        }
        if creds is not None:
            kwargs.update(key=creds.access_key, secret=creds.secret_key, token=creds.session_token)
        elif self.profile_name:
            kwargs["profile"] = self.profile_name
        fs = s3fs.S3FileSystem(**kwargs)
        fs.retries = max(1, min(self.max_attempts, 5))  # s3fs's own retries of throttling / broken reads
        return fs

    def client(self, credentials: Any = None, **extra: Any) -> Any:
        """A boto3 S3 client for these settings (cached; boto3 clients are thread-safe)."""
        creds = self.credentials(credentials)
        cache_key: Any = (self, creds, tuple(sorted(extra.items(), key=lambda kv: kv[0])) if extra else ())
        try:
            cached = _clients.get(cache_key)
        except TypeError:  # unhashable client options: build a new client
            cached, cache_key = None, None
        if cached is not None:
            return cached
        import boto3
        from botocore.config import Config

        options = {**dict(self.options), **extra}
        config = options.pop("config", None)
        base = Config(**self._botocore_config())
        config = base.merge(config) if config is not None else base
        session_kwargs: dict[str, Any] = {}
        if creds is not None:
            session_kwargs.update(
                aws_access_key_id=creds.access_key, aws_secret_access_key=creds.secret_key,
                aws_session_token=creds.session_token,
            )
        elif self.profile_name:
            session_kwargs["profile_name"] = self.profile_name
        if self.region_name:
            session_kwargs["region_name"] = self.region_name
        with _lock:  # creating sessions is not thread-safe
            session = boto3.session.Session(**session_kwargs)
            client = session.client("s3", endpoint_url=self.endpoint_url, config=config, **options)
            if cache_key is not None:
                _clients[cache_key] = client
        return client

    def describe_endpoint(self) -> str:
        return self.endpoint_url or "AWS S3"
