"""The run store interface: the one place the engine meets durable storage."""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ductwork.errors import StoreError

# Run statuses. Terminal ones never change again (except by an explicit management call).
TERMINAL = frozenset({"completed", "failed", "rolled_back", "cancelled"})
# pending: queued for a worker; running: a process owns it (lease); sleeping/waiting: suspended
# until wake_at (or a signal/child wakes it).
ACTIVE = frozenset({"pending", "running", "sleeping", "waiting"})


class LeaseLostError(StoreError):
    """This process no longer owns the run (its lease expired and another worker took it)."""


class StepConflictError(StoreError):
    """A step result was already committed for (run, step): never record it twice."""


# A run's history event: (ts, type, step, data JSON).
Event = tuple[float, str, str | None, str | None]
# Runs deleted per prune() transaction: short write locks, bounded statement size.
PRUNE_BATCH = 500
# What a run owns besides its dw_runs row (prune deletes these with it).
RUN_TABLES = ("dw_steps", "dw_events", "dw_logs", "dw_state", "dw_signals")


def prune_statuses(statuses: list[str]) -> list[str]:
    """The statuses prune() may delete: terminal ones only, never an active run."""
    bad = sorted(set(statuses) - TERMINAL)
    if bad:
        raise StoreError(f"prune: only finished runs can be deleted, not status {bad} "
                         f"(terminal statuses: {', '.join(sorted(TERMINAL))})")
    return sorted(set(statuses))


def now() -> float:
    return time.time()


@dataclass(slots=True)
class RunRow:
    workflow_id: str
    product: str
    tag: str
    env: str
    status: str = "pending"
    input: str | None = None          # JSON text (codec)
    output: str | None = None
    error: str | None = None
    failed_step: str | None = None
    options: str | None = None        # JSON: timeout, rollback_strategy, retries, queue ...
    context: str | None = None        # JSON: caller context/session/auth metadata + re-run flags
    parent_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    wake_at: float | None = None      # due time for pending/sleeping/waiting runs
    deadline_at: float | None = None  # whole-run timeout
    owner: str | None = None
    lease_until: float | None = None
    current_step: str | None = None
    rollback_result: str | None = None
    queue: str = "default"
    priority: int = 0
    attempt: int = 0                  # how many times a process started executing it
    name: str | None = None
    faults: int = 0                   # engine faults since the run last made progress


RUN_FIELDS: tuple[str, ...] = tuple(RunRow.__slots__)


@dataclass(slots=True)
class StepRow:
    workflow_id: str
    step_key: str                     # tag, or tag#n for the n-th occurrence (n >= 2)
    tag: str
    kind: str = "step"                # step|sleep|signal|checkpoint|state|child|rollback
    status: str = "completed"         # running | waiting | completed | skipped | failed
    seq: int = 0                      # completion order within the run
    attempts: int = 0
    input: str | None = None
    result: str | None = None
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    critical: bool = False
    has_rollback: bool = False
    rollback_status: str | None = None  # rolled_back | rollback_failed
    rollback_error: str | None = None
    meta: str | None = None           # JSON: wake_at, signal names, child id ...


STEP_FIELDS: tuple[str, ...] = tuple(StepRow.__slots__)


def done_values(s: StepRow, workflow_id: str, owner: str | None) -> tuple[Any, ...] | None:
    """The parameters of a store's lean statement for the engine's hot path, a step completed
    by its owner with nothing but its result: workflow_id, step_key, tag, seq, attempts,
    input, result, started_at, finished_at, critical, has_rollback, then the fence's run id
    and owner. None when the record needs the full upsert (other kinds and statuses, an
    error, meta or rollback fields, no owner to fence on)."""
    if (owner is None or s.status != "completed" or s.kind != "step" or s.error is not None
            or s.meta is not None or s.rollback_status is not None
            or s.rollback_error is not None):
        return None
    return (s.workflow_id, s.step_key, s.tag, s.seq, s.attempts, s.input, s.result,
            s.started_at, s.finished_at, s.critical, s.has_rollback, workflow_id, owner)


