"""The embedded SQLite run store: one WAL file, created on first use, versioned schema."""

from __future__ import annotations

import asyncio
import operator
import os
import sqlite3
from collections.abc import Iterable
from typing import Any

from ductwork.errors import StoreError
from ductwork.store.protocol import (
    ACTIVE,
    PRUNE_BATCH,
    RUN_FIELDS,
    RUN_TABLES,
    STEP_FIELDS,
    Batch,
    Event,
    LeaseLostError,
    QueueLimit,
    RunRow,
    RunStore,
    SignalRow,
    StepConflictError,
    StepRow,
    done_values,
    now,
    prune_statuses,
)
from ductwork.store.schema import CLAIMABLE_SQLITE, MIGRATIONS, SCHEMA_VERSION
from ductwork.store.sqlite_faults import check_not_deleted, explain, open_hint
from ductwork.store.sqlite_schedules import SQLiteSchedules
from ductwork.store.sqlite_wal import HARD_BYTES, SOFT_BYTES, Checkpointer, pages

# The page size of a new store (an existing one keeps its own). Each commit writes every page
# it changed to the WAL, and a run touches one page per B-tree: small pages make the commits
# of small rows cheaper, large ones keep large results on fewer pages. 1 KB pages were ~5 %
# cheaper still for small results but ~25 % dearer for 20 KB ones (docs/production.md).
PAGE_SIZE = 2048

_RUN_COLS = ", ".join(RUN_FIELDS)
_STEP_COLS = ", ".join(STEP_FIELDS)
_ACTIVE = tuple(sorted(ACTIVE))
_ACTIVE_SQL = "(" + ", ".join(f"'{s}'" for s in _ACTIVE) + ")"
# claim_due's probe of the partial (status, wake_at) index (schema v8: pending runs, and
# others with a wake-up time, which `wake_at <= ?` implies for the planner).
_ANY_DUE = (
    "SELECT EXISTS (SELECT 1 FROM dw_runs WHERE status = 'pending' AND wake_at IS NULL) "
    "OR EXISTS (SELECT 1 FROM dw_runs WHERE status = 'pending' AND wake_at <= ?) "
    "OR EXISTS (SELECT 1 FROM dw_runs WHERE status = 'sleeping' AND wake_at <= ?) "
    "OR EXISTS (SELECT 1 FROM dw_runs WHERE status = 'waiting' AND wake_at <= ?)")
# The due index's condition, for queries that read it without a term implying it.
_DUE_COND = "(wake_at IS NOT NULL OR status = 'pending')"
# list_runs merges one newest-first range per status past this many statuses no longer: a
# plain query (and a sort) then.
_MERGE_MAX = 32
_RUN_INSERT = (f"INSERT INTO dw_runs ({_RUN_COLS}) VALUES ({', '.join('?' * len(RUN_FIELDS))}) "
               "ON CONFLICT(workflow_id) DO NOTHING")
_step_values = operator.attrgetter(*STEP_FIELDS)  # a StepRow's values in column order
_run_values = operator.attrgetter(*RUN_FIELDS)  # a RunRow's (~0.4 us; a getattr loop ~1.1)
# (run field names..., fenced) -> its UPDATE statement (_update_run)
_RUN_UPDATES: dict[tuple[Any, ...], str] = {}
# A waiting record (a child, a signal) is completed in place; a finished one is never replaced.
_STEP_CONFLICT = (
    "ON CONFLICT(workflow_id, step_key) DO UPDATE SET "
    + ", ".join(f"{f}=excluded.{f}" for f in STEP_FIELDS[2:])
    + " WHERE dw_steps.status NOT IN ('completed', 'skipped', 'failed')")
_STEP_UPSERT = (
    f"INSERT INTO dw_steps ({_STEP_COLS}) SELECT {', '.join('?' * len(STEP_FIELDS))} "
    "WHERE EXISTS (SELECT 1 FROM dw_runs WHERE workflow_id=? AND (? IS NULL OR owner=?)) "
    + _STEP_CONFLICT)
# The engine's hot path, a step completed by its owner: the same row as _STEP_UPSERT writes
# (the columns left out are NULL), constants inlined, the fence read straight off the run row.
# 11 parameters instead of 20: ~2-3 us less per commit.
_STEP_DONE = (
    "INSERT INTO dw_steps (workflow_id, step_key, tag, kind, status, seq, attempts, input, "
    "result, started_at, finished_at, critical, has_rollback) SELECT ?1, ?2, ?3, 'step', "
    "'completed', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11 FROM dw_runs WHERE workflow_id=?12 AND "
    "owner=?13 " + _STEP_CONFLICT)


