"""PostgreSQL-only store properties: migrations under concurrency, forced step-commit races,
SKIP LOCKED claims, queue limits across workers, LISTEN/NOTIFY wake-ups, connection failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import psycopg
import pytest

from ductwork.errors import StoreError
from ductwork.store.postgres import PostgresStore, safe_url
from ductwork.store.postgres.sql import STEP_UPSERT
from ductwork.store.protocol import (
    STEP_FIELDS,
    Batch,
    LeaseLostError,
    StepConflictError,
    StepRow,
)
from ductwork.store.schema import SCHEMA_VERSION
from tests.store.rows import pending, run
from tests.support.postgres import PgServer


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


async def _sql(url: str, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(sql, params)
        return await cur.fetchall() if cur.description else []


# -- migrations -------------------------------------------------------------------------------
async def test_workers_starting_together_migrate_once(pg_url: str) -> None:
    stores = [PostgresStore(pg_url, min_size=0) for _ in range(6)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        assert {await s.schema_version() for s in stores} == {SCHEMA_VERSION}
        rows = await _sql(pg_url, "SELECT value FROM dw_meta WHERE key='schema_version'")
        assert rows == [(str(SCHEMA_VERSION),)]
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def test_upgrade_is_explicit_when_auto_migration_is_off(pg_url: str) -> None:
    store = PostgresStore(pg_url, migrate=False)
    with pytest.raises(StoreError, match="ductwork db upgrade"):
        await store.open()
    assert await store.upgrade() == (0, SCHEMA_VERSION)
    assert await store.upgrade() == (SCHEMA_VERSION, SCHEMA_VERSION)
    await store.open()
    await store.close()


async def test_a_newer_schema_is_refused(pg_url: str) -> None:
    await _sql(pg_url, "CREATE TABLE dw_meta (key TEXT PRIMARY KEY, value TEXT)")
    await _sql(pg_url, "INSERT INTO dw_meta VALUES ('schema_version', '999')")
    with pytest.raises(StoreError, match="newer than this ductwork"):
        await PostgresStore(pg_url).open()


async def test_connection_errors_never_show_the_password(postgres_server: PgServer) -> None:
    url = postgres_server.dsn_for(password="s3cr3t-wrong")
    with pytest.raises(StoreError) as err:
        await PostgresStore(url).open()
    assert "s3cr3t-wrong" not in str(err.value)
    assert "password authentication failed" in str(err.value)
    assert safe_url("postgresql://u:pw@h:1/db") == "postgresql://u:***@h:1/db"


def test_pool_size_comes_from_the_url() -> None:
    s = PostgresStore("postgresql://u@h/db?pool_max_size=25&pool_min_size=2&sslmode=disable")
    assert (s.min_size, s.max_size) == (2, 25)
    assert s.conninfo == "postgresql://u@h/db?sslmode=disable"
    with pytest.raises(StoreError, match="pool_min_size"):
        PostgresStore("postgresql://u@h/db?pool_max_size=many")


# -- a step result is committed at most once ----------------------------------------------------
async def test_stale_owner_and_new_owner_race_on_one_step(stores: list[PostgresStore]) -> None:
    old, new = stores
    await old.create_run(run("w1", owner="old", lease_until=time.time() - 1), [])
    assert await new.claim("w1", "new", 30) is not None  # the lease expired: taken over
    outcomes = await asyncio.gather(
        old.commit("w1", Batch(owner="old", steps=[StepRow("w1", "charge", "charge",
                                                           result='"old"', seq=1)])),
        new.commit("w1", Batch(owner="new", steps=[StepRow("w1", "charge", "charge",
                                                           result='"new"', seq=1)])),
        return_exceptions=True)
    assert isinstance(outcomes[0], LeaseLostError) and outcomes[1] is None
    (step,) = await new.load_steps("w1")
    assert step.result == '"new"'


async def test_a_takeover_waits_for_the_dead_owners_commit_in_flight(
        stores: list[PostgresStore], pg_url: str) -> None:
    """The old owner died with a step commit on its way (the statement reached the server): the
    new owner's claim must not slip in between that commit's ownership check and its end, or it
    would replay a history without the step and run it again (found by bench/faults.py)."""
    _, new = stores
    await new.create_run(run("w1", owner="old"), [])
    in_flight = await psycopg.AsyncConnection.connect(pg_url)
    try:
        row = StepRow("w1", "charge", "charge", seq=1, result='"ch_1"')
        await in_flight.execute(STEP_UPSERT, [*(getattr(row, f) for f in STEP_FIELDS), "w1",
                                              "old", "old"])
        claim = asyncio.ensure_future(new.claim("w1", "new", 30, steal_from=frozenset({"old"})))
        for _ in range(500):
            assert not claim.done(), "the run was claimed while the old owner's commit ran"
            rows = await _sql(pg_url, "SELECT count(*) FROM pg_locks WHERE NOT granted")
            if int(str(rows[0][0])) >= 1:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the claim neither waited nor finished")
        await in_flight.commit()
        assert await claim is not None
    finally:
        await in_flight.close()
    assert [(s.step_key, s.result) for s in await new.load_steps("w1")] == [("charge", '"ch_1"')]


@pytest.mark.parametrize("batched", [False, True])
async def test_two_commits_of_one_step_blocked_on_the_same_key_one_wins(
        stores: list[PostgresStore], pg_url: str, batched: bool) -> None:
    """Force the race: a third transaction holds the primary-key slot while two writers (split
    brain: both believe they own the run) commit the same step; release it and exactly one
    record wins, the other writer is told."""
    a, b = stores
    await a.create_run(run("w1"), [])
    blocker = await psycopg.AsyncConnection.connect(pg_url)
    try:
        await blocker.execute("INSERT INTO dw_steps (workflow_id, step_key, tag, kind, status, "
                              "seq) VALUES ('w1', 'charge', 'charge', 'step', 'completed', 9)")

        def batch(result: str) -> Batch:
            extra = {"run": {"current_step": "charge"}} if batched else {}
            return Batch(owner="me", steps=[StepRow("w1", "charge", "charge", result=result,
                                                    seq=1)], **extra)  # type: ignore[arg-type]

        race = asyncio.gather(a.commit("w1", batch('"a"')), b.commit("w1", batch('"b"')),
                              return_exceptions=True)
        # Both writers are now waiting on the blocker's uncommitted key.
        for _ in range(200):
            rows = await _sql(pg_url, "SELECT count(*) FROM pg_locks WHERE NOT granted")
            if int(str(rows[0][0])) >= 2:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the two commits never blocked on the held key")
        await blocker.rollback()
        outcomes = await race
    finally:
        await blocker.close()
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], StepConflictError), outcomes
    (step,) = await a.load_steps("w1")
    winner = '"a"' if outcomes[0] is None else '"b"'
    assert step.result == winner


async def test_many_owners_racing_record_each_step_once(stores: list[PostgresStore]) -> None:
    a, b = stores
    await a.create_run(run("w1", owner=None), [])  # no fence: only the primary key decides
    steps = [f"s{i}" for i in range(30)]

    async def write(store: PostgresStore, who: str) -> list[str]:
        won = []
        for k in steps:
            try:
                await store.commit("w1", Batch(steps=[StepRow("w1", k, k, result=f'"{who}"')]))
                won.append(k)
            except StepConflictError:
                pass
        return won

    wins = await asyncio.gather(*(write(s, f"{s_i}") for s_i, s in enumerate([a, b, a, b])))
    assert sorted(k for w in wins for k in w) == sorted(steps)
    assert len(await a.load_steps("w1")) == len(steps)


async def test_a_retried_commit_that_already_landed_is_not_a_conflict(
        stores: list[PostgresStore]) -> None:
    a, _ = stores
    await a.create_run(run("w1"), [])
    row = StepRow("w1", "charge", "charge", result='{"id": 1}', seq=1)
    await a.commit("w1", Batch(owner="me", steps=[row]))
    # The connection broke after COMMIT, before the reply: the retry sees its own row.
    async with a.pool.connection() as conn:
        await a._insert_step(conn, "w1", row, "me", attempt=1)
        with pytest.raises(StepConflictError):
            await a._insert_step(conn, "w1", StepRow("w1", "charge", "charge", result='"x"',
                                                     seq=1), "me", attempt=1)


# -- waking idle workers ----------------------------------------------------------------------
async def test_dispatch_signal_and_release_wake_an_idle_worker(
        stores: list[PostgresStore]) -> None:
    worker, client = stores
    assert await worker.claim_due("w", 30, 10) == []  # starts listening

    async def woken_by(action: object) -> bool:
        waiter = asyncio.create_task(worker.wait_for_work(30))
        await asyncio.sleep(0.05)
        await action  # type: ignore[misc]
        return await waiter

    assert await woken_by(client.create_run(pending("p1"), []))
    await client.create_run(run("w2", status="waiting", owner=None, wake_at=None), [])
    assert await woken_by(client.send_signal("w2", "go", None))
    await client.create_run(run("w3", owner="x"), [])
    assert await woken_by(client.release("w3", "x"))


async def test_notifications_for_other_queues_do_not_wake(stores: list[PostgresStore]) -> None:
    worker, client = stores
    await worker.claim_due("w", 30, 10, queues=["mail"])
    waiter = asyncio.create_task(worker.wait_for_work(0.5, queues=["mail"]))
    await asyncio.sleep(0.05)
    await client.create_run(pending("p1", queue="sms"), [])
    assert await waiter is False


async def test_a_notification_sent_while_busy_is_not_lost(stores: list[PostgresStore]) -> None:
    worker, client = stores
    assert await worker.claim_due("w", 30, 10) == []
    await client.create_run(pending("p1"), [])  # arrives before the worker waits
    assert await worker.wait_for_work(30) is True


async def test_notifications_name_the_run_and_claim_announced_takes_it_with_what_it_reads(
        stores: list[PostgresStore]) -> None:
    worker, client = stores
    assert await worker.claim_due("w", 30, 10) == []  # starts listening
    assert worker.take_announced() is None  # nothing named yet: a full claim looks
    await client.create_run(pending("p1", queue="mail"), [])
    await client.create_run(run("w2", status="waiting", owner=None, wake_at=None), [])
    await client.commit("w2", Batch(steps=[StepRow("w2", "b", "b", result="2", seq=2),
                                           StepRow("w2", "a", "a", result="1", seq=1)]))
    await client.send_signal("w2", "go", '"yes"')
    await client.create_run(run("w3", status="waiting", owner=None, wake_at=None), [])
    named: list[tuple[str, str]] = []
    while len(named) < 2:
        assert await worker.wait_for_work(30) is True
        got = worker.take_announced()
        assert got is not None
        named += got
    assert named == [("p1", "mail"), ("w2", "default")]

    # w3 waits for nothing that came (not due); "nope" does not exist.
    claimed = await worker.claim_announced("w", 30, ["w2", "p1", "w3", "nope"])
    assert sorted(c.run.workflow_id for c in claimed) == ["p1", "w2"]
    by_id = {c.run.workflow_id: c for c in claimed}
    assert all(c.run.owner == "w" for c in claimed)
    assert by_id["p1"].steps == [] and by_id["p1"].signals == []
    assert by_id["w2"].steps == await worker.load_steps("w2")
    assert [s.step_key for s in by_id["w2"].steps] == ["a", "b"]
    assert [(s.name, s.payload) for s in by_id["w2"].signals] == [("go", '"yes"')]
    assert await worker.claim_announced("w", 30, ["w2", "p1"]) == []  # held: not again
    assert (await worker.get_run("w3")).owner is None  # type: ignore[union-attr]


async def test_claim_announced_takes_orphans_and_never_a_live_owners_run(
        stores: list[PostgresStore]) -> None:
    worker, client = stores
    t = time.time()
    await client.create_run(run("lapsed", owner="x", lease_until=t - 1), [])
    await client.create_run(run("dead", owner="y", lease_until=t + 60), [])
    await client.create_run(run("live", owner="z", lease_until=t + 60), [])
    await client.create_run(run("done", status="completed", owner=None, lease_until=None), [])
    await client.create_run(pending("later", wake_at=t + 60), [])
    await client.create_run(run("sleeps", status="sleeping", owner=None, wake_at=t - 1), [])
    await client.commit("sleeps", Batch(steps=[StepRow("sleeps", "a", "a", result="1", seq=1)]))
    sid = await client.send_signal("sleeps", "go", None)
    await client.commit("sleeps", Batch(consume_signal=(sid, "k")))  # taken: not handed out

    claimed = await worker.claim_announced(
        "w", 30, ["lapsed", "dead", "live", "done", "later", "sleeps"], steal_from=frozenset({"y"}))
    by_id = {c.run.workflow_id: c for c in claimed}
    assert sorted(by_id) == ["dead", "lapsed", "sleeps"]
    for c in claimed:
        stored = await client.get_run(c.run.workflow_id)
        assert stored is not None and stored.owner == "w" and stored.status == "running"
        assert c.run.owner == "w" and c.run.attempt == stored.attempt
    assert [s.step_key for s in by_id["sleeps"].steps] == ["a"]
    assert by_id["sleeps"].signals == []
    assert (await client.get_run("live")).owner == "z"  # type: ignore[union-attr]


async def test_claim_announced_finds_runs_by_key_in_its_generic_plans(pg_url: str) -> None:
    # A prepared statement runs a generic plan after a few executions: one that walked the
    # status or owner indexes would read every waiting run, or every run the worker holds,
    # for each claim.
    from ductwork.store.postgres import lean
    from ductwork.store.postgres.announced import CLAIM_NAMED, SIGNALS_OF_OWNED, STEPS_OF_OWNED

    store = PostgresStore(pg_url)
    await store.open()
    await store.close()
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        # Many runs, a third of them held by this worker, half waiting: what the planner
        # would rather find through those indexes.
        await conn.execute(
            "INSERT INTO dw_runs (workflow_id, product, tag, env, status, created_at, "
            "updated_at, wake_at, owner) SELECT 'r' || i, 'p', 't', 'dev', CASE WHEN i % 2 = 0 "
            "THEN 'completed' ELSE 'waiting' END, 0, 0, NULL, CASE WHEN i % 3 = 0 THEN 'w' END "
            "FROM generate_series(1, 3000) AS i")
        await conn.execute(
            "INSERT INTO dw_steps (workflow_id, step_key, tag, kind, status, seq, attempts, "
            "critical, has_rollback) SELECT 'r' || i, 's' || j, 't', 'step', 'completed', j, 1, "
            "FALSE, FALSE FROM generate_series(1, 3000) AS i, generate_series(1, 3) AS j")
        await conn.execute("ANALYZE")
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        plans = {}
        for name, sql, args in (("claim", CLAIM_NAMED, "'{r3,r4}', '{}', 'w', 30"),
                                ("steps", STEPS_OF_OWNED, "'{r3,r4}', 'w'"),
                                ("signals", SIGNALS_OF_OWNED, "'{r3,r4}', 'w'")):
            await conn.execute(f"PREPARE {name} AS {lean.statement(sql).sql.decode()}")
            await conn.execute("BEGIN")
            cur = await conn.execute(f"EXPLAIN EXECUTE {name}({args})")
            plans[name] = "\n".join(str(r[0]) for r in await cur.fetchall())
            await conn.execute("ROLLBACK")
    for name, plan in plans.items():
        assert "dw_runs_pkey" in plan, (name, plan)
        assert not any(f"dw_runs_{i}" in plan for i in ("due", "owner", "queue_owned", "claim")
                       ), (name, plan)


async def test_reads_keep_each_columns_type(stores: list[PostgresStore]) -> None:
    worker, client = stores
    await client.create_run(run("w1", created_at=1.0, priority=2, deadline_at=None,
                                input='{"a": 1}'), [])
    await client.commit("w1", Batch(owner="me", steps=[StepRow(
        "w1", "a", "a", result="1", seq=1, started_at=2.0, critical=True, meta=None)]))
    got = await worker.get_run("w1")
    assert got is not None and got.input == '{"a": 1}' and got.deadline_at is None
    assert type(got.created_at) is float and got.created_at == 1.0
    assert type(got.priority) is int and got.priority == 2
    (step,) = await worker.load_steps("w1")
    assert step.critical is True and step.has_rollback is False and step.meta is None
    assert type(step.started_at) is float and type(step.seq) is int
    sid = await client.send_signal("w1", "go", 'x "quoted" \\ é')
    sig = await worker.find_signal("w1", ["other", "go"])
    assert sig is not None and (sig.id, sig.name, sig.payload) == (sid, "go", 'x "quoted" \\ é')
    assert type(sig.created_at) is float and sig.consumed_by is None
    assert await worker.get_run("nope") is None
    assert await worker.find_signal("w1", ["other"]) is None


async def test_a_signal_wakes_inline_waits_only_for_a_run_not_suspended(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    await store.open()
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        await conn.execute("LISTEN dw_wake")
        try:
            await store.create_run(run("suspended", status="waiting", owner=None), [])
            await store.create_run(run("inline"), [])  # running: its owner waits inline
            await store.send_signal("suspended", "go", None)  # for a worker's claim only
            await store.send_signal("inline", "go", None)
            # Notifications arrive in commit order: the first one is the second signal's.
            async for n in conn.notifies(stop_after=1):
                assert n.payload == "inline"
        finally:
            await store.close()


async def test_a_release_is_announced_without_a_name_so_a_full_claim_looks(
        stores: list[PostgresStore]) -> None:
    worker, client = stores
    assert await worker.claim_due("w", 30, 10) == []
    worker.take_announced()
    await client.create_run(run("w3", owner="x"), [])
    await client.release("w3", "x")
    assert await worker.wait_for_work(30) is True
    assert worker.take_announced() is None



# -- the database goes away --------------------------------------------------------------------
async def test_commits_ride_out_a_database_restart() -> None:
    from tests.support.postgres import _as_server_user, start_postgres

    srv = start_postgres()
    store = PostgresStore(srv.dsn, retry_s=30)
    try:
        await store.open()
        await store.create_run(run("w1"), [])
        data = str(srv.root / "data")
        pg_ctl = str(srv.bin_dir / "pg_ctl")
        _as_server_user([pg_ctl, "-D", data, "-m", "fast", "-w", "stop"])
        commit = asyncio.create_task(store.commit("w1", Batch(owner="me", steps=[
            StepRow("w1", "a", "a", result="1", seq=1)])))
        await asyncio.sleep(0.5)
        assert not commit.done()  # retrying, not failed
        _as_server_user([pg_ctl, "-D", data, "-l", str(srv.root / "log"), "-w", "-o",
                         f"-c listen_addresses=127.0.0.1 -p {srv.port} -k {srv.root} "
                         "-c fsync=off", "start"])
        await commit
        await store.commit("w1", Batch(owner="me", run={"status": "completed", "owner": None}))
        assert [s.step_key for s in await store.load_steps("w1")] == ["a"]
        assert (await store.get_run("w1")).status == "completed"  # type: ignore[union-attr]
        # Down for longer than the retry window: a StoreError, without the password.
        _as_server_user([pg_ctl, "-D", data, "-m", "fast", "-w", "stop"])
        store.retry_s = 0.3
        with pytest.raises(StoreError, match="unreachable") as err:
            await store.get_run("w1")
        assert srv.password not in str(err.value)
    finally:
        await store.close()
        srv.stop()

