"""Child workflows (ctx.workflow) and what a parent's end does to its children."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ductwork.errors import (
    ChildWorkflowError,
    ConfigurationError,
    NonDeterminismError,
)
from ductwork.interpreter import codec, observe
from ductwork.interpreter.cancel import cancel_run, close_children
from ductwork.interpreter.dispatched import retry_failed_run
from ductwork.interpreter.journal import SuspendRun
from ductwork.store.protocol import TERMINAL, Batch, RunRow, StepRow
from ductwork.util.durations import to_ms
from ductwork.util.suggest import did_you_mean

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine
    from ductwork.interpreter.journal import Journal
    from ductwork.interpreter.result import WorkflowDef

POLICIES = ("terminate", "abandon", "request_cancel")


class ChildWait(SuspendRun):
    """The parent gives up its process while a child runs. The engine re-checks the child once
    the suspension is committed, so a child that ended in between still wakes the parent."""

    def __init__(self, wake_at: float | None, child_run_id: str) -> None:
        super().__init__("waiting", wake_at, f"waiting for child workflow {child_run_id}")
        self.child_run_id = child_run_id


# -- ctx.workflow -------------------------------------------------------------------------------
async def run_child(journal: Journal, child_id: str, tag: str, input: Any = None, *,
                    timeout: Any = None, retries: int = 0,
                    parent_close_policy: str = "terminate", idempotency_key: str | None = None,
                    product: str | None = None, env: str | None = None,
                    rollback: Callable[..., Any] | None = None, critical: bool = False) -> Any:
    """Start (or find) the child run, wait for it, return its output or raise
    ChildWorkflowError. Journaled in the parent under "@child:<child_id>". `rollback`, like a
    step's, compensates the completed child (called with its output) if the parent fails."""
    where = f"ctx.workflow({child_id!r})"
    if not isinstance(child_id, str) or not child_id:
        raise ConfigurationError(f"ctx.workflow: child_id must be a non-empty string, "
                                 f"got {child_id!r}")
    if not isinstance(tag, str) or not tag:
        raise ConfigurationError(f"{where}: the workflow tag must be a non-empty string")
    if parent_close_policy not in POLICIES:
        raise ConfigurationError(
            f"{where}: parent_close_policy {parent_close_policy!r} is not one of "
            f"{', '.join(POLICIES)}" + did_you_mean(str(parent_close_policy), POLICIES,
                                                    prefix="; "))
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigurationError(f"{where}: retries must be a whole number >= 0")
    timeout_ms = None if timeout is None else to_ms(timeout, f"{where} timeout")
    product = product or journal.run.product
    env = env or journal.run.env
    engine = journal.engine
    journal.parent = True  # its end needs the parent-close query

    key = journal.next_key(f"@child:{child_id}")
    rec = journal.take(key, "child")
    meta: dict[str, Any] = json.loads(rec.meta or "{}") if rec is not None else {}
    if rec is not None and (meta.get("product"), meta.get("tag")) != (product, tag):
        raise NonDeterminismError(
            f"run {journal.workflow_id}: replay asked for child '{child_id}' of workflow "
            f"{product}/{tag}, but the recorded history started {meta.get('product')}/"
            f"{meta.get('tag')} there; deploy the previous code to finish in-flight runs, or "
            "restart the run")
    if rollback is not None and not callable(rollback):
        raise ConfigurationError(f"{where}: rollback must be a function or None")
    if rec is not None and rec.status == "completed":
        out = codec.loads(rec.result)
        if rollback is not None:
            journal.add_compensation(rec.seq, key, child_id, out, rollback, critical)
        return out
    if rec is not None and rec.status == "failed":
        raise _child_error(child_id, meta, rec.error)
    # Checked only when the child may still have to start: a replay of a finished child does
    # not need its definition any more.
    defs = engine.runtime.definitions
    wf = defs.get(product, tag)
    defs.check_env(wf, env)
    data = {} if input is None else input
    data = defs.validate_input(wf, data)  # with the schema's defaults filled in
    enc = journal.encode(data, f"{where} input", "input")
    journal.inflight += 1
    try:
        starter = _Starter(engine, journal, wf, env, enc, parent_close_policy, timeout_ms,
                           idempotency_key is not None)
        if rec is None:
            await journal.check_new("child", key)
            base = (f"{product}:{tag}:{idempotency_key}" if idempotency_key
                    else f"{journal.workflow_id}:{child_id}")
            meta = {"child_id": child_id, "product": product, "tag": tag, "env": env,
                    "base": base, "run_id": base, "attempt": 1, "retries": retries,
                    "policy": parent_close_policy, "started": time.time()}
            meta["deadline"] = await starter.start(base)
            journal.event("child_workflow_started", child_id, {"workflow_id": base, "tag": tag})
            await journal.commit(Batch(steps=[StepRow(
                journal.workflow_id, key, child_id, "child", "waiting", 0, 1, enc, None, None,
                meta["started"], None, meta=json.dumps(meta))]))
        out = await _wait(engine, journal, key, meta, starter)
        if rollback is not None:
            journal.add_compensation(int(meta["seq"]), key, child_id, out, rollback, critical)
        return out
    finally:
        journal.inflight -= 1


