"""The worker: claims due runs and schedule occurrences within a concurrency limit."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import threading
import time
from typing import TYPE_CHECKING, Any

from ductwork.errors import ConfigurationError, DuctworkError
from ductwork.interpreter.observe import call
from ductwork.util.durations import to_ms
from ductwork.workflows import schedules

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine
    from ductwork.interpreter.result import ExecutionResult
    from ductwork.store.protocol import ClaimedRun, RunRow
    from ductwork.workflows.facade import Workflows

log = logging.getLogger("ductwork.worker")
# A run whose workflow this process does not define goes back to the store, due again after
# this long, so that a worker that defines it can take it.
UNKNOWN_BACKOFF_S = 5.0
ENDED = frozenset({"completed", "failed", "rolled_back", "cancelled"})
# How old a list of dead owners a claim of announced runs takes without reading it first.
DEAD_KEPT_S = 1.0
# How long a worker shutting down waits for the store to take back the runs it cancelled.
RELEASE_WAIT_S = 5.0


class Worker:
    """`await dw.run_worker()` / `ductwork worker`.

    Each pass: fire due schedule occurrences, then claim up to `concurrency - in_flight` due
    runs (dispatched, woken from a sleep, signalled or timed out, orphaned by a dead
    process) and drive them. Between passes it sleeps until the store's next due time, at
    most `poll`, or until something in this process nudges it. Woken by the store naming the
    runs that became due (PostgreSQL NOTIFY: a dispatch, a signal, a child that ended), it
    claims just those, with their history, in one round trip and waits again, keeping the
    deadline of its next pass; runs of a limited queue, more runs than free slots, a worker
    that was full, or a named run it could not claim mean a full pass instead.

    stop() (or SIGTERM/SIGINT with handle_signals) stops claiming; in-flight runs give
    themselves back at their next durable point (status pending, due at once) within `grace`;
    runs still inside a step after that are cancelled and released. A second signal skips
    the rest of the grace period."""

    def __init__(self, workflows: Workflows, *, concurrency: int = 10,
                 queues: list[str] | None = None, poll: Any = "1s", grace: Any = "30s",
                 schedules: bool = True, handle_signals: bool = False) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError(f"worker: concurrency must be a whole number >= 1, "
                                     f"got {concurrency!r}")
        if queues is not None and (isinstance(queues, str) or not all(
                isinstance(q, str) and q for q in queues)):
            raise ConfigurationError("worker: queues must be a list of queue names, "
                                     "e.g. ['default', 'emails']")
        self.workflows = workflows  # holds the engine and the one-worker-per-instance slot
        self.concurrency = concurrency
        self.queues = list(queues) if queues else None
        self.poll_s = to_ms(poll, "worker poll") / 1000
        self.grace_s = to_ms(grace, "worker grace") / 1000
        self.run_schedules = schedules
        self.handle_signals = handle_signals
        self.in_flight: dict[str, asyncio.Task[ExecutionResult]] = {}
        self.claimed = 0
        self.fired: list[str] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._forced = False
        self._started = asyncio.Event()
        self._failures = 0
        self._until = 0.0          # monotonic: when the next full pass is due at the latest
        self._local = False        # the last wait was ended by this process (a nudge)
        self._saturated = True     # the last pass filled every free slot: more may be due
        self._limited = False      # some queue has limits (they may hold due runs back)
        # (monotonic time, dead owners) as last read, and the task reading them again
        self._dead_seen: tuple[float, frozenset[str]] = (0.0, frozenset())
        self._dead_refresh: asyncio.Task[None] | None = None

    # -- control --------------------------------------------------------------------------------
    def nudge(self) -> None:
        """Something may be due now (a dispatch, a signal, a child that ended)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming and shut down gracefully; a second call skips the grace period."""
        if self._stopping:
            self._forced = True
        self._stopping = True
        self.nudge()

    @property
    def stopping(self) -> bool:
        return self._stopping

    async def started(self) -> None:
        """Wait until the worker has made its first pass (for tests and embedding)."""
        await self._started.wait()

    # -- the loop -------------------------------------------------------------------------------
    async def run(self) -> None:
        workflows = self.workflows
        engine = await workflows._engine()
        if workflows._worker is not None:
            raise ConfigurationError("a worker is already running on this Ductwork instance; "
                                     "one worker per instance (raise its concurrency instead)")
        workflows._worker = self
        engine.on_due = self.nudge
        installed = self._install_signals()
        log.info("worker %s started (concurrency %d, queues %s)", engine.owner,
                 self.concurrency, ",".join(self.queues) if self.queues else "all")
        try:
            with contextlib.suppress(Exception):  # the store's trouble: the passes log it
                await schedules.sweep_retries(engine, time.time() - 86_400)
            full = True
            while not self._stopping:
                if full:
                    claimed = await self._safe_pass(engine)
                    self._started.set()
                    if self._stopping:
                        break
                    await self._sleep(engine, claimed)
                else:
                    await self._wait(engine, self._until - time.monotonic())
                full = not await self._claim_announced(engine)
        finally:
            self._started.set()
            if self._dead_refresh is not None:
                self._dead_refresh.cancel()
            try:
                await self._shutdown(engine)
            finally:
                workflows._worker = None
                engine.on_due = None
                self._remove_signals(installed)
                log.info("worker %s stopped", engine.owner)

    async def _safe_pass(self, engine: Engine) -> int:
        """A store that is briefly unreachable or locked must not kill the worker: log, back
        off (up to 30 s), try again."""
        try:
            claimed = await self._pass(engine)
        except Exception as e:
            self._failures += 1
            pause = min(self.poll_s * 2 ** min(self._failures, 6), 30.0)
            log.error("worker pass failed (%s: %s); retrying in %.2gs", type(e).__name__,
                      engine.runtime.redact(str(e)), pause)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_requested(), pause)
            return 0
        self._failures = 0
        return claimed

    async def _stop_requested(self) -> None:
        while not self._stopping:
            await self._wake.wait()
            self._wake.clear()

    async def _pass(self, engine: Engine) -> int:
        if self.run_schedules:
            try:
                self.fired += await schedules.tick(engine)
            except DuctworkError as e:
                log.error("scheduler: %s", e)
        free = self.concurrency - len(self.in_flight)
        self._saturated = True
        if free <= 0:
            return 0
        store = engine.store
        store.take_announced()  # runs announced before this claim: it looks at them too
        runs = await store.claim_due(engine.owner, engine.lease_s, free,
                                     steal_from=await self._dead(engine), queues=self.queues)
        self._saturated = len(runs) >= free
        # A limit may have kept due runs of its queue back: a slot freed here may take one.
        self._limited = any(lim.limited for lim in store.queue_limits.values())
        started = 0
        for run in runs:
            started += await self._start(engine, run)
        return started

    async def _dead(self, engine: Engine) -> frozenset[str]:
        self._dead_seen = (time.monotonic(),
                           engine.dead_owners(await engine.store.live_owners()))
        return self._dead_seen[1]

    def _dead_known(self, engine: Engine) -> frozenset[str]:
        """The dead owners as last read, for a claim of announced runs: reading them again
        (a round trip, once a second) would come between a NOTIFY and its claim, so a stale
        list is read again after the claim instead. A run it misses (announced while its
        owner died) is claimed when its lease expires, as always."""
        at, dead = self._dead_seen
        if time.monotonic() - at > DEAD_KEPT_S and self._dead_refresh is None:
            self._dead_refresh = asyncio.get_running_loop().create_task(self._refresh(engine))
        return dead

    async def _refresh(self, engine: Engine) -> None:
        try:
            with contextlib.suppress(Exception):  # the store's trouble: read again later
                await self._dead(engine)
        finally:
            self._dead_refresh = None

    async def _start(self, engine: Engine, run: RunRow,
                     claimed: ClaimedRun | None = None) -> int:
        """Drive a run just claimed (1), or hand it back if this process does not define its
        workflow (0). `claimed`: its steps and signals, read with the claim."""
        if not engine.runtime.definitions.knows(run.product, run.tag):
            log.warning("run %s needs workflow %s/%s, which this worker does not define; "
                        "leaving it to another worker", run.workflow_id, run.product, run.tag)
            await engine.store.release(run.workflow_id, engine.owner,
                                       wake_at=time.time() + UNKNOWN_BACKOFF_S)
            return 0
        obs = engine.runtime.observer
        if obs is not None:
            due = run.wake_at if run.wake_at is not None else run.created_at
            call(obs.run_claimed, run, time.time() - due)
        task = (engine.spawn(run) if claimed is None else
                engine.spawn(run, history=claimed.steps, signals=claimed.signals))
        self.in_flight[run.workflow_id] = task
        task.add_done_callback(functools.partial(self._done, run.workflow_id))
        self.claimed += 1
        return 1

    async def _claim_announced(self, engine: Engine) -> bool:
        """After a wait: claim the runs the store named as due, without a full pass. False
        when a full pass is needed instead (see the class docstring)."""
        store = engine.store
        named = store.take_announced()
        if (named is None or self._local or self._stopping or self._saturated
                or time.monotonic() >= self._until):
            return False
        wanted = [w for w, q in named if w not in self.in_flight
                  and (self.queues is None or q in self.queues)]
        if not wanted:
            return True
        limits = store.queue_limits
        if (len(wanted) > self.concurrency - len(self.in_flight)
                or any(limits[q].limited for _, q in named if q in limits)):
            return False
        try:
            got = await store.claim_announced(engine.owner, engine.lease_s, wanted,
                                              steal_from=self._dead_known(engine))
            for c in got:
                await self._start(engine, c.run, c)
        except Exception as e:  # as in _safe_pass: the full pass that follows logs and backs off
            log.warning("claiming announced runs failed (%s: %s); looking for due runs instead",
                        type(e).__name__, engine.runtime.redact(str(e)))
            return False
        return len(got) == len(wanted)

    def _done(self, wid: str, task: asyncio.Task[ExecutionResult]) -> None:
        if self.in_flight.get(wid) is task:
            del self.in_flight[wid]
        ended = False
        if not task.cancelled():
            err = task.exception()
            if err is not None:  # said once: the engine's errors name the run already
                text = str(err)
                log.error("%s", text if text.startswith(f"run {wid}:") else f"run {wid}: {text}")
            else:
                ended = task.result().status in ENDED
        # A pass looks again when the freed slot may take a run left waiting (the last pass
        # filled every slot or met a queue limit) or the run is due again later (it suspended
        # or was released).
        # A run that ended makes nothing else due that nobody announces (a parent: nudged).
        if self._saturated or self._limited or not ended:
            self.nudge()

    async def _sleep(self, engine: Engine, claimed: int) -> None:
        """Wait until the next full pass is due, or something wakes the worker earlier."""
        timeout = self.poll_s
        if len(self.in_flight) < self.concurrency:
            try:
                nxt = await engine.store.next_due_at(self.queues)
            except Exception:  # the store's trouble (SQLite's own errors too): poll instead
                nxt = None
            if nxt is not None:
                timeout = min(timeout, max(nxt - time.time(), 0.0))
            if timeout <= 0 and not claimed:
                # Due but not claimable by us (e.g. another worker holds it): don't spin.
                timeout = min(self.poll_s, 0.05)
        self._until = time.monotonic() + timeout
        await self._wait(engine, timeout)

    async def _wait(self, engine: Engine, timeout: float) -> None:
        if timeout > 0 and not self._wake.is_set():
            # A nudge from this process, or the store's own wake-up (PostgreSQL NOTIFY).
            waiters = {asyncio.ensure_future(self._wake.wait()),
                       asyncio.ensure_future(engine.store.wait_for_work(timeout, self.queues))}
            try:
                await asyncio.wait(waiters, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                # The loser is cancelled, not awaited: the claim a NOTIFY woke us for goes out
                # a turn of the loop sooner. Its outcome is read when it ends (never raised).
                for w in waiters:
                    w.cancel()
                    w.add_done_callback(_outcome)
        self._local = self._wake.is_set()
        self._wake.clear()

    async def _shutdown(self, engine: Engine) -> None:
        """Let in-flight runs reach their next durable point, then release what is left."""
        engine.draining = True
        try:
            for wid in list(engine.tasks):
                engine.wake(wid)  # interrupt inline waits so they suspend now
            end = time.monotonic() + self.grace_s
            while True:
                pending = [t for t in engine.tasks.values() if not t.done()]
                left = end - time.monotonic()
                if not pending or left <= 0 or self._forced:
                    break
                await asyncio.wait(pending, timeout=min(left, 0.1))
            mine = {wid: t for wid, t in self.in_flight.items() if not t.done()}
            for t in mine.values():
                t.cancel()
            if mine:
                await asyncio.gather(*mine.values(), return_exceptions=True)
                # Together, and for RELEASE_WAIT_S at most: a store that is down would hold
                # each release for its whole retry window (PostgreSQL: 15 s, one after the
                # other) and the worker far past its grace. A run not released is taken over
                # when its lease runs out instead.
                releases = asyncio.gather(*[engine.store.release(wid, engine.owner)
                                            for wid in mine], return_exceptions=True)
                try:
                    outcomes = await asyncio.wait_for(releases, RELEASE_WAIT_S)
                except TimeoutError:
                    outcomes = [TimeoutError()] * len(mine)
                left = sum(isinstance(o, BaseException) for o in outcomes)
                log.info("released %d run(s) still inside a step after the grace period%s",
                         len(mine) - left, f"; {left} left to their lease (the store did not "
                         "answer)" if left else "")
        finally:
            engine.draining = False

    # -- signals --------------------------------------------------------------------------------
    def _install_signals(self) -> list[signal.Signals]:
        if not self.handle_signals or threading.current_thread() is not threading.main_thread():
            return []
        loop = asyncio.get_running_loop()
        done = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            done.append(sig)
        return done

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("%s: %s", sig.name, "stopping now" if self._stopping else
                 f"finishing in-flight runs (up to {self.grace_s:g}s; again to skip)")
        self.stop()

    @staticmethod
    def _remove_signals(installed: list[signal.Signals]) -> None:
        if not installed:
            return
        loop = asyncio.get_running_loop()
        for sig in installed:
            loop.remove_signal_handler(sig)


def _outcome(task: asyncio.Future[Any]) -> None:
    """Read a finished waiter's outcome, so that asyncio does not log it as never retrieved
    (a failed wait for work: the next pass meets the store's trouble and logs it)."""
    if not task.cancelled():
        task.exception()
