"""The Gantt timeline of a flow run's task runs, with mapped children aggregated into one row per task.

A flow run with 10 000 mapped children must stay readable and cheap to draw: a task with at most
:data:`EXPAND_LIMIT` children gets one row per child (nested under its task), a bigger map gets a
single row whose bar spans its first start to its last end, with a concurrency histogram (how
many children were running in each of :data:`BUCKETS` slices of the run) and per-state counts.
Positions are percentages of the run's span, so the HTML draws bars with ``left``/``width``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

import attrs

from headwater.states import FAILED_STATE_NAMES, RUNNING_STATE_NAMES, SCHEDULED_STATE_NAMES

__all__ = ["TaskRunRow", "GanttBar", "GanttRow", "Gantt", "aggregate", "EXPAND_LIMIT", "BUCKETS"]

EXPAND_LIMIT = 25
"""Mapped tasks with up to this many children show one bar per child."""
BUCKETS = 48
"""Slices of the run's span in an aggregated row's concurrency histogram."""


class TaskRunRow(NamedTuple):
    """What the timeline needs of one task run (a plain tuple: a run page may read 10 000 of them)."""

    id: str
    task_slug: str
    map_index: int
    state: str
    start_time: datetime | None
    end_time: datetime | None
    retries: int = 0


@attrs.define
class GanttBar:
    """A bar: ``left``/``width`` in percent of the span; ``state`` colors it."""

    left: float
    width: float
    state: str
    label: str
    task_run_id: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    retries: int = 0


@attrs.define
class GanttRow:
    """One row: a task (``children`` when its few mapped children are listed), or an aggregated map."""

    slug: str
    name: str
    bar: GanttBar | None
    counts: dict[str, int] = attrs.field(factory=dict)
    mapped: bool = False
    aggregated: bool = False
    histogram: list[float] = attrs.field(factory=list)
    children: list[GanttRow] = attrs.field(factory=list)
    retries: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@attrs.define
class Gantt:
    """The timeline: rows in start order; ``start``/``end`` of the span; ``ticks`` as (percent, label)."""

    rows: list[GanttRow]
    start: datetime | None
    end: datetime | None
    ticks: list[tuple[float, str]]

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds() if self.start and self.end else 0.0


_BAD = tuple(sorted(FAILED_STATE_NAMES))
# in priority order: what runs now, then what waits to run
_LIVE = (*sorted(RUNNING_STATE_NAMES, reverse=True), *sorted(SCHEDULED_STATE_NAMES | {"Submitted"}, reverse=True))


def _dominant(counts: Mapping[str, int]) -> str:
    for name in (*_BAD, *_LIVE, "Cancelled"):
        if counts.get(name):
            return name
    return max(counts, key=lambda k: counts[k]) if counts else "Pending"


def _fmt_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def aggregate(task_runs: Iterable[TaskRunRow], now: datetime, names: Mapping[str, str] | None = None,
              order: Iterable[str] = (), run_start: datetime | None = None, run_end: datetime | None = None) -> Gantt:
    """The timeline of ``task_runs`` (unfinished bars end at ``now``); ``names`` per slug, ``order`` of slugs for ties."""
    names = names or {}
    by_slug: dict[str, list[TaskRunRow]] = defaultdict(list)
    for tr in task_runs:
        by_slug[tr.task_slug].append(tr)
    starts = [tr.start_time for rows in by_slug.values() for tr in rows if tr.start_time]
    ends = [tr.end_time or now for rows in by_slug.values() for tr in rows if tr.start_time]
    t0 = min([*starts, *([run_start] if run_start else [])], default=None)
    t1 = max([*ends, *([run_end] if run_end else [])], default=None)
    if t0 is not None and (t1 is None or t1 <= t0):
        t1 = t0
    span = max((t1 - t0).total_seconds(), 1e-3) if t0 and t1 else 1.0

    def pos(a: datetime | None, b: datetime | None) -> tuple[float, float]:
        if t0 is None or a is None:
            return 0.0, 0.0
        left = (a - t0).total_seconds() / span * 100
        right = ((b or now) - t0).total_seconds() / span * 100
        return max(0.0, min(left, 100.0)), max(0.3, min(right, 100.0) - max(0.0, min(left, 100.0)))

    def bar(tr: TaskRunRow, label: str) -> GanttBar | None:
        if tr.start_time is None:
            return None
        left, width = pos(tr.start_time, tr.end_time)
        return GanttBar(left, width, tr.state, label, tr.id, tr.start_time, tr.end_time, tr.retries)

    rank = {slug: i for i, slug in enumerate(order)}
    rows: list[GanttRow] = []
    for slug, runs in by_slug.items():
        name = names.get(slug, slug)
        children = [r for r in runs if r.map_index >= 0]
        parent = next((r for r in runs if r.map_index < 0), None)
        retries = sum(r.retries for r in runs)
        if not children:
            assert parent is not None
            rows.append(GanttRow(slug, name, bar(parent, name), {parent.state: 1}, retries=retries))
            continue
        children.sort(key=lambda r: r.map_index)
        counts = dict(Counter(r.state for r in children))
        started = [r for r in children if r.start_time]
        first = min((r.start_time for r in started), default=None)  # type: ignore[type-var]
        last = max(((r.end_time or now) for r in started), default=None)
        group_bar = None
        if first is not None:
            left, width = pos(first, last)
            group_bar = GanttBar(left, width, _dominant(counts), f"{name} × {len(children)}", parent.id if parent else None,
                                 first, last, retries)
        row = GanttRow(slug, name, group_bar, counts, mapped=True, retries=retries)
        if len(children) <= EXPAND_LIMIT:
            row.children = [GanttRow(slug, f"{name}[{r.map_index}]", bar(r, f"{name}[{r.map_index}]"), {r.state: 1},
                                     retries=r.retries) for r in children]
        else:
            row.aggregated = True
            row.histogram = _histogram(started, t0, span, now)
        rows.append(row)
    far = now.replace(year=9999)
    rows.sort(key=lambda r: (r.bar.start if r.bar and r.bar.start else far, rank.get(r.slug, len(rank)), r.slug))
    ticks: list[tuple[float, str]] = []
    if t0 is not None:
        for i in range(5):
            ticks.append((i * 25.0, "+" + _fmt_seconds(span * i / 4)))
    return Gantt(rows, t0, t1, ticks)


def _histogram(runs: list[TaskRunRow], t0: datetime | None, span: float, now: datetime) -> list[float]:
    """How many children ran in each bucket of the span, scaled to 0..1 (the tallest bucket is 1)."""
    if t0 is None or not runs:
        return []
    delta = [0] * (BUCKETS + 1)  # +1 at a child's first bucket, -1 after its last: one pass, then a running sum
    width = span / BUCKETS
    for r in runs:
        assert r.start_time is not None
        a = (r.start_time - t0).total_seconds()
        b = ((r.end_time or now) - t0).total_seconds()
        delta[max(0, min(BUCKETS - 1, int(a / width)))] += 1
        delta[max(0, min(BUCKETS - 1, int(b / width))) + 1] -= 1
    counts: list[float] = []
    running = 0
    for step in delta[:BUCKETS]:
        running += step
        counts.append(float(running))
    peak = max(counts) or 1.0
    return [c / peak for c in counts]


def gantt_summary(g: Gantt) -> dict[str, Any]:
    """Counts for tests and the benchmark: rows, bars drawn, children aggregated."""
    bars = sum(1 for r in g.rows if r.bar) + sum(1 for r in g.rows for c in r.children if c.bar)
    return {"rows": len(g.rows), "bars": bars, "aggregated": sum(r.total for r in g.rows if r.aggregated)}
