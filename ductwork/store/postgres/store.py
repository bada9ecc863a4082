"""The PostgreSQL run store: many workers on many machines, coordinated by the database alone."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from ductwork.errors import StoreError
from ductwork.store.postgres import lean
from ductwork.store.postgres.announced import claim_named
from ductwork.store.postgres.base import Conn, _rollback, safe_url
from ductwork.store.postgres.claims import PgClaims
from ductwork.store.postgres.commits import PgCommits
from ductwork.store.postgres.rows import fetch, positional
from ductwork.store.postgres.sql import (
    ACTIVE_LIST,
    CHANNEL,
    CREATE_RUN,
    DUE_RUN,
    EVENTS_FROM,
    NOW,
    PRUNE,
    RUN_COLS,
    SCHED_COLS,
    STEP_COLS,
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
    ClaimedRun,
    RunRow,
    ScheduleRow,
    SignalRow,
    StepRow,
    now,
    prune_statuses,
)

__all__ = ["PostgresStore", "safe_url"]

# The reads and the signal of the hot paths, prepared through lean.py (rows.fetch, lean.one).
GET_RUN = f"SELECT {RUN_COLS} FROM dw_runs WHERE workflow_id=%s"
LOAD_STEPS = (f"SELECT {STEP_COLS} FROM dw_steps WHERE workflow_id=%s "
              "ORDER BY seq, COALESCE(started_at, 0), step_key")
FIND_SIGNAL = ("SELECT id, workflow_id, name, payload, created_at, consumed_by FROM dw_signals "
               "WHERE workflow_id=%s AND consumed_by IS NULL AND name = ANY(%s::text[]) "
               "ORDER BY id LIMIT 1")
# The signal, the run's due time (a waiting run becomes due) and its event in one statement;
# NOTIFY wakes a worker for a suspended run (dw_due, naming it), else an inline wait on it
# (dw_wake: a run waiting inline is running, not waiting, and a suspended one has no such
# wait, so every listening process is spared that wake-up).
SEND_SIGNAL = (
    "WITH s AS (INSERT INTO dw_signals (workflow_id, name, payload, created_at) "
    "VALUES (%s, %s, %s, %s) RETURNING id), "
    "u AS (UPDATE dw_runs SET wake_at=%s, updated_at=%s WHERE workflow_id=%s AND "
    "status='waiting' RETURNING queue, workflow_id), "
    "e AS (INSERT INTO dw_events (workflow_id, ts, type, step, data) VALUES "
    "(%s, %s, 'signal_received', NULL, %s)) "
    f"SELECT (SELECT id FROM s), (SELECT pg_notify('{CHANNEL}', {DUE_RUN}) FROM u), "
    f"(SELECT pg_notify('{WAKE_CHANNEL}', %s) WHERE NOT EXISTS (SELECT 1 FROM u))")


class PostgresStore(PgClaims, PgCommits):
    """RunStore on PostgreSQL via psycopg 3 (async) and a connection pool.

    Connections are in autocommit mode: a single statement is its own transaction, so the hot
    path (create a run, one step result, finish) costs one round trip each, sent through
    libpq directly as prepared statements (lean.py). Multi-statement batches are pipelined
    (BEGIN ... COMMIT in one network flush); their fences raise inside the transaction.
    Claims live in claims.py, commits in commits.py, the pool and migrations in base.py.
    """

    # -- runs --------------------------------------------------------------------------------
    async def create_run(self, run: RunRow, events: list[Event]) -> tuple[RunRow, bool]:
        values = [getattr(run, f) for f in RUN_FIELDS]
        notify = run.status == "pending"

        async def go(conn: Conn, _: int) -> bool:
            made = (await lean.one(conn, CREATE_RUN, [*values, *event_arrays(events), notify]))[1]
            return made == "1"

        if await self._with(go):
            return run, True
        existing = await self.get_run(run.workflow_id)
        if existing is None:  # deleted in between: nothing sensible to return but ours
            raise StoreError(f"run {run.workflow_id} vanished while being created")
        return existing, False

    async def create_runs(self, items: list[tuple[RunRow, list[Event]]]
                          ) -> list[tuple[RunRow, bool]]:
        """Several create_run() in one pipelined transaction: one round trip, one WAL flush,
        and one NOTIFY per queue (PostgreSQL folds equal notifications of a transaction)."""
        if len(items) <= 1:
            return [await self.create_run(run, events) for run, events in items]

        async def go(conn: Conn, _: int) -> list[bool]:
            stmts = [(CREATE_RUN, [*(getattr(run, f) for f in RUN_FIELDS), *event_arrays(events),
                                   run.status == "pending"]) for run, events in items]
            try:
                return [lean.value(r) == "1" for r in await lean.transaction(conn, stmts)]
            except lean.Unsupported:
                pass
            try:
                async with conn.pipeline():
                    await conn.execute("BEGIN")
                    curs = [await conn.execute(sql, params, prepare=False)
                            for sql, params in stmts]
                    await conn.execute("COMMIT")
            except BaseException:
                await _rollback(conn)
                raise
            return [bool((await c.fetchone() or (0,))[0]) for c in curs]

        created = await self._with(go)
        out: list[tuple[RunRow, bool]] = []
        for (run, _), made in zip(items, created, strict=True):
            if made:
                out.append((run, True))
                continue
            existing = await self.get_run(run.workflow_id)
            if existing is None:
                raise StoreError(f"run {run.workflow_id} vanished while being created")
            out.append((existing, False))
        return out

    async def get_run(self, workflow_id: str) -> RunRow | None:
        async def go(conn: Conn, _: int) -> list[RunRow]:
            return await fetch(conn, GET_RUN, (workflow_id,), RunRow)

        got = await self._with(go)
        return got[0] if got else None

    async def load_steps(self, workflow_id: str) -> list[StepRow]:
        claimed = self.take_claimed_steps(workflow_id)
        if claimed is not None:
            return claimed

        async def go(conn: Conn, _: int) -> list[StepRow]:
            return await fetch(conn, LOAD_STEPS, (workflow_id,), StepRow)

        return await self._with(go)

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
               f"SELECT (SELECT count(*) FROM u), (SELECT pg_notify('{CHANNEL}', {DUE_RUN}) "
               f"FROM u WHERE %s::boolean), (SELECT pg_notify('{WAKE_CHANNEL}', workflow_id) "
               "FROM u WHERE %s::boolean)")
        rows = await self._fetch(sql, [*params, *event_arrays(events or []), notify,
                                       "wake_at" in fields])
        return bool(rows[0][0])

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

    def take_announced(self) -> list[tuple[str, str]] | None:
        return self._listener.take_announced()

    async def claim_announced(self, owner: str, lease_s: float, workflow_ids: list[str], *,
                              steal_from: frozenset[str] = frozenset()) -> list[ClaimedRun]:
        async def go(conn: Conn, _: int) -> list[ClaimedRun]:
            return await claim_named(conn, owner, lease_s, workflow_ids, sorted(steal_from))

        return await self._with(go)

    # -- signals -------------------------------------------------------------------------------
    async def send_signal(self, workflow_id: str, name: str, payload: str | None) -> int:
        t = now()

        async def go(conn: Conn, _: int) -> str | None:
            return (await lean.one(conn, SEND_SIGNAL, (
                workflow_id, name, payload, t, t, t, workflow_id, workflow_id, t,
                json.dumps({"signal": name}), workflow_id)))[1]

        return int(await self._with(go) or 0)

    async def find_signal(self, workflow_id: str, names: list[str]) -> SignalRow | None:
        if self._listener.has_wake_callbacks:
            await self._listener.ensure()  # before looking: a later signal then wakes the wait

        async def go(conn: Conn, _: int) -> list[SignalRow]:
            return await fetch(conn, FIND_SIGNAL, (workflow_id, list(names)), SignalRow)

        got = await self._with(go)
        return got[0] if got else None

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
        sql, params = positional(
            "SELECT LEAST((SELECT 0::float8 WHERE EXISTS (SELECT 1 FROM dw_runs WHERE "
            f"status = 'pending' AND wake_at IS NULL AND owner IS NULL{q})), "
            + ", ".join(first.format(st) for st in ("pending", "sleeping", "waiting"))
            + ", (SELECT MIN(next_run_at) FROM dw_schedules WHERE status = 'active'))",
            {"queues": list(queues or [])})

        async def go(conn: Conn, _: int) -> str | None:
            return (await lean.one(conn, sql, params))[1]

        v = await self._with(go)
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