@dataclass(slots=True)
class Batch:
    """Everything one commit writes, atomically. The engine builds one per durable point."""

    owner: str | None = None                     # fence: the run must still be ours
    run: dict[str, Any] = field(default_factory=dict)
    steps: list[StepRow] = field(default_factory=list)
    step_updates: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    events: list[tuple[float, str, str | None, str | None]] = field(default_factory=list)
    logs: list[tuple[float, str, str, str | None, str | None]] = field(
        default_factory=list)
    state: dict[str, str] = field(default_factory=dict)   # key -> JSON
    consume_signal: tuple[int, str] | None = None        # (signal id, step_key)

    def __bool__(self) -> bool:
        return bool(self.run or self.steps or self.step_updates or self.events or self.logs
                    or self.state or self.consume_signal)


@dataclass(slots=True)
class SignalRow:
    id: int
    workflow_id: str
    name: str
    payload: str | None
    created_at: float
    consumed_by: str | None = None


@dataclass(slots=True)
class ClaimedRun:
    """A run claimed together with what its execution reads first: its steps (as load_steps()
    gives them) and its unconsumed signals, oldest first."""

    run: RunRow
    steps: list[StepRow]
    signals: list[SignalRow]


@dataclass(slots=True)
class ScheduleRow:
    """A recurring dispatch: the scheduler turns each occurrence into one pending run."""

    job_id: str
    product: str
    tag: str
    env: str
    input: str | None = None          # JSON text (codec)
    options: str | None = None        # JSON: retries, timeout, queue, priority
    cron: str | None = None           # cron expression (croniter), or
    every_ms: float | None = None     # a fixed interval
    timezone: str | None = None       # IANA name the cron expression is read in
    start_at: float | None = None
    end_at: float | None = None       # no occurrence after this
    max_runs: int | None = None       # `limit`: stop after this many occurrences
    catchup: str = "all"              # all | latest: what to do with occurrences missed
    status: str = "active"            # active | paused | completed | cancelled
    fired: int = 0                    # occurrences turned into runs so far (the CAS counter)
    next_run_at: float | None = None
    last_run_id: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0


SCHEDULE_FIELDS: tuple[str, ...] = tuple(ScheduleRow.__slots__)


@dataclass(frozen=True, slots=True)
class QueueLimit:
    """Limits of one named queue, enforced by claim_due() for every worker sharing the store."""

    concurrency: int | None = None         # runs of the queue held by all workers at once
    worker_concurrency: int | None = None  # ... held by one worker (claim owner)
    rate: tuple[int, float] | None = None  # at most rate[0] claims per rate[1] seconds

    @property
    def limited(self) -> bool:
        return (self.concurrency, self.worker_concurrency, self.rate) != (None, None, None)

    def room(self, n: int, *, owned: int, mine: int, recent: int) -> int:
        """How many of `n` wanted runs may be claimed now."""
        if self.concurrency is not None:
            n = min(n, self.concurrency - owned)
        if self.worker_concurrency is not None:
            n = min(n, self.worker_concurrency - mine)
        if self.rate is not None:
            n = min(n, self.rate[0] - recent)
        return max(0, n)


