"""Claiming the runs a NOTIFY named, with their history, in one round trip."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from ductwork.store.postgres.sql import CLAIM
from ductwork.store.protocol import STEP_FIELDS, RunRow, StepRow

# The worker's claim (same due and takeover rules, same lease), narrowed to the named runs.
CLAIM_NAMED = CLAIM.format(qfilter=" AND workflow_id = ANY(%(wids)s::text[])", log="")
# A second statement, so a fresh snapshot: a step that the previous owner committed while the
# claim waited for its FOR SHARE lock (see STEP_UPSERT) is read.
STEPS_OF_OWNED = (
    f"SELECT {', '.join('s.' + f for f in STEP_FIELDS)} FROM dw_steps s "
    "WHERE s.workflow_id = ANY(%s::text[]) AND EXISTS (SELECT 1 FROM dw_runs r "
    "WHERE r.workflow_id = s.workflow_id AND r.owner = %s) "
    "ORDER BY s.workflow_id, s.seq, COALESCE(s.started_at, 0), s.step_key")


async def claim_named(conn: AsyncConnection[Any], owner: str, lease_s: float,
                      workflow_ids: list[str], dead: list[str]
                      ) -> list[tuple[RunRow, list[StepRow]]]:
    """Claim those of `workflow_ids` that are due (or orphaned), each with its steps in the
    order load_steps() gives them; both statements in one pipeline flush."""
    async with conn.pipeline():
        claim = await conn.execute(CLAIM_NAMED, {
            "wids": workflow_ids, "n": len(workflow_ids), "dead": dead, "owner": owner,
            "lease": lease_s})
        steps = await conn.execute(STEPS_OF_OWNED, (workflow_ids, owner))
    runs = [RunRow(*r) for r in await claim.fetchall()]
    history: dict[str, list[StepRow]] = {r.workflow_id: [] for r in runs}
    for row in await steps.fetchall():
        s = StepRow(*row)
        if s.workflow_id in history:
            history[s.workflow_id].append(s)
    runs.sort(key=lambda r: (-r.priority, r.wake_at if r.wake_at is not None
                             else r.created_at))
    return [(r, history[r.workflow_id]) for r in runs]