class _Starter:
    """Creates one attempt of a child run (idempotently) and starts it here when possible."""

    def __init__(self, engine: Engine, journal: Journal, wf: WorkflowDef, env: str,
                 enc: str, policy: str, timeout_ms: float | None, shared: bool) -> None:
        self.engine, self.journal, self.wf, self.env, self.enc = engine, journal, wf, env, enc
        self.policy, self.timeout_ms, self.shared = policy, timeout_ms, shared
        limits = [float(v) for v in (timeout_ms, wf.options.get("timeout")) if v is not None]
        self.limit_ms: float | None = min(limits) if limits else None

    async def start(self, run_id: str) -> float | None:
        """Create the run unless it exists; return its deadline (epoch seconds) or None."""
        engine, journal, wf = self.engine, self.journal, self.wf
        t = time.time()
        opts: dict[str, Any] = dict(wf.options)
        opts["parent_close_policy"] = self.policy
        if self.limit_ms is not None:
            opts["timeout"] = self.limit_ms
        deadline = None if self.limit_ms is None else t + self.limit_ms / 1000
        here = not engine.draining
        parent_extra = codec.loads(journal.run.context) or {}
        parent_extra.pop("flags", None)
        parent_extra.pop("trace", None)  # a child's trace context is its own (run_created)
        run = RunRow(
            workflow_id=run_id, product=wf.product, tag=wf.tag, env=self.env,
            status="running" if here else "pending", input=self.enc, options=codec.dumps(opts),
            context=codec.dumps(parent_extra) if parent_extra else None,
            parent_id=journal.workflow_id, created_at=t, updated_at=t,
            started_at=t if here else None, wake_at=None if here else t, deadline_at=deadline,
            owner=engine.owner if here else None,
            lease_until=t + engine.lease_s if here else None, attempt=1 if here else 0,
            name=wf.name, queue=str(wf.options.get("queue", "default")),
            priority=int(wf.options.get("priority", 0)))
        observe.created(engine.runtime.observer, run)
        stored, created = await engine.store.create_run(run, [
            (t, "workflow_started", None,
             engine.dumps_safe({"parent_id": journal.workflow_id}))])
        if created:
            if here:
                engine.spawn(stored, fresh=True)
            return deadline
        if (stored.product, stored.tag) != (wf.product, wf.tag) or (
                stored.parent_id != journal.workflow_id and not self.shared):
            raise ConfigurationError(
                f"ctx.workflow: workflow id {run_id!r} already belongs to another run "
                f"({stored.product}/{stored.tag}, parent {stored.parent_id}); give the child "
                "another child_id")
        return stored.deadline_at