class SQLiteStore(SQLiteSchedules, RunStore):
    """All calls are synchronous sqlite3 under the hood: a WAL commit costs ~15 us, far less
    than a thread hop, so running them on the event loop thread is the fast path."""

    def __init__(self, url: str, *, synchronous: str = "NORMAL") -> None:
        self.url = url
        rest = url.split(":", 1)[1]
        if rest in ("//:memory:", ":memory:", "///:memory:"):
            self.path = ":memory:"
        elif rest.startswith("///"):
            self.path = rest[3:] or ".ductwork/runs.db"
        elif rest.startswith("//"):
            self.path = rest[2:]
        else:
            raise StoreError(f"bad SQLite URL {url!r}: use sqlite:///relative/or/absolute/path.db")
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise StoreError(f"synchronous must be NORMAL or FULL, not {synchronous!r}")
        self.synchronous = synchronous.upper()
        self._db: sqlite3.Connection | None = None
        self.checkpointer: Checkpointer | None = None
        self._fd: int | None = None  # the file, to see it deleted under us (_check_file)

    # -- lifecycle ---------------------------------------------------------------------------
    async def open(self) -> None:
        if self._db is not None:
            return
        if self.path != ":memory:":
            parent = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(parent, exist_ok=True)
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                 timeout=10.0, cached_statements=256)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the SQLite store at {self.path}: {e}") from None
        try:
            if db.execute("PRAGMA page_count").fetchone()[0] == 0:
                # A new, empty file: the page size only takes effect before the first page is
                # written, which journal_mode=WAL does. An existing store keeps its own (a
                # change would need a VACUUM, a copy of the whole file).
                db.execute(f"PRAGMA page_size={PAGE_SIZE}")
            db.execute("PRAGMA journal_mode=WAL")
            page_size = db.execute("PRAGMA page_size").fetchone()[0]
        except sqlite3.Error as e:
            db.close()
            raise StoreError(f"cannot open the SQLite store at {self.path}: {open_hint(e)}"
                             ) from None
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        db.execute("PRAGMA busy_timeout=10000")
        db.execute("PRAGMA foreign_keys=OFF")
        # The WAL is bounded in bytes: as many pages as SOFT_BYTES make (SQLite's own default
        # is 1,000 pages, 4 MB of 4 KB pages); with a checkpoint thread below, HARD_BYTES.
        db.execute(f"PRAGMA wal_autocheckpoint={pages(SOFT_BYTES, page_size)}")
        self._db = db
        if self.path != ":memory:":
            self._fd = os.open(self.path, os.O_RDONLY)
        try:
            self._migrate()
        except BaseException as e:
            self._db = None
            db.close()
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if isinstance(e, sqlite3.Error):  # locked by another process, read-only, ...
                raise explain(self.path, e) from None
            raise
        if self.path != ":memory:" and self.synchronous in ("OFF", "NORMAL"):
            # A checkpoint fsyncs the database file: a thread does it, so that a commit does
            # not pay for it every SOFT_BYTES; this connection only does past HARD_BYTES.
            # Not with FULL: there every commit fsyncs the WAL, and a WAL the thread cannot
            # restart (a busy writer) keeps growing, and an fsync that also extends the file
            # costs more (a 1,000-step run measured 290-340 ms with the thread, 180-200
            # without); the committing connection's checkpoint restarts it in place.
            db.execute(f"PRAGMA wal_autocheckpoint={pages(HARD_BYTES, page_size)}")
            self.checkpointer = Checkpointer(os.path.abspath(self.path), self.synchronous)
            self.checkpointer.start()

    def _migrate(self) -> None:
        db = self.conn
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS dw_meta (key TEXT PRIMARY KEY, value TEXT)")
            row = db.execute("SELECT value FROM dw_meta WHERE key='schema_version'").fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {self.path} has schema version {version}, newer than this "
                    f"ductwork ({SCHEMA_VERSION}); upgrade ductwork"
                )
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v]("sqlite"):
                    db.execute(stmt)
            db.execute("INSERT OR REPLACE INTO dw_meta VALUES ('schema_version', ?)",
                       (str(SCHEMA_VERSION),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _check_file(self) -> None:
        if self._fd is not None:
            check_not_deleted(self.path, self._fd)

    def explain(self, err: BaseException) -> StoreError | None:
        return explain(self.path, err) if isinstance(err, sqlite3.Error) else \
            super().explain(err)

    @property
    def conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the run store is closed")
        return self._db

    def schema_version(self) -> int:
        row = self.conn.execute("SELECT value FROM dw_meta WHERE key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    # -- runs --------------------------------------------------------------------------------
    async def create_run(self, run: RunRow, events: list[tuple[float, str, str | None, str | None]]
                         ) -> tuple[RunRow, bool]:
        db = self.conn
        if not events:  # one statement is its own transaction
            created = self._insert_run(run, events)
        else:
            db.execute("BEGIN IMMEDIATE")
            try:
                created = self._insert_run(run, events)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        ck = self.checkpointer
        if ck is not None and ck.idle:  # self._wrote(), inlined on the hot path
            ck.wake()
        return (run, True) if created else await self._existing(run)

    async def create_runs(self, items: list[tuple[RunRow, list[Event]]]
                          ) -> list[tuple[RunRow, bool]]:
        if not items:
            return []
        db = self.conn
        db.execute("BEGIN IMMEDIATE")
        try:
            created = [self._insert_run(run, events) for run, events in items]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._wrote()
        return [(run, True) if c else await self._existing(run)
                for (run, _), c in zip(items, created, strict=True)]

    def _insert_run(self, run: RunRow, events: list[Event]) -> bool:
        """Insert the run (and its events) unless its workflow_id exists; True if inserted."""
        if self.conn.execute(_RUN_INSERT, _run_values(run)).rowcount != 1:
            return False
        if events:
            self._events(run.workflow_id, events)
        return True

    async def _existing(self, run: RunRow) -> tuple[RunRow, bool]:
        existing = await self.get_run(run.workflow_id)
        assert existing is not None
        return existing, False

    async def get_run(self, workflow_id: str) -> RunRow | None:
        row = self.conn.execute(f"SELECT {_RUN_COLS} FROM dw_runs WHERE workflow_id=?",
                                (workflow_id,)).fetchone()
        return RunRow(*row) if row else None

    async def load_steps(self, workflow_id: str) -> list[StepRow]:
        # Records still waiting (a child, a signal) all have seq 0: among them, the order
        # they were recorded in.
        rows = self.conn.execute(
            f"SELECT {_STEP_COLS} FROM dw_steps WHERE workflow_id=? ORDER BY seq, rowid",
            (workflow_id,)).fetchall()
        return [_step(r) for r in rows]

    def _events(self, wid: str, events: Iterable[tuple[float, str, str | None, str | None]]
                ) -> None:
        self.conn.executemany(
            "INSERT INTO dw_events (workflow_id, ts, type, step, data) VALUES (?, ?, ?, ?, ?)",
            [(wid, *e) for e in events])

    async def commit(self, workflow_id: str, batch: Batch) -> None:
        # The hot path (one step result, or a run's final status): a single statement is its
        # own transaction. _one_statement, inlined.
        if (batch.step_updates or batch.events or batch.logs or batch.state
                or batch.consume_signal is not None):
            one = False
        elif batch.run:
            one = not batch.steps
            if one:
                self._update_run(workflow_id, batch.run, batch.owner)
                if "status" in batch.run:
                    self._check_file()
        else:
            one = len(batch.steps) == 1
            if one:
                self._insert_step(workflow_id, batch.steps[0], batch.owner)
        if not one:
            db = self.conn
            db.execute("BEGIN IMMEDIATE")
            try:
                self._apply(workflow_id, batch)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            if "status" in batch.run:
                self._check_file()
        ck = self.checkpointer
        if ck is not None and ck.idle:  # self._wrote(), inlined on the hot path
            ck.wake()

    async def commit_many(self, items: list[tuple[str, Batch]]) -> list[Exception | None]:
        """One transaction for all; each batch of more than one statement inside a savepoint,
        so that its fence failure undoes it alone (a one-statement batch whose fence fails
        has written nothing)."""
        db = self.conn
        out: list[Exception | None] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            for workflow_id, batch in items:
                if self._one_statement(batch):
                    try:
                        self._apply(workflow_id, batch)
                        out.append(None)
                    except (LeaseLostError, StepConflictError) as e:
                        out.append(e)
                    continue
                db.execute("SAVEPOINT dw_batch")
                try:
                    self._apply(workflow_id, batch)
                    out.append(None)
                except (LeaseLostError, StepConflictError) as e:
                    db.execute("ROLLBACK TO dw_batch")
                    out.append(e)
                db.execute("RELEASE dw_batch")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if any("status" in b.run for _, b in items):
            self._check_file()
        self._wrote()
        return out

    def _wrote(self) -> None:
        """After a write: wake the checkpoint thread if it sleeps. After, not before: the
        thread marks itself idle, then reads the WAL once more, so a write is either seen by
        that read or followed by a check that finds the thread idle."""
        ck = self.checkpointer
        if ck is not None and ck.idle:
            ck.wake()

    @staticmethod
    def _one_statement(batch: Batch) -> bool:
        """Whether the batch is one fenced statement: one step row, or run fields alone."""
        if batch.step_updates or batch.events or batch.logs or batch.state \
                or batch.consume_signal is not None:
            return False
        return (len(batch.steps) == 1 and not batch.run) or (bool(batch.run)
                                                              and not batch.steps)

    def _apply(self, workflow_id: str, batch: Batch) -> None:
        """The statements of one batch, inside the caller's transaction (or as the one
        statement of a one-statement batch). Raises LeaseLostError / StepConflictError."""
        db = self.conn
        if batch.run:
            self._update_run(workflow_id, batch.run, batch.owner)
        elif batch.owner is not None and not batch.steps and db.execute(
                "SELECT 1 FROM dw_runs WHERE workflow_id=? AND owner=?",
                (workflow_id, batch.owner)).fetchone() is None:
            raise self._lost(workflow_id)
        for s in batch.steps:
            self._insert_step(workflow_id, s, batch.owner)
        for key, upd in batch.step_updates:
            sets = ", ".join(f"{k}=?" for k in upd)
            db.execute(f"UPDATE dw_steps SET {sets} WHERE workflow_id=? AND step_key=?",
                       [*upd.values(), workflow_id, key])
        if batch.consume_signal is not None:
            sid, key = batch.consume_signal
            cur = db.execute("UPDATE dw_signals SET consumed_by=? WHERE id=? AND "
                             "consumed_by IS NULL", (key, sid))
            if cur.rowcount != 1:
                raise StepConflictError(f"signal {sid} of run {workflow_id} was already taken")
        if batch.state:
            db.executemany(
                "INSERT INTO dw_state (workflow_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT(workflow_id, key) DO UPDATE SET value=excluded.value",
                [(workflow_id, k, v) for k, v in batch.state.items()])
        if batch.events:
            self._events(workflow_id, batch.events)
        if batch.logs:
            db.executemany(
                "INSERT INTO dw_logs (workflow_id, ts, level, message, data, step) "
                "VALUES (?, ?, ?, ?, ?, ?)", [(workflow_id, *lg) for lg in batch.logs])

    def _update_run(self, workflow_id: str, run: dict[str, Any], owner: str | None) -> None:
        # The engine sends a few shapes of run fields (a start, a finish, a suspension): their
        # statement text is built once. updated_at is always the store's clock.
        if "updated_at" in run:
            run = {k: v for k, v in run.items() if k != "updated_at"}
        shape = (*run, owner is not None)
        sql = _RUN_UPDATES.get(shape)
        if sql is None:
            sets = ", ".join(f"{k}=?" for k in (*run, "updated_at"))
            sql = f"UPDATE dw_runs SET {sets} WHERE workflow_id=?" + (
                " AND owner=?" if owner is not None else "")
            if len(_RUN_UPDATES) < 256:
                _RUN_UPDATES[shape] = sql
        params = (*run.values(), now(), workflow_id) if owner is None else (
            *run.values(), now(), workflow_id, owner)
        if self.conn.execute(sql, params).rowcount != 1:
            raise self._lost(workflow_id)

    def _insert_step(self, workflow_id: str, s: StepRow, owner: str | None) -> None:
        # The ownership fence rides on the insert: a worker whose lease was taken over cannot
        # record anything, and the primary key makes a second record of one step impossible.
        done = done_values(s, workflow_id, owner)
        cur = (self.conn.execute(_STEP_DONE, done) if done is not None else
               self.conn.execute(_STEP_UPSERT, (*_step_values(s), workflow_id, owner, owner)))
        if cur.rowcount != 1:
            row = self.conn.execute("SELECT owner FROM dw_runs WHERE workflow_id=?",
                                    (workflow_id,)).fetchone()
            if owner is not None and (row is None or row[0] != owner):
                raise self._lost(workflow_id)
            raise StepConflictError(
                f"step {s.step_key!r} of run {workflow_id} was already recorded")

    @staticmethod
    def _lost(workflow_id: str) -> LeaseLostError:
        return LeaseLostError(f"run {workflow_id} is no longer owned by this process (its "
                              "lease expired and another worker took it over)")

    async def update_run(self, workflow_id: str, fields: dict[str, Any], *,
                         only_status: frozenset[str] | None = None,
                         events: list[tuple[float, str, str | None, str | None]] | None = None
                         ) -> bool:
        db = self.conn
        fields = {**fields, "updated_at": now()}
        sql = f"UPDATE dw_runs SET {', '.join(f'{k}=?' for k in fields)} WHERE workflow_id=?"
        params: list[Any] = [*fields.values(), workflow_id]
        if only_status is not None:
            sql += f" AND status IN ({', '.join('?' * len(only_status))})"
            params += sorted(only_status)
        db.execute("BEGIN IMMEDIATE")
        try:
            ok = db.execute(sql, params).rowcount == 1
            if ok and events:
                self._events(workflow_id, events)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return ok

    # -- ownership -----------------------------------------------------------------------------
    async def claim(self, workflow_id: str, owner: str, lease_s: float, *,
                    steal_from: frozenset[str] = frozenset()) -> RunRow | None:
        t = now()
        dead = tuple(steal_from)
        db = self.conn
        db.execute("BEGIN IMMEDIATE")
        try:
            found = db.execute("SELECT queue, owner FROM dw_runs WHERE workflow_id=?",
                               (workflow_id,)).fetchone() if self.queue_limits else None
            lim = self.queue_limits.get(found[0]) if found else None
            # A slot of a limited queue, taken outside claim_due (result(), a parent ...).
            if (found and lim is not None and lim.limited and found[1] != owner
                    and not self._room(found[0], lim, owner, t, 1)):
                db.execute("COMMIT")
                return None
            cur = db.execute(
                f"UPDATE dw_runs SET owner=?, lease_until=?, attempt=attempt+1, updated_at=? "
                f"WHERE workflow_id=? AND status IN ({', '.join('?' * len(_ACTIVE))}) AND "
                f"(owner IS NULL OR owner=? OR lease_until < ? "
                f"OR owner IN ({', '.join('?' * len(dead)) or 'NULL'}))",
                (owner, t + lease_s, t, workflow_id, *_ACTIVE, owner, t, *dead))
            ok = cur.rowcount == 1
            if ok and found and lim is not None and lim.rate and found[1] != owner:
                db.execute("INSERT INTO dw_queue_claims (queue, ts) VALUES (?, ?)",
                           (found[0], t))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return await self.get_run(workflow_id) if ok else None

    async def claim_due(self, owner: str, lease_s: float, limit: int, *,
                        steal_from: frozenset[str] = frozenset(),
                        queues: list[str] | None = None) -> list[RunRow]:
        self._check_file()  # a deleted store: nothing to claim (and a worker says why)
        t = now()
        dead = tuple(steal_from)
        db = self.conn
        limited = {q: lim for q, lim in self.queue_limits.items()
                   if lim.limited and (not queues or q in queues)}
        rest = [q for q in queues or () if q not in limited]
        qfilter = ""
        qparams: tuple[Any, ...] = ()
        if rest:
            qfilter += f" AND queue IN ({', '.join('?' * len(rest))})"
            qparams += tuple(rest)
        if limited:
            qfilter += f" AND queue NOT IN ({', '.join('?' * len(limited))})"
            qparams += tuple(limited)
        db.execute("BEGIN IMMEDIATE")
        try:
            ids: list[str] = []
            # Limited queues are counted inside this write transaction: claims are serialized.
            for q, lim in limited.items():
                if len(ids) >= limit:
                    break
                room = self._room(q, lim, owner, t, limit - len(ids))
                got = self._due_ids(t, dead, " AND queue=?", (q,), room) if room else []
                if lim.rate and got:
                    db.executemany("INSERT INTO dw_queue_claims (queue, ts) VALUES (?, ?)",
                                   [(q, t)] * len(got))
                ids += got
            if len(ids) < limit and (not queues or rest):
                ids += self._due_ids(t, dead, qfilter, qparams, limit - len(ids))
            if ids:
                db.executemany(
                    "UPDATE dw_runs SET owner=?, lease_until=?, attempt=attempt+1, updated_at=? "
                    "WHERE workflow_id=?", [(owner, t + lease_s, t, i) for i in ids])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        out = []
        for i in ids:
            r = await self.get_run(i)
            if r is not None:
                out.append(r)
        out.sort(key=lambda r: (-r.priority, r.wake_at if r.wake_at is not None
                                else r.created_at))
        return out

    def _room(self, q: str, lim: QueueLimit, owner: str, t: float, n: int) -> int:
        """How many runs of limited queue q may be claimed now (inside the write transaction,
        so claimers are serialized)."""
        db = self.conn
        # Runs held by workers are few (the partial owner index); a queue's backlog is not.
        owned, mine = db.execute(
            f"SELECT count(*), count(CASE WHEN owner=? THEN 1 END) FROM dw_runs "
            f"INDEXED BY dw_runs_owner WHERE queue=? AND owner IS NOT NULL AND lease_until >= ? "
            f"AND status IN "
            f"({', '.join('?' * len(_ACTIVE))})", (owner, q, t, *_ACTIVE)).fetchone()
        recent = 0
        if lim.rate:
            db.execute("DELETE FROM dw_queue_claims WHERE queue=? AND ts < ?",
                       (q, t - lim.rate[1]))
            recent = db.execute("SELECT count(*) FROM dw_queue_claims WHERE queue=?",
                                (q,)).fetchone()[0]
        return lim.room(n, owned=owned, mine=mine, recent=recent)

    def _due_ids(self, t: float, dead: tuple[str, ...], qfilter: str,
                 qparams: tuple[Any, ...], n: int) -> list[str]:
        """Up to n due runs in claim order, from two branches as on PostgreSQL: one OR would
        read and sort the whole backlog on every claim. Queued and woken runs walk the partial
        claim index in order and stop at the LIMIT; runs of expired or dead owners come from
        the owner index (few rows: only what workers hold)."""
        db = self.conn
        # INDEXED BY: without statistics the planner prefers the owner index for
        # `owner IS NULL`, then sorts every queued run. The index's condition is inlined as
        # it is written there (a partial index is not used for a parameter).
        # An idle poll would walk every sleeping run in that index to find none due: probe
        # the (status, wake_at) index first (a superset of due runs: never a false "none").
        anything = db.execute(_ANY_DUE, (t, t, t)).fetchone()[0]
        free = [] if not anything else db.execute(
            f"SELECT workflow_id, priority, COALESCE(wake_at, created_at) FROM dw_runs "
            f"INDEXED BY dw_runs_claim WHERE owner IS NULL AND {CLAIMABLE_SQLITE} AND "
            f"(status = 'pending' OR (status IN ('sleeping', 'waiting') AND wake_at IS NOT NULL)) "
            f"AND COALESCE(wake_at, 0) <= ?{qfilter} "
            f"ORDER BY priority DESC, COALESCE(wake_at, created_at) LIMIT ?",
            (t, *qparams, n)).fetchall()
        orphaned = db.execute(
            f"SELECT workflow_id, priority, COALESCE(wake_at, created_at) FROM dw_runs "
            f"INDEXED BY dw_runs_owner WHERE owner IS NOT NULL AND status IN {_ACTIVE_SQL} AND "
            f"(lease_until < ? OR owner IN ({', '.join('?' * len(dead)) or 'NULL'})) "
            f"AND COALESCE(wake_at, 0) <= ?{qfilter} "
            f"ORDER BY priority DESC, COALESCE(wake_at, created_at) LIMIT ?",
            (t, *dead, t, *qparams, n)).fetchall()
        due = sorted(free + orphaned, key=lambda r: (-r[1], r[2]))
        return [r[0] for r in due[:n]]

    async def renew_leases(self, owner: str, lease_s: float) -> list[str]:
        t = now()
        return [r[0] for r in self.conn.execute(
            "UPDATE dw_runs SET lease_until=? WHERE owner=? RETURNING workflow_id",
            (t + lease_s, owner)).fetchall()]

    async def hold_lease(self, workflow_id: str, owner: str, lease_s: float) -> bool:
        return self.conn.execute(
            "UPDATE dw_runs SET lease_until=? WHERE workflow_id=? AND owner=?",
            (now() + lease_s, workflow_id, owner)).rowcount == 1

    async def release(self, workflow_id: str, owner: str, *, wake_at: float | None = None) -> None:
        self.conn.execute(
            "UPDATE dw_runs SET owner=NULL, lease_until=NULL, wake_at=COALESCE(?, wake_at), "
            "status=CASE WHEN status='running' THEN 'pending' ELSE status END, updated_at=? "
            "WHERE workflow_id=? AND owner=?", (wake_at, now(), workflow_id, owner))

    async def live_owners(self) -> list[str]:
        rows = self.conn.execute(
            "SELECT DISTINCT owner FROM dw_runs WHERE owner IS NOT NULL").fetchall()
        return [r[0] for r in rows]

    # -- signals -------------------------------------------------------------------------------
    async def send_signal(self, workflow_id: str, name: str, payload: str | None) -> int:
        db = self.conn
        t = now()
        db.execute("BEGIN IMMEDIATE")
        try:
            cur = db.execute(
                "INSERT INTO dw_signals (workflow_id, name, payload, created_at) VALUES (?,?,?,?)",
                (workflow_id, name, payload, t))
            sid = int(cur.lastrowid or 0)
            # A run suspended in a wait becomes due now; whoever claims it consumes the signal.
            db.execute("UPDATE dw_runs SET wake_at=?, updated_at=? WHERE workflow_id=? AND "
                       "status='waiting'", (t, t, workflow_id))
            self._events(workflow_id, [(t, "signal_received", None,
                                        f'{{"signal": {_json_str(name)}}}')])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return sid

    async def find_signal(self, workflow_id: str, names: list[str]) -> SignalRow | None:
        row = self.conn.execute(
            f"SELECT id, workflow_id, name, payload, created_at, consumed_by FROM dw_signals "
            f"WHERE workflow_id=? AND consumed_by IS NULL AND name IN "
            f"({', '.join('?' * len(names))}) ORDER BY id LIMIT 1",
            (workflow_id, *names)).fetchone()
        return SignalRow(*row) if row else None

    # -- reading -------------------------------------------------------------------------------
    async def list_runs(self, *, product: str | None = None, tag: str | None = None,
                        status: str | list[str] | None = None, since: float | None = None,
                        parent_id: str | None = None, limit: int = 100,
                        cursor: str | None = None) -> tuple[list[RunRow], str | None]:
        where: list[str] = []
        params: list[Any] = []
        for col, val in (("product", product), ("tag", tag), ("parent_id", parent_id)):
            if val is not None:
                where.append(f"{col}=?")
                params.append(val)
        sts = None if status is None else sorted({status} if isinstance(status, str)
                                                 else set(status))
        if since is not None:
            where.append("created_at >= ?")
            params.append(since)
        if cursor:
            ts, _, wid = cursor.partition("|")
            where.append("(created_at, workflow_id) < (?, ?)")
            params += [float(ts), wid]
        order = " ORDER BY created_at DESC, workflow_id DESC LIMIT ?"
        if product is None and parent_id is None:
            # No index orders these runs newest first but (status, created_at, workflow_id):
            # one range of it per status, merged (SQLite's MERGE of ordered subqueries stops at
            # the LIMIT, like a walk of one index would).
            if sts is None:
                sts = self._statuses()
            if sts and len(sts) <= _MERGE_MAX:
                rest = "".join(f" AND {w}" for w in where)
                sql = " UNION ALL ".join(
                    f"SELECT {_RUN_COLS} FROM dw_runs WHERE status=?{rest}" for _ in sts) + order
                params = [p for st in sts for p in (st, *params)]
                return self._page(sql, params, limit)
            if not sts:
                return [], None
        if sts is not None:
            where.append(f"status IN ({', '.join('?' * len(sts))})")
            params += sts
        sql = f"SELECT {_RUN_COLS} FROM dw_runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._page(sql + order, params, limit)

    def _statuses(self) -> list[str]:
        """The statuses runs have, one index probe each (a skip over dw_runs_status_list)."""
        return [r[0] for r in self.conn.execute(
            "WITH RECURSIVE s(st) AS (SELECT MIN(status) FROM dw_runs UNION ALL "
            "SELECT (SELECT MIN(status) FROM dw_runs WHERE status > s.st) FROM s "
            "WHERE s.st IS NOT NULL) SELECT st FROM s WHERE st IS NOT NULL")]

    def _page(self, sql: str, params: list[Any], limit: int
              ) -> tuple[list[RunRow], str | None]:
        rows = [RunRow(*r) for r in self.conn.execute(sql, [*params, limit + 1]).fetchall()]
        nxt = None
        if len(rows) > limit:
            rows = rows[:limit]
            nxt = f"{rows[-1].created_at!r}|{rows[-1].workflow_id}"
        return rows, nxt

    async def events(self, workflow_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id, ts, type, step, data FROM dw_events WHERE workflow_id=? ORDER BY id",
            (workflow_id,)).fetchall()
        return [{"id": r[0], "ts": r[1], "type": r[2], "step": r[3], "data": r[4]} for r in rows]

    async def logs(self, workflow_id: str) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT ts, level, message, data, step FROM dw_logs WHERE workflow_id=? ORDER BY id",
            (workflow_id,)).fetchall()
        return [{"ts": r[0], "level": r[1], "message": r[2], "data": r[3], "step": r[4]}
                for r in rows]

    async def get_state(self, workflow_id: str) -> dict[str, str]:
        rows = self.conn.execute("SELECT key, value FROM dw_state WHERE workflow_id=?",
                                 (workflow_id,)).fetchall()
        return {k: v for k, v in rows}

    # -- retention -----------------------------------------------------------------------------
    async def prune(self, before: float, statuses: list[str], limit: int) -> int:
        sts = prune_statuses(statuses)
        db = self.conn
        deleted = 0
        while sts and deleted < limit:
            n = min(PRUNE_BATCH, limit - deleted)
            db.execute("BEGIN IMMEDIATE")
            try:
                # created_at < before is implied (a run finishes after it starts) and bounds
                # the walk of the (status, created_at) index.
                ids = [r[0] for r in db.execute(
                    f"SELECT workflow_id FROM dw_runs WHERE status IN "
                    f"({', '.join('?' * len(sts))}) AND created_at < ? AND "
                    f"COALESCE(finished_at, updated_at) < ? ORDER BY created_at LIMIT ?",
                    (*sts, before, before, n)).fetchall()]
                if ids:
                    marks = ", ".join("?" * len(ids))
                    for table in (*RUN_TABLES, "dw_runs"):
                        db.execute(f"DELETE FROM {table} WHERE workflow_id IN ({marks})", ids)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            deleted += len(ids)
            if len(ids) < n:
                break
            await asyncio.sleep(0)  # other coroutines write between batches
        return deleted

    # -- worker support ------------------------------------------------------------------------
    async def next_due_at(self, queues: list[str] | None = None) -> float | None:
        db = self.conn
        qfilter = f" AND queue IN ({', '.join('?' * len(queues))})" if queues else ""
        runs = db.execute(
            "SELECT MIN(COALESCE(wake_at, 0)) FROM dw_runs WHERE owner IS NULL AND "
            f"status IN ('pending', 'sleeping', 'waiting') AND {_DUE_COND}{qfilter}",
            tuple(queues or ())
        ).fetchone()[0]
        scheds = db.execute("SELECT MIN(next_run_at) FROM dw_schedules WHERE "
                            "status='active'").fetchone()[0]
        found = [float(v) for v in (runs, scheds) if v is not None]
        return min(found) if found else None

    async def queue_depth(self, now: float) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT queue, COUNT(*) FROM dw_runs WHERE owner IS NULL AND status IN ('pending', "
            f"'sleeping', 'waiting') AND {_DUE_COND} AND COALESCE(wake_at, CASE WHEN status = "
            "'pending' THEN 0 END) <= ? GROUP BY queue",
            (now,)).fetchall()
        return {str(q): int(n) for q, n in rows}

    async def cancel_requests(self, owner: str) -> list[tuple[str, str]]:
        import json

        rows = self.conn.execute(
            f"SELECT workflow_id, options FROM dw_runs WHERE owner=? AND status IN "
            f"({', '.join('?' * len(_ACTIVE))}) AND options LIKE '%cancel_requested%'",
            (owner, *_ACTIVE)).fetchall()
        out: list[tuple[str, str]] = []
        for wid, opts in rows:
            try:
                data = json.loads(opts)
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("cancel_requested"):
                out.append((wid, str(data.get("cancel_reason") or "cancelled")))
        return out


def _step(r: tuple[Any, ...]) -> StepRow:
    s = StepRow(*r)
    s.critical, s.has_rollback = bool(s.critical), bool(s.has_rollback)
    return s


def _json_str(s: str) -> str:
    import json

    return json.dumps(s)
