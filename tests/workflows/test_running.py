"""execute(): the caller waits for the run's own task, which a cancelled caller leaves going."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.errors import DuctworkError
from ductwork.store.protocol import Batch


async def test_a_cancelled_caller_leaves_the_run_going(dw: Ductwork) -> None:
    started, go = asyncio.Event(), asyncio.Event()

    async def slow() -> dict[str, int]:
        started.set()
        await go.wait()
        return {"n": 1}

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        first = await ctx.step("a", slow)
        return await ctx.step("b", lambda: {"n": first["n"] + 1})

    caller = asyncio.create_task(dw.workflows.execute("p", "dev", "t", workflow_id="r1"))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    go.set()
    res = await dw.workflows.result("r1", timeout="10s")
    assert (res.status, res.output, res.completed_steps) == ("completed", {"n": 2}, ["a", "b"])


async def test_an_engine_fault_reaches_the_caller_and_nothing_else(
        dw: Ductwork, caplog: pytest.LogCaptureFixture) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("a", lambda: 1)

    await dw.workflows.execute("p", "dev", "t")  # opens the store
    store: Any = dw.store
    commit = store.commit

    async def failing(workflow_id: str, batch: Batch) -> None:
        if batch.run.get("status") == "completed":
            raise RuntimeError("the disk went away")
        await commit(workflow_id, batch)

    store.commit = failing
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(DuctworkError, match="the disk went away"):
            await dw.workflows.execute("p", "dev", "t", workflow_id="r2")
        store.commit = commit
        for _ in range(3):  # the run's task ends, and is dropped
            await asyncio.sleep(0)
        gc.collect()
    # Its exception went to the caller: asyncio has no "never retrieved" error to log.
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    assert (await dw.workflows.status("r2"))["status"] == "pending"  # due again, for a retry


async def test_a_dispatched_run_stores_no_start_event_and_its_history_has_one(
        dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("a", lambda: 1)
        await ctx.wait_for_signal("go")
        return await ctx.step("b", lambda: 2)

    wid = (await dw.workflows.dispatch("p", "dev", "t"))["workflow_id"]
    (first,) = await dw.workflows.recover()  # its first start: waits for the signal, suspends
    assert first.status == "running"
    await dw.workflows.signal(wid, "go")
    (done,) = await dw.workflows.recover()  # claimed again: resumed
    assert (done.status, done.output) == ("completed", 2)
    # The first start is read off the run row (started_at), as for a run executed in place;
    # the resumption is an event of its own.
    stored = [e["type"] for e in await dw.store.events(wid)]
    assert "workflow_started" not in stored and stored.count("workflow_resumed") == 1
    history = await dw.workflows.history(wid)
    types = [e["type"] for e in history]
    assert types.count("workflow_started") == 1 and types.count("workflow_resumed") == 1
    assert types.index("workflow_started") < types.index("workflow_resumed")
