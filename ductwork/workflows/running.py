"""Starting runs and driving them: execute(), result(), recover(), signal()."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ductwork.errors import ConfigurationError, DuctworkError, RunNotFoundError
from ductwork.interpreter import codec, observe
from ductwork.interpreter.dispatched import retry_failed_run
from ductwork.interpreter.result import ExecutionResult
from ductwork.store.protocol import TERMINAL, RunRow
from ductwork.util.durations import to_ms
from ductwork.util.suggest import did_you_mean
from ductwork.workflows.inputs import check_workflow_id, new_workflow_id, prepare_input

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine
    from ductwork.interpreter.runtime import LazyEngine

# Its own logger: `ductwork run` shows this module's warnings (an id reused with another input).
log = logging.getLogger(__name__)


async def execute(
    engines: LazyEngine,
    product: str,
    env: str,
    tag: str,
    input: Any = None,
    workflow_id: str | None = None,
    *,
    idempotency_key: str | None = None,
    timeout: Any = None,
    context: Any = None,
    session: Any = None,
    auth: Any = None,
) -> ExecutionResult:
    """Run a workflow to its end (or until it suspends, or `timeout` passes)."""
    defs = engines.runtime.definitions
    wf = defs.get(product, tag)
    enc = prepare_input(defs, wf, env, input, f"execute({product}/{tag})")
    check_workflow_id(workflow_id, "execute()")
    wid = workflow_id or (f"{product}:{tag}:{idempotency_key}" if idempotency_key
                          else new_workflow_id())
    engine = await engines.get()
    t = time.time()
    extra = None if context is None and session is None and auth is None else {
        k: v for k, v in (("context", context), ("session", session), ("auth", auth))
        if v is not None}
    timeout_ms = wf.options.get("timeout")
    run = RunRow(
        workflow_id=wid, product=product, tag=tag, env=env, status="running", input=enc,
        options=codec.dumps(wf.options) if wf.options else None,
        context=engine.runtime.redact(codec.dumps(extra)) if extra else None,
        created_at=t, updated_at=t, started_at=t,
        deadline_at=None if timeout_ms is None else t + float(timeout_ms) / 1000,
        owner=engine.owner, lease_until=t + engine.lease_s, attempt=1, name=wf.name,
        queue=str(wf.options.get("queue", "default")),
        priority=int(wf.options.get("priority", 0)))
    observe.created(engine.runtime.observer, run)
    # Grouped with the runs started together; history derives workflow_started from the row.
    stored, created = await engine.committer.create(run, [])
    if created:
        if timeout is None:
            return await engine.start(stored)
        task = engine.spawn(stored, fresh=True)
    else:
        if (stored.product, stored.tag) != (product, tag):
            raise ConfigurationError(
                f"workflow_id {wid!r} already belongs to a run of {stored.product}/"
                f"{stored.tag}; a workflow_id is an idempotency key: pick a new one")
        if _differs(stored.input, enc):
            log.warning("run %s exists already with another input: that run is returned, and "
                        "this input is not run (a workflow_id is an idempotency key: pick a "
                        "new one to run again)", wid)
        if stored.status in TERMINAL:
            return await engine.result_from_store(wid)
        existing = engine.tasks.get(wid)
        if existing is None:
            return await result(engine, wid, timeout=timeout)
        task = existing
    return await _await(engine, task, wid, timeout)


def _differs(stored: str | None, given: str | None) -> bool:
    """Whether two encoded inputs hold different values (not only different spellings)."""
    if stored == given:
        return False
    try:
        return bool(codec.loads(stored) != codec.loads(given))
    except DuctworkError:
        return True


async def _await(engine: Engine, task: asyncio.Task[ExecutionResult], wid: str, timeout: Any
                 ) -> ExecutionResult:
    if timeout is None:
        return await asyncio.shield(task)
    try:
        return await asyncio.wait_for(asyncio.shield(task), to_ms(timeout) / 1000)
    except TimeoutError:
        return await engine.current_result(wid)


async def result(engine: Engine, workflow_id: str, timeout: Any = None) -> ExecutionResult:
    """Wait for a run to end (resuming it here if it is due and nobody owns it)."""
    deadline = None if timeout is None else time.monotonic() + to_ms(timeout) / 1000
    delay = 0.01
    while True:
        run = await engine.store.get_run(workflow_id)
        if run is None:
            raise RunNotFoundError(workflow_id)
        if run.status in TERMINAL:
            retry = await _retried_as(engine, run)
            if retry is None:
                return await engine.result_from_store(workflow_id, run)
            workflow_id, delay = retry, 0.01  # a dispatched job ends where its retries end
            continue
        task = engine.tasks.get(workflow_id)
        if task is None and engine.is_due(run):
            claimed = await engine.store.claim(
                workflow_id, engine.owner, engine.lease_s,
                steal_from=engine.dead_owners([run.owner] if run.owner else []))
            if claimed is not None:
                task = engine.spawn(claimed)
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return await engine.current_result(workflow_id)
        if task is not None:
            try:
                res = await asyncio.wait_for(asyncio.shield(task), left)
            except TimeoutError:
                return await engine.current_result(workflow_id)
            if res.status in ("failed", "rolled_back"):
                continue  # read back as ended: a dispatched job may be retried
            if res.status != "running":
                return res
        pause = delay if run.wake_at is None else max(0.0, min(
            run.wake_at - time.time(), 1.0))
        if left is not None:
            pause = min(pause, left)
        await asyncio.sleep(max(pause, 0.005))
        delay = min(delay * 2, 0.5)


async def _retried_as(engine: Engine, run: RunRow) -> str | None:
    """The run that retries a failed dispatched run (options.retries), while retries are
    left; made here if the process that failed it has not made it yet (it is idempotent)."""
    if run.status not in ("failed", "rolled_back") or not run.options:
        return None
    opts = codec.loads(run.options) or {}
    if not opts.get("job") or not opts.get("retries"):
        return None
    if int(opts.get("retry_attempt") or 1) > int(opts["retries"]):
        return None
    return await retry_failed_run(engine, run)


async def recover(engine: Engine) -> list[ExecutionResult]:
    """Resume every run a dead process left unfinished, and every suspended run now due."""
    defs = engine.runtime.definitions
    results: list[ExecutionResult] = []
    while True:
        dead = engine.dead_owners(await engine.store.live_owners())
        runs = await engine.store.claim_due(engine.owner, engine.lease_s, 500,
                                            steal_from=dead)
        known = [r for r in runs if defs.knows(r.product, r.tag)]
        for r in runs:
            if not defs.knows(r.product, r.tag):
                # Another process (with that definition) may run it; don't hold it.
                await engine.store.release(r.workflow_id, engine.owner)
        if not known:
            return results
        tasks = [engine.spawn(r) for r in known]
        for res in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(res, ExecutionResult):
                results.append(res)
            elif not isinstance(res, DuctworkError):
                raise res
            # else: the engine failed on that run; it logged and counted the fault, and the
            # run is due again after a pause (a later recover() or a worker tries it again)


async def signal(engine: Engine, workflow_id: str, signal: str, payload: Any = None
                 ) -> dict[str, Any]:
    journal = engine.journals.get(workflow_id)
    if journal is not None and journal.outcome is None:
        # Driven in this process and not ended: its workflow is known without a read.
        product, tag = journal.run.product, journal.run.tag
    else:
        run = await engine.store.get_run(workflow_id)
        if run is None:
            raise RunNotFoundError(workflow_id)
        if run.status in TERMINAL:
            raise ConfigurationError(
                f"run {workflow_id} has already ended ({run.status}); a signal can no longer "
                "reach it")
        product, tag = run.product, run.tag
    wf = engine.runtime.definitions.find(product, tag)
    if wf is not None and wf.signals:
        if signal not in wf.signals:
            raise ConfigurationError(
                f"workflow {product}/{tag} does not accept signal {signal!r} "
                f"(declared: {', '.join(sorted(wf.signals))})"
                + did_you_mean(signal, wf.signals, prefix="; "))
        if isinstance(wf.signals[signal], Mapping):
            _encode_payload(signal, payload)  # bounded depth before the schema walks it
            # Stored with its schema's defaults filled in: what the run reads.
            payload = engine.runtime.definitions.validate_signal(wf, signal, payload)
    enc = _encode_payload(signal, payload)
    sid = await engine.store.send_signal(workflow_id, signal, enc)
    engine.wake(workflow_id)
    engine.nudge()  # a worker here picks up a suspended run at once
    return {"workflow_id": workflow_id, "signal": signal, "signal_id": sid,
            "delivered": True}


def _encode_payload(signal: str, payload: Any) -> str:
    try:
        return codec.dumps(payload, "payload")
    except (TypeError, ValueError) as e:
        raise ConfigurationError(f"signal {signal!r}: payload cannot be stored: {e}") from None
