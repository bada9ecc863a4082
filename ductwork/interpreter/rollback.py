"""Saga compensation: the rollbacks of completed steps and children, newest first, each once."""

from __future__ import annotations

import functools
import inspect
import time
from typing import Any

from ductwork.connectors import idempotency
from ductwork.errors import DuctworkError
from ductwork.interpreter import codec, observe, threads
from ductwork.interpreter.journal import Journal, current_ctx
from ductwork.interpreter.result import rollback_report
from ductwork.store.protocol import Batch, StepRow


async def compensate(journal: Journal, strategy: str, reason: str) -> dict[str, Any]:
    """Run the registered rollbacks the strategy selects; a rollback already recorded (by an
    earlier attempt or a manual trigger_rollback) is reported, not run again."""
    entries = sorted(journal.compensations, key=lambda e: e[0], reverse=True)
    if strategy == "critical_only":
        entries = [e for e in entries if e[5]]
    elif strategy == "to_checkpoint":
        entries = [e for e in entries if e[0] > journal.checkpoint_seq]
    rolled: list[str] = []
    failed: list[str] = []
    errors: dict[str, str] = {}
    if entries:
        journal.event("rollback_started", None, {"reason": reason, "strategy": strategy})
    for _seq, key, tag, result, fn, _critical in entries:
        rec = journal.history.get(key)
        done = journal.rolled.get(key) or (rec.rollback_status if rec is not None else None)
        if done == "rolled_back":
            rolled.append(tag)
            continue
        if done == "rollback_failed":
            failed.append(tag)
            errors[tag] = (rec.rollback_error if rec is not None else None) or ""
            continue
        hook = journal.engine.rollback_hook
        if hook is not None:
            fn = hook(journal.ctx, tag, key, fn) or fn
        await journal.hold_lease()  # a stalled worker must not compensate a run it lost
        token = current_ctx.set(journal.ctx)
        obs = journal.engine.runtime.observer
        seen = None if obs is None else observe.call(obs.compensation_started, journal.run,
                                                     tag, key)
        keys = idempotency.current.set(idempotency.CallKeys(journal.workflow_id, key, "rollback"))
        try:
            try:
                await _call_rollback(fn, result)
            except BaseException as e:
                if obs is not None and not isinstance(e, Exception):
                    observe.call(obs.compensation_ended, journal.run, seen, tag, key,
                                 "interrupted", None)
                raise
            upd: dict[str, Any] = {"rollback_status": "rolled_back"}
            journal.event("step_rolled_back", tag)
            rolled.append(tag)
        except Exception as e:
            msg = journal.engine.runtime.redact(f"{type(e).__name__}: {e}" if not isinstance(
                e, DuctworkError) else str(e))
            upd = {"rollback_status": "rollback_failed", "rollback_error": msg}
            journal.event("rollback_failed", tag, {"error": msg})
            failed.append(tag)
            errors[tag] = msg
        finally:
            idempotency.current.reset(keys)
            current_ctx.reset(token)
        if obs is not None:
            observe.call(obs.compensation_ended, journal.run, seen, tag, key,
                         upd["rollback_status"], upd.get("rollback_error"))
        journal.rolled[key] = upd["rollback_status"]
        await journal.commit(Batch(step_updates=[(key, upd)]))
    return rollback_report({"success": not failed, "rolled_back_steps": rolled,
                            "failed_steps": failed, "errors": errors, "reason": reason,
                            "strategy": strategy})


async def trigger(journal: Journal, reason: str) -> dict[str, Any]:
    """ctx.trigger_rollback: compensate now, journaled so that a replay does not run the
    rollbacks again but returns the recorded outcome."""
    key = journal.next_key("@rollback")
    rec = journal.take(key, "rollback")
    if rec is not None:
        result = rollback_report(codec.loads(rec.result))
    else:
        await journal.check_new("rollback", key)
        strategy = journal.wf.options.get("rollback_strategy", "reverse_all")
        result = await compensate(journal, "reverse_all" if strategy == "none" else strategy,
                                  reason)
        await journal.commit(Batch(steps=[StepRow(
            journal.workflow_id, key, "rollback", "rollback", "completed", journal.next_seq(), 1,
            None, codec.dumps(result), None, time.time(), time.time())]))
    journal.manual_rollback = result
    return result


async def _call_rollback(fn: Any, result: Any) -> None:
    try:
        takes = len([p for p in inspect.signature(fn).parameters.values()
                     if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)])
    except (TypeError, ValueError):
        takes = 1
    # Like a step's function: a sync rollback runs in a worker thread, off the loop.
    await threads.call(functools.partial(fn, result) if takes else fn)
