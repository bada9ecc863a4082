"""Group commit on every backend (commit_many: each batch all-or-nothing, a fence failure stays
in its slot, other errors raise for all); on PostgreSQL one transaction, create_runs() too."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from ductwork.errors import StoreError
from ductwork.store.postgres import PostgresStore
from ductwork.store.protocol import (
    Batch,
    LeaseLostError,
    RunStore,
    StepConflictError,
    StepRow,
)
from tests.store.rows import run


async def _runs(store: RunStore, *wids: str, owner: str = "me") -> None:
    for wid in wids:
        await store.create_run(run(wid, owner=owner), [])


async def test_all_batches_commit(store: RunStore) -> None:
    await _runs(store, "a", "b", "c")
    out = await store.commit_many([
        ("a", Batch(owner="me", steps=[StepRow("a", "s1", "s1", result="1", seq=1)])),
        ("b", Batch(owner="me", steps=[StepRow("b", "s1", "s1", result="2", seq=1)],
                    events=[(1.0, "step_completed", "s1", None)], state={"k": '"v"'})),
        ("c", Batch(owner="me", run={"status": "completed", "output": "3", "owner": None})),
    ])
    assert out == [None, None, None]
    assert [s.result for s in await store.load_steps("a")] == ["1"]
    assert [s.result for s in await store.load_steps("b")] == ["2"]
    assert [e["type"] for e in await store.events("b")] == ["step_completed"]
    assert await store.get_state("b") == {"k": '"v"'}
    c = await store.get_run("c")
    assert c is not None and (c.status, c.output, c.owner) == ("completed", "3", None)


async def test_a_lost_lease_fails_its_batch_only(store: RunStore) -> None:
    await _runs(store, "a", "c")
    await _runs(store, "b", owner="other")  # taken over by another worker
    out = await store.commit_many([
        ("a", Batch(owner="me", steps=[StepRow("a", "s1", "s1", result="1", seq=1)])),
        ("b", Batch(owner="me", steps=[StepRow("b", "s1", "s1", result="2", seq=1)],
                    run={"current_step": "s2"})),
        ("c", Batch(owner="me", run={"current_step": "s9"},
                    steps=[StepRow("c", "s1", "s1", result="3", seq=1)])),
    ])
    assert out[0] is None and out[2] is None
    assert isinstance(out[1], LeaseLostError)
    assert [s.step_key for s in await store.load_steps("a")] == ["s1"]
    assert await store.load_steps("b") == []
    b = await store.get_run("b")
    assert b is not None and b.current_step is None
    c = await store.get_run("c")
    assert c is not None and c.current_step == "s9"
    assert [s.step_key for s in await store.load_steps("c")] == ["s1"]


async def test_a_step_conflict_undoes_its_whole_batch_only(store: RunStore) -> None:
    await _runs(store, "a", "b")
    await store.commit("b", Batch(owner="me", steps=[StepRow("b", "s1", "s1", result="1")]))
    out = await store.commit_many([
        ("b", Batch(owner="me", run={"current_step": "s2"}, state={"k": "1"},
                    steps=[StepRow("b", "s2", "s2"), StepRow("b", "s1", "s1", result="X")])),
        ("a", Batch(owner="me", steps=[StepRow("a", "s1", "s1", result="2", seq=1)])),
    ])
    assert out[1] is None
    assert isinstance(out[0], StepConflictError)
    assert [(s.step_key, s.result) for s in await store.load_steps("b")] == [("s1", "1")]
    assert await store.get_state("b") == {}
    b = await store.get_run("b")
    assert b is not None and b.current_step is None
    assert [s.result for s in await store.load_steps("a")] == ["2"]


async def test_nothing_to_commit(store: RunStore) -> None:
    assert await store.commit_many([]) == []


# -- PostgreSQL: one transaction, and errors that are not fences -------------------------------
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
    await _runs(pg, *wids)
    out = await pg.commit_many(
        [(w, Batch(owner="me", steps=[StepRow(w, "s1", "s1", result="1", seq=1)]))
         for w in wids[:10]]
        + [(w, Batch(owner="me", run={"status": "completed"},
                     steps=[StepRow(w, "s1", "s1", result="1", seq=1)])) for w in wids[10:]])
    assert out == [None] * 20
    assert len(await _xmins(pg_url, wids)) == 1  # every row written by one transaction


async def test_postgres_a_store_error_raises_for_all_and_commits_none(pg: PostgresStore
                                                                      ) -> None:
    await _runs(pg, "a", "b")
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
    await _runs(pg, "a", "b", "c", "d")
    await _runs(pg, "x", owner="other")
    out = await pg.commit_many([
        (w, Batch(owner="me", steps=[StepRow(w, "s1", "s1", result="1", seq=1)]))
        for w in ("a", "x", "b", "c", "d")])
    assert [type(e).__name__ if e else None for e in out] == [
        None, "LeaseLostError", None, None, None]
    assert len(await _xmins(pg_url, ["a", "b", "c", "d"])) == 1


async def test_postgres_creates_runs_together_in_one_transaction(pg: PostgresStore,
                                                                 pg_url: str) -> None:
    await _runs(pg, "old")
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
