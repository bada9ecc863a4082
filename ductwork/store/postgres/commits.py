"""PostgreSQL commits: one run's batch, or several runs' batches in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ductwork.store.postgres import lean
from ductwork.store.postgres.base import Conn, PgBase, _Fail, _lost, _transaction
from ductwork.store.postgres.sql import (
    CHANNEL,
    EVENTS_FROM,
    STEP_DONE,
    STEP_UPSERT,
    event_arrays,
    makes_due,
    set_clause,
)
from ductwork.store.protocol import (
    RUN_FIELDS,
    STEP_FIELDS,
    Batch,
    LeaseLostError,
    StepConflictError,
    StepRow,
    done_values,
    now,
)

Stmt = tuple[str, Sequence[Any]]


class PgCommits(PgBase):
    """commit() and commit_many(): batches fenced by ownership, pipelined in one round trip."""

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
        sql = (f"WITH u AS (UPDATE dw_runs SET {sets} WHERE workflow_id=%s{fence} RETURNING "
               f"queue) SELECT count(*), (SELECT pg_notify('{CHANNEL}', queue) FROM u WHERE "
               "%s::boolean) FROM u")
        params = [*vals, workflow_id, *([owner] if owner is not None else []), makes_due(run)]

        async def go(conn: Conn, _: int) -> str | None:
            return (await lean.one(conn, sql, params))[1]

        if await self._with(go) != "1":
            raise _lost(workflow_id)

    async def _insert_step(self, conn: Conn, workflow_id: str, s: StepRow, owner: str | None,
                           attempt: int) -> None:
        done = done_values(s, workflow_id, owner)
        rows, _ = await (lean.one(conn, STEP_DONE, done) if done is not None else lean.one(
            conn, STEP_UPSERT, [*(getattr(s, f) for f in STEP_FIELDS), workflow_id, owner, owner]))
        if rows != 1:
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

    async def commit_many(self, items: list[tuple[str, Batch]]) -> list[Exception | None]:
        """Every batch in one pipelined transaction: one round trip and one WAL flush for the
        lot. A fence that fails names its batch (dw_fail('code:i')): the transaction is rolled
        back, that batch alone is committed on its own to get its exact error (or to find it
        already ours, on a retry after a lost connection), and the rest goes again."""
        if len(items) == 1:  # alone: the one-statement paths of commit()
            try:
                await self.commit(*items[0])
            except (LeaseLostError, StepConflictError) as e:
                return [e]
            return [None]
        out: list[Exception | None] = [None] * len(items)
        pending = list(range(len(items)))

        async def go(conn: Conn, attempt: int) -> None:
            while pending:
                if len(pending) == 1:
                    await self._settle(conn, items, pending[0], attempt, out)
                    pending.clear()
                    return
                stmts: list[Stmt] = []
                for i in pending:
                    stmts += _batch_statements(items[i][0], items[i][1], f":{i}")
                try:
                    await _transaction(conn, stmts)
                except _Fail as f:
                    i = int(str(f).rpartition(":")[2])
                    await self._settle(conn, items, i, attempt, out)
                    pending.remove(i)
                    continue
                pending.clear()

        if items:
            await self._with(go)
        return out

    async def _settle(self, conn: Conn, items: list[tuple[str, Batch]], i: int, attempt: int,
                      out: list[Exception | None]) -> None:
        """Commit batch i on its own, keeping its fence failure as its outcome."""
        try:
            await self._commit_batch(conn, items[i][0], items[i][1], attempt)
        except (LeaseLostError, StepConflictError) as e:
            out[i] = e

    async def _commit_batch(self, conn: Conn, workflow_id: str, batch: Batch,
                            attempt: int) -> None:
        try:
            await _transaction(conn, _batch_statements(workflow_id, batch, ""))
        except _Fail as f:
            code = str(f).partition(":")[0]
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


def _batch_statements(workflow_id: str, batch: Batch, tag: str) -> list[Stmt]:
    """The statements of one batch; a failed fence raises dw_fail('<code><tag>'), code one
    of lease, step, signal."""
    fail = "SELECT dw_fail(%s) WHERE NOT EXISTS (SELECT 1 FROM x)"
    stmts: list[Stmt] = []
    if batch.run:
        fields = {**batch.run, "updated_at": now()}
        sets, vals = set_clause(fields, RUN_FIELDS)
        fence = " AND owner=%s" if batch.owner is not None else ""
        params = [*vals, workflow_id] + ([batch.owner] if batch.owner is not None else [])
        stmts.append((f"WITH x AS (UPDATE dw_runs SET {sets} WHERE workflow_id=%s{fence} "
                      f"RETURNING 1) {fail}", [*params, "lease" + tag]))
    elif batch.owner is not None and not batch.steps:
        # FOR SHARE: a takeover waits for this commit (see STEP_UPSERT).
        stmts.append(("WITH x AS (SELECT 1 FROM dw_runs WHERE workflow_id=%s AND owner=%s "
                      "FOR SHARE) " + fail, [workflow_id, batch.owner, "lease" + tag]))
    for s in batch.steps:
        stmts.append((f"WITH x AS ({STEP_UPSERT} RETURNING 1) {fail}",
                      [*(getattr(s, f) for f in STEP_FIELDS), workflow_id, batch.owner,
                       batch.owner, "step" + tag]))
    for key, upd in batch.step_updates:
        sets, vals = set_clause(upd, STEP_FIELDS)
        stmts.append((f"UPDATE dw_steps SET {sets} WHERE workflow_id=%s AND step_key=%s",
                      [*vals, workflow_id, key]))
    if batch.consume_signal is not None:
        sid, key = batch.consume_signal
        stmts.append(("WITH x AS (UPDATE dw_signals SET consumed_by=%s WHERE id=%s AND "
                      f"consumed_by IS NULL RETURNING 1) {fail}", [key, sid, "signal" + tag]))
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
    return stmts
