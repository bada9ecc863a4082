"""The run store schema, as numbered migrations shared by SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

SCHEMA_VERSION = 8
# v8's claim index condition on SQLite; queries that use the index spell it the same way (a
# partial index serves a query whose WHERE contains its condition, compared as written).
CLAIMABLE_SQLITE = ("(status = 'pending' OR status = 'running' OR status = 'sleeping' "
                    "OR status = 'waiting')")


def _v1(dialect: str) -> list[str]:
    real = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
    serial = ("BIGSERIAL PRIMARY KEY" if dialect == "postgres"
              else "INTEGER PRIMARY KEY AUTOINCREMENT")
    boolean = "BOOLEAN" if dialect == "postgres" else "INTEGER"
    false = "FALSE" if dialect == "postgres" else "0"  # PostgreSQL has no implicit int->bool
    return [
        f"""CREATE TABLE IF NOT EXISTS dw_runs (
            workflow_id TEXT PRIMARY KEY, product TEXT NOT NULL, tag TEXT NOT NULL,
            env TEXT NOT NULL, status TEXT NOT NULL, input TEXT, output TEXT, error TEXT,
            failed_step TEXT, options TEXT, context TEXT, parent_id TEXT,
            created_at {real} NOT NULL, updated_at {real} NOT NULL, started_at {real},
            finished_at {real}, wake_at {real}, deadline_at {real}, owner TEXT,
            lease_until {real}, current_step TEXT, rollback_result TEXT,
            queue TEXT NOT NULL DEFAULT 'default', priority INTEGER NOT NULL DEFAULT 0,
            attempt INTEGER NOT NULL DEFAULT 0, name TEXT)""",
        "CREATE INDEX IF NOT EXISTS dw_runs_due ON dw_runs (status, wake_at)",
        "CREATE INDEX IF NOT EXISTS dw_runs_owner ON dw_runs (owner)",
        "CREATE INDEX IF NOT EXISTS dw_runs_list ON dw_runs (created_at, workflow_id)",
        "CREATE INDEX IF NOT EXISTS dw_runs_parent ON dw_runs (parent_id)",
        f"""CREATE TABLE IF NOT EXISTS dw_steps (
            workflow_id TEXT NOT NULL, step_key TEXT NOT NULL, tag TEXT NOT NULL,
            kind TEXT NOT NULL, status TEXT NOT NULL, seq INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, input TEXT, result TEXT, error TEXT,
            started_at {real}, finished_at {real}, critical {boolean} NOT NULL DEFAULT {false},
            has_rollback {boolean} NOT NULL DEFAULT {false}, rollback_status TEXT,
            rollback_error TEXT, meta TEXT, PRIMARY KEY (workflow_id, step_key))""",
        f"""CREATE TABLE IF NOT EXISTS dw_events (
            id {serial}, workflow_id TEXT NOT NULL, ts {real} NOT NULL, type TEXT NOT NULL,
            step TEXT, data TEXT)""",
        "CREATE INDEX IF NOT EXISTS dw_events_run ON dw_events (workflow_id, id)",
        f"""CREATE TABLE IF NOT EXISTS dw_logs (
            id {serial}, workflow_id TEXT NOT NULL, ts {real} NOT NULL, level TEXT NOT NULL,
            message TEXT NOT NULL, data TEXT, step TEXT)""",
        "CREATE INDEX IF NOT EXISTS dw_logs_run ON dw_logs (workflow_id, id)",
        """CREATE TABLE IF NOT EXISTS dw_state (
            workflow_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT,
            PRIMARY KEY (workflow_id, key))""",
        f"""CREATE TABLE IF NOT EXISTS dw_signals (
            id {serial}, workflow_id TEXT NOT NULL, name TEXT NOT NULL, payload TEXT,
            created_at {real} NOT NULL, consumed_by TEXT)""",
        "CREATE INDEX IF NOT EXISTS dw_signals_run ON dw_signals (workflow_id, consumed_by)",
    ]


def _v2(dialect: str) -> list[str]:
    """Recurring dispatch: one row per schedule; fired is the compare-and-set counter."""
    real = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
    return [
        f"""CREATE TABLE IF NOT EXISTS dw_schedules (
            job_id TEXT PRIMARY KEY, product TEXT NOT NULL, tag TEXT NOT NULL,
            env TEXT NOT NULL, input TEXT, options TEXT, cron TEXT, every_ms {real},
            timezone TEXT, start_at {real}, end_at {real}, max_runs INTEGER,
            catchup TEXT NOT NULL DEFAULT 'all', status TEXT NOT NULL,
            fired INTEGER NOT NULL DEFAULT 0, next_run_at {real}, last_run_id TEXT,
            created_at {real} NOT NULL, updated_at {real} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS dw_schedules_due ON dw_schedules (status, next_run_at)",
    ]


