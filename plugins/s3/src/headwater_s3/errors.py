"""Errors of headwater-s3: each names the bucket, the key, what S3 said and how to fix it.

S3 answers a failed request with an error code (``NoSuchBucket``, ``NoSuchKey``,
``AccessDenied``, ``InvalidAccessKeyId`` ...) or only an HTTP status (HEAD requests, a bucket
policy's deny on some servers). :func:`translate` turns whatever boto3, aiobotocore or s3fs
raised into one of the classes below. Messages never contain credentials: only the bucket,
the key, the endpoint and the name of the secret the credentials came from.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "S3Error",
    "S3BucketNotFoundError",
    "S3KeyNotFoundError",
    "S3AccessDeniedError",
    "S3ConnectionError",
    "S3CorruptObjectError",
    "S3ConfigurationError",
    "translate",
    "error_code",
]

_ACCESS_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AccountProblem",
    "403",
    "Forbidden",
}
_BUCKET_CODES = {"NoSuchBucket"}
_KEY_CODES = {"NoSuchKey", "NoSuchUpload", "404", "NotFound"}


class S3Error(Exception):
    """An S3 operation failed. ``bucket``, ``key`` and ``code`` (S3's error code) are attributes."""

    def __init__(self, message: str, bucket: str | None = None, key: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.bucket = bucket
        self.key = key
        self.code = code

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "S3 error"

    def __reduce__(self) -> tuple[Any, ...]:  # survive the trip from a worker process
        return (type(self), (str(self), self.bucket, self.key, self.code))


class S3BucketNotFoundError(S3Error, FileNotFoundError):
    """The bucket does not exist (at this endpoint, in this account)."""


class S3KeyNotFoundError(S3Error, FileNotFoundError):
    """The bucket exists but holds no object under the key."""


class S3AccessDeniedError(S3Error, PermissionError):
    """S3 refused the request: wrong or missing credentials, or a policy denies the action."""


class S3ConnectionError(S3Error, ConnectionError):
    """The S3 endpoint could not be reached (or the connection broke mid-request)."""


class S3CorruptObjectError(S3Error):
    """The object exists but its bytes are not what headwater wrote (truncated, replaced, another format)."""


class S3ConfigurationError(S3Error, ValueError):
    """The S3 settings themselves are wrong (credentials in client options, a malformed secret...)."""


def _client_error(exc: BaseException | None) -> Any:
    """The botocore ``ClientError`` in ``exc``'s chain (s3fs re-raises them as OSError subclasses)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if hasattr(exc, "response") and isinstance(getattr(exc, "response", None), dict):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def error_code(exc: BaseException) -> tuple[str | None, int | None]:
    """``(S3 error code, HTTP status)`` found in ``exc`` or its causes."""
    client_error = _client_error(exc)
    if client_error is None:
        return None, None
    response = client_error.response
    code = (response.get("Error") or {}).get("Code")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return (str(code) if code else None), (int(status) if status else None)


def _is_connection_error(exc: BaseException) -> bool:
    names: set[str] = set()
    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        names.update(cls.__name__ for cls in type(current).__mro__)
        current = current.__cause__ or current.__context__
    return bool(
        names
        & {
            "EndpointConnectionError",
            "ConnectionClosedError",
            "ConnectTimeoutError",
            "ReadTimeoutError",
            "ClientConnectorError",
            "ServerDisconnectedError",
            "ClientOSError",
            "HTTPClientError",
            "ConnectionRefusedError",
            "ConnectionResetError",
            "ProxyConnectionError",
        }
    )


def _where(bucket: str | None, key: str | None) -> str:
    if bucket and key:
        return f"s3://{bucket}/{key}"
    if bucket:
        return f"s3://{bucket}"
    return "S3"


def translate(
    exc: BaseException,
    *,
    bucket: str | None,
    key: str | None = None,
    action: str = "access",
    endpoint: str | None = None,
    credentials: str | None = None,
    missing_key_fix: str | None = None,
) -> BaseException:
    """The :class:`S3Error` for ``exc`` raised while trying to ``action`` ``s3://bucket/key``.

    ``credentials`` describes where the credentials came from (e.g. ``"secret 'AWS_CREDENTIALS'"``),
    never the credentials themselves. Exceptions that are not S3 failures are returned unchanged.
    """
    if isinstance(exc, S3Error):
        return exc
    where = _where(bucket, key)
    at = f" at {endpoint}" if endpoint else ""
    creds = credentials or "the default AWS credential chain (environment, ~/.aws, instance role)"
    code, status = error_code(exc)
    if code in _BUCKET_CODES or (code is None and isinstance(exc, FileNotFoundError) and "bucket" in str(exc).lower()):
        return S3BucketNotFoundError(
            f"Cannot {action} {where}: the bucket {bucket!r} does not exist{at} ({code or 'NoSuchBucket'}). "
            f"Fix: create it (aws s3 mb s3://{bucket}), or correct the bucket name / endpoint_url.",
            bucket, key, code or "NoSuchBucket",
        )
    if code in _ACCESS_CODES or status == 403 or isinstance(exc, PermissionError):
        reason = {
            "InvalidAccessKeyId": "the access key is not known to this S3 service",
            "SignatureDoesNotMatch": "the secret access key does not match the access key",
            "ExpiredToken": "the session token has expired",
        }.get(code or "", "access was denied")
        return S3AccessDeniedError(
            f"Cannot {action} {where}{at}: {reason} ({code or status or 'AccessDenied'}). "
            f"The credentials came from {creds}. Fix: use credentials allowed to {action} this object "
            "(set the secret named by credentials_secret, or the AWS_* variables / profile of the boto chain), "
            "or change the bucket policy / IAM policy that denies it.",
            bucket, key, code or str(status or "AccessDenied"),
        )
    if code in _KEY_CODES or status == 404 or isinstance(exc, FileNotFoundError):
        fix = missing_key_fix or "check the key, or write the object first"
        return S3KeyNotFoundError(
            f"Cannot {action} {where}{at}: there is no object with key {key!r} in bucket {bucket!r} "
            f"({code or status or 'NoSuchKey'}). Fix: {fix}.",
            bucket, key, code or "NoSuchKey",
        )
    if _is_connection_error(exc):
        return S3ConnectionError(
            f"Cannot {action} {where}: the S3 endpoint {endpoint or '(AWS default)'} could not be reached "
            f"({type(exc).__name__}: {exc}). Fix: check that the S3 service is up and endpoint_url is right "
            "([s3] endpoint_url, HEADWATER__S3__ENDPOINT_URL or AWS_ENDPOINT_URL); the task can be retried.",
            bucket, key, "ConnectionError",
        )
    if code is not None:
        return S3Error(
            f"Cannot {action} {where}{at}: S3 answered {code} (HTTP {status}): {exc}.", bucket, key, code
        )
    return exc
