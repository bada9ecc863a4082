"""Group commit on PostgreSQL: one transaction for commit_many() and create_runs(), and errors
that are not fences (the behaviour on every backend is in test_group_commit.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from ductwork.errors import StoreError
from ductwork.store.postgres import PostgresStore
from ductwork.store.protocol import (
    Batch,
    StepRow,
)
from tests.store.rows import create_owned, run


@pytest.fixture
async def pg(pg_url: str) -> AsyncIterator[PostgresStore]:
    s = PostgresStore(pg_url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def _xmins(url: str, wids: list[str]) -> set[str]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT xmin::text FROM dw_steps WHERE workflow_id = ANY(%s) "
                                 "UNION SELECT xmin::text FROM dw_runs WHERE workflow_id = "
                                 "ANY(%s) AND status = 'completed'", (wids, wids))
        return {r[0] for r in await cur.fetchall()}


async def test_postgres_commits_the_group_in_one_transaction(pg: PostgresStore,
                                                             pg_url: str) -> None:
    wids = [f"r{i}" for i in range(20)]
    await create_owned(pg, *wids)
    out = await pg.commit_many(
        [(w, Batch(owner="me", steps=[StepRow(w, "s1", "s1", result="1", seq=1)]))
         for w in wids[:10]]
        + [(w, Batch(owner="me", run={"status": "completed"},
                     steps=[StepRow(w, "s1", "s1", result="1", seq=1)])) for w in wids[10:]])
    assert out == [None] * 20
    assert len(await _xmins(pg_url, wids)) == 1  # every row written by one transaction


async def test_postgres_a_store_error_raises_for_all_and_commits_none(pg: PostgresStore
                                                                      ) -> None:
    await create_owned(pg, "a", "b")
    bad = StepRow("b", "s1", "s1", seq="not a number")  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await pg.commit_many([
            ("a", Batch(owner="me", steps=[StepRow("a", "s1", "s1", result="1", seq=1)])),
            ("b", Batch(owner="me", steps=[bad])),
        ])
    assert await pg.load_steps("a") == []
    assert await pg.load_steps("b") == []


async def test_postgres_fence_failures_leave_the_others_in_one_transaction(
        pg: PostgresStore, pg_url: str) -> None:
    await create_owned(pg, "a", "b", "c", "d")
    await create_owned(pg, "x", owner="other")
    out = await pg.commit_many([
        (w, Batch(owner="me", steps=[StepRow(w, "s1", "s1", result="1", seq=1)]))
        for w in ("a", "x", "b", "c", "d")])
    assert [type(e).__name__ if e else None for e in out] == [
        None, "LeaseLostError", None, None, None]
    assert len(await _xmins(pg_url, ["a", "b", "c", "d"])) == 1


async def test_postgres_creates_runs_together_in_one_transaction(pg: PostgresStore,
                                                                 pg_url: str) -> None:
    await create_owned(pg, "old")
    items = [(run(f"n{i}"), [(1.0, "workflow_queued", None, None)]) for i in range(5)]
    got = await pg.create_runs([*items[:3], (run("old", input="other"), []), *items[3:]])
    assert [(r.workflow_id, made) for r, made in got] == [
        ("n0", True), ("n1", True), ("n2", True), ("old", False), ("n3", True), ("n4", True)]
    assert got[3][0].input is None  # the stored run, not the one asked for
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(DISTINCT xmin::text) FROM dw_runs WHERE "
                                 "workflow_id LIKE 'n%%'")
        assert (await cur.fetchone()) == (1,)
    assert [e["type"] for e in await pg.events("n4")] == ["workflow_queued"]
