"""WorkflowTestEnv: run workflows in memory with a fake clock, step mocks and injected signals."""

from __future__ import annotations

import copy
import inspect
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ductwork.errors import ConfigurationError, RunNotFoundError
from ductwork.interpreter import codec
from ductwork.interpreter.result import ExecutionResult, WorkflowDef
from ductwork.store.protocol import ACTIVE, TERMINAL, RunRow, StepRow
from ductwork.testing.clock import FakeClock

if TYPE_CHECKING:
    from ductwork.app import Ductwork
    from ductwork.interpreter.context import WorkflowContext
    from ductwork.interpreter.engine import Engine

_UNSET: Any = object()
# A run that keeps waking up more often than this is looping on its own timers.
MAX_WAKEUPS = 10_000
# What assert_step(rollback=...) accepts, from the journal's rollback_status.
ROLLBACKS = ("rolled_back", "failed", "not_run")
ROLLBACK_OF = {"rolled_back": "rolled_back", "rollback_failed": "failed"}


def _exception(error: Any, tag: str) -> BaseException:
    if isinstance(error, BaseException):
        return error
    if isinstance(error, type) and issubclass(error, BaseException):
        return error(f"mocked failure of step '{tag}'")
    return RuntimeError(str(error))


@dataclass
class StepMock:
    """What `mock_step` installs: the step's function is replaced, the step is still journaled
    (so its result replays, retries still apply). Its rollback, when a later step fails, is
    answered too (it succeeds; `rollback_calls` lists the mocked results it was given), unless
    `run_rollback`: then the step's real rollback runs with the mocked result."""

    tag: str
    result: Any = None
    error: Any = None
    side_effect: Any = None
    workflow: str | None = None       # "product/tag": only runs of that workflow
    calls: list[dict[str, Any]] = field(default_factory=list)
    run_rollback: bool = False
    rollback_calls: list[Any] = field(default_factory=list)
    _effects: Iterator[Any] | None = None

    def __post_init__(self) -> None:
        if self.side_effect is not None and not callable(self.side_effect):
            self._effects = iter(list(self.side_effect))

    def applies(self, ctx: WorkflowContext) -> bool:
        return self.workflow is None or self.workflow == f"{ctx.product}/{ctx.workflow_tag}"

    def replacement(self, ctx: WorkflowContext, key: str) -> Callable[[], Any]:
        async def mocked() -> Any:
            self.calls.append({"workflow_id": ctx.workflow_id, "key": key,
                               "input": ctx.input.to_dict() if hasattr(ctx.input, "to_dict")
                               else ctx.input})
            if self._effects is not None:
                try:
                    item = next(self._effects)
                except StopIteration:
                    raise ConfigurationError(
                        f"mock_step('{self.tag}'): side_effect ran out after "
                        f"{len(self.calls) - 1} call(s)") from None
                if isinstance(item, BaseException) or (
                        isinstance(item, type) and issubclass(item, BaseException)):
                    raise _exception(item, self.tag)
                return copy.deepcopy(item)
            if self.side_effect is not None:
                fn = self.side_effect
                try:
                    takes = len(inspect.signature(fn).parameters)
                except (TypeError, ValueError):
                    takes = 0
                out = fn(ctx) if takes else fn()
                return await out if inspect.isawaitable(out) else out
            if self.error is not None:
                raise _exception(self.error, self.tag)
            return copy.deepcopy(self.result)

        return mocked

    def answered(self, ctx: WorkflowContext, key: str) -> bool:
        """Whether this mock gave the result of step `key` of this run."""
        return any(c["workflow_id"] == ctx.workflow_id and c["key"] == key for c in self.calls)

    def rollback_replacement(self) -> Callable[[Any], Any]:
        async def undo(step_result: Any) -> None:
            self.rollback_calls.append(copy.deepcopy(step_result))

        return undo


@dataclass
class RollbackMock:
    """What `mock_rollback` installs: the step's rollback is answered instead of run (it is
    still recorded as rolled back, or as failed with `error`); `calls` lists the step results
    it was given, one per time it ran."""

    tag: str
    result: Any = None
    error: Any = None
    workflow: str | None = None
    calls: list[Any] = field(default_factory=list)

    def applies(self, ctx: WorkflowContext) -> bool:
        return self.workflow is None or self.workflow == f"{ctx.product}/{ctx.workflow_tag}"

    def replacement(self) -> Callable[[Any], Any]:
        async def mocked(step_result: Any) -> Any:
            self.calls.append(copy.deepcopy(step_result))
            if self.error is not None:
                raise _exception(self.error, self.tag)
            return copy.deepcopy(self.result)

        return mocked