def _v3(dialect: str) -> list[str]:
    """Scale-out: claim and listing indexes, the queue rate-limit log, PostgreSQL's dw_fail."""
    real = "DOUBLE PRECISION" if dialect == "postgres" else "REAL"
    active = "status IN ('pending', 'running', 'sleeping', 'waiting')"
    stmts = [
        # claim_due walks active runs in claim order and stops at its LIMIT
        f"CREATE INDEX IF NOT EXISTS dw_runs_claim ON dw_runs "
        f"(priority DESC, (COALESCE(wake_at, created_at))) WHERE {active}",
        # per-queue concurrency counts runs held by workers
        "CREATE INDEX IF NOT EXISTS dw_runs_queue_owned ON dw_runs (queue, owner) "
        "WHERE owner IS NOT NULL",
        # list(status=...) and list(product=, tag=) newest first
        "CREATE INDEX IF NOT EXISTS dw_runs_status_list ON dw_runs "
        "(status, created_at, workflow_id)",
        "CREATE INDEX IF NOT EXISTS dw_runs_product_list ON dw_runs "
        "(product, tag, created_at, workflow_id)",
        # rate limits: one row per claim from a rate-limited queue, pruned past the period
        f"CREATE TABLE IF NOT EXISTS dw_queue_claims (queue TEXT NOT NULL, ts {real} NOT NULL)",
        "CREATE INDEX IF NOT EXISTS dw_queue_claims_queue ON dw_queue_claims (queue, ts)",
    ]
    if dialect == "postgres":
        # Fences inside a pipelined transaction raise through this to abort it before COMMIT.
        stmts.append(
            "CREATE OR REPLACE FUNCTION dw_fail(code TEXT) RETURNS INTEGER LANGUAGE plpgsql "
            "AS $$ BEGIN RAISE EXCEPTION 'dw_fail:%', code; END $$")
    return stmts


def _v4(dialect: str) -> list[str]:
    """Poison runs: how many times in a row the engine itself failed to process a run."""
    return ["ALTER TABLE dw_runs ADD COLUMN faults INTEGER NOT NULL DEFAULT 0"]


def _v5(dialect: str) -> list[str]:
    """Fewer run indexes written per run on SQLite; nothing on PostgreSQL (its own plans).

    dw_steps keeps its rowid: WITHOUT ROWID saves the primary-key B-tree for results under
    ~200 bytes but costs more pages above (its rows spill to overflow pages past ~1 KB where a
    table row stays on its leaf), e.g. 4.7 WAL pages per 1 KB result against 2.8."""
    if dialect == "postgres":
        return []
    return [
        # Runs held by a worker, one index for lease renewal, orphan claims and per-queue
        # counts (was two: owner, and queue+owner). Unowned runs (most of them) are left out.
        "DROP INDEX IF EXISTS dw_runs_queue_owned",
        "DROP INDEX IF EXISTS dw_runs_owner",
        "CREATE INDEX dw_runs_owner ON dw_runs (owner, queue) WHERE owner IS NOT NULL",
        # Children only: parent_id=? implies parent_id IS NOT NULL, so lookups still use it,
        # and a top-level run writes no entry.
        "DROP INDEX IF EXISTS dw_runs_parent",
        "CREATE INDEX dw_runs_parent ON dw_runs (parent_id) WHERE parent_id IS NOT NULL",
        # claim_due's free branch asks for unowned runs only: a run executed in place (owned
        # from its creation to its end) never enters this index; a queued one leaves it when
        # claimed.
        "DROP INDEX IF EXISTS dw_runs_claim",
        "CREATE INDEX dw_runs_claim ON dw_runs (priority DESC, (COALESCE(wake_at, created_at))) "
        "WHERE status IN ('pending', 'running', 'sleeping', 'waiting') AND owner IS NULL",
    ]


