"""SQLite schemas v5 to v8: fewer run indexes written per run, every query still on an index."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from ductwork.store.protocol import Batch, QueueLimit, StepRow
from ductwork.store.schema import CLAIMABLE_SQLITE, SCHEMA_VERSION
from ductwork.store.sqlite import _DUE_COND, SQLiteStore
from tests.store.rows import pending, run


def _step(wid: str, key: str, seq: int, status: str = "completed", started: float = 0.0,
          result: str | None = '{"ok": 1}') -> StepRow:
    return StepRow(wid, key, key.split("#")[0], "step", status, seq, 1, None, result, None,
                   started or time.time(), None if status == "waiting" else time.time())


async def test_a_v4_store_with_runs_is_upgraded_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runs.db"
    monkeypatch.setattr("ductwork.store.sqlite.SCHEMA_VERSION", 4)
    old = SQLiteStore(f"sqlite:///{path}")
    await old.open()
    assert old.schema_version() == 4
    t = time.time()
    for r in range(3):
        wid = f"w{r}"
        await old.create_run(run(wid, parent_id="w0" if r else None), [])
        # Two records still waiting (seq 0), in the order they began, and completed steps
        # recorded out of key order.
        for i, (key, seq) in enumerate([("zeta", 1), ("child", 0), ("alpha", 2),
                                        ("signal", 0), ("big", 3)]):
            await old.commit(wid, Batch(steps=[_step(
                wid, key, seq, "waiting" if seq == 0 else "completed", started=t + i,
                result="x" * 9_000 if key == "big" else '{"ok": 1}')]))
    before = {f"w{r}": old.conn.execute(
        "SELECT * FROM dw_steps WHERE workflow_id=? ORDER BY seq, rowid", (f"w{r}",)).fetchall()
        for r in range(3)}
    await old.close()
    monkeypatch.undo()

    new = SQLiteStore(f"sqlite:///{path}")
    await new.open()
    assert new.schema_version() == SCHEMA_VERSION == 8
    for wid, rows in before.items():
        # Data preserved, and the history comes back in the same order as before.
        steps = await new.load_steps(wid)
        assert [s.step_key for s in steps] == [r[1] for r in rows]
        assert [s.step_key for s in steps] == ["child", "signal", "zeta", "alpha", "big"]
        assert new.conn.execute("SELECT * FROM dw_steps WHERE workflow_id=? ORDER BY seq, "
                                "rowid", (wid,)).fetchall() == rows
    # The rebuilt indexes hold the runs written before the upgrade.
    assert [r.workflow_id for r in (await new.list_runs(parent_id="w0"))[0]] == ["w2", "w1"]
    assert sorted(await new.renew_leases("me", 30)) == ["w0", "w1", "w2"]
    assert await new.live_owners() == ["me"]
    # The engine's writes still work: a waiting record completes, another step is new.
    await new.commit("w1", Batch(owner="me", steps=[_step("w1", "child", 4)]))
    await new.commit("w1", Batch(owner="me", steps=[_step("w1", "omega", 5)]))
    assert [s.step_key for s in await new.load_steps("w1")] == [
        "signal", "zeta", "alpha", "big", "child", "omega"]
    await new.close()
    # An integrity check of the migrated file (indexes match their tables).
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


def _indexes(db: sqlite3.Connection, table: str) -> set[str]:
    return {r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name=?", (table,))}


async def test_a_run_writes_fewer_index_entries(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'runs.db'}")
    await store.open()
    db = store.conn
    assert _indexes(db, "dw_steps") == {"sqlite_autoindex_dw_steps_1"}
    assert _indexes(db, "dw_runs") == {
        "sqlite_autoindex_dw_runs_1", "dw_runs_due", "dw_runs_owner", "dw_runs_parent",
        "dw_runs_claim", "dw_runs_status_list", "dw_runs_product_list"}
    await store.create_run(run("top"), [])
    # A top-level run has no entry in the (partial) parent index; unowned runs none in the
    # owner index.
    assert db.execute("SELECT count(*) FROM dw_runs INDEXED BY dw_runs_parent "
                      "WHERE parent_id IS NOT NULL").fetchone()[0] == 0
    await store.create_run(pending("queued"), [])
    assert [r[0] for r in db.execute("SELECT workflow_id FROM dw_runs INDEXED BY dw_runs_owner "
                                     "WHERE owner IS NOT NULL")] == ["top"]
    # A run executed in place (owned from the start) is not in the claim index: claims walk
    # unowned runs only.
    assert [r[0] for r in db.execute(
        f"SELECT workflow_id FROM dw_runs INDEXED BY dw_runs_claim WHERE owner IS NULL AND "
        f"{CLAIMABLE_SQLITE}")] == ["queued"]
    # Nor in the due index: only pending runs and runs with a wake-up time are.
    assert [r[0] for r in db.execute(
        f"SELECT workflow_id FROM dw_runs INDEXED BY dw_runs_due WHERE {_DUE_COND}")] == [
        "queued"]
    assert [r.workflow_id for r in await store.claim_due("w", 30, 5)] == ["queued"]
    assert db.execute(f"SELECT count(*) FROM dw_runs INDEXED BY dw_runs_claim WHERE owner IS "
                      f"NULL AND {CLAIMABLE_SQLITE}").fetchone()[0] == 0
    await store.release("queued", "w")  # due again: back in the claim index
    assert [r.workflow_id for r in await store.claim_due("w2", 30, 5)] == ["queued"]
    # Ended, it is not due; asleep, it is due at its wake-up time.
    await store.commit("queued", Batch(owner="w2", run={"status": "completed", "owner": None}))
    await store.commit("top", Batch(owner="me", run={"status": "sleeping", "owner": None,
                                                     "wake_at": time.time() + 60}))
    assert await store.next_due_at() == pytest.approx(time.time() + 60, abs=5)
    assert await store.claim_due("w", 30, 5) == []  # asleep: not due yet
    assert "top" in [r[0] for r in db.execute(  # asleep with a wake-up time: in the due index
        f"SELECT workflow_id FROM dw_runs INDEXED BY dw_runs_due WHERE {_DUE_COND}")]
    await store.close()


async def test_a_v7_store_with_runs_is_upgraded_to_v8_and_keeps_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # v8: the due and claim indexes' conditions without IN (SQLite built a temporary B-tree
    # per row written to evaluate them), the due index partial again, no dw_runs_list.
    path = tmp_path / "runs.db"
    monkeypatch.setattr("ductwork.store.sqlite.SCHEMA_VERSION", 7)
    old = SQLiteStore(f"sqlite:///{path}")
    await old.open()
    assert old.schema_version() == 7
    t = time.time()
    await old.create_run(run("inplace", created_at=t - 5), [])
    await old.create_run(pending("queued", created_at=t - 4), [])
    await old.create_run(pending("later", wake_at=t + 3600, status="sleeping", created_at=t - 3),
                         [])
    await old.create_run(run("done", status="completed", owner=None, created_at=t - 2), [])
    await old.create_run(pending("signal", wake_at=None, status="waiting", created_at=t - 2),
                         [])
    await old.commit("inplace", Batch(owner="me", steps=[_step("inplace", "a", 1)]))
    listed = [r.workflow_id for r in (await old.list_runs())[0]]
    steps = old.conn.execute("SELECT * FROM dw_steps").fetchall()
    runs = old.conn.execute("SELECT * FROM dw_runs ORDER BY workflow_id").fetchall()
    await old.close()
    monkeypatch.undo()

    new = SQLiteStore(f"sqlite:///{path}")
    await new.open()
    assert new.schema_version() == SCHEMA_VERSION == 8
    db = new.conn
    assert db.execute("SELECT * FROM dw_runs ORDER BY workflow_id").fetchall() == runs
    assert db.execute("SELECT * FROM dw_steps").fetchall() == steps
    assert "dw_runs_list" not in _indexes(db, "dw_runs")
    for name in ("dw_runs_due", "dw_runs_claim"):
        sql = db.execute("SELECT sql FROM sqlite_master WHERE name=?", (name,)).fetchone()[0]
        assert " IN (" not in sql.upper(), sql
    # The rebuilt due index holds the runs a claim can wake, not the in-place or ended ones.
    assert sorted(r[0] for r in db.execute(
        f"SELECT workflow_id FROM dw_runs INDEXED BY dw_runs_due WHERE {_DUE_COND}")) == [
        "later", "queued"]
    # Listing keeps its order; claims and the worker's probes still find the due runs.
    assert [r.workflow_id for r in (await new.list_runs())[0]] == listed == [
        "signal", "done", "later", "queued", "inplace"]
    assert await new.next_due_at() == pytest.approx(t - 1, abs=1)
    assert await new.queue_depth(t) == {"default": 1}
    assert [r.workflow_id for r in await new.claim_due("w", 30, 5)] == ["queued"]
    await new.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


async def test_listing_past_the_merge_limit_is_one_sorted_query(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # More statuses than list_runs merges ranges for: one query with a sort, same pages.
    store = SQLiteStore(f"sqlite:///{tmp_path / 'runs.db'}")
    await store.open()
    for i, st in enumerate(["failed", "completed", "running", "completed", "failed"]):
        await store.create_run(run(f"w{i}", status=st, created_at=100.0 + i // 2), [])
    merged = [[r.workflow_id for r in (await store.list_runs(**kw))[0]]
              for kw in ({}, {"status": ["failed", "running"]})]
    monkeypatch.setattr("ductwork.store.sqlite._MERGE_MAX", 1)
    plans = _Plans(store)
    page, cursor = await store.list_runs(limit=2)
    rest, end = await store.list_runs(limit=10, cursor=cursor)
    assert [r.workflow_id for r in page + rest] == merged[0] == ["w4", "w3", "w2", "w1", "w0"]
    assert end is None
    assert [r.workflow_id for r in (await store.list_runs(status=["failed", "running"]))[0]
            ] == merged[1] == ["w4", "w2", "w0"]
    assert not any("UNION ALL" in q for q, _ in plans.take())
    await store.close()


class _Plans:
    """Every statement the store runs, with SQLite's plan for it."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.sql: list[str] = []
        store.conn.set_trace_callback(self.sql.append)

    def take(self) -> list[tuple[str, str]]:
        out = []
        for q in self.sql:
            if q.split()[0].upper() in ("SELECT", "UPDATE", "DELETE", "INSERT") and (
                    "dw_runs" in q or "dw_steps" in q):
                plan = " | ".join(r[3] for r in self.store.conn.execute(
                    "EXPLAIN QUERY PLAN " + q))
                out.append((q, plan))
        self.sql.clear()
        return out


