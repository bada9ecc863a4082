"""The PostgreSQL store's hot path: lean.py (text parameters, prepared statements per
connection, pipelined transactions, errors, cancellation, the psycopg fallback) and the
connection kept out of the pool between a lone run's statements."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import errors

from ductwork.store.postgres import PostgresStore, lean
from ductwork.store.protocol import Batch, StepRow
from tests.store.rows import run


@pytest.fixture
async def conn(pg_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    c = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    try:
        yield c
    finally:
        await c.close()


@pytest.mark.parametrize("value, cast", [
    ("plain", "text"),
    ("quote ' \" back \\ slash, {brace} é ✓", "text"),
    ("", "text"),
    (None, "text"),
    (True, "boolean"),
    (False, "boolean"),
    (-(2 ** 40), "int8"),
    (0.1 + 0.2, "float8"),
    (1e300, "float8"),
    (float("-inf"), "float8"),
    (["a", None, 'q"uo\\te', "", "NULL", "x,y", "{z}"], "text[]"),
    ([1.5, 2.0, -3e-9], "float8[]"),
    ([], "text[]"),
])
async def test_a_parameter_reaches_the_server_as_psycopg_sends_it(
        conn: psycopg.AsyncConnection[Any], value: Any, cast: str) -> None:
    sql = f"SELECT (%s::{cast})::text"
    cur = await conn.execute(sql, [value])
    expected = (await cur.fetchone() or ["?"])[0]
    assert await lean.one(conn, sql, [value]) == (1, expected)


async def test_nan_is_sent_as_nan(conn: psycopg.AsyncConnection[Any]) -> None:
    rows, value = await lean.one(conn, "SELECT 'NaN'::float8 = %s::float8", [math.nan])
    assert (rows, value) == (1, "t")


async def test_a_value_it_cannot_encode_goes_through_psycopg(
        conn: psycopg.AsyncConnection[Any]) -> None:
    with pytest.raises(lean.Unsupported):
        await lean.execute(conn, lean.statement("SELECT %s::text[]"), [("a", "b")])
    assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    # one() falls back to psycopg, which adapts the tuple itself
    assert await lean.one(conn, "SELECT %s::jsonb ->> 'k'", [psycopg.types.json.Jsonb(
        {"k": "v"})]) == (1, "v")


async def test_a_statement_is_prepared_once_per_connection(
        conn: psycopg.AsyncConnection[Any]) -> None:
    sql = "SELECT %s::int4 + 1"
    for i in range(3):
        assert (await lean.one(conn, sql, [i]))[1] == str(i + 1)
    cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = %s",
                             [lean.statement(sql).name.decode()])
    assert (await cur.fetchone() or [0])[0] == 1


async def test_statements_discarded_on_the_server_are_prepared_again(
        conn: psycopg.AsyncConnection[Any]) -> None:
    sql = "SELECT %s::text || '!'"
    assert (await lean.one(conn, sql, ["a"]))[1] == "a!"
    await conn.execute("DEALLOCATE ALL")
    assert (await lean.one(conn, sql, ["b"]))[1] == "b!"


async def test_a_server_error_raises_its_psycopg_class_and_leaves_the_connection_idle(
        conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    sql = "INSERT INTO t VALUES (%s)"
    assert (await lean.one(conn, sql, ["x"]))[0] == 1
    with pytest.raises(errors.UniqueViolation, match="duplicate key"):
        await lean.one(conn, sql, ["x"])
    assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert (await lean.one(conn, sql, ["y"]))[0] == 1


async def test_a_connection_in_a_transaction_is_not_used(
        conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("BEGIN")
    with pytest.raises(lean.Unsupported):
        await lean.execute(conn, lean.statement("SELECT %s::text"), ["x"])
    await conn.execute("ROLLBACK")


async def test_cancelled_while_waiting_the_answer_is_still_read(
        conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("CREATE TABLE t (k TEXT)")
    task = asyncio.create_task(lean.one(
        conn, "INSERT INTO t SELECT %s FROM pg_sleep(0.3)", ["late"]))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The statement ran to its end (autocommit) and the connection is ready for the next one.
    assert not conn.closed
    assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert await lean.one(conn, "SELECT count(*) FROM t WHERE k = %s", ["late"]) == (1, "1")


async def test_a_lost_connection_is_retried_by_the_store(pg_url: str) -> None:
    store = PostgresStore(pg_url, min_size=1, max_size=1)
    await store.open()
    try:
        r = run("lost", owner="w1")
        await store.create_run(r, [])
        await store.commit("lost", Batch(owner="w1", steps=[StepRow("lost", "a", "a")]))
        # The pooled connection dies under the store: the next commit reconnects.
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid()")
        await store.commit("lost", Batch(owner="w1", steps=[StepRow("lost", "b", "b")]))
        assert [s.step_key for s in await store.load_steps("lost")] == ["a", "b"]
    finally:
        await store.close()


async def test_a_statement_prepared_behind_its_back_is_used(
        conn: psycopg.AsyncConnection[Any]) -> None:
    # An interrupted prepare may have reached the server without the client recording it.
    stmt = lean.statement("SELECT %s::text || '?'")
    await conn.execute(b"PREPARE " + stmt.name + b" AS " + stmt.sql)
    assert (await lean.one(conn, stmt.text, ["x"]))[1] == "x?"


# -- transactions: one pipeline --------------------------------------------------------------
async def test_a_transaction_answers_each_statement_in_order_and_commits_them_together(
        conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, n INT)")
    out = await lean.transaction(conn, [
        ("INSERT INTO t VALUES (%s, %s) RETURNING n", ["a", 1]),
        ("INSERT INTO t VALUES (%s, %s)", ["b", 2]),
        ("SELECT count(*) FROM t WHERE n < %s", [10]),
    ])
    assert [lean.value(r) for r in out] == ["1", None, "2"]
    assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    cur = await conn.execute("SELECT k FROM t ORDER BY k")
    assert await cur.fetchall() == [("a",), ("b",)]


async def test_a_failed_statement_rolls_the_transaction_back_and_raises_with_its_diag(
        conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    await conn.execute("CREATE FUNCTION boom(code TEXT) RETURNS INT LANGUAGE plpgsql AS "
                       "$$ BEGIN RAISE EXCEPTION 'boom:%', code; END $$")
    for _ in range(3):  # the same statements again after each failure: nothing half-prepared
        with pytest.raises(errors.RaiseException) as e:
            await lean.transaction(conn, [
                ("INSERT INTO t VALUES (%s)", ["a"]),
                ("SELECT boom(%s)", ["x"]),
                ("INSERT INTO t VALUES (%s)", ["b"]),
            ])
        assert e.value.diag.message_primary == "boom:x"
        assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert not conn.pgconn.pipeline_status
    assert await lean.one(conn, "SELECT count(*) FROM t WHERE k <> %s", [""]) == (1, "0")
    await lean.transaction(conn, [("INSERT INTO t VALUES (%s)", ["c"])] * 1)
    assert await lean.one(conn, "SELECT count(*) FROM t WHERE k <> %s", [""]) == (1, "1")


async def test_a_transaction_after_deallocate_all_prepares_again(
        conn: psycopg.AsyncConnection[Any]) -> None:
    stmts: list[tuple[str, list[Any]]] = [("SELECT %s::int4 * 2", [i]) for i in range(3)]
    assert [lean.value(r) for r in await lean.transaction(conn, stmts)] == ["0", "2", "4"]
    await conn.execute("DEALLOCATE ALL")
    assert [lean.value(r) for r in await lean.transaction(conn, stmts)] == ["0", "2", "4"]


async def test_a_transaction_cancelled_while_waiting_still_reads_its_answer(
        conn: psycopg.AsyncConnection[Any]) -> None:
    await conn.execute("CREATE TABLE t (k TEXT)")
    task = asyncio.create_task(lean.transaction(conn, [
        ("INSERT INTO t VALUES (%s)", ["first"]),
        ("INSERT INTO t SELECT %s FROM pg_sleep(0.3)", ["late"]),
    ]))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not conn.closed and not conn.pgconn.pipeline_status
    assert conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert await lean.one(conn, "SELECT count(*) FROM t WHERE k <> %s", [""]) == (1, "2")


async def test_group_commits_reuse_their_statements_after_a_fence_fails_in_the_pipeline(
        pg_url: str) -> None:
    # The failure comes in the first group, before the statements' fifth use in it (psycopg's
    # prepare threshold): every later group, on the one pooled connection, reuses them.
    store = PostgresStore(pg_url, min_size=1, max_size=1)
    await store.open()
    try:
        wids = [f"g{i}" for i in range(8)]
        for w in wids:
            await store.create_run(run(w, owner="me"), [])
        for r in range(6):
            items = [(w, Batch(owner="me", steps=[StepRow(w, f"s{r}", f"s{r}", seq=r, result="1")],
                               events=[(1.0, "step_completed", f"s{r}", None)]))
                     for w in wids]
            if r in (0, 3):
                items[2] = (wids[2], Batch(owner="thief", steps=[StepRow(wids[2], "x", "x")]))
            out = await store.commit_many(items)
            assert [type(e).__name__ if e else None for e in out] == [
                None, None, "LeaseLostError" if r in (0, 3) else None, None, None, None, None,
                None]
        for w in wids:
            keys = {s.step_key for s in await store.load_steps(w)}
            assert keys == ({"s1", "s2", "s4", "s5"} if w == "g2" else
                            {f"s{r}" for r in range(6)})
    finally:
        await store.close()


# -- the hot-path connection ------------------------------------------------------------------
async def _pid(store: PostgresStore, sleep: float = 0.0) -> int:
    return int((await store._fetch("SELECT pg_backend_pid(), pg_sleep(%s)", (sleep,)))[0][0])


async def test_statements_one_after_the_other_share_one_connection(pg_url: str) -> None:
    store = PostgresStore(pg_url, min_size=1, max_size=4)
    await store.open()
    try:
        await store.create_run(run("hot", owner="me"), [])
        first = await _pid(store)
        for i in range(3):
            await store.commit("hot", Batch(owner="me", steps=[StepRow("hot", f"s{i}", "s")]))
        assert await _pid(store) == first
        # Statements at once take other pooled connections: nobody waits for the hot one.
        pids = await asyncio.gather(*(_pid(store, 0.2) for _ in range(3)))
        assert len(set(pids)) == 3
    finally:
        await store.close()


async def test_a_pool_of_one_is_never_held(pg_url: str) -> None:
    store = PostgresStore(pg_url, min_size=1, max_size=1)
    await store.open()
    try:
        await _pid(store)
        async with store.pool.connection(timeout=2) as conn:
            await conn.execute("SELECT 1")
    finally:
        await store.close()


async def test_close_while_the_hot_connection_is_in_use_closes_it_after(pg_url: str) -> None:
    store = PostgresStore(pg_url, min_size=1, max_size=4)
    await store.open()
    await _pid(store)
    busy = asyncio.create_task(_pid(store, 0.3))
    await asyncio.sleep(0.1)
    await store.close()
    await busy  # finished on its connection, which then went with the pool
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
        for _ in range(100):  # a backend leaves pg_stat_activity shortly after its client
            cur = await admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND "
                "pid <> pg_backend_pid()")
            left = (await cur.fetchone() or [None])[0]
            if left == 0:
                break
            await asyncio.sleep(0.05)
        assert left == 0


async def test_a_broken_hot_connection_goes_back_to_the_pool(pg_url: str) -> None:
    store = PostgresStore(pg_url, min_size=1, max_size=4)
    await store.open()
    try:
        first = await _pid(store)
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        second = await _pid(store)  # retried on a new connection
        assert second != first
        assert await _pid(store) == second
    finally:
        await store.close()
