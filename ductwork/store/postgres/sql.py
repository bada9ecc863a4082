"""SQL text of the PostgreSQL run store: channels, column lists, claim and insert statements."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from ductwork.errors import StoreError
from ductwork.store.protocol import (
    ACTIVE,
    RUN_FIELDS,
    RUN_TABLES,
    SCHEDULE_FIELDS,
    STEP_FIELDS,
    RunRow,
    StepRow,
)

Event = tuple[float, str, str | None, str | None]

CHANNEL = "dw_due"                   # NOTIFY channel: "a run may be due now" (payload: queue)
WAKE_CHANNEL = "dw_wake"             # "run <payload> may go on" (a signal, a child that ended)
# A dw_due payload naming the run that became due: queue RUN_SEP workflow_id (SQL: DUE_RUN, over
# a row with both columns). An idle worker claims that run directly instead of searching.
RUN_SEP = "\x1f"
DUE_RUN = f"queue || chr({ord(RUN_SEP)}) || workflow_id"
MIGRATE_LOCK = "ductwork:migrate"   # advisory lock names (hashtext'ed)
QUEUE_LOCK = "ductwork:queue:"
# Lease and due-time comparisons use the database's clock, the one clock every worker shares.
NOW = "extract(epoch FROM now())::float8"
ACTIVE_LIST = sorted(ACTIVE)
# Inlined (not a parameter) so the planner can match the partial claim index dw_runs_claim.
ACTIVE_SQL = "(" + ", ".join(f"'{s}'" for s in ACTIVE_LIST) + ")"
DONE_STEP = ("completed", "skipped", "failed")


def pgtype(annotation: str) -> str:
    if "float" in annotation:
        return "float8"
    if "bool" in annotation:
        return "boolean"
    if "int" in annotation:
        return "int4"
    return "text"


def typed(cls: type, fields: Sequence[str]) -> str:
    """`%s::type, ...` for every field: INSERT ... SELECT cannot infer types from the target."""
    ann = {k: str(v) for c in reversed(cls.__mro__) for k, v in getattr(c, "__annotations__",
                                                                        {}).items()}
    return ", ".join(f"%s::{pgtype(ann[f])}" for f in fields)


RUN_COLS = ", ".join(RUN_FIELDS)
STEP_COLS = ", ".join(STEP_FIELDS)
SCHED_COLS = ", ".join(SCHEDULE_FIELDS)
# A waiting record (a child, a signal) is completed in place; a finished one is never replaced.
STEP_CONFLICT = (
    "ON CONFLICT (workflow_id, step_key) DO UPDATE SET "
    + ", ".join(f"{f}=EXCLUDED.{f}" for f in STEP_FIELDS[2:])
    + f" WHERE dw_steps.status NOT IN {DONE_STEP!r}")
# The ownership fence rides on the insert and the primary key makes a second record of one step
# impossible: one statement, one round trip, its own transaction (autocommit). FOR SHARE holds
# the run's row until the insert commits: a worker taking the run over waits for it (and then
# reads the step), instead of claiming in between and replaying a history without it.
STEP_UPSERT = (
    f"INSERT INTO dw_steps ({STEP_COLS}) SELECT {typed(StepRow, STEP_FIELDS)} "
    "WHERE EXISTS (SELECT 1 FROM dw_runs WHERE workflow_id=%s AND (%s::text IS NULL OR owner=%s) "
    "FOR SHARE) " + STEP_CONFLICT)
# The engine's hot path, a step completed by its owner: the same row STEP_UPSERT writes (the
# columns left out are NULL), constants inlined, the fence read straight off the run row
# (locked as above). 11 parameters instead of 20: less to encode and send per step.
STEP_DONE = (
    "INSERT INTO dw_steps (workflow_id, step_key, tag, kind, status, seq, attempts, input, "
    "result, started_at, finished_at, critical, has_rollback) SELECT %s::text, %s::text, "
    "%s::text, 'step', 'completed', %s::int4, %s::int4, %s::text, %s::text, %s::float8, "
    "%s::float8, %s::boolean, %s::boolean FROM dw_runs WHERE workflow_id=%s AND owner=%s "
    "FOR SHARE " + STEP_CONFLICT)
EVENTS_FROM = (
    "INSERT INTO dw_events (workflow_id, ts, type, step, data) "
    "SELECT {src}, e.ts, e.type, e.step, e.data FROM {frm}unnest(%s::float8[], %s::text[], "
    "%s::text[], %s::text[]) WITH ORDINALITY AS e(ts, type, step, data, n) ORDER BY e.n")
CREATE_RUN = (
    f"WITH ins AS (INSERT INTO dw_runs ({RUN_COLS}) VALUES ({typed(RunRow, RUN_FIELDS)}) "
    "ON CONFLICT (workflow_id) DO NOTHING RETURNING workflow_id, queue), "
    "ev AS (" + EVENTS_FROM.format(src="ins.workflow_id", frm="ins, ") + ") "
    f"SELECT (SELECT count(*) FROM ins), (SELECT pg_notify('{CHANNEL}', {DUE_RUN}) FROM ins "
    "WHERE %s::boolean)")
# Due: a queued run (no wake_at: at once), a sleep or wait whose time came (a wait without a
# deadline has no wake_at and becomes due only when a signal or a child sets one), and a run
# whose owner's lease expired or who is known dead. Two branches, each walking an index in claim
# order and stopping at its LIMIT: one OR would sort the whole backlog on every claim.
# The claim also starts each run (status running, wake_at cleared, started_at kept or set: what
# the engine's own start commit would write, so it skips that commit) and hands back its steps
# as JSON (the engine's history, without another read) -- only for a run nobody owned: the
# steps are read in the statement's snapshot, taken before the row lock, and an orphaned run's
# old owner may commit a step in between (its lease ran out, it did not die); the engine reads
# those afresh after the claim (NULL steps), as a takeover must. RETURNING gives the due time
# the run was claimed at as wake_at, for the claim-latency metric.
ORDER = "priority DESC, COALESCE(wake_at, created_at)"
STEP_JSON = ("(SELECT json_agg(json_build_array(" + ", ".join(f"s.{f}" for f in STEP_FIELDS)
             + ") ORDER BY s.seq, COALESCE(s.started_at, 0), s.step_key) FROM dw_steps s "
             "WHERE s.workflow_id = r.workflow_id)")
CLAIM = (
    "WITH free AS (SELECT workflow_id, priority, COALESCE(wake_at, created_at) AS k, wake_at, "
    "TRUE AS fresh "
    "FROM dw_runs WHERE owner IS NULL AND status IN ('pending', 'sleeping', 'waiting') AND "
    f"(status = 'pending' OR wake_at IS NOT NULL) AND COALESCE(wake_at, 0) <= {NOW}{{qfilter}} "
    f"ORDER BY {ORDER} LIMIT %(n)s FOR UPDATE SKIP LOCKED), "
    "orphaned AS (SELECT workflow_id, priority, COALESCE(wake_at, created_at) AS k, wake_at, "
    "FALSE AS fresh "
    f"FROM dw_runs WHERE owner IS NOT NULL AND status IN {ACTIVE_SQL} AND "
    f"(lease_until < {NOW} OR owner = ANY(%(dead)s::text[])) AND "
    f"COALESCE(wake_at, 0) <= {NOW}{{qfilter}} "
    f"ORDER BY {ORDER} LIMIT %(n)s FOR UPDATE SKIP LOCKED), "
    "due AS (SELECT workflow_id, wake_at, fresh FROM (SELECT * FROM free UNION ALL "
    "SELECT * FROM orphaned) d ORDER BY priority DESC, k LIMIT %(n)s), "
    f"upd AS (UPDATE dw_runs r SET owner=%(owner)s, lease_until={NOW} + %(lease)s, "
    f"attempt=r.attempt + 1, updated_at={NOW}, status='running', wake_at=NULL, "
    f"started_at=COALESCE(r.started_at, {NOW}) FROM due WHERE r.workflow_id = due.workflow_id "
    "RETURNING " + ", ".join("due.wake_at" if f == "wake_at" else f"r.{f}" for f in RUN_FIELDS)
    + f", CASE WHEN due.fresh THEN COALESCE({STEP_JSON}, '[]'::json) END AS steps)"
    "{log} SELECT * FROM upd")

CLAIM_ONE = (
    f"WITH upd AS (UPDATE dw_runs SET owner=%(owner)s, lease_until={NOW} + %(lease)s, "
    f"attempt=attempt + 1, updated_at={NOW} WHERE workflow_id=%(wid)s AND status IN "
    f"{ACTIVE_SQL} AND (owner IS NULL OR owner=%(owner)s OR lease_until < {NOW} OR "
    f"owner = ANY(%(dead)s::text[])) RETURNING {RUN_COLS}){{log}} SELECT * FROM upd")


def set_clause(fields: dict[str, Any], allowed: Sequence[str]) -> tuple[str, list[Any]]:
    bad = [k for k in fields if k not in allowed]
    if bad:
        raise StoreError(f"unknown column(s) {bad}")
    return ", ".join(f"{k}=%s" for k in fields), list(fields.values())


def event_arrays(events: Iterable[Event]) -> list[list[Any]]:
    cols: list[list[Any]] = [[], [], [], []]
    for e in events:
        for i in range(4):
            cols[i].append(e[i])
    return cols


def makes_due(fields: dict[str, Any] | None) -> bool:
    """Does this run update hand the run back to the queue, due now?"""
    if not fields or "owner" not in fields or fields["owner"] is not None:
        return False
    status = fields.get("status")
    wake = fields.get("wake_at")
    if status == "pending":
        return wake is None or wake <= time.time()
    return status in ("sleeping", "waiting") and wake is not None and wake <= time.time()


# Retention: one batch of finished runs and everything they own, in one statement. Rows another
# transaction holds (a management update) are skipped, not waited for.
PRUNE = (
    "WITH r AS (SELECT workflow_id FROM dw_runs WHERE status = ANY(%(statuses)s::text[]) AND "
    "created_at < %(before)s AND COALESCE(finished_at, updated_at) < %(before)s "
    "ORDER BY created_at LIMIT %(n)s FOR UPDATE SKIP LOCKED), "
    + "".join(f"d_{t} AS (DELETE FROM {t} WHERE workflow_id IN (SELECT workflow_id FROM r)), "
              for t in RUN_TABLES)
    + "d AS (DELETE FROM dw_runs WHERE workflow_id IN (SELECT workflow_id FROM r) RETURNING 1) "
    "SELECT count(*) FROM d")
