"""The PostgreSQL run store: many workers on many machines, coordinated by the database alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ductwork.errors import StoreError
from ductwork.store.postgres.notify import Listener
from ductwork.store.postgres.sql import (
    ACTIVE_LIST,
    ACTIVE_SQL,
    CHANNEL,
    CLAIM,
    CLAIM_ONE,
    CREATE_RUN,
    EVENTS_FROM,
    MIGRATE_LOCK,
    NOW,
    PRUNE,
    QUEUE_LOCK,
    RUN_COLS,
    SCHED_COLS,
    STEP_COLS,
    STEP_UPSERT,
    WAKE_CHANNEL,
    Event,
    event_arrays,
    makes_due,
    set_clause,
    typed,
)
from ductwork.store.protocol import (
    PRUNE_BATCH,
    RUN_FIELDS,
    SCHEDULE_FIELDS,
    STEP_FIELDS,
    Batch,
    LeaseLostError,
    QueueLimit,
    RunRow,
    RunStore,
    ScheduleRow,
    SignalRow,
    StepConflictError,
    StepRow,
    now,
    prune_statuses,
)
from ductwork.store.schema import MIGRATIONS, SCHEMA_VERSION

T = TypeVar("T")
Conn = AsyncConnection[Any]


def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """Separate ductwork's own query parameters (pool_min_size, pool_max_size) from libpq's."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    rest = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in ("pool_min_size", "pool_max_size"):
            ours[k] = v
        else:
            rest.append((k, v))
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunsplit(parts._replace(scheme=scheme, query=urlencode(rest))), ours


class _Fail(Exception):
    """A fence inside a pipelined transaction failed (raised by SQL function dw_fail)."""