async def _wait(engine: Engine, journal: Journal, key: str, meta: dict[str, Any],
                starter: _Starter) -> Any:
    # Listened to before each look at the child (engine.watch): its end wakes the parent.
    woken = engine.watch(journal.workflow_id)
    try:
        return await _watch_child(engine, journal, key, meta, starter, woken)
    finally:
        engine.unwatch(journal.workflow_id, woken)


async def _watch_child(engine: Engine, journal: Journal, key: str, meta: dict[str, Any],
                       starter: _Starter, woken: asyncio.Event) -> Any:
    store = engine.store
    began = time.monotonic()
    delay = 0.005
    while True:
        woken.clear()
        deadline = meta.get("deadline") if not meta.get("timed_out") else None
        if not journal.unconsumed:
            journal.interrupt("waiting", deadline)
        child = await store.get_run(meta["run_id"])
        if child is None:  # the parent crashed between journaling the child and creating it
            await starter.start(meta["run_id"])
            continue
        if child.status in TERMINAL:
            if child.status == "completed":
                return await _record_done(journal, key, meta, child, starter.enc)
            retryable = child.status != "cancelled" or meta.get("timed_out")
            if retryable and meta["attempt"] <= meta["retries"]:
                await _next_attempt(journal, key, meta, child, starter)
                began = time.monotonic()
                continue
            await _record_failed(journal, key, meta, child, starter.enc)  # raises
        now = time.time()
        if deadline is not None and now >= deadline:
            meta["timed_out"] = True
            await journal.commit(Batch(step_updates=[(key, {"meta": json.dumps(meta)})]))
            await cancel_run(engine, child.workflow_id,
                             f"timed out after {(starter.limit_ms or 0) / 1000:g}s", wait=False)
            continue
        if child.workflow_id not in engine.tasks:
            await _adopt(engine, child)
        budget = engine.inline_wait_s - (time.monotonic() - began)
        if budget <= 0 and journal.inflight <= 1:
            wake = deadline
            if child.owner is None and child.wake_at is not None and child.wake_at > now:
                # Wake with the child: whoever resumes the parent (even a result() call) then
                # drives the child here too.
                wake = child.wake_at if wake is None else min(wake, child.wake_at)
            raise ChildWait(wake, child.workflow_id)
        pause = delay if budget <= 0 else min(delay, budget)
        if deadline is not None:
            pause = min(pause, max(deadline - now, 0.001))
        await engine.clock.wait(woken, pause)
        delay = min(delay * 2, 0.25)


async def _adopt(engine: Engine, child: RunRow) -> None:
    """Drive a due, unowned child (or one whose owner died) in this process."""
    if engine.draining:
        return
    if not engine.runtime.definitions.knows(child.product, child.tag):
        return
    if not engine.is_due(child):
        return
    dead = engine.dead_owners([child.owner] if child.owner else [])
    claimed = await engine.store.claim(child.workflow_id, engine.owner, engine.lease_s,
                                       steal_from=dead)
    if claimed is not None:
        engine.spawn(claimed)


async def _next_attempt(journal: Journal, key: str, meta: dict[str, Any], child: RunRow,
                        starter: _Starter) -> None:
    meta["attempt"] += 1
    meta.pop("timed_out", None)
    meta["run_id"] = f"{meta['base']}#{meta['attempt']}"
    journal.event("child_workflow_retried", meta["child_id"],
                  {"failed": child.workflow_id, "status": child.status, "error": child.error,
                   "workflow_id": meta["run_id"]})
    # Journal the new attempt first: a crash before the run exists re-creates it on replay.
    await journal.commit(Batch(step_updates=[(key, {"meta": json.dumps(meta),
                                                      "attempts": meta["attempt"]})]))
    meta["deadline"] = await starter.start(meta["run_id"])
    await journal.commit(Batch(step_updates=[(key, {"meta": json.dumps(meta)})]))


