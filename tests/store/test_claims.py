"""Claims on every backend: no run claimed twice by concurrent claimers, priorities, and named
queues with global / per-worker concurrency and rate limits shared by every worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from ductwork.store import open_store
from ductwork.store.protocol import Batch, QueueLimit, RunStore
from tests.store.rows import pending


@pytest.fixture
async def stores(store_url_any: str) -> AsyncIterator[list[RunStore]]:
    """Two stores on one database: two worker processes."""
    a, b = open_store(store_url_any), open_store(store_url_any)
    await a.open()
    await b.open()
    try:
        yield [a, b]
    finally:
        await a.close()
        await b.close()


async def _age_claims(store: RunStore, seconds: float) -> None:
    from ductwork.store.postgres import PostgresStore
    from ductwork.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        store.conn.execute("UPDATE dw_queue_claims SET ts = ts - ?", (seconds,))
    else:
        assert isinstance(store, PostgresStore)
        async with store.pool.connection() as conn:
            await conn.execute("UPDATE dw_queue_claims SET ts = ts - %s", (seconds,))


async def test_concurrent_claimers_never_claim_a_run_twice(stores: list[RunStore]) -> None:
    a, b = stores
    for i in range(120):
        await a.create_run(pending(f"w{i:03}"), [])

    async def worker(store: RunStore, owner: str) -> list[str]:
        got: list[str] = []
        while True:
            rows = await store.claim_due(owner, 30, 7)
            if not rows:
                return got
            got += [r.workflow_id for r in rows]
            await asyncio.sleep(0)  # let the other claimers in (SQLite calls never suspend)

    claimed = await asyncio.gather(*(worker(s, f"o{i}") for i, s in
                                     enumerate([a, b, a, b, a, b])))
    flat = [w for c in claimed for w in c]
    assert len(flat) == 120 and len(set(flat)) == 120
    assert sum(1 for c in claimed if c) >= 2  # the work was actually shared


async def test_claims_follow_priority_then_due_time(stores: list[RunStore]) -> None:
    a, _ = stores
    t = time.time()
    await a.create_run(pending("late", wake_at=t - 1), [])
    await a.create_run(pending("early", wake_at=t - 9), [])
    await a.create_run(pending("urgent", wake_at=t - 1, priority=10), [])
    got = await a.claim_due("me", 30, 2)
    assert [r.workflow_id for r in got] == ["urgent", "early"]


async def test_queue_concurrency_is_global_across_workers(stores: list[RunStore]) -> None:
    a, b = stores
    for i in range(20):
        await a.create_run(pending(f"m{i:02}", queue="mail"), [])
    for i in range(5):
        await a.create_run(pending(f"d{i}"), [])
    for s in stores:
        s.set_queue_limits({"mail": QueueLimit(concurrency=3)})
    got = await asyncio.gather(*(s.claim_due(f"w{i}", 30, 10) for i, s in
                                 enumerate([a, b, a, b, a, b, a, b])))
    mail = [r for rows in got for r in rows if r.queue == "mail"]
    other = [r for rows in got for r in rows if r.queue == "default"]
    assert len(mail) == 3 and len(other) == 5
    # A finished run frees its slot; a suspended one (owner released) does too.
    done = mail[0]
    await a.commit(done.workflow_id, Batch(owner=done.owner, run={
        "status": "completed", "owner": None, "lease_until": None}))
    assert len(await b.claim_due("w9", 30, 10)) == 1
    assert await b.claim_due("w9", 30, 10) == []


async def test_per_worker_queue_concurrency(stores: list[RunStore]) -> None:
    a, b = stores
    for i in range(10):
        await a.create_run(pending(f"m{i}", queue="mail"), [])
    for s in stores:
        s.set_queue_limits({"mail": QueueLimit(concurrency=5, worker_concurrency=2)})
    assert len(await a.claim_due("w1", 30, 10)) == 2
    assert len(await a.claim_due("w1", 30, 10)) == 0
    assert len(await b.claim_due("w2", 30, 10)) == 2
    assert len(await b.claim_due("w3", 30, 10)) == 1  # the global limit (5) is reached


async def test_queue_rate_limit_counts_claims_in_the_period(stores: list[RunStore]) -> None:
    a, b = stores
    for i in range(10):
        await a.create_run(pending(f"r{i}", queue="api"), [])
    for s in stores:
        s.set_queue_limits({"api": QueueLimit(rate=(4, 60.0))})
    got = await asyncio.gather(*(s.claim_due(f"w{i}", 30, 3) for i, s in
                                 enumerate([a, b, a, b])))
    assert sum(len(g) for g in got) == 4
    # Finishing them does not give the rate back: it counts starts per period.
    for rows in got:
        for r in rows:
            await a.commit(r.workflow_id, Batch(owner=r.owner, run={
                "status": "completed", "owner": None}))
    assert await b.claim_due("w9", 30, 10) == []
    # Once the period has passed (aged here by hand), claims go on.
    await _age_claims(a, 61)
    assert len(await b.claim_due("w9", 30, 10)) == 4


async def test_queue_filter_and_limits_combine(stores: list[RunStore]) -> None:
    a, _ = stores
    await a.create_run(pending("m", queue="mail"), [])
    await a.create_run(pending("s", queue="sms"), [])
    await a.create_run(pending("d"), [])
    a.set_queue_limits({"mail": QueueLimit(concurrency=1)})
    got = await a.claim_due("w", 30, 10, queues=["mail", "sms"])
    assert sorted(r.workflow_id for r in got) == ["m", "s"]


async def test_a_wait_without_deadline_is_due_only_once_signalled(
        stores: list[RunStore]) -> None:
    a, b = stores
    t = time.time()
    await a.create_run(pending("w", status="waiting", wake_at=None), [])
    await a.create_run(pending("s", status="sleeping", wake_at=None), [])
    await a.create_run(pending("q", wake_at=None), [])  # queued: due at once
    assert [r.workflow_id for r in await a.claim_due("me", 30, 10)] == ["q"]
    await b.send_signal("w", "go", None)
    got = await a.claim_due("me", 30, 10)
    assert [r.workflow_id for r in got] == ["w"] and got[0].wake_at is not None
    assert got[0].wake_at <= time.time() and t <= got[0].wake_at


async def test_next_due_at_is_the_earliest_unowned_wake_up(stores: list[RunStore]) -> None:
    a, _ = stores
    t = time.time()
    assert await a.next_due_at() is None
    await a.create_run(pending("s", status="sleeping", wake_at=t + 100), [])
    await a.create_run(pending("w", status="waiting", wake_at=None), [])  # no deadline
    await a.create_run(pending("o", status="pending", wake_at=t + 1, owner="x",
                               lease_until=t + 30), [])  # held by a worker
    assert await a.next_due_at() == pytest.approx(t + 100)
    await a.create_run(pending("m", wake_at=t + 50, queue="mail"), [])
    assert await a.next_due_at() == pytest.approx(t + 50)
    assert await a.next_due_at(["default"]) == pytest.approx(t + 100)
    await a.create_run(pending("q", wake_at=None, queue="mail"), [])  # queued: due at once
    assert await a.next_due_at() == 0
    assert await a.next_due_at(["default"]) == pytest.approx(t + 100)


async def test_claiming_one_run_of_a_limited_queue_takes_a_slot(stores: list[RunStore]) -> None:
    """result() or a parent may drive a run itself: that counts against the queue too."""
    a, b = stores
    for i in range(3):
        await a.create_run(pending(f"m{i}", queue="mail"), [])
    for s in stores:
        s.set_queue_limits({"mail": QueueLimit(concurrency=1, rate=(2, 60.0))})
    assert await a.claim("m0", "w1", 30) is not None
    assert await b.claim("m1", "w2", 30) is None  # the one slot is taken
    assert await b.claim_due("w2", 30, 10) == []
    assert await a.claim("m0", "w1", 30) is not None  # its own run: no new slot
    await a.release("m0", "w1")
    assert await b.claim("m1", "w2", 30) is not None  # the slot is free again
    await b.release("m1", "w2")
    assert await b.claim("m2", "w2", 30) is None  # but the rate (2 per minute) is used up