class PostgresStore(RunStore):
    """RunStore on PostgreSQL via psycopg 3 (async) and a connection pool.

    Connections are in autocommit mode: a single statement is its own transaction, so the hot
    path (one step result) costs one round trip. Multi-statement batches are pipelined
    (BEGIN ... COMMIT in one network flush); their fences raise inside the transaction.
    """

    def __init__(self, url: str, *, min_size: int | None = None, max_size: int | None = None,
                 migrate: bool = True, retry_s: float = 15.0) -> None:
        self.url = url
        self.conninfo, ours = _split_url(url)
        try:
            self.min_size = int(min_size if min_size is not None else
                                ours.get("pool_min_size", 1))
            self.max_size = int(max_size if max_size is not None else
                                ours.get("pool_max_size", 10))
        except ValueError:
            raise StoreError(f"{safe_url(url)}: pool_min_size/pool_max_size must be integers"
                             ) from None
        if self.min_size < 0 or self.max_size < max(1, self.min_size):
            raise StoreError(f"{safe_url(url)}: need 0 <= pool_min_size <= pool_max_size, "
                             "pool_max_size >= 1")
        self.migrate = migrate
        self.retry_s = retry_s
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listener = Listener(self.conninfo)
        self._open_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    async def _connect(self) -> Conn:
        try:
            return await AsyncConnection.connect(self.conninfo, autocommit=True,
                                                 connect_timeout=10)
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to the PostgreSQL store {safe_url(self.url)}: "
                             f"{_first_line(e)}") from None

    async def open(self) -> None:
        async with self._open_lock:
            if self._pool is not None:
                return
            conn = await self._connect()
            try:
                await self._migrate(conn, apply=self.migrate)
            finally:
                await conn.close()
            await self._open_pool()

    async def _open_pool(self) -> None:
        if self._pool is None:
            pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
                self.conninfo, min_size=self.min_size, max_size=self.max_size, open=False,
                kwargs={"autocommit": True}, name="ductwork-store", timeout=30.0)
            try:
                await pool.open(wait=self.min_size > 0, timeout=30.0)
            except psycopg.Error as e:
                await pool.close()
                raise StoreError(f"cannot open a connection pool to {safe_url(self.url)}: "
                                 f"{_first_line(e)}") from None
            self._pool = pool

    async def close(self) -> None:
        await self._listener.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _migrate(self, conn: Conn, *, apply: bool) -> int:
        # Workers starting together all try to migrate: the advisory lock serializes them and
        # the second finds the work done. DDL is transactional in PostgreSQL.
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (MIGRATE_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS dw_meta (key TEXT PRIMARY KEY, "
                               "value TEXT)")
            version = await _version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {safe_url(self.url)} has schema version {version}, newer than "
                    f"this ductwork ({SCHEMA_VERSION}); upgrade ductwork")
            if version < SCHEMA_VERSION and not apply:
                raise StoreError(
                    f"the store {safe_url(self.url)} has schema version {version}; this "
                    f"ductwork needs {SCHEMA_VERSION}: run `ductwork db upgrade --store URL`")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v]("postgres"):
                    await conn.execute(stmt)
            if version != SCHEMA_VERSION:
                await conn.execute(
                    "INSERT INTO dw_meta VALUES ('schema_version', %s) ON CONFLICT (key) "
                    "DO UPDATE SET value=EXCLUDED.value", (str(SCHEMA_VERSION),))
        return version

    async def upgrade(self) -> tuple[int, int]:
        """Apply pending migrations; returns (version before, version after)."""
        conn = await self._connect()
        try:
            before = await self._migrate(conn, apply=True)
        finally:
            await conn.close()
        return before, SCHEMA_VERSION

    async def schema_version(self) -> int:
        """The version recorded in dw_meta (0 for an empty database); never migrates."""
        conn = await self._connect()
        try:
            return await _version(conn)
        finally:
            await conn.close()

    @property
    def pool(self) -> AsyncConnectionPool[Conn]:
        if self._pool is None:
            raise StoreError("the run store is closed (call open() first)")
        return self._pool

    async def _with(self, fn: Callable[[Conn, int], Awaitable[T]]) -> T:
        """Run fn(conn, attempt) on a pooled connection, retrying connection failures (a restart
        or fail-over of the database) for up to retry_s seconds."""
        deadline = time.monotonic() + self.retry_s
        delay = 0.05
        attempt = 0
        while True:
            try:
                wait = max(1.0, deadline - time.monotonic())
                async with self.pool.connection(timeout=wait) as conn:
                    return await fn(conn, attempt)
            except psycopg.OperationalError as e:
                if time.monotonic() >= deadline or self._pool is None:
                    raise StoreError(f"the PostgreSQL store {safe_url(self.url)} is unreachable: "
                                     f"{_first_line(e)}") from None
            except psycopg.Error as e:
                raise StoreError(f"PostgreSQL store error: {_first_line(e)}") from None
            attempt += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _fetch(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
                     ) -> list[tuple[Any, ...]]:
        async def go(conn: Conn, _: int) -> list[tuple[Any, ...]]:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

        return await self._with(go)

    # -- runs --------------------------------------------------------------------------------
    async def create_run(self, run: RunRow, events: list[Event]) -> tuple[RunRow, bool]:
        values = [getattr(run, f) for f in RUN_FIELDS]
        notify = run.status == "pending"

        async def go(conn: Conn, _: int) -> bool:
            cur = await conn.execute(CREATE_RUN, [*values, *event_arrays(events), notify])
            row = await cur.fetchone()
            return bool(row and row[0])

        if await self._with(go):
            return run, True
        existing = await self.get_run(run.workflow_id)
        if existing is None:  # deleted in between: nothing sensible to return but ours
            raise StoreError(f"run {run.workflow_id} vanished while being created")
        return existing, False

    async def get_run(self, workflow_id: str) -> RunRow | None:
        rows = await self._fetch(f"SELECT {RUN_COLS} FROM dw_runs WHERE workflow_id=%s",
                                 (workflow_id,))
        return RunRow(*rows[0]) if rows else None

    async def load_steps(self, workflow_id: str) -> list[StepRow]:
        rows = await self._fetch(
            f"SELECT {STEP_COLS} FROM dw_steps WHERE workflow_id=%s "
            "ORDER BY seq, COALESCE(started_at, 0), step_key", (workflow_id,))
        return [StepRow(*r) for r in rows]

    async def commit(self, workflow_id: str, batch: Batch) -> None:
        if (len(batch.steps) == 1 and not batch.run and not batch.step_updates
                and not batch.events and not batch.logs and not batch.state
                and batch.consume_signal is None):
            step = batch.steps[0]

            async def one(conn: Conn, attempt: int) -> None:
                await self._insert_step(conn, workflow_id, step, batch.owner, attempt)

            await self._with(one)
            return

        if (batch.run and not batch.steps and not batch.step_updates and not batch.events
                and not batch.logs and not batch.state and batch.consume_signal is None):
            await self._update_owned(workflow_id, batch.run, batch.owner)  # e.g. a final status
            return

        async def many(conn: Conn, attempt: int) -> None:
            await self._commit_batch(conn, workflow_id, batch, attempt)

        await self._with(many)

    async def _update_owned(self, workflow_id: str, run: dict[str, Any], owner: str | None
                            ) -> None:
        """A run update fenced by ownership, as one statement (with its NOTIFY if it hands the
        run back to the queue)."""
        sets, vals = set_clause({**run, "updated_at": now()}, RUN_FIELDS)
        fence = " AND owner=%s" if owner is not None else ""
        rows = await self._fetch(
            f"WITH u AS (UPDATE dw_runs SET {sets} WHERE workflow_id=%s{fence} RETURNING queue) "
            f"SELECT count(*), (SELECT pg_notify('{CHANNEL}', queue) FROM u WHERE %s::boolean) "
            "FROM u", [*vals, workflow_id, *([owner] if owner is not None else []),
                       makes_due(run)])
        if not rows or rows[0][0] != 1:
            raise _lost(workflow_id)

    async def _insert_step(self, conn: Conn, workflow_id: str, s: StepRow, owner: str | None,
                           attempt: int) -> None:
        cur = await conn.execute(
            STEP_UPSERT, [*(getattr(s, f) for f in STEP_FIELDS), workflow_id, owner, owner],
            prepare=True)
        if cur.rowcount != 1:
            await self._step_refused(conn, workflow_id, [s], owner, attempt)

    async def _step_refused(self, conn: Conn, workflow_id: str, steps: list[StepRow],
                            owner: str | None, attempt: int) -> None:
        """Explain a refused step record: the lease is gone, or the step is already recorded
        (by us, if an earlier attempt committed before the connection broke)."""
        cur = await conn.execute("SELECT owner FROM dw_runs WHERE workflow_id=%s",
                                 (workflow_id,))
        row = await cur.fetchone()
        if owner is not None and (row is None or row[0] != owner):
            raise _lost(workflow_id)
        if attempt > 0 and await self._already_ours(conn, workflow_id, steps):
            return
        keys = ", ".join(repr(s.step_key) for s in steps)
        raise StepConflictError(f"step {keys} of run {workflow_id} was already recorded")

    @staticmethod
    async def _already_ours(conn: Conn, workflow_id: str, steps: list[StepRow]) -> bool:
        cur = await conn.execute(
            "SELECT step_key, status, seq, result FROM dw_steps WHERE workflow_id=%s AND "
            "step_key = ANY(%s::text[])", (workflow_id, [s.step_key for s in steps]))
        stored = {r[0]: r[1:] for r in await cur.fetchall()}
        return all(stored.get(s.step_key) == (s.status, s.seq, s.result) for s in steps)

    async def _commit_batch(self, conn: Conn, workflow_id: str, batch: Batch,
                            attempt: int) -> None:
        fail = "SELECT dw_fail(%s) WHERE NOT EXISTS (SELECT 1 FROM x)"
        stmts: list[tuple[str, Sequence[Any]]] = []
        if batch.run:
            fields = {**batch.run, "updated_at": now()}
            sets, vals = set_clause(fields, RUN_FIELDS)
            fence = " AND owner=%s" if batch.owner is not None else ""
            params = [*vals, workflow_id] + ([batch.owner] if batch.owner is not None else [])
            stmts.append((f"WITH x AS (UPDATE dw_runs SET {sets} WHERE workflow_id=%s{fence} "
                          f"RETURNING 1) {fail}", [*params, "lease"]))
        elif batch.owner is not None and not batch.steps:
            # FOR SHARE: a takeover waits for this commit (see STEP_UPSERT).
            stmts.append(("WITH x AS (SELECT 1 FROM dw_runs WHERE workflow_id=%s AND owner=%s "
                          "FOR SHARE) " + fail, [workflow_id, batch.owner, "lease"]))
        for s in batch.steps:
            stmts.append((f"WITH x AS ({STEP_UPSERT} RETURNING 1) {fail}",
                          [*(getattr(s, f) for f in STEP_FIELDS), workflow_id, batch.owner,
                           batch.owner, "step"]))
        for key, upd in batch.step_updates:
            sets, vals = set_clause(upd, STEP_FIELDS)
            stmts.append((f"UPDATE dw_steps SET {sets} WHERE workflow_id=%s AND step_key=%s",
                          [*vals, workflow_id, key]))
        if batch.consume_signal is not None:
            sid, key = batch.consume_signal
            stmts.append(("WITH x AS (UPDATE dw_signals SET consumed_by=%s WHERE id=%s AND "
                          f"consumed_by IS NULL RETURNING 1) {fail}", [key, sid, "signal"]))
        if batch.state:
            stmts.append((
                "INSERT INTO dw_state (workflow_id, key, value) SELECT %s, k, v FROM "
                "unnest(%s::text[], %s::text[]) AS s(k, v) ON CONFLICT (workflow_id, key) "
                "DO UPDATE SET value=EXCLUDED.value",
                [workflow_id, list(batch.state), list(batch.state.values())]))
        if batch.events:
            stmts.append((EVENTS_FROM.format(src="%s", frm=""),
                          [workflow_id, *event_arrays(batch.events)]))
        if batch.logs:
            ts, lv, msg, data, step = (list(c) for c in zip(*batch.logs, strict=True))
            stmts.append((
                "INSERT INTO dw_logs (workflow_id, ts, level, message, data, step) "
                "SELECT %s, l.ts, l.level, l.message, l.data, l.step FROM unnest(%s::float8[], "
                "%s::text[], %s::text[], %s::text[], %s::text[]) WITH ORDINALITY AS "
                "l(ts, level, message, data, step, n) ORDER BY l.n",
                [workflow_id, ts, lv, msg, data, step]))
        if makes_due(batch.run):
            stmts.append(("SELECT pg_notify(%s, queue) FROM dw_runs WHERE workflow_id=%s",
                          [CHANNEL, workflow_id]))
        try:
            await _transaction(conn, stmts)
        except _Fail as f:
            code = str(f)
            if code == "lease":
                raise _lost(workflow_id) from None
            if code == "step":
                await self._step_refused(conn, workflow_id, batch.steps, batch.owner, attempt)
                return  # an earlier attempt of this very batch committed it
            assert batch.consume_signal is not None
            if attempt > 0:
                cur = await conn.execute("SELECT consumed_by FROM dw_signals WHERE id=%s",
                                         (batch.consume_signal[0],))
                row = await cur.fetchone()
                if row is not None and row[0] == batch.consume_signal[1]:
                    return
            raise StepConflictError(f"signal {batch.consume_signal[0]} of run {workflow_id} "
                                    "was already taken") from None

    async def update_run(self, workflow_id: str, fields: dict[str, Any], *,
                         only_status: frozenset[str] | None = None,
                         events: list[Event] | None = None) -> bool:
        fields = {**fields, "updated_at": now()}
        sets, vals = set_clause(fields, RUN_FIELDS)
        guard = " AND status = ANY(%s::text[])" if only_status is not None else ""
        params: list[Any] = [*vals, workflow_id]
        if only_status is not None:
            params.append(sorted(only_status))
        notify = makes_due(fields) or "wake_at" in fields
        sql = (f"WITH u AS (UPDATE dw_runs SET {sets} WHERE workflow_id=%s{guard} "
               "RETURNING workflow_id, queue), "
               "ev AS (" + EVENTS_FROM.format(src="u.workflow_id", frm="u, ") + ") "
               f"SELECT (SELECT count(*) FROM u), (SELECT pg_notify('{CHANNEL}', queue) FROM u "
               f"WHERE %s::boolean), (SELECT pg_notify('{WAKE_CHANNEL}', workflow_id) FROM u "
               "WHERE %s::boolean)")
        rows = await self._fetch(sql, [*params, *event_arrays(events or []), notify,
                                       "wake_at" in fields])
        return bool(rows[0][0])

    # -- ownership -----------------------------------------------------------------------------
    async def claim(self, workflow_id: str, owner: str, lease_s: float, *,
                    steal_from: frozenset[str] = frozenset()) -> RunRow | None:
        dead = sorted(steal_from)
        if self.queue_limits:
            # Taking a run of a limited queue (result(), a parent driving its child ...) takes
            # a slot like a worker's claim does, so it goes through the same counting.
            found = await self._fetch("SELECT queue, owner FROM dw_runs WHERE workflow_id=%s",
                                      (workflow_id,))
            lim = self.queue_limits.get(found[0][0]) if found else None
            if lim is not None and lim.limited and found[0][1] != owner:
                got = await self._claim_limited(found[0][0], lim, owner, lease_s, 1, dead,
                                                workflow_id=workflow_id)
                return got[0] if got else None
        rows = await self._fetch(CLAIM_ONE.format(log=""), {
            "owner": owner, "lease": lease_s, "wid": workflow_id, "dead": dead})
        return RunRow(*rows[0]) if rows else None

    async def claim_due(self, owner: str, lease_s: float, limit: int, *,
                        steal_from: frozenset[str] = frozenset(),
                        queues: list[str] | None = None) -> list[RunRow]:
        # Listen before the first claim: a run dispatched after this claim found nothing wakes
        # wait_for_work() instead of waiting for its timeout.
        await self._listener.ensure()
        queues = queues or None
        dead = sorted(steal_from)
        limited = {q: lim for q, lim in self.queue_limits.items()
                   if lim.limited and (queues is None or q in queues)}
        out: list[RunRow] = []
        for q, lim in limited.items():
            if len(out) >= limit:
                break
            out += await self._claim_limited(q, lim, owner, lease_s, limit - len(out), dead)
        if len(out) < limit and (queues is None or set(queues) - set(limited)):
            qfilter = ""
            params: dict[str, Any] = {"n": limit - len(out), "dead": dead, "owner": owner,
                                      "lease": lease_s}
            if queues is not None:
                qfilter += " AND queue = ANY(%(queues)s::text[])"
                params["queues"] = sorted(set(queues) - set(limited))
            if limited:
                qfilter += " AND queue <> ALL(%(limited)s::text[])"
                params["limited"] = sorted(limited)
            out += [RunRow(*r) for r in await self._fetch(
                CLAIM.format(qfilter=qfilter, log=""), params)]
        out.sort(key=lambda r: (-r.priority, r.wake_at if r.wake_at is not None
                                else r.created_at))
        return out

    async def _claim_limited(self, queue: str, lim: QueueLimit, owner: str, lease_s: float,
                             n: int, dead: list[str], *, workflow_id: str | None = None
                             ) -> list[RunRow]:
        """Claim from one limited queue (due runs, or the one run `workflow_id`) under its
        advisory lock, so that concurrent claimers on any machine count the same running runs
        and recent starts."""

        async def go(conn: Conn, _: int) -> list[RunRow]:
            period = lim.rate[1] if lim.rate else 0.0
            rows: list[tuple[Any, ...]] = []
            try:
                async with conn.pipeline() as p:
                    await conn.execute("BEGIN")
                    await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                                       (QUEUE_LOCK + queue,))
                    if lim.rate:
                        await conn.execute(f"DELETE FROM dw_queue_claims WHERE queue=%s AND "
                                           f"ts < {NOW} - %s", (queue, period))
                    # Counted after the lock, in a fresh snapshot (READ COMMITTED): every claim
                    # committed by the previous holder of the lock is visible.
                    cur = await conn.execute(
                        f"SELECT count(*), count(*) FILTER (WHERE owner=%s), "
                        f"(SELECT count(*) FROM dw_queue_claims WHERE queue=%s AND "
                        f"ts >= {NOW} - %s) FROM dw_runs WHERE queue=%s AND "
                        f"status IN {ACTIVE_SQL} AND owner IS NOT NULL AND "
                        f"lease_until >= {NOW}", (owner, queue, period, queue))
                    await p.sync()
                    owned, mine, recent = await cur.fetchone() or (0, 0, 0)
                    room = lim.room(n, owned=owned, mine=mine, recent=recent)
                    claim = None
                    if room > 0:
                        log = (f", log AS (INSERT INTO dw_queue_claims (queue, ts) SELECT "
                               f"r.queue, {NOW} FROM upd r)") if lim.rate else ""
                        sql = (CLAIM.format(qfilter=" AND queue=%(queue)s", log=log)
                               if workflow_id is None else CLAIM_ONE.format(log=log))
                        claim = await conn.execute(sql, {
                            "n": room, "dead": dead, "owner": owner, "lease": lease_s,
                            "queue": queue, "wid": workflow_id})
                    await conn.execute("COMMIT")
                    if claim is not None:
                        rows = await claim.fetchall()
            except BaseException:
                await _rollback(conn)
                raise
            return [RunRow(*r) for r in rows]

        return await self._with(go)

    async def renew_leases(self, owner: str, lease_s: float) -> list[str]:
        rows = await self._fetch(f"UPDATE dw_runs SET lease_until={NOW} + %s WHERE owner=%s "
                                 "RETURNING workflow_id", (lease_s, owner))
        return [r[0] for r in rows]

    async def hold_lease(self, workflow_id: str, owner: str, lease_s: float) -> bool:
        async def go(conn: Conn, _: int) -> bool:
            cur = await conn.execute(
                f"UPDATE dw_runs SET lease_until={NOW} + %s WHERE workflow_id=%s AND owner=%s",
                (lease_s, workflow_id, owner))
            return cur.rowcount == 1

        return await self._with(go)

    async def release(self, workflow_id: str, owner: str, *, wake_at: float | None = None) -> None:
        await self._fetch(
            "WITH u AS (UPDATE dw_runs SET owner=NULL, lease_until=NULL, "
            "wake_at=COALESCE(%s, wake_at), status=CASE WHEN status='running' THEN 'pending' "
            "ELSE status END, updated_at=%s WHERE workflow_id=%s AND owner=%s RETURNING queue) "
            f"SELECT pg_notify('{CHANNEL}', queue) FROM u",
            (wake_at, now(), workflow_id, owner))

    async def live_owners(self) -> list[str]:
        rows = await self._fetch("SELECT DISTINCT owner FROM dw_runs WHERE owner IS NOT NULL")
        return [r[0] for r in rows]

    # -- waking idle workers -------------------------------------------------------------------
    def on_wake(self, callback: Callable[[str], None]) -> None:
        """Call callback(workflow_id) when another process announces that the run may go on
        (a signal sent to it, a child of it that ended): an inline wait ends at once instead of
        at its next poll. Listening starts with the first claim or signal wait."""
        self._listener.on_wake(callback)

    async def wait_for_work(self, timeout: float, queues: Iterable[str] | None = None) -> bool:
        """Wait up to `timeout` seconds for a NOTIFY that a run became due (a dispatch, a signal,
        a released run); True when woken, False on timeout."""
        return await self._listener.wait_for_work(timeout, queues)

    # -- signals -------------------------------------------------------------------------------
    async def send_signal(self, workflow_id: str, name: str, payload: str | None) -> int:
        t = now()
        rows = await self._fetch(
            "WITH s AS (INSERT INTO dw_signals (workflow_id, name, payload, created_at) "
            "VALUES (%s, %s, %s, %s) RETURNING id), "
            "u AS (UPDATE dw_runs SET wake_at=%s, updated_at=%s WHERE workflow_id=%s AND "
            "status='waiting' RETURNING queue), "
            "e AS (INSERT INTO dw_events (workflow_id, ts, type, step, data) VALUES "
            "(%s, %s, 'signal_received', NULL, %s)) "
            f"SELECT (SELECT id FROM s), (SELECT pg_notify('{CHANNEL}', queue) FROM u), "
            f"pg_notify('{WAKE_CHANNEL}', %s)",
            (workflow_id, name, payload, t, t, t, workflow_id, workflow_id, t,
             json.dumps({"signal": name}), workflow_id))
        return int(rows[0][0])

    async def find_signal(self, workflow_id: str, names: list[str]) -> SignalRow | None:
        if self._listener.has_wake_callbacks:
            await self._listener.ensure()  # before looking: a later signal then wakes the wait
        rows = await self._fetch(
            "SELECT id, workflow_id, name, payload, created_at, consumed_by FROM dw_signals "
            "WHERE workflow_id=%s AND consumed_by IS NULL AND name = ANY(%s::text[]) "
            "ORDER BY id LIMIT 1", (workflow_id, list(names)))
        return SignalRow(*rows[0]) if rows else None

    # -- reading -------------------------------------------------------------------------------
    async def list_runs(self, *, product: str | None = None, tag: str | None = None,
                        status: str | list[str] | None = None, since: float | None = None,
                        parent_id: str | None = None, limit: int = 100,
                        cursor: str | None = None) -> tuple[list[RunRow], str | None]:
        where: list[str] = []
        params: list[Any] = []
        for col, val in (("product", product), ("tag", tag), ("parent_id", parent_id)):
            if val is not None:
                where.append(f"{col}=%s")
                params.append(val)
        if status is not None:
            where.append("status = ANY(%s::text[])")
            params.append([status] if isinstance(status, str) else list(status))
        if since is not None:
            where.append("created_at >= %s")
            params.append(since)
        if cursor:
            ts, _, wid = cursor.partition("|")
            try:
                params += [float(ts), wid]
            except ValueError:
                raise StoreError(f"bad list cursor {cursor!r}") from None
            where.append("(created_at, workflow_id) < (%s, %s)")
        sql = f"SELECT {RUN_COLS} FROM dw_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, workflow_id DESC LIMIT %s"
        rows = [RunRow(*r) for r in await self._fetch(sql, [*params, limit + 1])]
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            nxt = f"{rows[-1].created_at!r}|{rows[-1].workflow_id}"
        return rows, nxt

    async def events(self, workflow_id: str) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT id, ts, type, step, data FROM dw_events WHERE workflow_id=%s ORDER BY id",
            (workflow_id,))
        return [{"id": r[0], "ts": r[1], "type": r[2], "step": r[3], "data": r[4]} for r in rows]

    async def logs(self, workflow_id: str) -> list[dict[str, Any]]:
        rows = await self._fetch(
            "SELECT ts, level, message, data, step FROM dw_logs WHERE workflow_id=%s ORDER BY id",
            (workflow_id,))
        return [{"ts": r[0], "level": r[1], "message": r[2], "data": r[3], "step": r[4]}
                for r in rows]

    async def get_state(self, workflow_id: str) -> dict[str, str]:
        rows = await self._fetch("SELECT key, value FROM dw_state WHERE workflow_id=%s",
                                 (workflow_id,))
        return {k: v for k, v in rows}

    # -- retention -----------------------------------------------------------------------------
    async def prune(self, before: float, statuses: list[str], limit: int) -> int:
        sts = prune_statuses(statuses)
        deleted = 0
        while sts and deleted < limit:
            n = min(PRUNE_BATCH, limit - deleted)
            rows = await self._fetch(PRUNE, {"statuses": sts, "before": before, "n": n})
            got = int(rows[0][0])
            deleted += got
            if got < n:
                break
        return deleted

    # -- schedules ------------------------------------------------------------------------------
    async def create_schedule(self, row: ScheduleRow) -> tuple[ScheduleRow, bool]:
        values = [getattr(row, f) for f in SCHEDULE_FIELDS]
        rows = await self._fetch(
            f"INSERT INTO dw_schedules ({SCHED_COLS}) VALUES "
            f"({typed(ScheduleRow, SCHEDULE_FIELDS)}) ON CONFLICT (job_id) DO NOTHING "
            "RETURNING job_id", values)
        if rows:
            return row, True
        existing = await self.get_schedule(row.job_id)
        if existing is None:
            raise StoreError(f"schedule {row.job_id} vanished while being created")
        return existing, False

    async def get_schedule(self, job_id: str) -> ScheduleRow | None:
        rows = await self._fetch(f"SELECT {SCHED_COLS} FROM dw_schedules WHERE job_id=%s",
                                 (job_id,))
        return ScheduleRow(*rows[0]) if rows else None

    async def list_schedules(self, *, status: str | list[str] | None = None,
                             limit: int = 100) -> list[ScheduleRow]:
        sql = f"SELECT {SCHED_COLS} FROM dw_schedules"
        params: list[Any] = []
        if status is not None:
            sql += " WHERE status = ANY(%s::text[])"
            params.append([status] if isinstance(status, str) else list(status))
        sql += " ORDER BY created_at, job_id LIMIT %s"
        return [ScheduleRow(*r) for r in await self._fetch(sql, [*params, limit])]

    async def update_schedule(self, job_id: str, fields: dict[str, Any], *,
                              only_status: frozenset[str] | None = None) -> bool:
        sets, vals = set_clause({**fields, "updated_at": now()}, SCHEDULE_FIELDS)
        sql = f"UPDATE dw_schedules SET {sets} WHERE job_id=%s"
        params: list[Any] = [*vals, job_id]
        if only_status is not None:
            sql += " AND status = ANY(%s::text[])"
            params.append(sorted(only_status))
        sql += " RETURNING 1"
        return bool(await self._fetch(sql, params))

    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRow]:
        rows = await self._fetch(
            f"SELECT {SCHED_COLS} FROM dw_schedules WHERE status='active' AND "
            "next_run_at <= %s ORDER BY next_run_at, job_id LIMIT %s", (now, limit))
        return [ScheduleRow(*r) for r in rows]

    async def fire_schedule(self, job_id: str, expect_fired: int, fields: dict[str, Any],
                            run: RunRow | None, events: list[Event]) -> bool:
        # One statement: the compare-and-set on `fired` and the run insert commit together.
        sets, vals = set_clause({**fields, "updated_at": now()}, SCHEDULE_FIELDS)
        sql = (f"WITH s AS (UPDATE dw_schedules SET {sets} WHERE job_id=%s AND fired=%s AND "
               "status='active' RETURNING 1)")
        params: list[Any] = [*vals, job_id, expect_fired]
        if run is None:
            sql += " SELECT count(*) FROM s"
        else:
            sql += (f", ins AS (INSERT INTO dw_runs ({RUN_COLS}) SELECT "
                    f"{typed(RunRow, RUN_FIELDS)} WHERE EXISTS (SELECT 1 FROM s) "
                    "ON CONFLICT (workflow_id) DO NOTHING RETURNING workflow_id, queue, status), "
                    "ev AS (" + EVENTS_FROM.format(src="ins.workflow_id", frm="ins, ") + ") "
                    f"SELECT (SELECT count(*) FROM s), (SELECT pg_notify('{CHANNEL}', queue) "
                    "FROM ins WHERE status='pending')")
            params += [*(getattr(run, f) for f in RUN_FIELDS), *event_arrays(events)]
        rows = await self._fetch(sql, params)
        return bool(rows[0][0])

    # -- worker support ------------------------------------------------------------------------
    async def next_due_at(self, queues: list[str] | None = None) -> float | None:
        # One ordered index probe per status (dw_runs_due): MIN() over an OR would read the
        # whole backlog on every pass of every worker.
        q = " AND queue = ANY(%(queues)s::text[])" if queues else ""
        first = ("(SELECT wake_at FROM dw_runs WHERE status = '{0}' AND wake_at IS NOT NULL AND "
                 f"owner IS NULL{q} ORDER BY wake_at LIMIT 1)")
        rows = await self._fetch(
            "SELECT LEAST((SELECT 0::float8 WHERE EXISTS (SELECT 1 FROM dw_runs WHERE "
            f"status = 'pending' AND wake_at IS NULL AND owner IS NULL{q})), "
            + ", ".join(first.format(st) for st in ("pending", "sleeping", "waiting"))
            + ", (SELECT MIN(next_run_at) FROM dw_schedules WHERE status = 'active'))",
            {"queues": list(queues or [])})
        v = rows[0][0]
        return None if v is None else float(v)

    async def queue_depth(self, now: float) -> dict[str, int]:
        rows = await self._fetch(
            "SELECT queue, COUNT(*) FROM dw_runs WHERE owner IS NULL AND "
            "status = ANY(%s::text[]) AND COALESCE(wake_at, CASE WHEN status = 'pending' "
            "THEN 0 END) <= %s GROUP BY queue",
            (["pending", "sleeping", "waiting"], now))
        return {str(q): int(n) for q, n in rows}

    async def cancel_requests(self, owner: str) -> list[tuple[str, str]]:
        rows = await self._fetch(
            "SELECT workflow_id, options FROM dw_runs WHERE owner=%s AND "
            "status = ANY(%s::text[]) AND options LIKE %s",
            (owner, ACTIVE_LIST, "%cancel_requested%"))
        out: list[tuple[str, str]] = []
        for wid, opts in rows:
            try:
                data = json.loads(opts)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("cancel_requested"):
                out.append((wid, str(data.get("cancel_reason") or "cancelled")))
        return out

    # -- operations ----------------------------------------------------------------------------
    async def stats(self) -> dict[str, Any]:
        """Runs per status and the live leases per owner (for `ductwork db status`)."""
        by_status = await self._fetch("SELECT status, count(*) FROM dw_runs GROUP BY status "
                                      "ORDER BY status")
        owners = await self._fetch(
            f"SELECT owner, count(*), max(lease_until) - {NOW} FROM dw_runs "
            "WHERE owner IS NOT NULL GROUP BY owner ORDER BY owner")
        return {"runs": {s: n for s, n in by_status},
                "owners": [{"owner": o, "runs": n, "lease_left_s": round(float(left), 1)}
                           for o, n, left in owners]}


