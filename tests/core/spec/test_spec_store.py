"""FlowStore on SQLite (memory and file) and on a real PostgreSQL server: saving, querying, claims, leases."""

from __future__ import annotations

import itertools
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import headwater
from headwater.spec import (
    FlowEngine,
    FlowExistsError,
    FlowNotFoundError,
    FlowStore,
    LeaseLostError,
    SpecError,
    StaleFlowError,
    Worker,
)


def t(key: str, task_type: str = "noop", **params: Any) -> dict[str, Any]:
    return {"key": key, "task_type": task_type, "task_params": params}


def new_flow(label: str = "f", n: int = 2, **extra: Any) -> headwater.Flow:
    return headwater.Flow.from_flow_spec({"label": label, "tasks": [t(f"t{i}") for i in range(n)], **extra})


_prefixes = itertools.count()


@pytest.fixture(params=["sqlite-memory", "sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite-memory":
        return "sqlite://"
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'flows.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def prefix() -> str:
    """Tables of their own for each test (PostgreSQL tests share one database; creating one per test is slow)."""
    return f"t{next(_prefixes)}_"


@pytest.fixture
def store(store_url: str, prefix: str) -> Iterator[FlowStore]:
    s = FlowStore(store_url, worker_id="w1", table_prefix=prefix)
    s.ensure_tables()
    s.ensure_tables()  # idempotent
    yield s
    s.close()


def test_save_gives_a_flow_key_and_load_returns_the_same_flow(store: FlowStore) -> None:
    flow = new_flow(data={"x": [1, 2]})
    FlowEngine().tick_flow(flow)
    key = store.save(flow)
    assert re.fullmatch(r"flow:[0-9a-f-]{36}", key) and flow.key == key
    loaded = store.load(key)
    assert loaded.to_flow_dict() == flow.to_flow_dict()
    assert store.status(key) == "RUNNING"
    assert store.status("flow:nope") is None


def test_saving_again_updates_and_a_taken_key_is_refused(store: FlowStore) -> None:
    flow = new_flow()
    key = store.save(flow)
    FlowEngine().tick_flow_until_has_no_pending(flow)
    assert store.save(flow) == key
    assert store.load(key).status == "COMPLETED"
    with pytest.raises(FlowExistsError, match="already in"):
        store.save(headwater.Flow.from_flow_spec({"key": key, "tasks": []}))


def test_a_stale_copy_cannot_overwrite_a_newer_one(store: FlowStore) -> None:
    key = store.save(new_flow())
    a, b = store.load(key), store.load(key)
    a.data["who"] = "a"
    store.save(a)
    b.data["who"] = "b"
    with pytest.raises(StaleFlowError, match="changed in .* since this copy was loaded"):
        store.save(b)
    assert store.load(key).data == {"who": "a"}


def test_load_of_an_unknown_key_names_it(store: FlowStore) -> None:
    with pytest.raises(FlowNotFoundError, match="flow:nope"):
        store.load("flow:nope")


def test_query_and_count_filter_by_status_label_and_parent(store: FlowStore) -> None:
    done = new_flow("a")
    FlowEngine().tick_flow_until_has_no_pending(done)
    keys = [store.save(done), store.save(new_flow("a")), store.save(new_flow("b", parent_key="flow:p", depth=1))]
    assert [f.key for f in store.query()] == keys
    assert [f.key for f in store.query(label="a")] == keys[:2]
    assert [f.key for f in store.query(status="COMPLETED")] == keys[:1]
    assert [f.key for f in store.query(status=["PENDING", "RUNNING"])] == keys[1:]
    assert [f.key for f in store.query(parent_key="flow:p")] == keys[2:]
    assert [f.key for f in store.query(limit=2)] == keys[:2]
    assert store.count() == 3 and store.count(label="a", status="PENDING") == 1


def test_flows_saved_within_one_clock_tick_are_listed_in_the_order_saved(
    store: FlowStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlalchemy as sa

    monkeypatch.setattr(store, "_now", lambda: sa.literal(1_000_000.0, sa.Float))  # every save in one tick
    keys = [f"flow:{c}" for c in "edcba"]  # key order is the reverse of the saving order
    for key in keys:
        store.save(headwater.Flow.from_flow_spec({"key": key, "label": "tick", "tasks": [t("a")]}))
    child = new_flow("tick", parent_key=keys[0], depth=1)
    keys.append(store.save(child))
    again = store.load(keys[1])
    again.data["saved"] = "twice"
    store.save(again)  # an update keeps the flow's place
    assert [f.key for f in store.query()] == keys
    assert [f.key for f in store.query(label="tick", limit=3)] == keys[:3]


def _pre_seq_tables(sa: Any, prefix: str) -> tuple[Any, Any]:
    """The flows and waits tables as FlowStore created them before the ``seq`` column (frozen copy)."""
    md = sa.MetaData()
    flows = sa.Table(
        f"{prefix}flows",
        md,
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("label", sa.String(255), nullable=True, index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("parent_key", sa.String(255), nullable=True, index=True),
        sa.Column("depth", sa.Integer, nullable=False, default=0),
        sa.Column("num_ready", sa.Integer, nullable=False, default=0),
        sa.Column("flow", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("claimed_by", sa.String(255), nullable=True),
        sa.Column("claimed_until", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    sa.Table(
        f"{prefix}waits",
        md,
        sa.Column("parent_key", sa.String(255), primary_key=True),
        sa.Column("child_key", sa.String(255), primary_key=True, index=True),
    )
    return md, flows


def _pre_seq_row(key: str, created_at: float) -> dict[str, Any]:
    from headwater.spec.model import flow_to_dict

    flow = headwater.Flow.from_flow_spec({"key": key, "label": "old", "tasks": [t("a")]})
    return {"key": key, "label": "old", "status": "PENDING", "parent_key": None, "depth": 0, "num_ready": 1,
            "flow": flow_to_dict(flow), "version": 1, "created_at": created_at, "updated_at": created_at}


@pytest.fixture(params=["sqlite-file", pytest.param("postgres", marks=pytest.mark.postgres)])
def lasting_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database that outlives one store (an in-memory SQLite database does not)."""
    if request.param == "sqlite-file":
        return f"sqlite:///{tmp_path / 'flows.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.mark.parametrize("first", ["ensure_tables", "query", "save"])
def test_a_database_from_before_the_seq_column_opens_queries_and_takes_new_flows(
    lasting_url: str, prefix: str, first: str
) -> None:
    import sqlalchemy as sa

    store_url = lasting_url

    engine = sa.create_engine(store_url)
    md, old_flows = _pre_seq_tables(sa, prefix)
    with engine.begin() as conn:  # written by an older headwater: no seq column
        md.create_all(conn)
        conn.execute(sa.insert(old_flows), [_pre_seq_row("flow:b", 1.0), _pre_seq_row("flow:c", 2.0),
                                            _pre_seq_row("flow:a", 2.0)])
    store = FlowStore(store_url, worker_id="w1", table_prefix=prefix)
    try:
        old = ["flow:b", "flow:a", "flow:c"]  # the old order: created_at, then key
        new: list[str] = []
        if first == "ensure_tables":
            store.ensure_tables()
        elif first == "query":  # the store upgrades the table itself when it meets it
            assert [f.key for f in store.query()] == old
        else:
            new.append(store.save(new_flow("new")))
        store.ensure_tables()  # the upgrade runs once
        with engine.connect() as conn:
            assert "seq" in {c["name"] for c in sa.inspect(conn).get_columns(f"{prefix}flows")}
        assert [f.key for f in store.query()] == [*old, *new]
        assert store.load("flow:a").label == "old" and store.count(label="old") == 3
        new.append(store.save(new_flow("new")))
        assert [f.key for f in store.query()] == [*old, *new]
        with engine.begin() as conn:  # an older headwater still writing into the upgraded table
            conn.execute(sa.insert(old_flows).values(**_pre_seq_row("flow:0", 0.5)))
        assert [f.key for f in store.query()] == [*old, *new, "flow:0"]
        claimed = store.claim(limit=10)
        assert sorted(f.key for f in claimed) == sorted([*old, *new, "flow:0"])
        for flow in claimed:
            FlowEngine().tick_flow_until_has_no_pending(flow)
            store.release(flow)
        assert store.count(status="COMPLETED") == len(claimed)
    finally:
        store.close()
        engine.dispose()


def test_a_claimed_flow_is_invisible_until_released(store: FlowStore) -> None:
    keys = {store.save(new_flow(str(i))) for i in range(3)}
    mine = store.claim(limit=2, lease_seconds=60)
    assert len(mine) == 2
    theirs = store.claim(limit=10, lease_seconds=60, worker_id="w2")
    assert len(theirs) == 1 and {f.key for f in mine + theirs} == keys
    assert store.claim(limit=10, lease_seconds=60, worker_id="w2") == []
    store.release(mine[0], save=False)
    again = store.claim(limit=10, lease_seconds=60, worker_id="w2")
    assert [f.key for f in again] == [mine[0].key]


def test_an_expired_lease_comes_back_and_the_late_worker_loses_its_tick(store: FlowStore) -> None:
    key = store.save(new_flow())
    [stale] = store.claim(limit=1, lease_seconds=-1)  # a lease that has already run out: a crashed worker
    [fresh] = store.claim(limit=1, lease_seconds=60, worker_id="w2")
    assert fresh.key == key
    FlowEngine().tick_flow(stale)
    with pytest.raises(LeaseLostError, match="lease of worker 'w1' expired"):
        store.release(stale)
    FlowEngine().tick_flow(fresh)
    fresh.data["by"] = "w2"
    store.release(fresh)
    assert store.load(key).data == {"by": "w2"}


def test_an_unclaimed_save_cannot_overwrite_a_flow_a_worker_holds(store: FlowStore) -> None:
    key = store.save(new_flow())
    copy = store.load(key)
    store.claim(limit=1, lease_seconds=60, worker_id="w2")
    with pytest.raises(StaleFlowError):
        store.save(copy)


def test_release_needs_a_claim(store: FlowStore) -> None:
    flow = new_flow()
    store.save(flow)
    with pytest.raises(SpecError, match="not claimed"):
        store.release(flow)


def test_finished_flows_are_not_claimed(store: FlowStore) -> None:
    flow = new_flow()
    FlowEngine().tick_flow_until_has_no_pending(flow)
    store.save(flow)
    assert store.claim(limit=10) == []


def test_children_are_claimed_first_and_a_waiting_parent_is_not_claimed(store: FlowStore) -> None:
    engine = FlowEngine(store=store)
    parent = headwater.Flow.from_flow_spec(
        {"label": "parent", "tasks": [t("kid", "flow", flow_spec={"label": "child", "tasks": [t("a"), t("b")]})]}
    )
    pkey = store.save(parent)
    lone = store.save(new_flow("lone"))
    [p] = store.claim(limit=1)
    assert p.key == pkey, "oldest first among flows of the same depth"
    engine.tick_flow(p)  # spawns the child, saved with the parent on release
    store.release(p)
    [child_row] = store.query(parent_key=pkey)
    assert child_row.depth == 1 and child_row.label == "child"
    claimed = store.claim(limit=10)
    assert [f.key for f in claimed] == [child_row.key, lone], "the child first; the waiting parent not at all"
    for f in claimed:
        store.release(f, save=False)
    while store.status(child_row.key) != "COMPLETED":
        [c] = store.claim(limit=1)
        assert c.key == child_row.key
        engine.tick_flow(c)
        store.release(c)
    [p] = [f for f in store.claim(limit=10) if f.key == pkey]
    engine.tick_flow(p)
    store.release(p)
    assert store.load(pkey).status == "COMPLETED"
    assert store.load(pkey).task_by_slug("kid").data["child_key"] == child_row.key


def test_a_parent_with_one_finished_child_is_claimed_even_if_another_still_runs(store: FlowStore) -> None:
    engine = FlowEngine(store=store)
    parent = headwater.Flow.from_flow_spec(
        {"tasks": [t("k1", "flow", flow_spec={"tasks": [t("a")]}),
                   {**t("k2", "flow", flow_spec={"tasks": [t("a"), t("b"), t("c")]}), "precursors": []}]}
    )
    pkey = store.save(parent)
    [p] = store.claim()
    engine.tick_flow(p)  # spawns both children
    store.release(p)
    kids = store.query(parent_key=pkey)
    short = next(f.key for f in kids if len(f) == 2)  # ROOT + a
    long = next(f.key for f in kids if len(f) == 4)
    claimed = store.claim(limit=10)
    assert {f.key for f in claimed} == {short, long}, "the parent waits on two unfinished children"
    for f in claimed:
        if f.key == short:
            engine.tick_flow(f)
            store.release(f)
        else:
            store.release(f, save=False)
    assert store.status(short) == "COMPLETED" and store.status(long) == "PENDING"
    assert pkey in {f.key for f in store.claim(limit=10)}


def test_a_child_must_be_saved_with_its_parent(store: FlowStore) -> None:
    engine = FlowEngine(store=store)
    parent = headwater.Flow.from_flow_spec({"tasks": [t("kid", "flow", flow_spec={"tasks": [t("a")]})]})
    engine.tick_flow(parent)
    engine.tick_flow(parent)
    assert parent.status == "FAILED"
    assert "save the parent" in parent.data["errors"][0]["message"]


def test_values_that_are_not_json_are_named(store: FlowStore) -> None:
    flow = headwater.Flow.from_flow_spec({"tasks": [t("a", "python", callable="spec_helpers:not_json")]})
    FlowEngine().tick_flow(flow)
    with pytest.raises(SpecError, match=r"flow\.graph\.tasks\.a\.data\.result \(object\) is not JSON"):
        store.save(flow)


def test_a_store_without_tables_says_how_to_create_them(store_url: str) -> None:
    fresh = FlowStore(store_url, table_prefix="never_created_")
    with pytest.raises(SpecError, match="ensure_tables"):
        fresh.load("flow:x")
    fresh.close()


def test_a_missing_sqlalchemy_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    with pytest.raises(ImportError, match=r"pip install 'headwater\[sql\]'"):
        FlowStore("sqlite://")


def test_the_in_process_worker_ticks_everything_to_the_end(store: FlowStore, capsys: pytest.CaptureFixture[str]) -> None:
    keys = [store.save(headwater.Flow.from_flow_spec(
        {"label": f"w{i}", "tasks": [t("a", "print", msg=f"flow {i}"),
                                     t("s", "spread", items=[1, 2], item_param="msg", skeleton={"task_type": "print"})]}
    )) for i in range(3)]
    ticks = Worker(store, interval=0.01, max_flows=2).run(until_done=True)
    assert ticks >= 3 * 4
    assert all(store.status(k) == "COMPLETED" for k in keys)
    assert store.count(status="COMPLETED") == 3 + 3  # and their spread children
    out = capsys.readouterr().out.splitlines()
    assert sorted(out) == sorted(["flow 0", "flow 1", "flow 2"] + ["1", "2"] * 3)


def test_an_engine_error_fails_the_flow_instead_of_looping(store: FlowStore) -> None:
    class Broken(FlowEngine):
        def tick_flow(self, flow: headwater.Flow) -> None:
            raise RuntimeError("engine bug")

    key = store.save(new_flow())
    Worker(store, Broken(store=store), interval=0.01).run(max_polls=1)
    flow = store.load(key)
    assert flow.status == "FAILED" and "engine bug" in flow.data["errors"][0]["message"]


def test_concurrent_claims_never_hand_out_a_flow_twice(store_url: str, prefix: str) -> None:
    if store_url == "sqlite://":
        pytest.skip("an in-memory SQLite database is one connection; claims from threads need a file or a server")
    setup = FlowStore(store_url, table_prefix=prefix)
    setup.ensure_tables()
    keys = {setup.save(new_flow(str(i), n=1)) for i in range(60)}
    got: list[str] = []
    lock = threading.Lock()

    def claimer(n: int) -> None:
        s = FlowStore(store_url, worker_id=f"thread-{n}", table_prefix=prefix)
        while True:
            flows = s.claim(limit=3, lease_seconds=60)
            if not flows:
                break
            with lock:
                got.extend(f.key for f in flows)
        s.close()

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(got) == sorted(keys)
    setup.close()


def test_a_flow_started_locally_with_a_child_inside_finishes_in_the_store(
    store: FlowStore, capsys: pytest.CaptureFixture[str]
) -> None:
    flow = headwater.Flow.from_flow_spec(
        {"tasks": [t("kid", "flow", flow_spec={"tasks": [t("a", "print", msg="child a"), t("b", "print", msg="child b")]}),
                   t("after", "print", msg="parent after")]}
    )
    FlowEngine().tick_flow(flow)  # no store: the child lives inside the task
    FlowEngine().tick_flow(flow)
    assert capsys.readouterr().out == "child a\n"
    key = store.save(flow)
    Worker(store, interval=0.01).run(until_done=True)
    assert capsys.readouterr().out == "child b\nparent after\n"
    assert store.load(key).status == "COMPLETED" and store.count() == 1


def test_the_worker_keeps_going_when_a_claim_fails(store: FlowStore, monkeypatch: pytest.MonkeyPatch) -> None:
    key = store.save(new_flow(n=1))
    real_claim = store.claim
    failures = iter([RuntimeError("database restarting")])

    def flaky_claim(*args: Any, **kwargs: Any) -> list[headwater.Flow]:
        for exc in failures:
            raise exc
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim", flaky_claim)
    Worker(store, interval=0.01).run(until_done=True)
    assert store.status(key) == "COMPLETED"
