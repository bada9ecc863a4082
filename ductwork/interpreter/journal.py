"""The run's journal: step keys, replay, sequence numbers, pending events and fenced commits."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ductwork.connectors import idempotency
from ductwork.errors import (
    ConnectorError,
    DuctworkError,
    NonDeterminismError,
    SerializationError,
    SignalTimeoutError,
    StepError,
    StepTimeoutError,
    StoreError,
    WorkflowTimeoutError,
    not_retryable,
)
from ductwork.interpreter import codec, observe, threads
from ductwork.interpreter.cancel import CancelRun
from ductwork.store.protocol import Batch, LeaseLostError, SignalRow, StepRow
from ductwork.util.durations import to_ms

if TYPE_CHECKING:
    from ductwork.interpreter.context import WorkflowContext
    from ductwork.interpreter.engine import Engine
    from ductwork.interpreter.observe import Observer
    from ductwork.interpreter.result import WorkflowDef
    from ductwork.store.protocol import RunRow

# The ctx whose handler, step or rollback is running in this task.
current_ctx: contextvars.ContextVar[WorkflowContext | None] = contextvars.ContextVar(
    "ductwork_ctx", default=None)
# Step identity inside ctx.foreach / ctx.parallel: "<item or branch>/" prefixes, so that the
# n-th occurrence of a tag means the same item on every replay however the branches interleave.
key_scope: contextvars.ContextVar[str] = contextvars.ContextVar("ductwork_key_scope",
                                                                default="")
_pylog = logging.getLogger("ductwork.workflow")
_DONE = frozenset({"completed", "skipped", "failed"})
# (seq, key, tag, result, rollback, critical): a completed step or child to compensate.
Compensation = tuple[int, str, str, Any, Callable[..., Any], bool]


class SuspendRun(BaseException):
    """Release the process: the run sleeps or waits until wake_at (BaseException so that a
    user's `except Exception` cannot swallow it)."""

    def __init__(self, status: str, wake_at: float | None, reason: str) -> None:
        super().__init__(reason)
        self.status, self.wake_at, self.reason = status, wake_at, reason


class LeaseLost(BaseException):
    """Another worker took the run over: stop at once (BaseException so that a user's
    `except Exception` around a step cannot swallow it and go on with side effects).

    The store reports the same fact as LeaseLostError, a StoreError; Journal.commit, the one
    place a run's records are written, translates it, so the engine catches only this."""


class StoreFault(BaseException):
    """The run store failed under this run (unreachable, locked, read-only): the engine's
    trouble, not the workflow's, so the run is neither failed nor compensated for it but
    released to be tried again (Engine._fault). BaseException, as LeaseLost: a user's
    `except Exception` around a step must not swallow it and go on as if it was recorded."""

    def __init__(self, error: StoreError) -> None:
        super().__init__(str(error))
        self.error = error


# A state key recorded inside a step's function: "<step key>/@state:<key>".
_NESTED = "/@state:"


def _nested_state(history: dict[str, StepRow]) -> dict[str, list[StepRow]]:
    out: dict[str, list[StepRow]] = {}
    for row in history.values():
        if row.kind == "state" and _NESTED in row.step_key and row.status in _DONE:
            out.setdefault(row.step_key.split(_NESTED, 1)[0], []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: r.seq)
    return out


class Journal:
    """One per execution attempt of a run: what was recorded before (replayed in order) and
    what this attempt records, each durable operation committed before the handler goes on."""

    ctx: WorkflowContext  # the handler's facade, bound by WorkflowContext.__init__

    def __init__(self, engine: Engine, run: RunRow, wf: WorkflowDef, history: list[StepRow]
                 ) -> None:
        self.engine = engine
        self.run = run
        self.wf = wf
        self.workflow_id = run.workflow_id
        # Outputs preset by resume/replay_from_step, by key or tag (bound with the ctx).
        self.presets: dict[str, Any] = {}
        if history:
            self.history: dict[str, StepRow] = {s.step_key: s for s in history}
            self.unconsumed: set[str] = {s.step_key for s in history if s.status in _DONE}
            self._seq = max(s.seq for s in history)
        else:  # a new run (the comprehensions' frames cost more than these)
            self.history, self.unconsumed, self._seq = {}, set(), 0
        self._occurrence: dict[str, int] = {}
        # State set inside recorded steps' functions, by step key (made on the first replay).
        self._nested: dict[str, list[StepRow]] | None = None
        # Operations in flight (fan-out branches): a wait suspends the run only when alone.
        self.inflight = 0
        self.main_task: asyncio.Task[Any] | None = None
        self._step_tasks: set[asyncio.Task[Any]] = set()
        self.state: dict[str, Any] = {}
        self.steps: dict[str, Any] = {}
        # Tags of the steps completed, in order (a dict: membership is O(1) in long runs).
        self.completed: dict[str, None] = {}
        self.compensations: list[Compensation] = []
        self.checkpoint_seq = 0
        self.checkpoint_name: str | None = None
        self.checkpoint_data: Any = None
        self.current_step: str | None = None
        self._pending_logs: list[tuple[float, str, str, str | None, str | None]] = []
        self._pending_events: list[tuple[float, str, str | None, str | None]] = []
        self.manual_rollback: dict[str, Any] | None = None
        self.rolled: dict[str, str] = {}  # step key -> rollback status recorded this attempt
        self.cancel_reason: str | None = None
        # Set when the run was taken away (terminated): stop at the next durable point without
        # compensating; the suspension's commit then finds the run no longer ours.
        self.release_reason: str | None = None
        # time.monotonic() until which our own clock vouches for the lease (with the engine's
        # margin to spare); set by the engine when it drives the run, moved on by renewals.
        self.lease_check_at = float("inf")
        # The status this execution committed last (completed, failed, waiting ...): observers.
        self.outcome: str | None = None
        # Unconsumed signals read with the claim (oldest first), for the first signal wait.
        self.signals_at_claim: list[SignalRow] | None = None
        # Set when this attempt starts (or replays) a child run: its end closes the children.
        self.parent = False
        # ctx operations (coroutine, method, first argument) asked for and perhaps not awaited
        # yet: a handler that returns while one never started forgot an `await` (context.py).
        self.asked: list[tuple[Any, str, Any]] = []
        self.asked_limit = 8

    def renewed(self, check_at: float) -> None:
        """The store renewed our lease (the renewal was sent before check_at - lease + margin,
        so the lease holds at least until check_at + margin)."""
        self.lease_check_at = max(self.lease_check_at, check_at)

    async def hold_lease(self) -> None:
        """Before a side effect (a step's function, a compensation): stop here (LeaseLost)
        if the run is no longer ours. Free while our clock says the lease holds; a store round
        trip only after a stall or a late heartbeat."""
        if time.monotonic() >= self.lease_check_at:
            await self.engine.confirm_lease(self)

    def bind(self, ctx: WorkflowContext, presets: dict[str, Any]) -> None:
        self.ctx = ctx
        self.presets = presets

    def detach(self) -> None:
        """This attempt has ended: drop the journal's side of the journal <-> ctx cycle, so
        that both, and what they hold (the run's task, rows, results), are freed at once by
        reference counting rather than later by the cycle collector (~20 objects a run)."""
        self.ctx = None  # type: ignore[assignment]  # nothing reads it after the attempt

    # -- keys, replay, non-determinism ----------------------------------------------------------
    def next_key(self, base: str) -> str:
        """Operation identity: `base` in the current fan-out scope, "#n" from the 2nd time on."""
        scope = key_scope.get()
        if scope:
            base = scope + base
        n = self._occurrence.get(base, 0) + 1
        self._occurrence[base] = n
        return base if n == 1 else f"{base}#{n}"

    def take(self, key: str, kind: str) -> StepRow | None:
        """The recorded row of `key` (now replayed), or None if it is a new operation."""
        rec = self.history.get(key)
        if rec is None:
            return None
        if rec.kind != kind:
            raise NonDeterminismError(
                f"run {self.workflow_id}: replay asked for {_describe(kind, key)} but the "
                f"recorded history has {_describe(rec.kind, key)} there; a workflow must ask for "
                "the same operations on every replay (deploy the previous code to finish in-flight "
                "runs, or restart the run)")
        self.unconsumed.discard(key)
        return rec

    async def check_new(self, kind: str, key: str) -> None:
        """A new operation while recorded ones remain unreplayed means the code diverged,
        unless sibling branches (gather/parallel) are about to replay them."""
        if self.cancel_reason is not None:
            raise CancelRun(self.cancel_reason)
        self.check_deadline()
        if self.engine.draining or self.release_reason is not None:
            # A worker shutting down: give the run back at this durable point, due at once.
            raise SuspendRun("pending", time.time(),
                             self.release_reason or "the worker is shutting down")
        if not self.unconsumed:
            return
        if kind == "step" and all(k.startswith(key + _NESTED) for k in self.unconsumed):
            return  # a step in flight at a crash runs again: its own state writes replay
        if asyncio.current_task() is not self.main_task:
            # Inside a fan-out branch: a sibling may still be on its way to the recorded
            # operations (its own non-durable awaits included), so judge at the end of the run.
            return
        await asyncio.sleep(0)  # let tasks the handler started reach their recorded steps
        if self.unconsumed and self.inflight <= 1:
            pending = sorted(self.unconsumed, key=lambda k: self.history[k].seq)
            raise NonDeterminismError(
                f"run {self.workflow_id}: the handler asked for {_describe(kind, key)}, which is "
                f"not in the recorded history, while recorded {self._describe_keys(pending)} "
                "has not been replayed yet; a workflow must ask for the same steps in the same "
                "order on every replay (deploy the previous code to finish in-flight runs, or "
                "restart the run)")

    def _describe_keys(self, keys: list[str]) -> str:
        return ", ".join(_describe(self.history[k].kind, k) for k in keys[:5])

    def check_deadline(self) -> None:
        """The whole-run timeout also holds across suspensions: a run resumed after its
        deadline fails (and compensates) at its first wait or new operation."""
        deadline = self.run.deadline_at
        if deadline is not None and time.time() >= deadline:
            limit = float(self.wf.options.get("timeout") or 0)
            raise WorkflowTimeoutError(
                f"Workflow timed out after {limit / 1000:g}s"
                + (f" (while running step '{self.current_step}')" if self.current_step else ""))

    def interrupt(self, status: str, wake_at: float | None) -> None:
        """Every wait loop calls this: a cancel stops the run here, a worker shutting down
        suspends it with the wait's own status and due time."""
        if self.cancel_reason is not None:
            raise CancelRun(self.cancel_reason)
        self.check_deadline()
        if self.engine.draining or self.release_reason is not None:
            raise SuspendRun(status, wake_at, self.release_reason or "the worker is shutting down")

    # -- records ---------------------------------------------------------------------------------
    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def event(self, type_: str, step: str | None = None, data: Any = None) -> None:
        """Queued; stored with the next commit."""
        self._pending_events.append(
            (time.time(), type_, step, None if data is None else self.engine.dumps_safe(data)))

    def log(self, level: str, message: str, data: Any) -> None:
        if self.unconsumed:
            return  # this line was already stored when the operation first ran
        rt = self.engine.runtime
        msg = rt.redact(str(message))
        enc = None if data is None else rt.redact(self.engine.dumps_safe(data))
        self._pending_logs.append((time.time(), level, msg, enc, self.current_step))
        _pylog.log(_LEVELS.get(level, logging.INFO), "[%s] %s", self.workflow_id, msg)

    async def commit(self, batch: Batch) -> None:
        """Write the batch with the queued events and logs, fenced by our ownership."""
        batch.owner = self.engine.owner
        if self._pending_events:
            batch.events.extend(self._pending_events)
            self._pending_events = []
        if self._pending_logs:
            batch.logs.extend(self._pending_logs)
            self._pending_logs = []
        try:
            await self.engine.committer.commit(self.workflow_id, batch)
        except LeaseLostError as e:
            # The only translation of the store's error into the control-flow signal.
            raise LeaseLost(str(e)) from None
        except Exception as e:
            raise StoreFault(self.engine.store.as_store_error(e)) from e

    def encode(self, value: Any, what: str, root: str = "value") -> str:
        return self.encode_value(value, what, root)[0]

    def encode_value(self, value: Any, what: str, root: str = "value") -> tuple[str, Any]:
        """The stored text, and the value a replay reads back from it (handed to the handler
        on the first run too, so that it sees the same value, of the same type, every time)."""
        try:
            return codec.dumps_value(value, root)
        except (TypeError, ValueError) as e:
            raise SerializationError(
                f"{what} cannot be stored: {e}; return {codec.SUPPORTED}") from None

    def add_compensation(self, seq: int, key: str, tag: str, result: Any,
                         rollback: Callable[..., Any], critical: bool) -> None:
        self.compensations.append((seq, key, tag, result, rollback, critical))

    # -- steps ----------------------------------------------------------------------------------
    async def step(self, tag: str, fn: Callable[[], Any], rollback: Callable[..., Any] | None,
                   allow: bool, n_retries: int, delay_ms: float, timeout_ms: float | None,
                   critical: bool, step_input: Any) -> Any:
        """Replay the recorded outcome of step `tag`, or run `fn` and commit its result.

        Every step of every run comes through here: the common case (a new step, no cancel,
        deadline, shutdown, preset, hook, observer or timeout) skips the calls that would
        find nothing to do, each guarded by the test that the skipped call starts with."""
        key = self.next_key(tag)
        rec = self.take(key, "step") if self.history else None
        if rec is not None and rec.status in _DONE:
            return self._replayed(rec, tag, rollback, critical)
        self.inflight += 1
        try:
            if rec is None and (self.unconsumed or self.cancel_reason is not None
                                or self.run.deadline_at is not None or self.engine.draining
                                or self.release_reason is not None):
                await self.check_new("step", key)
            if self.presets or self.engine.step_hook is not None:
                fn = self._intercept(tag, key, fn)
            task = asyncio.current_task()
            if task is not None:
                # Until its result is committed: settle() waits for it before compensating.
                self._step_tasks.add(task)
            try:
                self.current_step = tag
                started = time.time()
                attempts = 0
                # The handler's task has it set already (drive): set only where it is not.
                token = None if current_ctx.get() is self.ctx else current_ctx.set(self.ctx)
                obs = self.engine.runtime.observer
                keys: contextvars.Token[idempotency.CallKeys | None] | None = None
                try:
                    while True:
                        attempts += 1
                        if time.monotonic() >= self.lease_check_at:
                            await self.engine.confirm_lease(self)
                        seen = None if obs is None else _Attempt(obs, self.run, tag, key,
                                                                 attempts)
                        # Fresh per attempt: the n-th provider call gets the n-th key again.
                        set_keys = idempotency.current.set(
                            idempotency.CallKeys(self.workflow_id, key))
                        keys = keys or set_keys  # the first attempt's: reset() restores None
                        try:
                            if timeout_ms is None and threads.is_async(fn):
                                result = await fn()  # what _invoke does here, two frames less
                            else:
                                result = await _invoke(fn, timeout_ms, tag)
                            try:  # encode_value(), without building its message first
                                encoded, result = codec.dumps_value(result, "result")
                            except (TypeError, ValueError) as e:
                                raise SerializationError(
                                    f"Step '{tag}' returned a value that cannot be stored: "
                                    f"{e}; return {codec.SUPPORTED}") from None
                            if seen is not None:
                                seen.end("completed", None)
                            break
                        except Exception as e:
                            err: BaseException = e
                        except BaseException:
                            if seen is not None:
                                seen.end("interrupted", None)
                            raise
                        # Retries left are not used on an error no retry can fix.
                        permanent = not_retryable(err) if attempts <= n_retries else None
                        if seen is not None:
                            seen.end("retrying" if attempts <= n_retries and permanent is None
                                     else "failed", err)
                        if attempts <= n_retries and permanent is None:
                            self.event("step_retried", tag, {
                                "attempt": attempts, "error": self.engine.runtime.redact(str(err))})
                            await self.engine.clock.sleep(delay_ms / 1000)
                            continue
                        skipped = await self._step_failed(key, tag, err, attempts, started,
                                                          allow, critical, rollback, step_input,
                                                          permanent)  # raises unless allowed
                        self._step_over(tag)
                        return skipped
                finally:
                    if keys is not None:
                        idempotency.current.reset(keys)
                    if token is not None:
                        current_ctx.reset(token)
                # step_started/step_completed events are derived from this row when history is
                # read, so the common case is one single-statement commit.
                seq = self.next_seq()
                await self.commit(Batch(
                    steps=[StepRow(self.workflow_id, key, tag, "step", "completed", seq,
                                   attempts, None if step_input is None else
                                   self.engine.dumps_safe(step_input), encoded, None,
                                   started, time.time(), critical, rollback is not None)]))
                self._note_done(seq, key, tag, result, rollback, critical)
                self._step_over(tag)
                return result
            finally:
                if task is not None:
                    self._step_tasks.discard(task)
        finally:
            self.inflight -= 1

    def _step_over(self, tag: str) -> None:
        """A step ended and the run goes on: it is no longer the current step (a failure
        keeps it, which names the step the run failed in)."""
        if self.current_step == tag:
            self.current_step = None

    def in_step(self) -> bool:
        """True inside a running step's function (its task is the step's until it commits)."""
        return asyncio.current_task() in self._step_tasks

    def _intercept(self, tag: str, key: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        """A step about to run may be answered instead: a preset output of a resumed run
        (run context "presets", by key or tag), or the engine's step_hook (test mocks)."""
        for name in (key, tag):
            if name in self.presets:
                return _constant(self.presets[name])
        hook = self.engine.step_hook
        replacement = hook(self.ctx, tag, key, fn) if hook is not None else None
        return fn if replacement is None else replacement

    def _replayed(self, rec: StepRow, tag: str, rollback: Callable[..., Any] | None,
                  critical: bool) -> Any:
        if self._nested is None:
            self._nested = _nested_state(self.history)
        if self._nested:
            self._replay_nested(rec.step_key)
        if rec.status == "failed":
            # The same exception type and details as the first time, so a handler that
            # catches it decides the same way on replay.
            meta = json.loads(rec.meta or "{}")
            exc_type = (StepTimeoutError if meta.get("cause_type") == "StepTimeoutError"
                        else StepError)
            raise exc_type(rec.error or f"Step '{tag}' failed", step=tag, attempts=rec.attempts,
                           cause_type=meta.get("cause_type"), status=meta.get("status"),
                           retryable=meta.get("retryable"))
        if rec.status == "skipped":
            return None
        result = codec.loads(rec.result)
        self._note_done(rec.seq, rec.step_key, tag, result, rollback, critical)
        return result

    def _replay_nested(self, step_key: str) -> None:
        """The state a recorded step set inside its function, applied where the step was."""
        for row in self._nested.pop(step_key, ()) if self._nested else ():
            self.unconsumed.discard(row.step_key)
            self.state[row.tag] = codec.loads(row.result)

    def _note_done(self, seq: int, key: str, tag: str, result: Any,
                   rollback: Callable[..., Any] | None, critical: bool) -> None:
        self.steps[tag] = result
        self.completed[tag] = None  # a tag seen again keeps its first place
        if rollback is not None:
            self.compensations.append((seq, key, tag, result, rollback, critical))

    def _input_json(self, step_input: Any) -> str | None:
        return None if step_input is None else self.engine.dumps_safe(step_input)

    async def _step_failed(self, key: str, tag: str, err: BaseException, attempts: int,
                           started: float, allow: bool, critical: bool,
                           rollback: Callable[..., Any] | None, step_input: Any,
                           permanent: str | None = None) -> Any:
        """Record the failure; `permanent` says why retries that were left were not used."""
        message = _step_message(tag, err, attempts)
        if permanent is not None:
            message += f" (not retried: {permanent})"
        message = self.engine.runtime.redact(message)
        seq = self.next_seq()
        status = "skipped" if allow else "failed"
        cause = "ConnectorError" if isinstance(err, ConnectorError) else type(err).__name__
        http = err.status if isinstance(err, ConnectorError) else None
        retryable = err.retryable if isinstance(err, DuctworkError) else None
        meta: dict[str, Any] = {"cause_type": cause, "status": http}
        if retryable is not None:
            meta["retryable"] = retryable
        await self.commit(Batch(
            steps=[StepRow(self.workflow_id, key, tag, "step", status, seq, attempts,
                           self._input_json(step_input), None, message, started, time.time(),
                           critical, rollback is not None, meta=json.dumps(meta))]))
        if allow:
            self.log("warn", f"step '{tag}' failed and was allowed to fail: {message}", None)
            return None
        exc_type = StepTimeoutError if isinstance(err, StepTimeoutError) else StepError
        raise exc_type(message, step=tag, attempts=attempts, cause_type=cause,
                       status=http, retryable=retryable) from err

    async def settle(self, grace_s: float) -> None:
        """Before compensating, let steps still running in fan-out branches (a bare
        asyncio.gather does not cancel them) finish, so their results are compensated too;
        after the grace period they are cancelled."""
        me = asyncio.current_task()
        pending = {t for t in self._step_tasks if t is not me and not t.done()}
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=grace_s)
        for t in late:
            t.cancel()
        if late:
            await asyncio.wait(late)

    # -- durable timers, checkpoints, state -----------------------------------------------------
    async def sleep(self, ms: float) -> None:
        """Durable sleep: short ones wait here, long ones release the process until due."""
        key = self.next_key("@sleep")
        rec = self.take(key, "sleep")
        self.inflight += 1
        try:
            if rec is None:
                await self.check_new("sleep", key)
                wake_at = self.engine.clock.now() + ms / 1000
                self.event("sleep_started", None, {"duration_ms": ms, "wake_at": wake_at})
                await self.commit(Batch(steps=[StepRow(
                    self.workflow_id, key, "sleep", "sleep", "completed", self.next_seq(), 1,
                    None, None, None, time.time(), None, False, False,
                    meta=json.dumps({"wake_at": wake_at, "duration_ms": ms}))]))
            else:
                wake_at = float(json.loads(rec.meta or "{}").get("wake_at", 0))
            await self.wait_until(wake_at, "sleeping", f"sleep until {wake_at}")
        finally:
            self.inflight -= 1

    async def wait_until(self, wake_at: float, status: str, reason: str) -> None:
        engine = self.engine
        while True:
            remaining = wake_at - engine.clock.now()
            if remaining <= 0:
                return
            if not self.unconsumed:
                self.interrupt(status, wake_at)
            if remaining <= engine.inline_wait_s or self.inflight > 1:
                # Fan-out siblings are still running: wait here rather than suspend the run
                # (a cancel or a worker shutdown wakes the wait early).
                await engine.wait_for_wakeup(self.workflow_id, remaining)
                continue
            raise SuspendRun(status, wake_at, reason)

    async def checkpoint(self, name: str, metadata: Any) -> None:
        key = self.next_key(f"@checkpoint:{name}")
        rec = self.take(key, "checkpoint")
        if rec is None:
            await self.check_new("checkpoint", key)
            enc, metadata = self.encode_value(metadata, f"checkpoint '{name}' metadata",
                                              "metadata")
            seq = self.next_seq()
            self.event("checkpoint_created", name, metadata)
            await self.commit(Batch(steps=[StepRow(
                self.workflow_id, key, name, "checkpoint", "completed", seq, 1, None, enc, None,
                time.time(), time.time())]))
        else:
            seq, metadata = rec.seq, codec.loads(rec.result)
        self.checkpoint_name, self.checkpoint_data = name, metadata
        self.checkpoint_seq = seq

    async def set_state(self, key: str, value: Any) -> None:
        keys = idempotency.current.get()
        if keys is not None and not keys.role and keys.workflow_id == self.workflow_id:
            # Inside a step's function: keyed under the step, so that a replay that reuses
            # the step's recorded result (without running it) applies these with it.
            base = f"{keys.step_key}{_NESTED}{key}"
            n = self._occurrence.get(base, 0) + 1
            self._occurrence[base] = n
            jkey = base if n == 1 else f"{base}#{n}"
        else:
            jkey = self.next_key(f"@state:{key}")
        rec = self.take(jkey, "state")
        if rec is None:
            await self.check_new("state", jkey)
            enc, value = self.encode_value(value, f"state '{key}'")
            self.event("state_set", None, {"key": key})
            await self.commit(Batch(
                steps=[StepRow(self.workflow_id, jkey, key, "state", "completed",
                               self.next_seq(), 1, None, enc, None, time.time(), time.time())],
                state={key: enc}))
        else:
            value = codec.loads(rec.result)
        self.state[key] = value

    # -- signals --------------------------------------------------------------------------------
    async def wait_for_signal(self, names: list[str], timeout: Any) -> Any:
        key = self.next_key("@signal:" + "|".join(names))
        rec = self.take(key, "signal")
        if rec is not None and rec.status == "completed":
            return codec.loads(rec.result)
        if rec is not None and rec.status == "failed":
            raise SignalTimeoutError(rec.error or "signal wait timed out", signals=names)
        self.inflight += 1
        try:
            if rec is None:
                await self.check_new("signal", key)
                deadline = None if timeout is None else self.engine.clock.now() + to_ms(
                    timeout, "wait_for_signal timeout") / 1000
                self.event("signal_wait_started", None, {"signals": names, "deadline": deadline})
                await self.commit(Batch(steps=[StepRow(
                    self.workflow_id, key, names[0], "signal", "waiting", 0, 1, None, None, None,
                    time.time(), None, meta=json.dumps({"signals": names, "deadline": deadline}))]))
            else:
                deadline = json.loads(rec.meta or "{}").get("deadline")
            obs = self.engine.runtime.observer
            if obs is None:
                return await self._await_signal(key, names, deadline)
            wait = observe.call(obs.signal_wait_started, self.run, names)
            status = "interrupted"
            try:
                payload = await self._await_signal(key, names, deadline)
                status = "received"
                return payload
            except SignalTimeoutError:
                status = "timed_out"
                raise
            except SuspendRun:
                status = "suspended"
                raise
            finally:
                observe.call(obs.signal_wait_ended, self.run, wait, names, status)
        finally:
            self.inflight -= 1

    def _signal_at_claim(self, names: list[str]) -> SignalRow | None:
        """The oldest signal of `names` read with the claim, if any: a round trip saved when a
        signal brought the run back. Used once: later looks ask the store."""
        found, self.signals_at_claim = self.signals_at_claim, None
        return next((s for s in found or () if s.name in names), None)

    async def _await_signal(self, key: str, names: list[str], deadline: float | None) -> Any:
        engine = self.engine
        started_wait = time.monotonic()
        woken = engine.watch(self.workflow_id)
        try:
            return await self._look_and_wait(key, names, deadline, started_wait, woken)
        finally:
            engine.unwatch(self.workflow_id, woken)

    async def _look_and_wait(self, key: str, names: list[str], deadline: float | None,
                             started_wait: float, woken: asyncio.Event) -> Any:
        engine = self.engine
        store = engine.store
        while True:
            # Cleared before the look: a signal stored before this is found by it, one
            # stored after sets `woken` (its sender wakes the run) and the wait below
            # returns at once.
            woken.clear()
            if not self.unconsumed:
                self.interrupt("waiting", deadline)
            sig = self._signal_at_claim(names) or await store.find_signal(self.workflow_id,
                                                                           names)
            if sig is not None:
                payload = codec.loads(sig.payload)
                if len(names) > 1:
                    payload = ({**payload, "_signal": sig.name} if isinstance(payload, dict)
                               else {"payload": payload, "_signal": sig.name})
                self.event("signal_consumed", sig.name)
                await self.commit(Batch(
                    steps=[StepRow(self.workflow_id, key, sig.name, "signal", "completed",
                                   self.next_seq(), 1, None, codec.dumps(payload), None,
                                   sig.created_at, time.time())],
                    consume_signal=(sig.id, key)))
                return payload
            now = engine.clock.now()
            if deadline is not None and now >= deadline:
                msg = f"no signal {' or '.join(repr(n) for n in names)} arrived before the timeout"
                await self.commit(Batch(steps=[StepRow(
                    self.workflow_id, key, names[0], "signal", "failed", self.next_seq(), 1,
                    None, None, msg, None, now)]))
                raise SignalTimeoutError(msg, signals=names)
            waited = time.monotonic() - started_wait
            budget = engine.inline_wait_s - waited
            if budget <= 0 and self.inflight <= 1:
                raise SuspendRun("waiting", deadline, f"waiting for signal {names}")
            step = max(0.0, min(budget if budget > 0 else 1.0,
                                (deadline - now) if deadline is not None else 3600.0))
            await engine.clock.wait(woken, step)


class _Attempt:
    """One observed step attempt: its observer token and start time."""

    __slots__ = ("key", "n", "obs", "run", "t0", "tag", "token")

    def __init__(self, obs: Observer, run: RunRow, tag: str, key: str, n: int) -> None:
        self.obs, self.run, self.tag, self.key, self.n = obs, run, tag, key, n
        self.token = observe.call(obs.step_started, run, tag, key, n)
        self.t0 = time.monotonic()

    def end(self, status: str, error: BaseException | None) -> None:
        observe.call(self.obs.step_ended, self.run, self.token, self.tag, self.key, self.n,
                     status, error, time.monotonic() - self.t0)


async def _invoke(fn: Callable[[], Any], timeout_ms: float | None, tag: str) -> Any:
    """One attempt: a sync fn runs in a worker thread (threads.call), so that the timeout can
    give up on it while the loop serves the other runs."""
    if timeout_ms is None:
        return await threads.call(fn)
    bound = asyncio.timeout(timeout_ms / 1000)
    try:
        async with bound:
            return await threads.call(fn)
    except TimeoutError:
        if not bound.expired():  # the step's own TimeoutError (a socket's, say), not ours
            raise
        raise StepTimeoutError(f"timed out after {_fmt_ms(timeout_ms)}", step=tag) from None


def _constant(value: Any) -> Callable[[], Any]:
    async def preset() -> Any:  # async: returning a constant needs no worker thread
        return value

    return preset


def _fmt_ms(ms: float) -> str:
    return f"{ms / 1000:g}s" if ms >= 1000 else f"{ms:g}ms"


def _step_message(tag: str, err: BaseException, attempts: int) -> str:
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if isinstance(err, DuctworkError):
        cause = str(err)
    else:
        cause = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    return f"Step '{tag}' failed{tries}: {cause}"


def _describe(kind: str, key: str) -> str:
    if kind == "step":
        return f"step '{key}'"
    return f"{kind} '{key.lstrip('@')}'"


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "error": logging.ERROR}
