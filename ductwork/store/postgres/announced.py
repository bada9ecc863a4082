"""Claiming the runs a NOTIFY named, with their history and signals, in one round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from ductwork.store.postgres import lean
from ductwork.store.postgres.rows import rows
from ductwork.store.postgres.sql import ACTIVE_SQL, NOW
from ductwork.store.protocol import (
    RUN_FIELDS,
    STEP_FIELDS,
    ClaimedRun,
    RunRow,
    SignalRow,
    StepRow,
)

# The worker's claim (sql.CLAIM: same due and takeover rules, same lease; it starts the run)
# for runs named by id: a primary-key lookup, so neither of CLAIM's two ordered, limited index
# walks (the engine orders what it gets). The rules are one CASE, which no index serves: a
# generic plan of an OR of them walked the status and owner indexes (every waiting or owned
# run) instead of the key. Positional, so that it goes prepared through lean.py.
DUE_NAMED = (
    "SELECT workflow_id, wake_at FROM dw_runs WHERE workflow_id = ANY(%s::text[]) AND "
    f"COALESCE(wake_at, 0) <= {NOW} AND CASE WHEN owner IS NULL THEN "
    "status IN ('pending', 'sleeping', 'waiting') AND (status = 'pending' OR wake_at IS NOT "
    f"NULL) ELSE status IN {ACTIVE_SQL} AND (lease_until < {NOW} OR "
    "owner = ANY(%s::text[])) END FOR UPDATE SKIP LOCKED")
CLAIM_NAMED = (
    f"WITH due AS ({DUE_NAMED}) UPDATE dw_runs r SET owner=%s, lease_until={NOW} + %s::float8, "
    f"attempt=r.attempt + 1, updated_at={NOW}, status='running', wake_at=NULL, "
    f"started_at=COALESCE(r.started_at, {NOW}) FROM due WHERE r.workflow_id = due.workflow_id "
    "RETURNING " + ", ".join("due.wake_at" if f == "wake_at" else f"r.{f}" for f in RUN_FIELDS))
# The claim's transaction commits without waiting for its WAL flush; see claim_named().
NO_FLUSH = "SELECT set_config('synchronous_commit', 'off', true)"
# Separate statements, so fresh snapshots taken after the claim holds the run: a step that a
# previous owner committed after the claim's snapshot (before its row lock) is read too. The
# runs now ours are looked up by key, once (an ARRAY sub-select; the owner compared through
# COALESCE, which no index serves): as a join or on the owner index, the generic plan read
# every run this owner holds to find them.
OWNED = ("x.workflow_id = ANY(ARRAY(SELECT r.workflow_id FROM dw_runs r WHERE "
         "r.workflow_id = ANY(%s::text[]) AND COALESCE(r.owner, '') = %s))")
STEPS_OF_OWNED = (
    f"SELECT {', '.join('x.' + f for f in STEP_FIELDS)} FROM dw_steps x WHERE {OWNED} "
    "ORDER BY x.workflow_id, x.seq, COALESCE(x.started_at, 0), x.step_key")
SIGNALS_OF_OWNED = (
    "SELECT x.id, x.workflow_id, x.name, x.payload, x.created_at, x.consumed_by "
    f"FROM dw_signals x WHERE {OWNED} AND x.consumed_by IS NULL ORDER BY x.id")


async def claim_named(conn: AsyncConnection[Any], owner: str, lease_s: float,
                      workflow_ids: list[str], dead: list[str]) -> list[ClaimedRun]:
    """Claim those of `workflow_ids` that are due (or orphaned), each with its steps in the
    order load_steps() gives them and its unconsumed signals: one transaction, one round trip.

    The transaction commits without waiting for its WAL flush (synchronous_commit off for it
    alone), which takes a disk flush off the way from a NOTIFY to the run's next step. Nothing
    is reported on its strength: the run's next commit waits for its own flush, which covers
    the claim's earlier WAL, and a claim lost in a database crash leaves the run as it was, so
    this worker's next commit fails its ownership fence (a step that ran in between was never
    recorded and runs again; recorded steps never do)."""
    stmts: list[tuple[str, Sequence[Any]]] = [
        (NO_FLUSH, ()),
        (CLAIM_NAMED, (workflow_ids, dead, owner, lease_s)),
        (STEPS_OF_OWNED, (workflow_ids, owner)),
        (SIGNALS_OF_OWNED, (workflow_ids, owner))]
    try:
        _, claim, steps, signals = await lean.transaction(conn, stmts)
        runs, step_rows = rows(claim, RunRow), rows(steps, StepRow)
        signal_rows = rows(signals, SignalRow)
    except lean.Unsupported:  # psycopg's own pipeline (not a connection lean.py serves)
        async with conn.pipeline():
            curs = [await conn.execute(sql, params, prepare=False) for sql, params in stmts]
        runs = [RunRow(*r) for r in await curs[1].fetchall()]
        step_rows = [StepRow(*r) for r in await curs[2].fetchall()]
        signal_rows = [SignalRow(*r) for r in await curs[3].fetchall()]
    out = {r.workflow_id: ClaimedRun(r, [], []) for r in runs}
    for s in step_rows:
        if s.workflow_id in out:
            out[s.workflow_id].steps.append(s)
    for sig in signal_rows:
        if sig.workflow_id in out:
            out[sig.workflow_id].signals.append(sig)
    return sorted(out.values(), key=lambda c: (
        -c.run.priority, c.run.wake_at if c.run.wake_at is not None else c.run.created_at))
