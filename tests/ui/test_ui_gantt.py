"""Gantt aggregation: bars in percent of the run's span, few mapped children listed, many aggregated with a histogram."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from headwater_cloud_api.ui.gantt import BUCKETS, EXPAND_LIMIT, TaskRunRow, aggregate, gantt_summary

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_single_tasks_get_bars_positioned_on_the_span() -> None:
    rows = [TaskRunRow("1", "a", -1, "Success", _at(0), _at(2)), TaskRunRow("2", "b", -1, "Failed", _at(2), _at(4), retries=2),
            TaskRunRow("3", "c", -1, "Pending", None, None)]
    g = aggregate(rows, now=_at(10))
    assert [r.slug for r in g.rows] == ["a", "b", "c"]
    a, b, c = g.rows
    assert a.bar is not None and a.bar.left == 0 and abs(a.bar.width - 50) < 1e-6
    assert b.bar is not None and abs(b.bar.left - 50) < 1e-6 and b.bar.state == "Failed" and b.retries == 2
    assert c.bar is None
    assert g.seconds == 4 and g.ticks[0] == (0.0, "+0 ms") and g.ticks[-1][0] == 100.0


def test_running_bars_end_now() -> None:
    g = aggregate([TaskRunRow("1", "a", -1, "Success", _at(0), _at(1)), TaskRunRow("2", "b", -1, "Running", _at(1), None)], now=_at(4))
    assert g.end == _at(4)
    b = g.rows[1].bar
    assert b is not None and abs(b.left + b.width - 100) < 1e-6


def test_few_mapped_children_are_listed_under_their_task() -> None:
    rows = [TaskRunRow("p", "m", -1, "Mapped", _at(0), _at(0.1))]
    rows += [TaskRunRow(f"c{i}", "m", i, "Success" if i else "Failed", _at(i), _at(i + 1)) for i in range(5)]
    [row] = aggregate(rows, now=_at(10)).rows
    assert row.mapped and not row.aggregated and len(row.children) == 5 and row.total == 5
    assert row.counts == {"Failed": 1, "Success": 4}
    assert row.bar is not None and row.bar.state == "Failed" and row.bar.start == _at(0) and row.bar.end == _at(5)
    assert [c.name for c in row.children] == [f"m[{i}]" for i in range(5)]


def test_ten_thousand_children_are_one_row_with_a_histogram() -> None:
    n = 10_000
    rows = [TaskRunRow("p", "big", -1, "Mapped", _at(0), _at(0))]
    rows += [TaskRunRow(f"c{i}", "big", i, "Success", _at(i * 0.01), _at(i * 0.01 + 0.5)) for i in range(n)]
    rows += [TaskRunRow("after", "after", -1, "Success", _at(101), _at(102))]
    g = aggregate(rows, now=_at(200))
    assert len(g.rows) == 2
    big = g.rows[0]
    assert big.aggregated and big.children == [] and big.total == n and big.counts == {"Success": n}
    assert len(big.histogram) == BUCKETS and max(big.histogram) == 1.0 and min(big.histogram) > 0
    assert gantt_summary(g) == {"rows": 2, "bars": 2, "aggregated": n}
    assert n > EXPAND_LIMIT


def test_rows_follow_start_time_then_dag_order() -> None:
    rows = [TaskRunRow("1", "z", -1, "Success", _at(0), _at(1)), TaskRunRow("2", "y", -1, "Pending", None, None),
            TaskRunRow("3", "x", -1, "Pending", None, None)]
    g = aggregate(rows, now=_at(5), order=["z", "x", "y"])
    assert [r.slug for r in g.rows] == ["z", "x", "y"]


def test_nothing_started_has_no_span() -> None:
    g = aggregate([TaskRunRow("1", "a", -1, "Pending", None, None)], now=_at(1))
    assert g.start is None and g.ticks == [] and g.rows[0].bar is None