@dataclass
class _QueuedSignal:
    name: str
    payload: Any
    workflow_id: str | None


class WorkflowTestEnv:
    """An in-memory Ductwork for tests.

        async with WorkflowTestEnv() as env:
            @env.workflow(product="shop", tag="order")
            async def order(ctx): ...
            env.mock_step("charge", result={"id": "ch_1"})
            run = await env.execute("shop", "order", {"amount": 5})
            env.assert_steps(run, ["reserve", "charge"])

    Time is a FakeClock: a run that sleeps, waits for a signal with a timeout or waits between
    retries is moved forward at once (auto_advance=False leaves it suspended until advance())."""

    def __init__(self, *, specs: str | os.PathLike[str] | None = None, app: Ductwork | None = None,
                 env: str = "dev", product: str | None = None,
                 secrets: Mapping[str, str] | None = None,
                 environ: Mapping[str, str] | None = None, start: Any = None,
                 auto_advance: bool = True,
                 sandbox: str | os.PathLike[str] | None = None) -> None:
        from ductwork.app import Ductwork
        from ductwork.testing.sandbox import Sandbox

        self.clock = FakeClock(start)
        self.dw: Ductwork = Ductwork(specs=specs, store="sqlite://:memory:", secrets=secrets,
                                     environ=environ, inline_wait=0)
        self.default_env = env
        self.default_product = product
        self.auto_advance = auto_advance
        if sandbox is not None:
            self.dw.connectors.spec_hook = Sandbox(sandbox)
        self.mocks: dict[str, list[StepMock]] = {}
        self.rollback_mocks: dict[str, list[RollbackMock]] = {}
        self._ran: dict[str, int] = {}
        self._signals: list[_QueuedSignal] = []
        self._journals: dict[str, tuple[RunRow, list[StepRow]]] = {}
        self._engine_obj: Engine | None = None
        if app is not None:
            for wf in app.workflows.definitions():
                self._copy(wf)

    def _copy(self, wf: WorkflowDef) -> None:
        copied = self.dw.workflows.define(
            product=wf.product, tag=wf.tag, handler=wf.handler, name=wf.name,
            description=wf.description, options=wf.options,
            signals={**wf.signals, **wf.signal_models} or None, queries=wf.queries,
            envs=wf.envs, input_schema=wf.input_model or wf.input_schema, source=wf.source)
        # define() reads a plain empty list as "the product's envs"; a definition whose envs
        # were all declared inactive holds one, and must stay active nowhere here too.
        copied.envs = None if wf.envs is None else list(wf.envs)

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> WorkflowTestEnv:
        if self._engine_obj is None:
            engine = await self.dw._engine()
            engine.clock = self.clock
            engine.step_hook = self._hook
            engine.rollback_hook = self._rollback_hook
            self.clock.on_idle = self._deliver_to_waiting
            self._engine_obj = engine
        return self

    async def aclose(self) -> None:
        await self.dw.aclose()
        self._engine_obj = None

    async def __aenter__(self) -> WorkflowTestEnv:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def engine(self) -> Engine:
        if self._engine_obj is None:
            raise ConfigurationError("WorkflowTestEnv is not started: use `async with "
                                     "WorkflowTestEnv() as env:` (or await env.start())")
        return self._engine_obj

    # -- definitions -------------------------------------------------------------------------------
    def workflow(self, *, product: str | None = None, tag: str, **kw: Any
                 ) -> Callable[[Any], Any]:
        return self.dw.workflows.workflow(product=self._product(product), tag=tag, **kw)

    def define(self, *, product: str | None = None, tag: str, handler: Any, **kw: Any
               ) -> WorkflowDef:
        return self.dw.workflows.define(product=self._product(product), tag=tag,
                                        handler=handler, **kw)

    def _product(self, product: str | None) -> str:
        p = product or self.default_product
        if not p:
            raise ConfigurationError("name the product, or give WorkflowTestEnv(product=...)")
        return p

    # -- mocks ------------------------------------------------------------------------------------
    def mock_step(self, tag: str, result: Any = None, *, error: Any = None,
                  side_effect: Any = None, workflow: str | None = None,
                  run_rollback: bool = False) -> StepMock:
        """Answer every run of step `tag` with `result`, or raise `error` (an exception, an
        exception class or a message), or call/iterate `side_effect` (a function of () or (ctx),
        or a list of results and exceptions used one per attempt).

        The rollback of a step this mock answered is answered too (recorded as rolled back):
        the real one would undo, against real systems, work that was never done. With
        `run_rollback=True` the real rollback runs, given the mocked result; `mock_rollback`
        (tag) answers it in a chosen way (a failure), and wins over both."""
        if not isinstance(tag, str) or not tag:
            raise ConfigurationError("mock_step: the tag must be a non-empty string")
        if sum(x is not None for x in (error, side_effect)) > 1 or (
                result is not None and (error is not None or side_effect is not None)):
            raise ConfigurationError(f"mock_step('{tag}'): give one of result=, error=, "
                                     "side_effect=")
        try:
            codec.dumps(result, "result")
        except (TypeError, ValueError) as e:
            raise ConfigurationError(f"mock_step('{tag}'): result cannot be stored: {e}") from None
        if not isinstance(run_rollback, bool):
            raise ConfigurationError(f"mock_step('{tag}'): run_rollback must be True or False")
        mock = StepMock(tag, result, error, side_effect, workflow, run_rollback=run_rollback)
        self.mocks.setdefault(tag, []).insert(0, mock)
        return mock

    def mock_rollback(self, tag: str, result: Any = None, *, error: Any = None,
                      workflow: str | None = None) -> RollbackMock:
        """Answer the rollback of step `tag` instead of running it: it succeeds (returning
        `result`) or fails with `error` (an exception, an exception class or a message)."""
        if not isinstance(tag, str) or not tag:
            raise ConfigurationError("mock_rollback: the tag must be a non-empty string")
        if result is not None and error is not None:
            raise ConfigurationError(f"mock_rollback('{tag}'): give one of result=, error=")
        mock = RollbackMock(tag, result, error, workflow)
        self.rollback_mocks.setdefault(tag, []).insert(0, mock)
        return mock

    def reset(self) -> None:
        """Forget mocks, queued signals and call counts (runs stay in the store)."""
        self.mocks.clear()
        self.rollback_mocks.clear()
        self._ran.clear()
        self._signals.clear()

    def calls(self, tag: str) -> int:
        """How many times step `tag` was executed (not replayed); retries count once (a
        StepMock's own `calls` lists every attempt)."""
        return self._ran.get(tag, 0)

    def _hook(self, ctx: WorkflowContext, tag: str, key: str, fn: Callable[[], Any]
              ) -> Callable[[], Any] | None:
        self._ran[tag] = self._ran.get(tag, 0) + 1
        for mock in self.mocks.get(tag, []):
            if mock.applies(ctx):
                return mock.replacement(ctx, key)
        return None

    def _rollback_hook(self, ctx: WorkflowContext, tag: str, key: str,
                       fn: Callable[..., Any]) -> Callable[..., Any] | None:
        for mock in self.rollback_mocks.get(tag, []):
            if mock.applies(ctx):
                return mock.replacement()
        for step_mock in self.mocks.get(tag, []):
            if step_mock.answered(ctx, key):
                return None if step_mock.run_rollback else step_mock.rollback_replacement()
        return None

    # -- signals ----------------------------------------------------------------------------------
    def queue_signal(self, name: str, payload: Any = None, *, workflow_id: str | None = None
                     ) -> None:
        """Deliver `name` to the first run (or `workflow_id`) that waits for it."""
        self._signals.append(_QueuedSignal(name, payload, workflow_id))

    async def signal(self, workflow_id: str, name: str, payload: Any = None) -> ExecutionResult:
        """Send a signal now and let the run go on as far as it can; returns its result."""
        await self.start()
        await self.dw.workflows.signal(workflow_id, name, payload)
        return await self.result(workflow_id)

    async def _deliver(self, run: RunRow, names: list[str]) -> bool:
        for i, q in enumerate(self._signals):
            if q.name in names and q.workflow_id in (None, run.workflow_id):
                del self._signals[i]
                await self.dw.workflows.signal(run.workflow_id, q.name, q.payload)
                return True
        return False

    async def _deliver_to_waiting(self) -> None:
        """Called by the fake clock before it skips a wait: runs waiting inside a fan-out
        (which never suspend) get their queued signals too."""
        if not self._signals:
            return
        for wid in list(self.engine.tasks):
            names = await self._waiting_signals(wid)
            run = await self.engine.store.get_run(wid)
            if names and run is not None:
                await self._deliver(run, names)

    async def _waiting_signals(self, wid: str) -> list[str]:
        names: list[str] = []
        for s in await self.engine.store.load_steps(wid):
            if s.kind == "signal" and s.status == "waiting":
                names += json.loads(s.meta or "{}").get("signals", [])
        return names

    # -- running ----------------------------------------------------------------------------------
    async def execute(self, product: str | None = None, tag: str | None = None,
                      input: Any = None, *, env: str | None = None,
                      workflow_id: str | None = None, **kw: Any) -> ExecutionResult:
        """Run a workflow as far as it can go (past every timer when auto_advance is on)."""
        await self.start()
        if self.default_product and (tag is None or not isinstance(tag, str)):
            # execute("order", {...}) with WorkflowTestEnv(product="shop")
            if tag is not None:
                input = tag
            product, tag = self.default_product, product
        if not isinstance(tag, str):
            raise ConfigurationError("execute(): name the product and the workflow tag: "
                                     "execute('shop', 'order', {...})")
        res = await self.dw.workflows.execute(self._product(product), env or self.default_env,
                                              tag, input, workflow_id, **kw)
        return await self.result(res.workflow_id)

    async def result(self, workflow_id: str) -> ExecutionResult:
        """Drive the run (and its children) until it ends or waits for something only the
        test can give (a signal nobody queued, or time when auto_advance is off)."""
        await self.start()
        engine = self.engine
        for _ in range(MAX_WAKEUPS):
            task = engine.tasks.get(workflow_id)
            if task is not None:
                await task
                continue
            run = await engine.store.get_run(workflow_id)
            if run is None:
                raise RunNotFoundError(workflow_id)
            if run.status in TERMINAL or not await self._unblock(run):
                break
            claimed = await engine.store.claim(workflow_id, engine.owner, engine.lease_s)
            if claimed is None:
                break
            engine.spawn(claimed)
        else:
            raise ConfigurationError(f"run {workflow_id} woke up {MAX_WAKEUPS} times without "
                                     "ending: does it loop on a timer?")
        return await self._snapshot(workflow_id)

    async def _unblock(self, run: RunRow) -> bool:
        """Make a suspended run due if the test environment can; False when it must wait."""
        if run.owner is not None and run.owner != self.engine.owner:
            return False
        if run.status in ("pending", "running"):
            return True
        if run.status == "sleeping":
            if not self.auto_advance and (run.wake_at or 0) > self.clock.now():
                return False
            self.clock.advance_to(run.wake_at)
            return True
        if run.status != "waiting":
            return False
        kids, _ = await self.engine.store.list_runs(parent_id=run.workflow_id,
                                                    status=sorted(ACTIVE), limit=1000)
        if kids:
            for kid in kids:
                await self.result(kid.workflow_id)
            return True
        names = await self._waiting_signals(run.workflow_id)
        if names and await self.engine.store.find_signal(run.workflow_id, names) is not None:
            return True
        if names and await self._deliver(run, names):
            return True
        if run.wake_at is not None:
            if not self.auto_advance and run.wake_at > self.clock.now():
                return False
            self.clock.advance_to(run.wake_at)
            return True
        # A child that already ended (the parent was woken by it) or nothing to wait for.
        return not names and await self._waits_on_child(run)

    async def _waits_on_child(self, run: RunRow) -> bool:
        rows = await self.engine.store.load_steps(run.workflow_id)
        return any(s.kind == "child" and s.status == "waiting" for s in rows)

    async def advance(self, duration: Any) -> list[ExecutionResult]:
        """Move the clock forward and run everything that became due; their results."""
        await self.start()
        self.clock.advance(duration)
        out = []
        rows, _ = await self.engine.store.list_runs(status=["sleeping", "waiting"], limit=1000)
        for r in rows:
            if r.wake_at is not None and r.wake_at <= self.clock.now():
                out.append(await self.result(r.workflow_id))
        return out

    async def query(self, workflow_id: str, name: str) -> Any:
        return await self.dw.workflows.query(workflow_id, name)

    async def status(self, workflow_id: str) -> dict[str, Any]:
        return await self.dw.workflows.status(workflow_id)

    async def _snapshot(self, workflow_id: str) -> ExecutionResult:
        engine = self.engine
        run = await engine.store.get_run(workflow_id)
        if run is None:
            raise RunNotFoundError(workflow_id)
        steps = await engine.store.load_steps(workflow_id)
        self._journals[workflow_id] = (run, steps)
        return ExecutionResult.from_rows(run, steps)

    # -- assertions -------------------------------------------------------------------------------
    def _journal(self, run: ExecutionResult | str) -> tuple[RunRow, list[StepRow]]:
        wid = run if isinstance(run, str) else run.workflow_id
        if wid not in self._journals:
            raise ConfigurationError(f"run {wid} was not run through this WorkflowTestEnv "
                                     "(use env.execute / env.result / env.signal)")
        return self._journals[wid]

    def step_history(self, run: ExecutionResult | str) -> list[dict[str, Any]]:
        """The run's journal in order: every step, sleep, signal, checkpoint and state write."""
        _, steps = self._journal(run)
        return [{"key": s.step_key, "tag": s.tag, "kind": s.kind, "status": s.status,
                 "output": codec.loads(s.result), "error": s.error, "attempts": s.attempts,
                 "rollback_status": s.rollback_status}
                for s in sorted(steps, key=lambda s: (s.seq == 0, s.seq))]

    def _describe(self, run: ExecutionResult | str) -> str:
        row, _ = self._journal(run)
        lines = [f"run {row.workflow_id}: {row.status}"
                 + (f" (failed step {row.failed_step!r}: {row.error})" if row.error else "")]
        for h in self.step_history(run):
            if h["kind"] == "step":
                extra = f" - {h['error']}" if h["error"] else ""
                rb = f" [{h['rollback_status']}]" if h["rollback_status"] else ""
                lines.append(f"  {h['key']}: {h['status']}{rb}{extra}")
        return "\n".join(lines)

    def assert_status(self, run: ExecutionResult | str, status: str) -> None:
        row, _ = self._journal(run)
        actual = row.status if row.status in TERMINAL else "running"
        if status not in (actual, row.status):
            raise AssertionError(f"expected status {status!r}, got {row.status!r}\n"
                                 + self._describe(run))

    def assert_steps(self, run: ExecutionResult | str, expected: Iterable[str]) -> None:
        """The completed steps, in completion order, are exactly `expected`."""
        from ductwork.interpreter.result import completed_tags

        _, steps = self._journal(run)
        actual, want = completed_tags(steps), list(expected)
        if actual != want:
            raise AssertionError(f"completed steps differ\n  expected: {want}\n  actual:   "
                                 f"{actual}\n" + self._describe(run))

    def assert_step(self, run: ExecutionResult | str, tag: str, *, status: str | None = None,
                    output: Any = _UNSET, attempts: int | None = None,
                    error: str | None = None, rollback: str | None = None) -> None:
        """One step (`tag` or `tag#n`) was recorded with these fields (`error` is a substring;
        `rollback` is "rolled_back", "failed" or "not_run")."""
        rows = [h for h in self.step_history(run) if h["kind"] == "step"
                and (h["key"] == tag or (h["tag"] == tag and "#" not in tag))]
        if not rows:
            raise AssertionError(f"step {tag!r} was not recorded\n" + self._describe(run))
        h = rows[0]
        problems = []
        if status is not None and status != h["status"] and not (
                status == "rolled_back" and h["rollback_status"] == "rolled_back"):
            problems.append(f"status {h['status']!r}, expected {status!r}")
        if output is not _UNSET and output != h["output"]:
            problems.append(f"output {h['output']!r}, expected {output!r}")
        if attempts is not None and attempts != h["attempts"]:
            problems.append(f"{h['attempts']} attempt(s), expected {attempts}")
        if error is not None and error not in (h["error"] or ""):
            problems.append(f"error {h['error']!r} does not contain {error!r}")
        if rollback is not None:
            if rollback not in ROLLBACKS:
                raise ConfigurationError(f"assert_step(rollback={rollback!r}): one of "
                                         f"{', '.join(ROLLBACKS)}")
            actual = ROLLBACK_OF.get(h["rollback_status"], "not_run")
            if actual != rollback:
                problems.append(f"rollback {actual!r}, expected {rollback!r}")
        if problems:
            raise AssertionError(f"step {tag!r}: " + "; ".join(problems) + "\n"
                                 + self._describe(run))

    def assert_rolled_back(self, run: ExecutionResult | str,
                           expected: Iterable[str] | None = None) -> None:
        """The run was compensated; with `expected`, exactly these steps in rollback order
        (newest first)."""
        row, steps = self._journal(run)
        rb = codec.loads(row.rollback_result) or {}
        actual = list(rb.get("rolled_back_steps") or [
            s.tag for s in sorted(steps, key=lambda s: -s.seq)
            if s.rollback_status == "rolled_back"])
        if expected is None:
            if not actual:
                raise AssertionError("no step was rolled back\n" + self._describe(run))
            return
        want = list(expected)
        if actual != want:
            raise AssertionError(f"rolled-back steps differ\n  expected: {want}\n  actual:   "
                                 f"{actual}\n" + self._describe(run))

    def assert_not_run(self, tag: str) -> None:
        if self.calls(tag):
            raise AssertionError(f"step {tag!r} ran {self.calls(tag)} time(s); expected never")