async def _version(conn: Conn) -> int:
    cur = await conn.execute("SELECT to_regclass('dw_meta') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute("SELECT value FROM dw_meta WHERE key='schema_version'")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _transaction(conn: Conn, stmts: list[tuple[str, Sequence[Any]]]) -> None:
    """BEGIN, the statements and COMMIT in one pipeline flush: one round trip. A fence that
    fails raises inside the transaction (dw_fail), which aborts it before COMMIT."""
    try:
        async with conn.pipeline():
            await conn.execute("BEGIN")
            for sql, params in stmts:
                await conn.execute(sql, params)
            await conn.execute("COMMIT")
    except psycopg.errors.RaiseException as e:
        await _rollback(conn)
        msg = e.diag.message_primary or ""
        if msg.startswith("dw_fail:"):
            raise _Fail(msg.removeprefix("dw_fail:")) from None
        raise
    except BaseException:
        await _rollback(conn)
        raise


async def _rollback(conn: Conn) -> None:
    if conn.info.transaction_status in (psycopg.pq.TransactionStatus.INTRANS,
                                        psycopg.pq.TransactionStatus.INERROR):
        with contextlib.suppress(psycopg.Error):
            await conn.execute("ROLLBACK")








def _lost(workflow_id: str) -> LeaseLostError:
    return LeaseLostError(f"run {workflow_id} is no longer owned by this process (its lease "
                          "expired and another worker took it over)")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]

