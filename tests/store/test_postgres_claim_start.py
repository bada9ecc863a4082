"""PostgreSQL's claim_due() starts the runs it claims (one statement: owner, lease, status
running, started_at) and hands their steps to the load_steps() that follows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from ductwork.store.postgres import PostgresStore
from ductwork.store.protocol import Batch, StepRow
from tests.store.rows import pending


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[list[PostgresStore]]:
    """Two stores on one database: two workers on two machines."""
    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    await a.open()
    await b.open()
    try:
        yield [a, b]
    finally:
        await a.close()
        await b.close()


async def _row(url: str, wid: str) -> tuple[object, ...]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT status, wake_at, started_at, owner, attempt FROM "
                                 "dw_runs WHERE workflow_id=%s", (wid,))
        row = await cur.fetchone()
        assert row is not None
        return tuple(row)


async def test_claim_due_starts_the_run(stores: list[PostgresStore], pg_url: str) -> None:
    a, _ = stores
    due = pending("w1")
    await a.create_run(due, [])
    (got,) = await a.claim_due("me", 30, 5)
    assert (got.status, got.owner, got.attempt) == ("running", "me", 1)
    assert got.started_at is not None
    assert got.wake_at == due.wake_at  # the due time it was claimed at (claim latency)
    status, wake_at, started_at, owner, attempt = await _row(pg_url, "w1")
    assert (status, wake_at, owner, attempt) == ("running", None, "me", 1)
    assert started_at == got.started_at


async def test_a_resumed_run_keeps_its_start_and_gets_its_steps(stores: list[PostgresStore],
                                                                pg_url: str) -> None:
    a, b = stores
    await a.create_run(pending("w1", status="sleeping", started_at=100.0, attempt=1,
                               faults=0), [])
    (first,) = await a.claim_due("me", 30, 5)
    assert (first.started_at, first.attempt) == (100.0, 2)
    steps = [StepRow("w1", "s1", "s1", result='{"x": 1.5}', seq=1, started_at=1.25,
                     finished_at=2.5, critical=True, meta='{"m": null}'),
             StepRow("w1", "s2", "s2", result="2", seq=2)]
    await a.commit("w1", Batch(owner="me", steps=steps))
    await a.release("w1", "me")  # back to the queue (status pending), steps kept
    (again,) = await b.claim_due("you", 30, 5)
    assert (again.status, again.started_at, again.attempt) == ("running", 100.0, 3)
    handed = await b.load_steps("w1")  # from the claim: no read
    assert handed == steps
    assert await b.load_steps("w1") == steps  # read again from the database: the same
    assert (await _row(pg_url, "w1"))[:2] == ("running", None)


async def test_two_workers_racing_on_one_run_exactly_one_gets_it(
        stores: list[PostgresStore]) -> None:
    a, b = stores
    for i in range(30):
        await a.create_run(pending(f"w{i}"), [])
        got = await asyncio.gather(a.claim_due("A", 30, 1), b.claim_due("B", 30, 1),
                                   a.claim_due("C", 30, 1), b.claim_due("D", 30, 1))
        winners = [rows[0].owner for rows in got if rows]
        assert len(winners) == 1
        run = await a.get_run(f"w{i}")
        assert run is not None and run.owner == winners[0] and run.attempt == 1


async def test_released_runs_forget_their_claimed_steps(stores: list[PostgresStore]) -> None:
    a, _ = stores
    await a.create_run(pending("w1"), [])
    await a.claim_due("me", 30, 5)
    await a.release("w1", "me")
    assert a.take_claimed_steps("w1") is None


async def test_a_run_taken_over_from_a_lapsed_owner_reads_its_steps_afresh(
        stores: list[PostgresStore]) -> None:
    # The claim's in-statement read of the steps uses a snapshot taken before its row lock; a
    # lapsed (not dead) owner may commit a step in between, so a takeover is never handed the
    # claim's copy: load_steps() reads after the claim, and sees that commit.
    a, b = stores
    await a.create_run(pending("w1"), [])
    (first,) = await a.claim_due("old", 0.2, 5)
    assert first.owner == "old"
    await a.commit("w1", Batch(owner="old", steps=[StepRow("w1", "s1", "s1", result="1",
                                                           seq=1)]))
    assert a.take_claimed_steps("w1") == []  # a fresh claim: its (empty) history handed on
    await asyncio.sleep(0.4)  # the old owner's lease runs out
    (taken,) = await b.claim_due("new", 30, 5)
    assert (taken.workflow_id, taken.owner) == ("w1", "new")
    assert b.take_claimed_steps("w1") is None  # nothing handed on for a takeover
    # ... and what the old owner wrote (even just after the claim's snapshot) is read here
    assert [s.step_key for s in await b.load_steps("w1")] == ["s1"]