def _all_use(plans: list[tuple[str, str]], index: str) -> None:
    assert plans and all(index in p for _, p in plans), plans


def _merged(plans: list[tuple[str, str]]) -> None:
    """Newest-first listings as a merge of ordered index ranges: no sort of every run."""
    for q, plan in plans:
        if "WITH RECURSIVE" in q:  # the statuses present, one index probe each
            assert "dw_runs_status_list" in plan, plan
            continue
        assert "MERGE (UNION ALL)" in plan and "TEMP B-TREE" not in plan, plan
        assert plan.count("dw_runs_status_list") == q.count("UNION ALL") + 1, plan


def _no_table_scan(plans: list[tuple[str, str]]) -> None:
    for q, plan in plans:
        for part in plan.split(" | "):
            # "SCAN dw_runs USING INDEX x" walks an index in order (and stops at a LIMIT); a
            # bare "SCAN dw_runs" reads every run.
            assert not (part.startswith("SCAN dw_") and "USING" not in part), (q, plan)


async def test_listing_claiming_and_history_queries_use_an_index(tmp_path: Path) -> None:
    store = SQLiteStore(f"sqlite:///{tmp_path / 'runs.db'}")
    await store.open()
    store.set_queue_limits({"slow": QueueLimit(concurrency=2, rate=(5, 60.0))})
    for i in range(20):
        await store.create_run(pending(f"q{i:02}", queue="slow" if i % 2 else "default"), [])
        await store.create_run(run(f"r{i:02}", parent_id="r00" if i else None,
                                   status="completed" if i % 3 else "running"), [])
    plans = _Plans(store)

    # Without a status filter: one range of the status index per status, merged.
    await store.list_runs()
    await store.list_runs(limit=3, cursor=f"{time.time()}|r05")
    await store.list_runs(tag="t")
    _merged(plans.take())
    await store.list_runs(status="completed", since=0.0)
    _all_use(plans.take(), "dw_runs_status_list")
    await store.list_runs(product="p", tag="t")
    _all_use(plans.take(), "dw_runs_product_list")
    await store.list_runs(parent_id="r00")
    await store.list_runs(parent_id="r00", status=["pending", "running"])  # close_children
    _all_use(plans.take(), "dw_runs_parent")
    # The filters of `runs list`, the API and the UI, alone and together.
    await store.list_runs(status=["failed", "rolled_back"], since=0.0, limit=500)
    await store.list_runs(status="running", cursor=f"{time.time()}|r05")
    _all_use(plans.take(), "dw_runs_status_list")
    await store.list_runs(status=["sleeping", "waiting"], limit=1000)  # may read dw_runs_due
    _no_table_scan(plans.take())
    await store.list_runs(product="p", tag="t", status=["failed"], since=0.0)
    await store.list_runs(product="p", tag="t", cursor=f"{time.time()}|r05")
    _all_use(plans.take(), "dw_runs_product_list")
    await store.list_runs(since=time.time() - 60)
    _merged(plans.take())

    await store.claim_due("w1", 30, 5)
    claim = plans.take()
    assert any("dw_runs_claim" in p for _, p in claim)
    assert any("dw_runs_owner" in p for q, p in claim if "lease_until <" in q)
    assert any("dw_runs_owner" in p for q, p in claim if "count(CASE" in q)  # queue limit
    assert any("dw_runs_due" in p for q, p in claim if q.startswith("SELECT EXISTS"))
    _no_table_scan(claim)

    await store.renew_leases("w1", 30)
    await store.live_owners()
    _all_use(plans.take(), "dw_runs_owner")

    await store.cancel_requests("w1")
    _all_use(plans.take(), "dw_runs_owner")

    # The worker's idle wait and the queue-depth gauge read the (partial) due index.
    await store.next_due_at()
    await store.next_due_at(["default"])
    await store.queue_depth(time.time())
    _all_use(plans.take(), "dw_runs_due")

    await store.prune(time.time() + 10, ["completed"], 100)
    await store.load_steps("r00")
    rest = plans.take()
    assert len(rest) >= 2
    _no_table_scan(rest)
    assert any("sqlite_autoindex_dw_steps_1" in p for q, p in rest if "FROM dw_steps" in q)
    await store.close()
