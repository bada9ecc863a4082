"""The execution core: drives a run's handler, commits outcomes, rolls back, owns leases."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

from ductwork.errors import (
    ConfigurationError,
    DuctworkError,
    NonDeterminismError,
    RunNotFoundError,
    SerializationError,
    StepError,
    StoreError,
    WorkflowNotFoundError,
    WorkflowTimeoutError,
)
from ductwork.interpreter import children, codec, observe
from ductwork.interpreter.cancel import CancelRun, poll_cancel_requests
from ductwork.interpreter.clock import Clock, SystemClock
from ductwork.interpreter.committer import Committer
from ductwork.interpreter.context import WorkflowContext, never_awaited
from ductwork.interpreter.journal import (
    Journal,
    LeaseLost,
    StoreFault,
    SuspendRun,
    current_ctx,
    key_scope,
)
from ductwork.interpreter.observe import Observer
from ductwork.interpreter.result import ErrorInfo, ExecutionResult, WorkflowDef
from ductwork.interpreter.rollback import compensate
from ductwork.store.protocol import Batch, RunRow, RunStore, SignalRow, StepRow

if TYPE_CHECKING:
    from ductwork.interpreter.runtime import Runtime

HOST = socket.gethostname()
_log = logging.getLogger("ductwork.engine")
StepHook = Callable[[WorkflowContext, str, str, Callable[[], Any]], Callable[[], Any] | None]
# fn(ctx, tag, key, rollback) -> replacement rollback or None (test mocks of rollbacks).
RollbackHook = Callable[[WorkflowContext, str, str, Callable[..., Any]],
                        Callable[..., Any] | None]
# Owner ids of engines alive in this process: an owner with our pid that is not here is dead.
_LIVE_OWNERS: set[str] = set()


class Engine:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.store: RunStore = runtime.store
        self.inline_wait_s = runtime.inline_wait_s
        self.lease_s = runtime.lease_s
        # A run starts a step or a compensation on its own clock's word only while at least
        # this much of its lease is left; below it, the store confirms (and renews) the lease.
        # The heartbeat renews every lease / 3, so a healthy worker never gets this close.
        self.lease_margin = self.lease_s / 2
        self.owner = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        _LIVE_OWNERS.add(self.owner)
        self.tasks: dict[str, asyncio.Task[ExecutionResult]] = {}
        # The runs driven here: their ctx (read by management) and their journal.
        self.contexts: dict[str, WorkflowContext] = {}
        self.journals: dict[str, Journal] = {}
        self._wakeups: dict[str, set[asyncio.Event]] = {}
        # Every run's durable points go through it: group commit while several runs go on.
        self.committer = Committer(self)
        self._heartbeat: asyncio.Task[None] | None = None
        self._releases: set[asyncio.Task[None]] = set()  # _release_later's retries
        self._closing = False
        # Set by a worker shutting down: runs give themselves back at their next durable point.
        self.draining = False
        # Seams for ductwork.testing: the clock durable timers read, and a hook that may answer
        # a step instead of its function (fn(ctx, tag, key, fn) -> replacement fn or None).
        self.clock: Clock = SystemClock()
        self.step_hook: StepHook | None = None
        self.rollback_hook: RollbackHook | None = None
        # Set by a worker running on this engine: called when a run may have become due.
        self.on_due: Callable[[], None] | None = None

    # -- tasks and leases ----------------------------------------------------------------------
    def spawn(self, run: RunRow, *, fresh: bool = False, history: list[StepRow] | None = None,
              signals: list[SignalRow] | None = None) -> asyncio.Task[ExecutionResult]:
        """Drive a run just claimed; `history` and `signals`: its steps and unconsumed signals,
        read with the claim (else loaded when needed)."""
        task = self.tasks.get(run.workflow_id)
        if task is not None and not task.done():
            return task
        # Every caller claimed the run just before: its lease holds from about now.
        loop = asyncio.get_running_loop()
        task = loop.create_task(
            self.drive(run, fresh=fresh, leased_at=time.monotonic(), history=history,
                       signals=signals),
            name=f"ductwork:{run.workflow_id}")
        self._track(loop, run.workflow_id, task, False)
        return task

    def start(self, run: RunRow) -> asyncio.Future[ExecutionResult]:
        """Drive a run just created here (no task drives it yet): what execute() awaits. The
        future is resolved by the run's task itself as it ends, so the caller wakes in the
        next loop turn, where awaiting the task through asyncio.shield() takes a turn more
        and shield's callbacks. Cancelling the future leaves the run going, as shield does."""
        loop = asyncio.get_running_loop()
        report: asyncio.Future[ExecutionResult] = loop.create_future()
        task = loop.create_task(self._drive_reported(run, report, time.monotonic()),
                                name=f"ductwork:{run.workflow_id}")
        self._track(loop, run.workflow_id, task, True)
        return report

    def _track(self, loop: asyncio.AbstractEventLoop, wid: str,
               task: asyncio.Task[ExecutionResult], reported: bool) -> None:
        self.tasks[wid] = task
        task.add_done_callback(lambda t: self._forget(wid, t, reported))
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = loop.create_task(self._beat())

    async def _drive_reported(self, run: RunRow, report: asyncio.Future[ExecutionResult],
                              leased_at: float) -> ExecutionResult:
        try:
            result = await self.drive(run, fresh=True, leased_at=leased_at)
        except asyncio.CancelledError:
            self._ended(run.workflow_id)
            report.cancel()
            raise
        except BaseException as e:
            self._ended(run.workflow_id)
            if not report.done():
                report.set_exception(e)
            raise
        if not report.done():  # else: the caller stopped waiting (cancelled)
            report.set_result(result)
        return result

    def _ended(self, wid: str) -> None:
        """The calling task (a run's) is about to end: it drives nothing any more. Said at
        once, not a loop turn later by _forget: a caller woken by the run's end (execute())
        may start the next run at once, and a run still listed here would make that one's
        commits wait for a group (Committer.commit); one that looks the run up finds no task
        that has ended (WorkflowTestEnv.result) but the run's row."""
        if self.tasks.get(wid) is asyncio.current_task():
            del self.tasks[wid]

    def _forget(self, wid: str, task: asyncio.Task[ExecutionResult], reported: bool) -> None:
        if self.tasks.get(wid) is task:
            del self.tasks[wid]
        if reported and not task.cancelled():
            task.exception()  # delivered through the report: not "never retrieved"

    async def _beat(self) -> None:
        # Sleeps first: a run that ends in the turn it started in (a lone run on SQLite) leaves
        # the heartbeat waiting for the next one rather than ending it at once (and the next
        # run starting a new one).
        while not self._closing:
            await asyncio.sleep(self.lease_s / 3)
            if not self.tasks:
                return
            # A failed renewal is harmless here: the next step's lease check asks the store,
            # and the next commit's ownership fence reports a real loss of the lease. Whatever
            # the store raised (SQLite's own "database is locked" too): the heartbeat goes on.
            sent = time.monotonic()
            with contextlib.suppress(Exception):
                held = await self.store.renew_leases(self.owner, self.lease_s)
                # Only the runs still ours: one taken over while we stalled keeps its old
                # deadline, so its next step asks the store and stops.
                for wid in held:
                    journal = self.journals.get(wid)
                    if journal is not None:
                        journal.renewed(sent + self.lease_s - self.lease_margin)
            with contextlib.suppress(Exception):
                await poll_cancel_requests(self)  # cancels asked by other processes

    async def confirm_lease(self, journal: Journal) -> None:
        """The run's lease may have run out (the process stalled, the loop lagged): renew it
        in the store if it is still ours, else stop the run here, before any side effect."""
        sent = time.monotonic()
        try:
            held = await self.store.hold_lease(journal.workflow_id, self.owner, self.lease_s)
        except Exception as e:  # the store's trouble, not the workflow's: see StoreFault
            raise StoreFault(self.store.as_store_error(e)) from e
        if not held:
            raise LeaseLost(f"run {journal.workflow_id} is no longer owned by this process "
                            "(its lease expired while it was stalled and another worker took "
                            "it over)")
        journal.renewed(sent + self.lease_s - self.lease_margin)

    def nudge(self) -> None:
        """Tell a worker in this process that something may have become due."""
        if self.on_due is not None:
            self.on_due()

    def is_due(self, run: RunRow) -> bool:
        """Whether this process may claim the run now: unowned and due, or its owner's lease
        has expired or its owner is dead."""
        t = time.time()
        if run.owner is None:
            return run.wake_at is not None and run.wake_at <= t
        return (run.lease_until or 0) < t or bool(self.dead_owners([run.owner]))

    def dead_owners(self, owners: list[str]) -> frozenset[str]:
        """Owners on this host whose process is gone (or whose engine in this process closed)."""
        dead = set()
        for o in owners:
            host, _, rest = o.partition(":")
            pid_s = rest.partition(":")[0]
            if host != HOST or not pid_s.isdigit():
                continue
            pid = int(pid_s)
            if pid == os.getpid():
                if o not in _LIVE_OWNERS:
                    dead.add(o)
            elif not _pid_alive(pid):
                dead.add(o)
        return frozenset(dead)

    def wake(self, workflow_id: str) -> None:
        for ev in self._wakeups.get(workflow_id, ()):
            ev.set()

    def watch(self, workflow_id: str) -> asyncio.Event:
        """An event that wake() sets from now on. A wait registers it before it looks in the
        store for what would end it (a signal): a wake-up that arrives during that look (a
        round trip on PostgreSQL) is then kept, not lost before anyone listens, which left
        the run waiting out its whole inline wait. One event per waiter: parallel branches
        of one run each get the wake-up."""
        ev = asyncio.Event()
        self._wakeups.setdefault(workflow_id, set()).add(ev)
        return ev

    def unwatch(self, workflow_id: str, ev: asyncio.Event) -> None:
        waiters = self._wakeups.get(workflow_id)
        if waiters is not None:
            waiters.discard(ev)
            if not waiters:
                del self._wakeups[workflow_id]

    async def wait_for_wakeup(self, workflow_id: str, timeout: float) -> None:
        ev = self.watch(workflow_id)
        try:
            await self.clock.wait(ev, timeout)
        finally:
            self.unwatch(workflow_id, ev)

    async def close(self) -> None:
        self._closing = True
        tasks = list(self.tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.committer.close()
        releases = list(self._releases)
        for r in releases:
            r.cancel()
        await asyncio.gather(*releases, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        _LIVE_OWNERS.discard(self.owner)

    def dumps_safe(self, value: Any) -> str:
        """Logs and events: never fails (what cannot be stored is written as text)."""
        return codec.dumps_lenient(value)

    # -- driving a run --------------------------------------------------------------------------
    async def drive(self, run: RunRow, *, fresh: bool = False, leased_at: float | None = None,
                    history: list[StepRow] | None = None,
                    signals: list[SignalRow] | None = None) -> ExecutionResult:
        try:
            wf = self.runtime.definitions.get(run.product, run.tag)
        except WorkflowNotFoundError as e:
            await self._release(run)
            raise ConfigurationError(
                f"run {run.workflow_id} needs workflow {run.product}/{run.tag}, which is not "
                f"defined in this process ({e}); define it before recover()/worker") from None
        try:
            if fresh:
                history = []
            elif history is None:
                history = await self.store.load_steps(run.workflow_id)
            journal = Journal(self, run, wf, history)
            journal.signals_at_claim = signals
            journal.lease_check_at = ((time.monotonic() if leased_at is None else leased_at)
                                      + self.lease_s - self.lease_margin)
            ctx = WorkflowContext(journal)
        except Exception as e:
            return await self._fault(run, e)
        self.contexts[run.workflow_id] = ctx
        self.journals[run.workflow_id] = journal
        try:
            obs = self.runtime.observer
            if obs is None:
                return await self._drive(journal, run, wf, fresh)
            return await self._observed(obs, journal, run, wf, fresh)
        except Exception as e:
            # The workflow's own exceptions were handled inside: this is the engine's.
            return await self._fault(run, e)
        except StoreFault as f:  # a commit or lease check failed: not the workflow's failure
            return await self._fault(run, f.error)
        finally:
            self.contexts.pop(run.workflow_id, None)
            self.journals.pop(run.workflow_id, None)
            self._wakeups.pop(run.workflow_id, None)
            journal.detach()
            self._ended(run.workflow_id)

    async def _fault(self, run: RunRow, err: Exception) -> ExecutionResult:
        """The engine itself failed on this run (not the workflow's code: that fails the run
        the usual way). Counted on the run: it is released to be tried again after a pause,
        and failed with the error on the max_faults-th time in a row, so that a run nothing
        can process is not claimed forever. A run that makes progress starts counting anew."""
        faults = run.faults + 1
        limit = self.runtime.max_faults
        cause = self.runtime.redact(_run_message(err))
        # The frames, not the exception's text (which may hold a secret): that is `cause`.
        _log.error("run %s: ductwork failed to process it (%d of %d): %s\n%s", run.workflow_id,
                   faults, limit, cause, "".join(traceback.format_tb(err.__traceback__)))
        t = time.time()
        if faults >= limit:
            message = (f"ductwork failed to process this run {faults} times in a row and gave "
                       f"up (its completed steps were not compensated): {cause}")
            fields: dict[str, Any] = {
                "status": "failed", "error": message, "finished_at": t, "owner": None,
                "lease_until": None, "current_step": None, "wake_at": None, "faults": faults}
            events: list[tuple[float, str, str | None, str | None]] = [
                (t, "workflow_failed", None, self.dumps_safe({"error": message}))]
            try:
                await self.store.commit(run.workflow_id, Batch(owner=self.owner, run=fields,
                                                               events=events))
            except Exception:  # lost the lease, or the store is down: the next claim counts
                self._release_later(run.workflow_id, None)
                return await self._raise_fault(run, err)
            await self.notify_parent(run)
            return await self.result_from_store(run.workflow_id)
        # Due again after a pause that grows with each fault (a store that is briefly down
        # gets time to come back), at most a lease long.
        wake_at = t + min(2.0 ** (faults - 1), self.lease_s)
        try:
            await self.store.commit(run.workflow_id, Batch(owner=self.owner,
                                                           run={"faults": faults}))
            await self.store.release(run.workflow_id, self.owner, wake_at=wake_at)
        except Exception:  # the store is down (or our lease is gone)
            self._release_later(run.workflow_id, wake_at)
        return await self._raise_fault(run, err)

    def _release_later(self, wid: str, wake_at: float | None) -> None:
        """The store refused the release of a run this process stopped driving: keep trying
        in the background. Still ours in the store, its lease would be renewed by the
        heartbeat for as long as this process drives other runs, and nobody would take it."""

        async def release() -> None:
            delay = min(0.5, self.lease_s / 3)
            while not self._closing:
                await asyncio.sleep(delay)
                if wid in self.tasks:  # claimed here again meanwhile: ours to drive
                    return
                try:
                    await self.store.release(wid, self.owner, wake_at=wake_at)
                    return
                except Exception:
                    delay = min(delay * 2, self.lease_s / 3)

        task = asyncio.get_running_loop().create_task(release(), name=f"ductwork:release:{wid}")
        self._releases.add(task)
        task.add_done_callback(self._releases.discard)

    async def _raise_fault(self, run: RunRow, err: Exception) -> NoReturn:
        # A StoreError stays one: the caller may tell the store's trouble from the rest.
        cls = StoreError if isinstance(err, StoreError) else DuctworkError
        raise cls(self.runtime.redact(
            f"run {run.workflow_id}: ductwork failed to process it ({_run_message(err)}); it "
            f"is tried again by a worker or dw.recover(), and failed after "
            f"{self.runtime.max_faults} such failures in a row")) from err

    async def _observed(self, obs: Observer, journal: Journal, run: RunRow, wf: WorkflowDef,
                        fresh: bool) -> ExecutionResult:
        token = observe.call(obs.run_started, run, bool(journal.history) or run.attempt > 1)
        result: ExecutionResult | None = None
        try:
            result = await self._drive(journal, run, wf, fresh)
            return result
        finally:
            # journal.outcome: the status this drive committed; none: the run was taken away.
            observe.call(obs.run_ended, run, token, journal.outcome or "released",
                         None if result is None else result.error)

    async def _drive(self, journal: Journal, run: RunRow, wf: WorkflowDef, fresh: bool
                     ) -> ExecutionResult:
        t0 = time.time()
        if not fresh:
            # Only what the claim left undone: a store whose claim_due() starts the run (status
            # running, started_at set) saves this commit, and a resumption's event then goes
            # with the run's next commit.
            fields: dict[str, Any] = ({} if run.status == "running"
                                      else {"status": "running", "wake_at": None})
            if run.started_at is None:
                fields["started_at"] = run.started_at = t0
            if run.deadline_at is None and wf.options.get("timeout") is not None:
                fields["deadline_at"] = run.deadline_at = run.started_at + \
                    float(wf.options["timeout"]) / 1000
            opts = codec.loads(run.options) or {}
            if opts.get("cancel_requested"):
                journal.cancel_reason = str(opts.get("cancel_reason") or "cancelled")
            if run.attempt > 1 or journal.history:
                journal.event("workflow_resumed")
            # else a first start (a dispatched run): history derives workflow_started from
            # started_at, as for a run executed in place, and the first step's commit stays a
            # single statement (no event row beside it).
            try:
                if fields:
                    await journal.commit(Batch(run=fields))
            except LeaseLost:
                return await self.lease_lost(run)
        ctx = journal.ctx
        token = current_ctx.set(ctx)
        key_scope.set("")
        journal.main_task = asyncio.current_task()
        scope: asyncio.Timeout | None = None
        try:
            if run.deadline_at is not None:
                scope = asyncio.timeout_at(asyncio.get_running_loop().time()
                                           + (run.deadline_at - time.time()))
                async with scope:
                    output = await _call_handler(wf, ctx)
            else:
                output = await _call_handler(wf, ctx)
            _check_awaited(wf, ctx)
            if journal.unconsumed:
                raise NonDeterminismError(
                    f"run {run.workflow_id}: the handler finished without asking for recorded "
                    f"operation(s) {sorted(journal.unconsumed)}; the code changed under a running "
                    "workflow (deploy the previous code to finish it, or restart the run)")
            out, output = journal.encode_value(output, "The workflow's return value", "output")
        except SuspendRun as s:
            return await self._suspend(journal, run, s)
        except CancelRun as c:
            return await self._finish_failed(journal, run, wf, c, cancelled=True)
        except LeaseLost:
            return await self.lease_lost(run)
        except asyncio.CancelledError:
            if self._closing:
                await self._release(run)
            raise
        except TimeoutError as e:
            if scope is not None and scope.expired():
                limit = float((codec.loads(run.options) or {}).get("timeout")
                              or wf.options.get("timeout") or 0)
                err: BaseException = WorkflowTimeoutError(
                    f"Workflow timed out after {limit / 1000:g}s"
                    + (f" (while running step '{journal.current_step}')"
                       if journal.current_step else ""))
                return await self._finish_failed(journal, run, wf, err)
            return await self._finish_failed(journal, run, wf, e)
        except Exception as e:
            return await self._finish_failed(journal, run, wf, e)
        finally:
            current_ctx.reset(token)
        return await self._finish(journal, run, out, output)

    async def _finish(self, journal: Journal, run: RunRow, out: str, output: Any
                      ) -> ExecutionResult:
        """`out`: the output as stored, `output`: as a replay reads it back (encode_value)."""
        t = time.time()
        manual = journal.manual_rollback
        status = "rolled_back" if manual and manual.get("rolled_back_steps") else "completed"
        if status != "completed":  # history derives workflow_completed from the run row
            journal.event("workflow_rolled_back")
        fields = {"status": status, "output": out, "finished_at": t, "owner": None,
                  "lease_until": None, "current_step": None, "wake_at": None,
                  "rollback_result": None if manual is None else codec.dumps(manual)}
        try:
            await journal.commit(Batch(run=fields))
        except LeaseLost:
            return await self.lease_lost(run)
        journal.outcome = status
        await self.notify_parent(run)
        return ExecutionResult(run.workflow_id, status, output, None,
                               list(journal.completed), None, _ms(run.started_at, t), manual)

    async def _suspend(self, journal: Journal, run: RunRow, s: SuspendRun) -> ExecutionResult:
        wake_at = s.wake_at
        if run.deadline_at is not None and (wake_at is None or wake_at > run.deadline_at):
            wake_at = run.deadline_at  # wake up to fail the run when its timeout passes
        journal.event("workflow_suspended", None, {"status": s.status, "wake_at": wake_at})
        fields = {"status": s.status, "wake_at": wake_at, "owner": None, "lease_until": None}
        if run.faults:  # it made progress: a later fault counts from one again
            fields["faults"] = 0
        try:
            await journal.commit(Batch(run=fields))
        except LeaseLost:
            return await self.result_from_store(run.workflow_id)
        journal.outcome = s.status
        await children.after_suspend(self, run, s)
        # What the run is as this attempt leaves it, from memory (as _finish does): reading it
        # back cost two store round trips per suspension that nobody here needs.
        return ExecutionResult(run.workflow_id, "running", None, None, list(journal.completed),
                               None, _ms(run.started_at, time.time()), None)

    async def _finish_failed(self, journal: Journal, run: RunRow, wf: WorkflowDef,
                             err: BaseException, *, cancelled: bool = False) -> ExecutionResult:
        failed_step = err.step if isinstance(err, StepError) else None
        if isinstance(err, SerializationError) and failed_step is None:
            failed_step = journal.current_step
        message = self.runtime.redact(_run_message(err))
        await journal.settle(self.inline_wait_s)
        strategy = str(wf.options.get("rollback_strategy", "reverse_all"))
        rb: dict[str, Any] | None = journal.manual_rollback
        if not isinstance(err, NonDeterminismError) and (strategy != "none" or cancelled):
            try:
                rb = await compensate(journal, "reverse_all" if strategy == "none" else strategy,
                                      message)
            except LeaseLost:
                return await self.lease_lost(run)
        if cancelled:
            status = "cancelled"
        elif rb and rb["rolled_back_steps"] and not rb["failed_steps"]:
            status = "rolled_back"
        else:
            status = "failed"
        if rb and rb["failed_steps"]:
            message += "; rollback failed for " + ", ".join(
                f"'{t}' ({rb['errors'].get(t, '')})" for t in rb["failed_steps"])
        t = time.time()
        journal.event({"cancelled": "workflow_cancelled", "rolled_back": "workflow_rolled_back"}
                      .get(status, "workflow_failed"), failed_step, {"error": message})
        fields = {"status": status, "error": message, "failed_step": failed_step,
                  "finished_at": t, "owner": None, "lease_until": None, "current_step": None,
                  "wake_at": None, "rollback_result": None if rb is None else codec.dumps(rb)}
        try:
            await journal.commit(Batch(run=fields))
        except LeaseLost:
            return await self.lease_lost(run)
        journal.outcome = status
        await self.notify_parent(run)
        return ExecutionResult(run.workflow_id, status, None,
                               ErrorInfo(message, failed_step, status=status),
                               list(journal.completed), failed_step, _ms(run.started_at, t), rb)

    async def _release(self, run: RunRow) -> None:
        with contextlib.suppress(Exception):  # the store's trouble: the lease runs out instead
            await self.store.release(run.workflow_id, self.owner)

    async def notify_parent(self, run: RunRow) -> None:
        if run.parent_id:
            await self.store.update_run(run.parent_id, {"wake_at": time.time()},
                                        only_status=frozenset({"waiting"}))
            self.wake(run.parent_id)
        await children.on_run_end(self, run)  # parent-close policies, dispatch retries

    async def lease_lost(self, run: RunRow) -> ExecutionResult:
        """The run was taken over by another worker: this attempt stops, and says so."""
        _log.warning("run %s: another worker took it over (this process's lease ran out); "
                     "stopped here, the other worker goes on", run.workflow_id)
        return await self.result_from_store(run.workflow_id)

    # -- reading --------------------------------------------------------------------------------
    async def result_from_store(self, workflow_id: str, run: RunRow | None = None
                                ) -> ExecutionResult:
        """The run's result as stored; `run`: its row, just read (one round trip less)."""
        if run is None:
            run = await self.store.get_run(workflow_id)
        if run is None:
            raise RunNotFoundError(workflow_id)
        steps = await self.store.load_steps(workflow_id)
        return ExecutionResult.from_rows(run, steps)

    async def current_result(self, workflow_id: str) -> ExecutionResult:
        """The result of a run that has not ended, as a caller that stopped waiting gets it: from
        memory while this process drives the run (what the store holds of it: its steps are
        noted only once committed), else from the store."""
        journal = self.journals.get(workflow_id)
        if journal is None or journal.outcome is not None or journal.unconsumed:
            # Not driven here, ended, or still replaying (its recorded steps are not all
            # noted yet): the store says.
            return await self.result_from_store(workflow_id)
        return ExecutionResult(workflow_id, "running", None, None, list(journal.completed), None,
                               _ms(journal.run.started_at, time.time()), None)


async def _call_handler(wf: WorkflowDef, ctx: WorkflowContext) -> Any:
    out = wf.handler(ctx)
    if inspect.isawaitable(out):
        out = await out
    return out


def _check_awaited(wf: WorkflowDef, ctx: WorkflowContext) -> None:
    """A handler that returned while an operation it asked for never started forgot an
    `await`: that step never ran, so the run must not complete as if it had."""
    missed = never_awaited(ctx)
    if not missed:
        return
    what = ", ".join(missed[:3]) + (f" and {len(missed) - 3} more" if len(missed) > 3 else "")
    call = "await " + missed[0].split("(")[0] + "(...)"
    fix = (f"make the handler an `async def` and write `{call}`"
           if not inspect.iscoroutinefunction(wf.handler) else f"write `{call}`")
    raise ConfigurationError(f"the workflow returned without awaiting {what}, so it never ran: "
                             f"{fix}")


def _run_message(err: BaseException) -> str:
    if isinstance(err, CancelRun):
        return f"Workflow cancelled: {err.reason}"
    if isinstance(err, DuctworkError):
        return str(err)
    text = str(err)
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _ms(start: float | None, end: float) -> int:
    return 0 if start is None else max(0, round((end - start) * 1000))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True
