"""ctx: the handler's one argument; every durable operation is journaled through it."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ductwork.durations import to_ms
from ductwork.errors import (
    ConfigurationError,
    ConnectorError,
    DuctworkError,
    InputFieldNotFoundError,
    NonDeterminismError,
    SerializationError,
    SignalTimeoutError,
    StepError,
    StepTimeoutError,
    WorkflowTimeoutError,
)
from ductwork.interpreter import codec
from ductwork.interpreter.components import Components
from ductwork.interpreter.transform import Transform
from ductwork.store.protocol import Batch, LeaseLostError, StepRow

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine
    from ductwork.interpreter.result import WorkflowDef
    from ductwork.store.protocol import RunRow

current_ctx: contextvars.ContextVar[WorkflowContext | None] = contextvars.ContextVar(
    "ductwork_ctx", default=None)
# Step identity inside ctx.foreach / ctx.parallel: "<item or branch>/" prefixes, so that the
# n-th occurrence of a tag means the same item on every replay however the branches interleave.
key_scope: contextvars.ContextVar[str] = contextvars.ContextVar("ductwork_key_scope",
                                                                default="")
_pylog = logging.getLogger("ductwork.workflow")
_DONE = frozenset({"completed", "skipped", "failed"})


class SuspendRun(BaseException):
    """Release the process: the run sleeps or waits until wake_at (BaseException so that a
    user's `except Exception` cannot swallow it)."""

    def __init__(self, status: str, wake_at: float | None, reason: str) -> None:
        super().__init__(reason)
        self.status, self.wake_at, self.reason = status, wake_at, reason


class LeaseLost(BaseException):
    """Another worker took the run over: stop at once (BaseException so that a user's
    `except Exception` around a step cannot swallow it and go on with side effects)."""


class CancelRun(BaseException):
    """Stop a run at its next durable operation and compensate (BaseException on purpose)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InputView(Mapping[str, Any]):
    """Read-only input with attribute and item access; a missing field names itself."""

    __slots__ = ("_data", "_path")

    def __init__(self, data: Mapping[str, Any], path: str = "") -> None:
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_path", path)

    def _wrap(self, key: str, value: Any) -> Any:
        if isinstance(value, Mapping):
            return InputView(value, f"{self._path}{key}.")
        return value

    def __getitem__(self, key: str) -> Any:
        try:
            return self._wrap(key, self._data[key])
        except (KeyError, TypeError):
            raise InputFieldNotFoundError(f"{self._path}{key}") from None

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        return self[key]

    def __setattr__(self, key: str, value: Any) -> None:
        raise ConfigurationError("ctx.input is read-only; keep changing data in ctx.set_state()")

    def __iter__(self) -> Any:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"InputView({dict(self._data)!r})"

    def get(self, key: str, default: Any = None) -> Any:
        return self._wrap(key, self._data[key]) if key in self._data else default

    def to_dict(self) -> dict[str, Any]:
        return dict(self._data)


class Log:
    """ctx.log: stored with the run (flushed with the next commit), mirrored to `logging`."""

    def __init__(self, ctx: WorkflowContext) -> None:
        self._ctx = ctx

    def _emit(self, level: str, message: str, data: Any = None) -> None:
        self._ctx._log(level, message, data)

    def debug(self, message: str, data: Any = None) -> None:
        self._emit("debug", message, data)

    def info(self, message: str, data: Any = None) -> None:
        self._emit("info", message, data)

    def warn(self, message: str, data: Any = None) -> None:
        self._emit("warn", message, data)

    warning = warn

    def error(self, message: str, data: Any = None) -> None:
        self._emit("error", message, data)


def _opt(options: Mapping[str, Any] | None, name: str, kw: Any, default: Any) -> Any:
    if kw is not None:
        return kw
    if options and name in options and options[name] is not None:
        return options[name]
    return default


class WorkflowContext(Components):
    """One per execution attempt of a run; the handler runs from the top on every attempt and
    recorded operations return their journaled outcome instead of running again."""

    def __init__(self, engine: Engine, run: RunRow, wf: WorkflowDef, history: list[StepRow],
                 flags: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self._engine = engine
        self._run = run
        self._wf = wf
        self.workflow_id = run.workflow_id
        self.workflow_tag = run.tag
        self.product = run.product
        self.env = run.env
        self.name = wf.name
        raw_input = codec.loads(run.input)
        self._raw_input = raw_input if raw_input is not None else {}
        self.input: Any = (InputView(self._raw_input) if isinstance(self._raw_input, Mapping)
                           else self._raw_input)
        extra = codec.loads(run.context) or {}
        self.context: Any = extra.get("context")
        self.session: Any = extra.get("session")
        self.auth: Any = extra.get("auth")
        fl = dict(flags or extra.get("flags") or {})
        # Outputs preset by resume/replay_from_step (under flags: child runs do not inherit).
        self._presets: dict[str, Any] = dict(fl.get("presets") or {})
        self.is_replay = bool(fl.get("is_replay"))
        self.is_restart = bool(fl.get("is_restart"))
        self.is_restored = bool(fl.get("is_restored"))
        self.replayed_from = fl.get("replayed_from")
        self.restarted_from = fl.get("restarted_from")
        self.resumed_from = fl.get("resumed_from")
        self.replay_reason = fl.get("replay_reason")
        self.restart_reason = fl.get("restart_reason")
        self.restored_checkpoint = fl.get("restored_checkpoint")
        self.original_input = fl.get("original_input", self._raw_input)
        self.log = Log(self)
        self.transform = Transform()
        self.checkpoint_name: str | None = None
        self.checkpoint_data: Any = None
        self.current_step: str | None = None
        # journal
        self._history: dict[str, StepRow] = {s.step_key: s for s in history}
        self._unconsumed: set[str] = {s.step_key for s in history if s.status in _DONE}
        self._occurrence: dict[str, int] = {}
        self._seq = max((s.seq for s in history), default=0)
        self._inflight = 0
        self._main_task: asyncio.Task[Any] | None = None
        self._step_tasks: set[asyncio.Task[Any]] = set()
        self._state: dict[str, Any] = {}
        self._steps: dict[str, Any] = {}
        self._completed: list[str] = []
        # (seq, key, tag, result, rollback, critical)
        self._done: list[tuple[int, str, str, Any, Callable[..., Any], bool]] = []
        self._checkpoint_seq = 0
        self._pending_logs: list[tuple[float, str, str, str | None, str | None]] = []
        self._pending_events: list[tuple[float, str, str | None, str | None]] = []
        self.manual_rollback: dict[str, Any] | None = None
        self._rolled: dict[str, str] = {}
        self.cancel_reason: str | None = None
        # Set when the run was taken away (terminated): stop at the next durable point without
        # compensating; the suspension's commit then finds the run no longer ours.
        self.release_reason: str | None = None

    # -- read-only views ----------------------------------------------------------------------
    @property
    def state(self) -> Mapping[str, Any]:
        return MappingProxyType(self._state)

    @property
    def steps(self) -> Mapping[str, Any]:
        return MappingProxyType(self._steps)

    @property
    def completed_steps(self) -> list[str]:
        return list(self._completed)

    @property
    def replaying(self) -> bool:
        """True while recorded operations remain to be replayed."""
        return bool(self._unconsumed)

    def default(self, value: Any, fallback: Any) -> Any:
        return fallback if value is None or value == "" else value

    def token(self, key: str) -> str:
        return self._engine.runtime.secrets.get(key)

    def variable(self, app: str, key: str) -> Any:
        return self._engine.runtime.connectors.resource_value(
            "action", app, self.product, self.env, "variables", key)

    def constant(self, app: str, key: str) -> Any:
        return self._engine.runtime.connectors.resource_value(
            "action", app, self.product, self.env, "constants", key)

    # -- journal helpers -------------------------------------------------------------------------
    def _next_key(self, base: str) -> str:
        scope = key_scope.get()
        if scope:
            base = scope + base
        n = self._occurrence.get(base, 0) + 1
        self._occurrence[base] = n
        return base if n == 1 else f"{base}#{n}"

    def _take(self, key: str, kind: str) -> StepRow | None:
        rec = self._history.get(key)
        if rec is None:
            return None
        if rec.kind != kind:
            raise NonDeterminismError(
                f"run {self.workflow_id}: replay asked for {_describe(kind, key)} but the "
                f"recorded history has {_describe(rec.kind, key)} there; a workflow must ask for "
                "the same operations on every replay (deploy the previous code to finish in-flight "
                "runs, or restart the run)")
        self._unconsumed.discard(key)
        return rec

    async def _check_new(self, kind: str, key: str) -> None:
        """A new operation while recorded ones remain unreplayed means the code diverged,
        unless sibling branches (gather/parallel) are about to replay them."""
        if self.cancel_reason is not None:
            raise CancelRun(self.cancel_reason)
        self._check_deadline()
        if self._engine.draining or self.release_reason is not None:
            # A worker shutting down: give the run back at this durable point, due at once.
            raise SuspendRun("pending", time.time(),
                             self.release_reason or "the worker is shutting down")
        if not self._unconsumed:
            return
        if asyncio.current_task() is not self._main_task:
            # Inside a fan-out branch: a sibling may still be on its way to the recorded
            # operations (its own non-durable awaits included), so judge at the end of the run.
            return
        await asyncio.sleep(0)  # let tasks the handler started reach their recorded steps
        if self._unconsumed and self._inflight <= 1:
            pending = sorted(self._unconsumed, key=lambda k: self._history[k].seq)
            raise NonDeterminismError(
                f"run {self.workflow_id}: the handler asked for {_describe(kind, key)}, which is "
                f"not in the recorded history, while recorded {_describe_keys(self, pending)} "
                "has not been replayed yet; a workflow must ask for the same steps in the same "
                "order on every replay (deploy the previous code to finish in-flight runs, or "
                "restart the run)")

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _flush_into(self, batch: Batch) -> Batch:
        if self._pending_events:
            batch.events.extend(self._pending_events)
            self._pending_events = []
        if self._pending_logs:
            batch.logs.extend(self._pending_logs)
            self._pending_logs = []
        return batch

    def _event(self, type_: str, step: str | None = None, data: Any = None) -> None:
        self._pending_events.append(
            (time.time(), type_, step, None if data is None else self._engine.dumps_safe(data)))

    async def _commit(self, batch: Batch) -> None:
        batch.owner = self._engine.owner
        try:
            await self._engine.store.commit(self.workflow_id, self._flush_into(batch))
        except LeaseLostError as e:
            raise LeaseLost(str(e)) from None

    def _check_deadline(self) -> None:
        """The whole-run timeout also holds across suspensions: a run resumed after its
        deadline fails (and compensates) at its first wait or new operation."""
        deadline = self._run.deadline_at
        if deadline is not None and time.time() >= deadline:
            limit = float(self._wf.options.get("timeout") or 0)
            raise WorkflowTimeoutError(
                f"Workflow timed out after {limit / 1000:g}s"
                + (f" (while running step '{self.current_step}')" if self.current_step else ""))

    def _log(self, level: str, message: str, data: Any) -> None:
        if self._unconsumed:
            return  # this line was already stored when the operation first ran
        msg = self._engine.runtime.redact(str(message))
        enc = None if data is None else self._engine.runtime.redact(self._engine.dumps_safe(data))
        self._pending_logs.append((time.time(), level, msg, enc, self.current_step))
        _pylog.log(_LEVELS.get(level, logging.INFO), "[%s] %s", self.workflow_id, msg)

    def _encode(self, value: Any, what: str) -> str:
        try:
            return codec.dumps(value)
        except (TypeError, ValueError) as e:
            raise SerializationError(
                f"{what} cannot be stored: {e}; return {codec.SUPPORTED}") from None

    # -- steps ----------------------------------------------------------------------------------
    async def step(
        self,
        tag: str,
        fn: Callable[[], Any],
        rollback: Callable[..., Any] | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        allow_fail: bool | None = None,
        retries: int | None = None,
        retry_delay: Any = None,
        timeout: Any = None,
        critical: bool | None = None,
        _input: Any = None,
    ) -> Any:
        """Run `fn` once durably; its result is committed before this returns."""
        if not isinstance(tag, str) or not tag or tag.startswith("@"):
            raise ConfigurationError(
                f"ctx.step: the tag must be a non-empty string not starting with '@', got {tag!r}")
        if not callable(fn):
            raise ConfigurationError(f"ctx.step('{tag}'): the second argument must be a function "
                                     f"(sync or async), got {type(fn).__name__}")
        if rollback is not None and not callable(rollback):
            raise ConfigurationError(f"ctx.step('{tag}'): rollback must be a function or None")
        if options is not None and not isinstance(options, Mapping):
            raise ConfigurationError(f"ctx.step('{tag}'): options must be a dict like "
                                     "{'allow_fail': True}")
        if options:
            unknown = set(options) - _STEP_OPTIONS
            if unknown:
                raise ConfigurationError(
                    f"ctx.step('{tag}'): unknown option(s) {sorted(unknown)}; "
                    f"known: {sorted(_STEP_OPTIONS)}")
        allow = bool(_opt(options, "allow_fail", allow_fail, False))
        n_retries = int(_opt(options, "retries", retries, 0))
        delay_ms = to_ms(_opt(options, "retry_delay", retry_delay, 1000),
                         f"step '{tag}' retry_delay")
        t_opt = _opt(options, "timeout", timeout, None)
        timeout_ms = None if t_opt is None else to_ms(t_opt, f"step '{tag}' timeout")
        is_critical = bool(_opt(options, "critical", critical, False))

        key = self._next_key(tag)
        rec = self._take(key, "step")
        if rec is not None and rec.status in _DONE:
            return self._replayed(rec, tag, rollback, is_critical)
        self._inflight += 1
        try:
            if rec is None:
                await self._check_new("step", key)
            fn = self._intercept(tag, key, fn)
            task = asyncio.current_task()
            if task is not None:
                self._step_tasks.add(task)
            try:
                return await self._run_step(key, tag, fn, rollback, allow, n_retries, delay_ms,
                                            timeout_ms, is_critical, _input)
            finally:
                if task is not None:
                    self._step_tasks.discard(task)
        finally:
            self._inflight -= 1

    def _intercept(self, tag: str, key: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        """A step about to run may be answered instead: a preset output of a resumed run
        (run context "presets", by key or tag), or the engine's step_hook (test mocks)."""
        for name in (key, tag):
            if name in self._presets:
                value = self._presets[name]
                return lambda: value
        hook = self._engine.step_hook
        replacement = hook(self, tag, key, fn) if hook is not None else None
        return fn if replacement is None else replacement

    def _replayed(self, rec: StepRow, tag: str, rollback: Callable[..., Any] | None,
                  critical: bool) -> Any:
        if rec.status == "failed":
            # The same exception type and details as the first time, so a handler that
            # catches it decides the same way on replay.
            meta = json.loads(rec.meta or "{}")
            exc_type = (StepTimeoutError if meta.get("cause_type") == "StepTimeoutError"
                        else StepError)
            raise exc_type(rec.error or f"Step '{tag}' failed", step=tag, attempts=rec.attempts,
                           cause_type=meta.get("cause_type"), status=meta.get("status"))
        if rec.status == "skipped":
            return None
        result = codec.loads(rec.result)
        self._note_done(rec.seq, rec.step_key, tag, result, rollback, critical)
        return result

    def _note_done(self, seq: int, key: str, tag: str, result: Any,
                   rollback: Callable[..., Any] | None, critical: bool) -> None:
        self._steps[tag] = result
        if tag not in self._completed:
            self._completed.append(tag)
        if rollback is not None:
            self._done.append((seq, key, tag, result, rollback, critical))

    async def _run_step(self, key: str, tag: str, fn: Callable[[], Any],
                        rollback: Callable[..., Any] | None, allow: bool, n_retries: int,
                        delay_ms: float, timeout_ms: float | None, critical: bool,
                        step_input: Any) -> Any:
        self.current_step = tag
        started = time.time()
        attempts = 0
        token = current_ctx.set(self)
        try:
            while True:
                attempts += 1
                try:
                    result = await _invoke(fn, timeout_ms, tag)
                    encoded = self._encode(result, f"Step '{tag}' returned a value that")
                    break
                except SerializationError as e:
                    err: BaseException = e
                    n_retries = 0  # the same code returns the same type: retrying cannot help
                except Exception as e:
                    err = e
                if attempts <= n_retries:
                    self._event("step_retried", tag, {
                        "attempt": attempts, "error": self._engine.runtime.redact(str(err))})
                    await self._engine.clock.sleep(delay_ms / 1000)
                    continue
                return await self._step_failed(key, tag, err, attempts, started, allow,
                                               critical, rollback, step_input)
        finally:
            current_ctx.reset(token)
        # step_started/step_completed events are derived from this row when history is read,
        # so the common case is one single-statement commit.
        seq = self._next_seq()
        await self._commit(Batch(
            steps=[StepRow(self.workflow_id, key, tag, "step", "completed", seq, attempts,
                           self._input_json(step_input), encoded, None, started, time.time(),
                           critical, rollback is not None)]))
        self._note_done(seq, key, tag, result, rollback, critical)
        return result

    def _input_json(self, step_input: Any) -> str | None:
        return None if step_input is None else self._engine.dumps_safe(step_input)

    async def _step_failed(self, key: str, tag: str, err: BaseException, attempts: int,
                           started: float, allow: bool, critical: bool,
                           rollback: Callable[..., Any] | None, step_input: Any) -> Any:
        message = self._engine.runtime.redact(_step_message(tag, err, attempts))
        seq = self._next_seq()
        status = "skipped" if allow else "failed"
        cause = "ConnectorError" if isinstance(err, ConnectorError) else type(err).__name__
        http = err.status if isinstance(err, ConnectorError) else None
        await self._commit(Batch(
            steps=[StepRow(self.workflow_id, key, tag, "step", status, seq, attempts,
                           self._input_json(step_input), None, message, started, time.time(),
                           critical, rollback is not None,
                           meta=json.dumps({"cause_type": cause, "status": http}))]))
        if allow:
            self.log.warn(f"step '{tag}' failed and was allowed to fail: {message}")
            return None
        exc_type = StepTimeoutError if isinstance(err, StepTimeoutError) else StepError
        raise exc_type(message, step=tag, attempts=attempts, cause_type=cause,
                       status=http) from err

    # -- durable timers, checkpoints, state -----------------------------------------------------
    async def sleep(self, duration: Any) -> None:
        """Durable sleep: short ones wait here, long ones release the process until due."""
        ms = to_ms(duration, "ctx.sleep")
        key = self._next_key("@sleep")
        rec = self._take(key, "sleep")
        self._inflight += 1
        try:
            if rec is None:
                await self._check_new("sleep", key)
                wake_at = self._engine.clock.now() + ms / 1000
                self._event("sleep_started", None, {"duration_ms": ms, "wake_at": wake_at})
                await self._commit(Batch(steps=[StepRow(
                    self.workflow_id, key, "sleep", "sleep", "completed", self._next_seq(), 1,
                    None, None, None, time.time(), None, False, False,
                    meta=json.dumps({"wake_at": wake_at, "duration_ms": ms}))]))
            else:
                wake_at = float(json.loads(rec.meta or "{}").get("wake_at", 0))
            await self._wait_until(wake_at, "sleeping", f"sleep until {wake_at}")
        finally:
            self._inflight -= 1

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

    async def _wait_until(self, wake_at: float, status: str, reason: str) -> None:
        while True:
            remaining = wake_at - self._engine.clock.now()
            if remaining <= 0:
                return
            if not self._unconsumed:
                self._interrupt(status, wake_at)
            if remaining <= self._engine.inline_wait_s or self._inflight > 1:
                # Fan-out siblings are still running: wait here rather than suspend the run
                # (a cancel or a worker shutdown wakes the wait early).
                await self._engine.wait_for_wakeup(self.workflow_id, remaining)
                continue
            raise SuspendRun(status, wake_at, reason)

    def _interrupt(self, status: str, wake_at: float | None) -> None:
        """Every wait loop calls this: a cancel stops the run here, a worker shutting down
        suspends it with the wait's own status and due time."""
        if self.cancel_reason is not None:
            raise CancelRun(self.cancel_reason)
        self._check_deadline()
        if self._engine.draining or self.release_reason is not None:
            raise SuspendRun(status, wake_at, self.release_reason or "the worker is shutting down")

    async def checkpoint(self, name: str, metadata: Any = None) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError("ctx.checkpoint: the name must be a non-empty string")
        key = self._next_key(f"@checkpoint:{name}")
        rec = self._take(key, "checkpoint")
        if rec is None:
            await self._check_new("checkpoint", key)
            enc = self._encode(metadata, f"checkpoint '{name}' metadata")
            seq = self._next_seq()
            self._event("checkpoint_created", name, metadata)
            await self._commit(Batch(steps=[StepRow(
                self.workflow_id, key, name, "checkpoint", "completed", seq, 1, None, enc, None,
                time.time(), time.time())]))
        else:
            seq, metadata = rec.seq, codec.loads(rec.result)
        self.checkpoint_name, self.checkpoint_data = name, metadata
        self._checkpoint_seq = seq

    async def set_state(self, key: str, value: Any) -> None:
        if not isinstance(key, str) or not key:
            raise ConfigurationError("ctx.set_state: the key must be a non-empty string")
        jkey = self._next_key(f"@state:{key}")
        rec = self._take(jkey, "state")
        if rec is None:
            await self._check_new("state", jkey)
            enc = self._encode(value, f"state '{key}'")
            self._event("state_set", None, {"key": key})
            await self._commit(Batch(
                steps=[StepRow(self.workflow_id, jkey, key, "state", "completed",
                               self._next_seq(), 1, None, enc, None, time.time(), time.time())],
                state={key: enc}))
        else:
            value = codec.loads(rec.result)
        self._state[key] = value

    async def get_state(self, key: str, default: Any = None) -> Any:
        return self._state.get(key, default)

    # -- signals --------------------------------------------------------------------------------
    async def wait_for_signal(self, name: str | Iterable[str], timeout: Any = None) -> Any:
        names = [name] if isinstance(name, str) else list(name)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigurationError("ctx.wait_for_signal: give a signal name or a list of names")
        known = self._wf.signals
        if known:
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ConfigurationError(
                    f"ctx.wait_for_signal: signal(s) {unknown} are not declared on workflow "
                    f"{self.product}/{self.workflow_tag} (declared: {sorted(known)})")
        key = self._next_key("@signal:" + "|".join(names))
        rec = self._take(key, "signal")
        if rec is not None and rec.status == "completed":
            return codec.loads(rec.result)
        if rec is not None and rec.status == "failed":
            raise SignalTimeoutError(rec.error or "signal wait timed out", signals=names)
        self._inflight += 1
        try:
            if rec is None:
                await self._check_new("signal", key)
                deadline = None if timeout is None else self._engine.clock.now() + to_ms(
                    timeout, "wait_for_signal timeout") / 1000
                self._event("signal_wait_started", None, {"signals": names, "deadline": deadline})
                await self._commit(Batch(steps=[StepRow(
                    self.workflow_id, key, names[0], "signal", "waiting", 0, 1, None, None, None,
                    time.time(), None, meta=json.dumps({"signals": names, "deadline": deadline}))]))
            else:
                deadline = json.loads(rec.meta or "{}").get("deadline")
            return await self._await_signal(key, names, deadline)
        finally:
            self._inflight -= 1

    async def _await_signal(self, key: str, names: list[str], deadline: float | None) -> Any:
        store = self._engine.store
        started_wait = time.monotonic()
        while True:
            if not self._unconsumed:
                self._interrupt("waiting", deadline)
            sig = await store.find_signal(self.workflow_id, names)
            if sig is not None:
                payload = codec.loads(sig.payload)
                if len(names) > 1:
                    payload = ({**payload, "_signal": sig.name} if isinstance(payload, dict)
                               else {"payload": payload, "_signal": sig.name})
                self._event("signal_consumed", sig.name)
                await self._commit(Batch(
                    steps=[StepRow(self.workflow_id, key, sig.name, "signal", "completed",
                                   self._next_seq(), 1, None, codec.dumps(payload), None,
                                   sig.created_at, time.time())],
                    consume_signal=(sig.id, key)))
                return payload
            now = self._engine.clock.now()
            if deadline is not None and now >= deadline:
                msg = f"no signal {' or '.join(repr(n) for n in names)} arrived before the timeout"
                await self._commit(Batch(steps=[StepRow(
                    self.workflow_id, key, names[0], "signal", "failed", self._next_seq(), 1,
                    None, None, msg, None, now)]))
                raise SignalTimeoutError(msg, signals=names)
            waited = time.monotonic() - started_wait
            budget = self._engine.inline_wait_s - waited
            if budget <= 0 and self._inflight <= 1:
                raise SuspendRun("waiting", deadline, f"waiting for signal {names}")
            step = max(0.0, min(budget if budget > 0 else 1.0,
                                (deadline - now) if deadline is not None else 3600.0))
            await self._engine.wait_for_wakeup(self.workflow_id, step)

    # -- rollback -------------------------------------------------------------------------------
    async def trigger_rollback(self, reason: str = "") -> dict[str, Any]:
        """Run the rollbacks now (for rollback_strategy 'none' and manual compensation)."""
        key = self._next_key("@rollback")
        rec = self._take(key, "rollback")
        if rec is not None:
            result = codec.loads(rec.result)
        else:
            await self._check_new("rollback", key)
            strategy = self._wf.options.get("rollback_strategy", "reverse_all")
            result = await self._engine.rollback(self, "reverse_all" if strategy == "none"
                                                 else strategy, reason)
            await self._commit(Batch(steps=[StepRow(
                self.workflow_id, key, "rollback", "rollback", "completed", self._next_seq(), 1,
                None, codec.dumps(result), None, time.time(), time.time())]))
        self.manual_rollback = result
        return dict(result)

    # -- fan-out --------------------------------------------------------------------------------
    async def parallel(self, branches: Iterable[Callable[[], Awaitable[Any]] | Awaitable[Any]]
                       ) -> list[Any]:
        """Run branches concurrently; results in branch order. A failure cancels the others.
        Steps inside branch j are identified as "b<j>/<tag>"."""
        outer = key_scope.get()

        async def branch(j: int, b: Callable[[], Awaitable[Any]] | Awaitable[Any]) -> Any:
            key_scope.set(f"{outer}b{j}/")
            return await (b() if callable(b) else b)

        return await _gather_all([branch(j, b) for j, b in enumerate(branches)])

    async def foreach(self, items: Iterable[Any], fn: Callable[..., Awaitable[Any]], *,
                      concurrency: int = 10) -> list[Any]:
        """fn(item) or fn(item, index) for each item, at most `concurrency` at a time.
        Steps inside item i are identified as "<i>/<tag>"."""
        items = list(items)
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigurationError("ctx.foreach: concurrency must be an integer >= 1")
        takes_index = _arity(fn) >= 2
        sem = asyncio.Semaphore(concurrency)
        outer = key_scope.get()

        async def one(i: int, item: Any) -> Any:
            async with sem:
                key_scope.set(f"{outer}{i}/")
                return await (fn(item, i) if takes_index else fn(item))

        return await _gather_all([one(i, it) for i, it in enumerate(items)])

    async def workflow(self, child_id: str, tag: str, input: Any = None, **options: Any) -> Any:
        """Run a child workflow durably and return its output (see the lifecycle docs)."""
        return await self._engine.child_workflow(self, child_id, tag, input, **options)


async def _gather_all(coros: list[Awaitable[Any]]) -> list[Any]:
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               and p.default is p.empty)


async def _invoke(fn: Callable[[], Any], timeout_ms: float | None, tag: str) -> Any:
    if timeout_ms is None:
        result = fn()
        if inspect.isawaitable(result):
            result = await result
        return result
    seconds = timeout_ms / 1000
    try:
        async with asyncio.timeout(seconds):
            if inspect.iscoroutinefunction(fn):
                return await fn()
            # A sync function can only be bounded from another thread.
            result = await asyncio.to_thread(contextvars.copy_context().run, fn)
            if inspect.isawaitable(result):
                result = await result
            return result
    except TimeoutError:
        raise StepTimeoutError(f"timed out after {_fmt_ms(timeout_ms)}", step=tag) from None


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


def _describe_keys(ctx: WorkflowContext, keys: list[str]) -> str:
    return ", ".join(_describe(ctx._history[k].kind, k) for k in keys[:5])


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "error": logging.ERROR}
_STEP_OPTIONS = frozenset({"allow_fail", "retries", "retry_delay", "timeout", "critical"})
