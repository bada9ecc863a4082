"""PostgreSQL run ownership: claims of one run or of due runs, leases, release."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from ductwork.store.postgres import lean
from ductwork.store.postgres.base import Conn, PgBase, _rollback
from ductwork.store.postgres.rows import column, execute, fetch, positional, rows
from ductwork.store.postgres.sql import (
    ACTIVE_SQL,
    CHANNEL,
    CLAIM,
    CLAIM_ONE,
    NOW,
    QUEUE_LOCK,
)
from ductwork.store.protocol import RUN_FIELDS, QueueLimit, RunRow, StepRow, now

# How long the steps read by a claim stay usable by load_steps(): the engine asks at once; past
# this, it reads them again (a lease is much longer, so they are still the run's own).
STEPS_KEPT_S = 5.0
# How long live_owners() answers from its last read.
OWNERS_KEPT_S = 1.0
# Positional, so that they go prepared through lean.py.
RENEW = f"UPDATE dw_runs SET lease_until={NOW} + %s::float8 WHERE owner=%s RETURNING workflow_id"
HOLD = (f"UPDATE dw_runs SET lease_until={NOW} + %s::float8 WHERE workflow_id=%s AND "
        "owner=%s")
# The run back to the queue: due again at once (or at wake_at), announced without its name.
RELEASE = (
    "WITH u AS (UPDATE dw_runs SET owner=NULL, lease_until=NULL, "
    "wake_at=COALESCE(%s::float8, wake_at), status=CASE WHEN status='running' THEN 'pending' "
    "ELSE status END, updated_at=%s WHERE workflow_id=%s AND owner=%s RETURNING queue) "
    f"SELECT pg_notify('{CHANNEL}', queue) FROM u")


class PgClaims(PgBase):
    """Claims (one run, or due runs under queue limits), lease renewal and release."""

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
        sql, params = positional(CLAIM_ONE.format(log=""), {
            "owner": owner, "lease": lease_s, "wid": workflow_id, "dead": dead})

        async def go(conn: Conn, _: int) -> list[RunRow]:
            return await fetch(conn, sql, params, RunRow)

        got = await self._with(go)
        return got[0] if got else None

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
            sql, values = positional(CLAIM.format(qfilter=qfilter, log=""), params)

            async def go(conn: Conn, _: int) -> list[tuple[RunRow, Any]]:
                res = await execute(conn, sql, values)
                if res is None:  # psycopg, where lean.py does not apply
                    cur = await conn.execute(sql, values)
                    return [(RunRow(*r[:-1]), r[-1]) for r in await cur.fetchall()]
                return list(zip(rows(res, RunRow, extra=1), column(res, len(RUN_FIELDS)),
                                strict=True))

            out += self._started(await self._with(go))
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
            if workflow_id is not None:
                return [RunRow(*r) for r in rows]
            return self._started([(RunRow(*r[:-1]), r[-1]) for r in rows])

        return await self._with(go)

    def _started(self, claimed: list[tuple[RunRow, Any]]) -> list[RunRow]:
        """The runs of a CLAIM, their steps (JSON) kept for the engine's load_steps() that
        follows."""
        t = time.monotonic()
        for wid in [w for w, (at, _) in self._claimed_steps.items() if t - at > STEPS_KEPT_S]:
            del self._claimed_steps[wid]  # never driven here (the process gave them up)
        out = []
        for run, got in claimed:
            out.append(run)
            if got is None:  # taken over from a lapsed owner: its history is read again
                continue
            steps = json.loads(got) if isinstance(got, str) else got
            self._claimed_steps[run.workflow_id] = (t, [StepRow(*s) for s in steps])
        return out

    def take_claimed_steps(self, workflow_id: str) -> list[StepRow] | None:
        """The steps a claim just read for this run (once), or None: read them again. Kept
        only for runs the claim found unowned: nobody else can write their steps, and the claim
        made this process the owner moments ago."""
        got = self._claimed_steps.pop(workflow_id, None)
        if got is None or time.monotonic() - got[0] > STEPS_KEPT_S:
            return None
        return got[1]

    async def renew_leases(self, owner: str, lease_s: float) -> list[str]:
        return [w for w in await self._column(RENEW, (lease_s, owner)) if w is not None]

    async def hold_lease(self, workflow_id: str, owner: str, lease_s: float) -> bool:
        async def go(conn: Conn, _: int) -> int:
            return (await lean.one(conn, HOLD, (lease_s, workflow_id, owner)))[0]

        return await self._with(go) == 1

    async def release(self, workflow_id: str, owner: str, *, wake_at: float | None = None) -> None:
        self._claimed_steps.pop(workflow_id, None)

        async def go(conn: Conn, _: int) -> None:
            await lean.one(conn, RELEASE, (wake_at, now(), workflow_id, owner))

        await self._with(go)

    async def _column(self, sql: str, params: Sequence[Any]) -> list[str | None]:
        """The first column of a read's rows, as text, prepared through lean.py."""
        async def go(conn: Conn, _: int) -> list[str | None]:
            res = await execute(conn, sql, params)
            if res is None:  # psycopg, where lean.py does not apply
                cur = await conn.execute(sql, params)
                return [None if r[0] is None else str(r[0]) for r in await cur.fetchall()]
            return column(res)

        return await self._with(go)

    async def live_owners(self) -> list[str]:
        # Asked before every claim pass, and a DISTINCT over the owner index is not free: a
        # list up to a second old serves (an owner that died since is found dead a pass later;
        # its runs are taken over when their lease expires in any case).
        t = time.monotonic()
        if self._owners is not None and t - self._owners[0] < OWNERS_KEPT_S:
            return list(self._owners[1])
        got = await self._column("SELECT DISTINCT owner FROM dw_runs WHERE owner IS NOT NULL", ())
        self._owners = (t, [o for o in got if o is not None])
        return list(self._owners[1])