def _v6(dialect: str) -> list[str]:
    """SQLite: the (status, wake_at) index holds only the runs a claim can wake. PostgreSQL
    keeps its index as it is (its plans were not measured with a partial one)."""
    if dialect == "postgres":
        return []
    return [
        # Read only by claim_due's "anything due?" probe, which asks for pending, sleeping
        # and waiting runs: a run executed in place (running, then completed) wrote an entry
        # on creation and moved it on its end, two WAL pages of every such run.
        "DROP INDEX IF EXISTS dw_runs_due",
        "CREATE INDEX dw_runs_due ON dw_runs (status, wake_at) "
        "WHERE status IN ('pending', 'sleeping', 'waiting')",
    ]


def _v7(dialect: str) -> list[str]:
    """SQLite: the (status, wake_at) index on every run again, as before v6. With v6's partial
    index, a run's final UPDATE inside a group commit took ~140 us instead of ~20 (200
    concurrent 3-step runs: 58 ms against 31, medians of 5), more than the two WAL pages it
    saved a run executed in place. Nothing on PostgreSQL."""
    if dialect == "postgres":
        return []
    return [
        "DROP INDEX IF EXISTS dw_runs_due",
        "CREATE INDEX dw_runs_due ON dw_runs (status, wake_at)",
    ]


def _v8(dialect: str) -> list[str]:
    """SQLite: partial index conditions SQLite evaluates without a temporary table, and one
    run index less. Nothing on PostgreSQL (its own indexes and plans).

    SQLite evaluates `status IN (three or more constants)` by building a temporary B-tree each
    time; a partial index's condition is evaluated for every row written, so v7's claim index
    built one per run insert and two per run update (and v6's partial due index two more,
    which made a run's final UPDATE ~140 us instead of ~20 whenever the allocator gave that
    temporary B-tree fresh memory). ORs of equalities cost nothing of the kind."""
    if dialect == "postgres":
        return []
    return [
        # Read only by probes for due runs (claim_due, next_due_at, queue_depth): pending
        # runs, and sleeping or waiting ones with a wake-up time. A run executed in place
        # (running, then completed, without wake_at) never enters it: two WAL pages less.
        "DROP INDEX IF EXISTS dw_runs_due",
        "CREATE INDEX dw_runs_due ON dw_runs (status, wake_at) "
        "WHERE wake_at IS NOT NULL OR status = 'pending'",
        # The same runs as v5's claim index, condition spelled without IN.
        "DROP INDEX IF EXISTS dw_runs_claim",
        "CREATE INDEX dw_runs_claim ON dw_runs (priority DESC, (COALESCE(wake_at, created_at))) "
        f"WHERE owner IS NULL AND {CLAIMABLE_SQLITE}",
        # Newest-first listing without a status filter merges one range of
        # dw_runs_status_list per status instead (SQLiteStore.list_runs): one WAL page less
        # per run created.
        "DROP INDEX IF EXISTS dw_runs_list",
    ]


# version -> statements for a dialect ("sqlite" | "postgres"). Never edit a released entry:
# add a new version that alters what came before.
MIGRATIONS: dict[int, Callable[[str], list[str]]] = {
    1: _v1, 2: _v2, 3: _v3, 4: _v4, 5: _v5, 6: _v6, 7: _v7, 8: _v8}