async def _record_done(journal: Journal, key: str, meta: dict[str, Any],
                       child: RunRow, enc: str) -> Any:
    journal.event("child_workflow_completed", meta["child_id"],
                  {"workflow_id": child.workflow_id})
    seq = journal.next_seq()
    await journal.commit(Batch(steps=[StepRow(
        journal.workflow_id, key, meta["child_id"], "child", "completed", seq,
        meta["attempt"], enc, child.output, None, meta.get("started"),
        time.time(), meta=json.dumps(meta))]))
    meta["seq"] = seq  # in memory only: where the child sits in the rollback order
    return codec.loads(child.output)


async def _record_failed(journal: Journal, key: str, meta: dict[str, Any],
                         child: RunRow, enc: str) -> None:
    deadline = meta.get("deadline")
    timed_out = meta.get("timed_out") or (
        deadline is not None and child.finished_at is not None and child.finished_at >= deadline)
    meta["child_status"] = "timed_out" if timed_out else child.status
    meta["child_error"] = child.error
    err = _child_error(meta["child_id"], meta, None)
    journal.event("child_workflow_failed", meta["child_id"],
                  {"workflow_id": child.workflow_id, "status": child.status, "error": child.error})
    await journal.commit(Batch(steps=[StepRow(
        journal.workflow_id, key, meta["child_id"], "child", "failed", journal.next_seq(),
        meta["attempt"], enc, None, str(err), meta.get("started"),
        time.time(), meta=json.dumps(meta))]))
    raise err


def _child_error(child_id: str, meta: dict[str, Any], recorded: str | None
                 ) -> ChildWorkflowError:
    status = str(meta.get("child_status") or "failed")
    attempts = int(meta.get("attempt") or 1)
    if recorded is None:
        what = "timed out" if status == "timed_out" else (
            "was " + status.replace("_", " ") if status in ("cancelled", "rolled_back")
            else status)
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        recorded = (f"Child workflow '{child_id}' ({meta.get('product')}/{meta.get('tag')}, "
                    f"run {meta.get('run_id')}) {what}{tries}"
                    + (f": {meta['child_error']}" if meta.get("child_error") else ""))
    return ChildWorkflowError(recorded, step=child_id, workflow_id=str(meta.get("run_id")),
                              child_status=status, child_error=meta.get("child_error"),
                              attempts=attempts)


# -- engine hooks -------------------------------------------------------------------------------
async def on_run_end(engine: Engine, run: RunRow) -> None:
    """Called by the engine after a run's terminal status is committed."""
    journal = engine.journals.get(run.workflow_id)
    if journal is None or journal.parent or (journal.history and any(
            s.kind == "child" for s in journal.history.values())):
        await close_children(engine, run.workflow_id,
                             f"parent workflow {run.workflow_id} ended")
        nudge(engine)  # a child told to stop may be due now (a retry nudges by itself)
    if run.options is not None:  # else not a dispatched run: nothing to retry
        await retry_failed_run(engine, run)


async def after_suspend(engine: Engine, run: RunRow, s: SuspendRun) -> None:
    """Called after a suspension is committed: a child that ended, or a cancel that arrived,
    between the decision to suspend and its commit must not be lost."""
    wake = False
    if isinstance(s, ChildWait):
        child = await engine.store.get_run(s.child_run_id)
        wake = child is None or child.status in TERMINAL
    if not wake:
        cur = await engine.store.get_run(run.workflow_id)
        wake = cur is not None and cur.owner is None and bool(
            (codec.loads(cur.options) or {}).get("cancel_requested"))
    if wake:
        await engine.store.update_run(run.workflow_id, {"wake_at": time.time()},
                                      only_status=frozenset({s.status}))
        nudge(engine)


def nudge(engine: Engine) -> None:
    """Tell a worker in this process that something may have become due."""
    engine.nudge()
