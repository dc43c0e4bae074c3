"""Errors the API reports to clients as GraphQL errors (never a 500): each names the thing, the cause and the fix."""

from __future__ import annotations

__all__ = ["APIError", "NotFound", "BadInput", "MAX_BODY_BYTES", "MAX_KV_VALUE_BYTES", "MAX_BATCH"]

MAX_BODY_BYTES = 5 * 1024 * 1024
"""Largest request body the server reads (5 MiB); bigger ones get HTTP 413 with a GraphQL error."""
MAX_KV_VALUE_BYTES = 10 * 1024
"""Largest key-value store value, as compact JSON (10 KiB)."""
MAX_BATCH = 5000
"""Most items in one batched mutation (state writes, logs)."""


class APIError(Exception):
    """A client mistake: reported as a GraphQL error with ``extensions.code``; the mutation writes nothing."""

    code = "BAD_REQUEST"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code


class NotFound(APIError):
    code = "NOT_FOUND"


class BadInput(APIError):
    code = "BAD_INPUT"
