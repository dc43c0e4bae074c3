"""Errors of GitHub and Git storage: each names the repository, the ref, the path and the fix."""

from __future__ import annotations

__all__ = [
    "RepoStorageError", "RepoAuthError", "RateLimitError", "RepoNotFoundError", "RefNotFoundError",
    "PathNotFoundError", "FlowNotInFileError", "RepoNetworkError", "CorruptDownloadError",
]


class RepoStorageError(RuntimeError):
    """Something about the repository behind a GitHub/Git storage prevents loading or registering a flow."""

    retryable = False

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "repository storage error"


class RepoAuthError(RepoStorageError):
    """401/403: the token is missing, wrong, expired or lacks access."""


class RateLimitError(RepoAuthError):
    """403/429 with ``X-RateLimit-Remaining: 0``: the API's rate limit is used up until ``reset``."""

    def __init__(self, message: str, reset: float | None = None) -> None:
        super().__init__(message)
        self.reset = reset


class RepoNotFoundError(RepoStorageError):
    """The repository does not exist (or the credentials cannot see it)."""


class RefNotFoundError(RepoStorageError):
    """The branch, tag or commit does not exist in the repository."""


class PathNotFoundError(RepoStorageError):
    """The flow file is not in the repository at that commit."""


class FlowNotInFileError(RepoStorageError):
    """The flow file exists but does not define the flow being registered."""


class RepoNetworkError(RepoStorageError):
    """The server could not be reached or answered 5xx, after every retry."""

    retryable = True


class CorruptDownloadError(RepoStorageError):
    """A download was cut short or is not a valid archive."""

    retryable = True
