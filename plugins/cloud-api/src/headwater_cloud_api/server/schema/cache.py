"""A parse-and-validate cache for GraphQL documents, keyed by the query text.

Clients send the same few documents over and over (a state write, a heartbeat), with different
variables. Parsing and validating a document costs more than executing a small mutation, so
valid documents are kept (bounded LRU, shared by all requests and threads); invalid ones are
parsed and validated every time, so their errors are reported exactly as without the cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension

__all__ = ["DocumentCache", "MAX_CACHED_DOCUMENTS", "MAX_CACHE_BYTES", "MAX_CACHED_QUERY_BYTES", "cache_size"]

MAX_CACHED_DOCUMENTS = 512
"""Distinct valid query texts kept (oldest unused dropped first)."""
MAX_CACHE_BYTES = 2 * 1024 * 1024
"""Total query text the cache keeps (oldest unused dropped first). A parsed document takes roughly 20-40
times its text in memory, so the cache stays well under 100 MiB whatever clients send."""
MAX_CACHED_QUERY_BYTES = 16 * 1024
"""A query text longer than this is never cached (clients' repeated documents are a few hundred bytes)."""

_documents: OrderedDict[str, Any] = OrderedDict()
_bytes = 0
_lock = threading.Lock()


def cache_size() -> tuple[int, int]:
    """``(documents, bytes of query text)`` held now."""
    with _lock:
        return len(_documents), _bytes


class DocumentCache(SchemaExtension):
    """Reuses the parsed document of a query text that was valid before and skips its validation."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        if query is not None:
            with _lock:
                document = _documents.get(query)
                if document is not None:
                    _documents.move_to_end(query)
            if document is not None:
                context.graphql_document = document  # strawberry skips parsing when a document is set
                context.pre_execution_errors = []  # ... and validation when errors are known (none)
        yield

    def on_validate(self) -> Iterator[None]:
        global _bytes
        yield
        context = self.execution_context
        query = context.query
        if (query is not None and context.graphql_document is not None and context.pre_execution_errors == []
                and len(query) <= MAX_CACHED_QUERY_BYTES):
            with _lock:
                if query not in _documents:
                    _documents[query] = context.graphql_document
                    _bytes += len(query)
                    while len(_documents) > MAX_CACHED_DOCUMENTS or _bytes > MAX_CACHE_BYTES:
                        old, _ = _documents.popitem(last=False)
                        _bytes -= len(old)
