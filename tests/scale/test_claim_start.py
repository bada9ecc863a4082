"""Runs claimed and started in one statement by PostgreSQL workers: two workers of two
instances racing for the same runs run each one once, and a resumed run replays the steps
its claim handed over instead of running them again."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from ductwork import Ductwork
from tests.workflows.helpers import eventually, run_worker


def _define(d: Ductwork, ran: Counter[str]) -> None:
    @d.workflows.workflow(product="p", tag="three")
    async def three(ctx: Any) -> Any:
        wid = ctx.workflow_id
        a = await ctx.step("a", lambda: ran.update([f"{wid}/a"]) or 1)
        await ctx.wait_for_signal("go")  # suspends: another claim resumes it
        b = await ctx.step("b", lambda: ran.update([f"{wid}/b"]) or 2)
        c = await ctx.step("c", lambda: ran.update([f"{wid}/c"]) or 3)
        return a + b + c


async def test_two_workers_run_each_run_once(pg_url: str) -> None:
    ran: Counter[str] = Counter()
    one = Ductwork(store=pg_url, inline_wait="0ms")
    two = Ductwork(store=pg_url, inline_wait="0ms")
    _define(one, ran)
    _define(two, ran)
    async with one, two:
        ids = [(await one.workflows.dispatch("p", "dev", "three", {"i": i}))["workflow_id"]
               for i in range(24)]
        async with run_worker(one, concurrency=5), run_worker(two, concurrency=5):

            async def all_waiting() -> bool:
                rows, _ = await one.store.list_runs(status="waiting", limit=100)
                return len(rows) == len(ids)

            await eventually(None, all_waiting, timeout=60)
            for wid in ids:
                await one.workflows.signal(wid, "go", None)

            async def all_done() -> bool:
                rows, _ = await one.store.list_runs(status="completed", limit=100)
                return len(rows) == len(ids)

            await eventually(None, all_done, timeout=60)
        for wid in ids:
            r = await one.workflows.result(wid)
            assert r.status == "completed" and r.output == 6
            types = [e["type"] for e in await one.workflows.history(wid)]
            assert types.count("workflow_started") == 1, types
            assert types.count("workflow_resumed") == 1, types
            assert types[-1] == "workflow_completed"
    assert set(ran.values()) == {1} and len(ran) == 3 * len(ids)


async def test_concurrent_claims_in_one_process(pg_url: str) -> None:
    ran: Counter[str] = Counter()
    dw = Ductwork(store=pg_url, inline_wait="0ms")
    _define(dw, ran)
    async with dw:
        ids = [(await dw.workflows.dispatch("p", "dev", "three", {"i": i}))["workflow_id"]
               for i in range(10)]
        await dw.workflows.recover()  # claims them all: they run to their wait
        for wid in ids:
            await dw.workflows.signal(wid, "go", None)
        results = await asyncio.gather(*(dw.workflows.result(w, timeout="30s") for w in ids),
                                       dw.workflows.recover())
        assert all(r.status == "completed" for r in results[:-1])  # type: ignore[union-attr]
    assert set(ran.values()) == {1} and len(ran) == 30
