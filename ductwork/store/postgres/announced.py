"""Claiming the runs a NOTIFY named, with their history and signals, in one round trip."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from ductwork.store.postgres.sql import CLAIM, STEP_JSON
from ductwork.store.protocol import (
    RUN_FIELDS,
    STEP_FIELDS,
    ClaimedRun,
    RunRow,
    SignalRow,
    StepRow,
)

# The worker's claim (same due and takeover rules, same lease; it starts the run), narrowed to
# the named runs, without the steps it reads in its own snapshot: they are read below.
CLAIM_NAMED = CLAIM.replace(f", {STEP_JSON} AS steps", "").format(
    qfilter=" AND workflow_id = ANY(%(wids)s::text[])", log="")
# Separate statements, so fresh snapshots taken after the claim holds the run: a step that a
# previous owner committed after the claim's snapshot (before its row lock) is read too.
OWNED = ("EXISTS (SELECT 1 FROM dw_runs r WHERE r.workflow_id = x.workflow_id AND "
         "r.owner = %s)")
STEPS_OF_OWNED = (
    f"SELECT {', '.join('x.' + f for f in STEP_FIELDS)} FROM dw_steps x "
    f"WHERE x.workflow_id = ANY(%s::text[]) AND {OWNED} "
    "ORDER BY x.workflow_id, x.seq, COALESCE(x.started_at, 0), x.step_key")
SIGNALS_OF_OWNED = (
    "SELECT x.id, x.workflow_id, x.name, x.payload, x.created_at, x.consumed_by "
    f"FROM dw_signals x WHERE x.workflow_id = ANY(%s::text[]) AND x.consumed_by IS NULL AND "
    f"{OWNED} ORDER BY x.id")


async def claim_named(conn: AsyncConnection[Any], owner: str, lease_s: float,
                      workflow_ids: list[str], dead: list[str]) -> list[ClaimedRun]:
    """Claim those of `workflow_ids` that are due (or orphaned), each with its steps in the
    order load_steps() gives them and its unconsumed signals: one flush. (The claim commits as
    any other: a transaction of its own around it, to skip its WAL flush, measured slower on a
    quiet machine, the extra statements costing more than the flush.)"""
    async with conn.pipeline():
        claim = await conn.execute(CLAIM_NAMED, {
            "wids": workflow_ids, "n": len(workflow_ids), "dead": dead, "owner": owner,
            "lease": lease_s})
        steps = await conn.execute(STEPS_OF_OWNED, (workflow_ids, owner))
        signals = await conn.execute(SIGNALS_OF_OWNED, (workflow_ids, owner))
    width = len(RUN_FIELDS)
    out = {r.workflow_id: ClaimedRun(r, [], [])
           for r in (RunRow(*row[:width]) for row in await claim.fetchall())}
    for row in await steps.fetchall():
        s = StepRow(*row)
        if s.workflow_id in out:
            out[s.workflow_id].steps.append(s)
    for row in await signals.fetchall():
        sig = SignalRow(*row)
        if sig.workflow_id in out:
            out[sig.workflow_id].signals.append(sig)
    return sorted(out.values(), key=lambda c: (
        -c.run.priority, c.run.wake_at if c.run.wake_at is not None else c.run.created_at))
