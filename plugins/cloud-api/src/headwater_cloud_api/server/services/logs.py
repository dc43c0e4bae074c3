"""Logs paged by cursor: stable pages while new records arrive, O(page) queries at any depth.

Offset paging re-reads every skipped row and shifts when rows are inserted before the offset;
a cursor is the id of the last record returned (records are ordered by insertion id, which the
API assigns as they arrive), so ``after`` the cursor means exactly "what I have not seen yet" —
the same query serves "next page" and "follow". ``before`` pages backwards (newest first when
the UI opens a long log at its end). Cursors are opaque strings (``"l<id>"``) for clients.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from sqlalchemy import select
from sqlalchemy.orm import Session

from headwater_cloud_api.server.db.models import Log
from headwater_cloud_api.server.errors import BadInput

__all__ = ["LogPage", "read_logs", "encode_cursor", "decode_cursor", "MAX_LOG_PAGE"]

MAX_LOG_PAGE = 1000
"""Most records one page holds."""


def encode_cursor(log_id: int) -> str:
    return f"l{log_id}"


def decode_cursor(cursor: str | None, name: str = "after") -> int | None:
    """``"l123"`` -> 123; None or ``""`` -> None; anything else is a :class:`BadInput` naming the argument."""
    if cursor is None or cursor == "":
        return None
    if not cursor.startswith("l") or not cursor[1:].isdigit():
        raise BadInput(f"'{name}' must be a cursor returned by a previous page (like 'l42'), got {cursor!r}.")
    return int(cursor[1:])


@attrs.define
class LogPage:
    """One page: ``logs`` oldest first; ``end_cursor`` continues after the last (also when the page is empty:
    then it is the ``after`` given, so a follower can poll with it); ``start_cursor`` pages backwards."""

    logs: list[Log]
    start_cursor: str | None
    end_cursor: str | None
    has_more: bool


def read_logs(session: Session, flow_run_id: str, *, after: str | None = None, before: str | None = None,
              levels: Sequence[str] | None = None, search: str | None = None, task_run_id: str | None = None,
              limit: int = 200) -> LogPage:
    """A page of the run's logs after (or before) a cursor, filtered by levels, task run and a case-insensitive search."""
    if limit < 1:
        raise BadInput("'limit' must be at least 1.")
    limit = min(limit, MAX_LOG_PAGE)
    after_id, before_id = decode_cursor(after, "after"), decode_cursor(before, "before")
    if after_id is not None and before_id is not None:
        raise BadInput("Give 'after' or 'before', not both: a page goes one way from its cursor.")
    q = select(Log).where(Log.flow_run_id == flow_run_id)
    if levels:
        q = q.where(Log.level.in_([lv.upper() for lv in levels]))
    if task_run_id:
        q = q.where(Log.task_run_id == task_run_id)
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q = q.where(Log.message.ilike(pattern, escape="\\") | Log.name.ilike(pattern, escape="\\"))
    if before_id is not None:
        rows = list(session.scalars(q.where(Log.id < before_id).order_by(Log.id.desc()).limit(limit + 1)))
        has_more = len(rows) > limit
        rows = rows[:limit][::-1]
    else:
        if after_id is not None:
            q = q.where(Log.id > after_id)
        rows = list(session.scalars(q.order_by(Log.id).limit(limit + 1)))
        has_more = len(rows) > limit
        rows = rows[:limit]
    start = encode_cursor(rows[0].id) if rows else (before if before_id is not None else after)
    end = encode_cursor(rows[-1].id) if rows else (after if after_id is not None else None)
    return LogPage(rows, start, end, has_more)
