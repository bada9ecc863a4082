"""Cancelling and terminating runs, and a parent's close policy applied to its children."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from ductwork.errors import DuctworkError, RunNotFoundError
from ductwork.interpreter import codec
from ductwork.interpreter.result import rollback_report
from ductwork.store.protocol import ACTIVE, TERMINAL, Batch, RunRow

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine
    from ductwork.interpreter.result import ExecutionResult


class CancelRun(BaseException):
    """Stop a run at its next durable operation and compensate (BaseException on purpose)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def cancel_run(engine: Engine, workflow_id: str, reason: str, *,
                     wait: bool = True, timeout: float | None = None) -> dict[str, Any]:
    """Cancel a run and compensate its completed steps (status "cancelled").

    In this process: the run stops at its next durable operation (a wait is interrupted).
    Suspended, pending, or orphaned (dead owner): claimed and driven here, so the replay
    re-registers its rollbacks before CancelRun compensates them. Owned by another live
    process: the request is stored in the run's options and that owner's heartbeat picks it
    up; we return at once (status "cancelling") unless `timeout` says how long to wait."""
    store = engine.store
    run = await store.get_run(workflow_id)
    if run is None:
        raise RunNotFoundError(workflow_id)
    if run.status in TERMINAL:
        return await _summary(engine, workflow_id, reason)
    opts = codec.loads(run.options) or {}
    if not opts.get("cancel_requested"):
        opts.update(cancel_requested=True, cancel_reason=reason)
        t = time.time()
        fields: dict[str, Any] = {"options": codec.dumps(opts)}
        if run.owner is None:
            fields["wake_at"] = t
        ok = await store.update_run(workflow_id, fields, only_status=ACTIVE, events=[
            (t, "cancel_requested", None, engine.dumps_safe({"reason": reason}))])
        if not ok:  # it ended in the meantime
            return await _summary(engine, workflow_id, reason)
    reason = str(opts.get("cancel_reason") or reason)
    task = engine.tasks.get(workflow_id)
    journal = engine.journals.get(workflow_id)
    for _ in range(20):  # a task spawned a moment ago registers its journal on its first step
        if journal is not None or task is None or task.done():
            break
        await asyncio.sleep(0)
        journal = engine.journals.get(workflow_id)
    if journal is not None:
        journal.cancel_reason = journal.cancel_reason or reason
        engine.wake(workflow_id)
    elif task is None:
        task = await _drive_cancel(engine, run, reason)
    if task is not None and wait:
        await _wait_task(task, timeout)
    elif task is None and timeout is not None:
        await _wait_terminal(engine, workflow_id, timeout)
    return await _summary(engine, workflow_id, reason)


async def _drive_cancel(engine: Engine, run: RunRow, reason: str
                        ) -> asyncio.Task[ExecutionResult] | None:
    """Claim a run nobody live is driving and cancel it here; None if we cannot."""
    if run.owner is not None and not engine.is_due(run):
        return None  # a live process owns it: its heartbeat will see the request
    steps = await engine.store.load_steps(run.workflow_id)
    if steps and not engine.runtime.definitions.knows(run.product, run.tag):
        return None  # a worker that has the definition will compensate it
    dead = engine.dead_owners([run.owner] if run.owner else [])
    claimed = await engine.store.claim(run.workflow_id, engine.owner, engine.lease_s,
                                       steal_from=dead)
    if claimed is None:
        return None
    if not steps:
        # Nothing ran, so nothing to compensate or replay: end it without running any code.
        t = time.time()
        msg = engine.runtime.redact(f"Workflow cancelled: {reason}")
        await engine.store.commit(run.workflow_id, Batch(
            owner=engine.owner,
            run={"status": "cancelled", "error": msg, "finished_at": t, "owner": None,
                 "lease_until": None, "wake_at": None, "current_step": None},
            events=[(t, "workflow_cancelled", None, engine.dumps_safe({"error": msg}))]))
        await engine.notify_parent(claimed)
        return None
    return engine.spawn(claimed)


async def _wait_task(task: asyncio.Task[ExecutionResult], timeout: float | None) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
    except TimeoutError:
        pass
    except Exception:  # the run's own failure is reported through its status
        pass


async def _wait_terminal(engine: Engine, workflow_id: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < end:
        run = await engine.store.get_run(workflow_id)
        if run is None or run.status in TERMINAL:
            return
        await asyncio.sleep(min(delay, max(end - time.monotonic(), 0)))
        delay = min(delay * 2, 0.25)


async def _summary(engine: Engine, workflow_id: str, reason: str) -> dict[str, Any]:
    run = await engine.store.get_run(workflow_id)
    assert run is not None
    rb = rollback_report(codec.loads(run.rollback_result)) or {}
    status = run.status if run.status in TERMINAL else "cancelling"
    if status == "cancelled" and (run.error or "").startswith("Workflow cancelled: "):
        reason = (run.error or "")[len("Workflow cancelled: "):]  # why it was, if it was before
    return {"workflow_id": workflow_id, "cancelled": status in ("cancelled", "cancelling"),
            "status": status, "reason": reason,
            "rolled_back_steps": list(rb.get("rolled_back_steps") or [])
            if status == "cancelled" else [],
            "failed_rollbacks": list(rb.get("failed_steps") or [])
            if status == "cancelled" else []}


async def terminate_run(engine: Engine, workflow_id: str, reason: str) -> bool:
    """End a run at once without compensation (parent_close_policy "terminate"). Its owner, if
    any, loses the run at its next commit; its own children get their policies applied."""
    t = time.time()
    ok = await engine.store.update_run(
        workflow_id,
        {"status": "cancelled", "error": f"Workflow terminated: {reason}", "finished_at": t,
         "owner": None, "lease_until": None, "wake_at": None, "current_step": None},
        only_status=ACTIVE,
        events=[(t, "workflow_terminated", None, engine.dumps_safe({"reason": reason}))])
    if ok:
        journal = engine.journals.get(workflow_id)
        if journal is not None:  # driven here: stop it at its next durable point, no rollback
            journal.release_reason = f"terminated: {reason}"
            engine.wake(workflow_id)
        await close_children(engine, workflow_id, f"parent workflow {workflow_id} was terminated")
    return ok


async def poll_cancel_requests(engine: Engine) -> None:
    """Heartbeat hook: apply cancels asked for by other processes to runs we drive."""
    for wid, reason in await engine.store.cancel_requests(engine.owner):
        journal = engine.journals.get(wid)
        if journal is not None and journal.cancel_reason is None:
            journal.cancel_reason = reason
            engine.wake(wid)


async def close_children(engine: Engine, parent_id: str, reason: str) -> None:
    """Apply each active child's parent_close_policy."""
    kids, _ = await engine.store.list_runs(parent_id=parent_id, status=sorted(ACTIVE),
                                           limit=10_000)
    for kid in kids:
        policy = (codec.loads(kid.options) or {}).get("parent_close_policy", "terminate")
        try:
            if policy == "terminate":
                await terminate_run(engine, kid.workflow_id, reason)
            elif policy == "request_cancel":
                await cancel_run(engine, kid.workflow_id, reason, wait=False)
        except DuctworkError:
            continue  # one child's trouble must not keep the others running
