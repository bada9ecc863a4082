"""Dispatched runs: the pending row a dispatch or schedule creates, and options.retries of one."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ductwork.interpreter import codec, observe
from ductwork.store.protocol import RunRow

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine


def pending_run(wid: str, product: str, tag: str, env: str, enc: str | None,
                opts: dict[str, Any], due: float, t: float, name: str | None,
                context: dict[str, Any] | None) -> RunRow:
    """A run left for a worker, due at `due`."""
    timeout = opts.get("timeout")
    return RunRow(
        workflow_id=wid, product=product, tag=tag, env=env, status="pending", input=enc,
        options=codec.dumps(opts),
        context=codec.dumps({"context": context}) if context else None,
        created_at=t, updated_at=t, wake_at=due,
        # The timeout counts from the scheduled time (schedule-to-close), so a run that
        # waited in a backlog does not get extra time.
        deadline_at=None if timeout is None else due + float(timeout) / 1000,
        name=name, queue=str(opts.get("queue", "default")),
        priority=int(opts.get("priority", 0)))


async def retry_failed_run(engine: Engine, run: RunRow) -> str | None:
    """options.retries of a dispatched run: a failed run is re-run as a new run
    f"{first_id}#{n}" (same input). Idempotent, so the worker's start-up sweep can repeat it
    for a run whose process died between the failure and this call."""
    opts = codec.loads(run.options) or {}
    if not opts.get("job") or not opts.get("retries"):
        return None
    cur = await engine.store.get_run(run.workflow_id)
    if cur is None or cur.status not in ("failed", "rolled_back"):
        return None
    attempt = int(opts.get("retry_attempt") or 1)
    if attempt > int(opts["retries"]):
        return None
    base = str(opts.get("retry_of") or run.workflow_id)
    new_id = f"{base}#{attempt + 1}"
    new_opts = {k: v for k, v in opts.items() if k not in ("cancel_requested", "cancel_reason")}
    new_opts.update(retry_of=base, retry_attempt=attempt + 1)
    t = time.time()
    extra = codec.loads(cur.context) or {}
    row = pending_run(new_id, cur.product, cur.tag, cur.env, cur.input, new_opts, t, t,
                      cur.name, extra.get("context"))
    observe.created(engine.runtime.observer, row)
    _, created = await engine.store.create_run(row, [
        (t, "workflow_queued", None, engine.dumps_safe(
            {"retry_of": run.workflow_id, "attempt": attempt + 1}))])
    if created:
        engine.nudge()
    return new_id