class RunStore(abc.ABC):
    """Abstract durable store. SQLite and PostgreSQL implement it; tests run against both."""

    url: str = ""
    # queue name -> limits that claim_due() enforces (set by the worker's queue configuration)
    queue_limits: Mapping[str, QueueLimit] = {}  # replaced by set_queue_limits, never mutated

    def set_queue_limits(self, limits: Mapping[str, QueueLimit]) -> None:
        self.queue_limits = dict(limits)

    def on_wake(self, callback: Callable[[str], None]) -> None:  # noqa: B027
        """Register callback(workflow_id), called when another process announces that the run
        may go on (a signal, a child that ended). Stores without such a channel never call it:
        waiting runs then notice at their next poll."""

    async def wait_for_work(self, timeout: float, queues: Iterable[str] | None = None) -> bool:
        """Sleep up to `timeout` seconds, or less when another process announces that a run
        became due (PostgreSQL: LISTEN/NOTIFY). True when woken early. This default sleeps."""
        await asyncio.sleep(max(0.0, timeout))
        return False

    def take_announced(self) -> list[tuple[str, str]] | None:
        """The (workflow_id, queue) of the runs other processes announced due since the last
        call (PostgreSQL: NOTIFY), for claim_announced(). None when something may be due that
        no announcement named (or the store has no announcements): claim_due() finds it."""
        return None

    async def claim_announced(self, owner: str, lease_s: float, workflow_ids: list[str], *,
                              steal_from: frozenset[str] = frozenset()) -> list[ClaimedRun]:
        """Claim those of the named runs that claim_due() would claim, each with its steps and
        signals; the caller keeps queue limits and filters (it names no run of a limited
        queue). This default claims none, leaving them to claim_due()."""
        return []

    def explain(self, err: BaseException) -> StoreError | None:
        """`err` as a StoreError saying what failed in this store and what to do, or None when
        it is not the store's. A store that lets its driver's exceptions out (SQLite) explains
        them here; a StoreError stays as it is."""
        return err if isinstance(err, StoreError) else None

    def as_store_error(self, err: BaseException) -> StoreError:
        """explain(err), for an exception known to come from the store."""
        return self.explain(err) or StoreError(
            f"the run store failed: {type(err).__name__}: {err}")

    async def open(self) -> None:  # noqa: B027
        """Create/migrate the schema on first use."""

    async def close(self) -> None:  # noqa: B027
        pass

    # runs
    @abc.abstractmethod
    async def create_run(self, run: RunRow, events: list[tuple[float, str, str | None, str | None]]
                         ) -> tuple[RunRow, bool]:
        """Insert the run unless its workflow_id exists; return (stored run, created)."""

    async def create_runs(self, items: list[tuple[RunRow, list[Event]]]
                          ) -> list[tuple[RunRow, bool]]:
        """create_run for several runs at once (group commit of runs started together), all
        durable when it returns; (stored run, created) for each, in order. Stores that can
        should do this in one transaction; this default creates them one by one."""
        return [await self.create_run(run, events) for run, events in items]

    @abc.abstractmethod
    async def get_run(self, workflow_id: str) -> RunRow | None: ...

    @abc.abstractmethod
    async def load_steps(self, workflow_id: str) -> list[StepRow]: ...

    @abc.abstractmethod
    async def commit(self, workflow_id: str, batch: Batch) -> None:
        """Apply a batch in one transaction. Raises LeaseLostError / StepConflictError."""

    async def commit_many(self, items: list[tuple[str, Batch]]) -> list[Exception | None]:
        """Group commit: apply several runs' batches, each all-or-nothing, returning only once
        all of them are durable. A batch whose fence fails gets its LeaseLostError /
        StepConflictError in its slot and does not undo the others; any other error (the store
        is down) is raised for all. Stores that can should do this in one transaction; this
        default commits one by one."""
        out: list[Exception | None] = []
        for workflow_id, batch in items:
            try:
                await self.commit(workflow_id, batch)
                out.append(None)
            except (LeaseLostError, StepConflictError) as e:
                out.append(e)
        return out

    @abc.abstractmethod
    async def claim(self, workflow_id: str, owner: str, lease_s: float, *,
                    steal_from: frozenset[str] = frozenset()) -> RunRow | None:
        """Take ownership if the run is active and unowned, its lease expired, or its owner is in
        steal_from (owners known dead). Returns the claimed run or None."""

    @abc.abstractmethod
    async def claim_due(self, owner: str, lease_s: float, limit: int, *,
                        steal_from: frozenset[str] = frozenset(),
                        queues: list[str] | None = None) -> list[RunRow]:
        """Claim up to `limit` runs that are due: pending/sleeping/waiting with wake_at <= now,
        and running runs whose lease expired (or whose owner is in steal_from)."""

    @abc.abstractmethod
    async def renew_leases(self, owner: str, lease_s: float) -> list[str]:
        """Extend the lease of every run `owner` holds; returns their workflow ids (a run
        missing from them was taken over, or ended)."""

    @abc.abstractmethod
    async def hold_lease(self, workflow_id: str, owner: str, lease_s: float) -> bool:
        """Renew the lease of one run if `owner` still holds it; False when another worker
        took it over (or it ended). The engine asks this before a side effect when it cannot
        tell from its own clock that the lease still holds (after a stall, say)."""

    @abc.abstractmethod
    async def release(self, workflow_id: str, owner: str, *, wake_at: float | None = None) -> None:
        """Give up ownership of a non-terminal run (graceful shutdown); it becomes due at wake_at
        (default now)."""

    @abc.abstractmethod
    async def live_owners(self) -> list[str]:
        """Owners currently holding leases on active runs."""

    # signals
    @abc.abstractmethod
    async def send_signal(self, workflow_id: str, name: str, payload: str | None) -> int:
        """Store a signal and make a run that waits for it due now."""

    @abc.abstractmethod
    async def find_signal(self, workflow_id: str, names: list[str]) -> SignalRow | None: ...

    # reading
    @abc.abstractmethod
    async def list_runs(self, *, product: str | None = None, tag: str | None = None,
                        status: str | list[str] | None = None, since: float | None = None,
                        parent_id: str | None = None, limit: int = 100,
                        cursor: str | None = None) -> tuple[list[RunRow], str | None]: ...

    @abc.abstractmethod
    async def events(self, workflow_id: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def logs(self, workflow_id: str) -> list[dict[str, Any]]: ...

    @abc.abstractmethod
    async def get_state(self, workflow_id: str) -> dict[str, str]: ...

    @abc.abstractmethod
    async def update_run(self, workflow_id: str, fields: dict[str, Any], *,
                         only_status: frozenset[str] | None = None,
                         events: list[tuple[float, str, str | None, str | None]] | None = None
                         ) -> bool:
        """Management update without ownership (cancel, wake ...); returns False if the status
        guard did not match."""

    # retention
    @abc.abstractmethod
    async def prune(self, before: float, statuses: list[str], limit: int) -> int:
        """Delete up to `limit` finished runs (status in `statuses`, all terminal) that finished
        before `before` (epoch seconds), with their steps, events, logs, state and signals, in
        batches of PRUNE_BATCH runs (one transaction each); returns how many runs went."""

    # schedules (migration 2)
    @abc.abstractmethod
    async def create_schedule(self, row: ScheduleRow) -> tuple[ScheduleRow, bool]:
        """Insert unless job_id exists; return (stored row, created)."""

    @abc.abstractmethod
    async def get_schedule(self, job_id: str) -> ScheduleRow | None: ...

    @abc.abstractmethod
    async def list_schedules(self, *, status: str | list[str] | None = None,
                             limit: int = 100) -> list[ScheduleRow]:
        """Schedules, oldest first."""

    @abc.abstractmethod
    async def update_schedule(self, job_id: str, fields: dict[str, Any], *,
                              only_status: frozenset[str] | None = None) -> bool:
        """Set fields (updated_at too); False if the row is missing or the status guard failed."""

    @abc.abstractmethod
    async def due_schedules(self, now: float, limit: int) -> list[ScheduleRow]:
        """Active schedules whose next_run_at <= now, earliest first."""

    @abc.abstractmethod
    async def fire_schedule(self, job_id: str, expect_fired: int, fields: dict[str, Any],
                            run: RunRow | None,
                            events: list[tuple[float, str, str | None, str | None]]) -> bool:
        """One transaction: UPDATE the schedule with `fields` WHERE job_id matches, status is
        'active' AND fired = expect_fired (compare-and-set); only if that matched, insert `run`
        (ON CONFLICT (workflow_id) DO NOTHING) with its events. True if the CAS matched.
        This is what makes each occurrence fire exactly once across workers and restarts."""

    # worker support
    @abc.abstractmethod
    async def next_due_at(self, queues: list[str] | None = None) -> float | None:
        """The earliest time anything becomes due: MIN(wake_at) of unowned pending/sleeping/
        waiting runs (in `queues` if given; a pending run's NULL wake_at counts as 0, i.e. due
        now) and MIN(next_run_at) of active schedules; None when nothing is waiting."""

    async def queue_depth(self, now: float) -> dict[str, int]:
        """Runs due at `now` that no process owns (what workers have yet to claim), by queue;
        queues with none are left out. For metrics: not on any run's path."""
        return {}

    @abc.abstractmethod
    async def cancel_requests(self, owner: str) -> list[tuple[str, str]]:
        """(workflow_id, reason) of active runs held by `owner` whose options JSON carries
        "cancel_requested": true (a cancel asked for from another process)."""
