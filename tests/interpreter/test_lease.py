"""A run whose lease another worker took stops at its next commit, whatever the handler catches."""

from __future__ import annotations

import time
from typing import Any

from ductwork import Ductwork
from ductwork.store.protocol import Batch


async def test_a_lost_lease_stops_the_handler_even_inside_except_exception(dw: Ductwork) -> None:
    swallowed: list[BaseException] = []
    ran: list[str] = []

    async def taken_over() -> str:
        # Another worker claims the run while this step runs: our commit is refused.
        await dw.store.update_run("w", {"owner": "another-worker"})
        return "late"

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        try:
            await ctx.step("a", taken_over)
        except Exception as e:  # a user's catch-all must not let the run go on
            swallowed.append(e)
        ran.append("after")
        await ctx.step("b", lambda: "side effect")

    r = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
    assert swallowed == [] and ran == []
    assert r.status == "running" and r.completed_steps == []
    run = await dw.store.get_run("w")
    assert run is not None and run.owner == "another-worker"
    assert await dw.store.load_steps("w") == []


async def test_a_stalled_run_checks_its_lease_before_the_next_step(store_url: str) -> None:
    # The handler's own code stalls the event loop (a long GC pause, a frozen VM) past the
    # margin of its 1 s lease while another worker takes the run over: the next step's side
    # effect must not happen, although no commit came in between to be fenced.
    effects: list[str] = []
    async with Ductwork(store=store_url, lease="1s") as dw:

        @dw.workflows.workflow(product="p", tag="t")
        async def wf(ctx: Any) -> Any:
            await ctx.step("a", lambda: effects.append("a"))
            await dw.store.update_run("w", {"owner": "another-worker"})
            time.sleep(0.7)  # blocks the loop: no heartbeat, no await
            await ctx.step("b", lambda: effects.append("b"))

        r = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
        assert effects == ["a"]
        assert r.status == "running" and r.completed_steps == ["a"]
        run = await dw.store.get_run("w")
        assert run is not None and run.owner == "another-worker"


async def test_a_stalled_run_does_not_compensate_a_run_it_lost(store_url: str) -> None:
    compensated: list[str] = []
    async with Ductwork(store=store_url, lease="1s") as dw:
        real_commit = dw.store.commit

        async def commit_then_stall(workflow_id: str, batch: Batch) -> None:
            await real_commit(workflow_id, batch)
            if any(key == "b" for key, _ in batch.step_updates):
                # Right after b's compensation is recorded, the process stalls and another
                # worker takes the run over: nothing fences a's compensation but the check.
                await dw.store.update_run("w", {"owner": "another-worker"})
                time.sleep(0.7)

        dw.store.commit = commit_then_stall  # type: ignore[method-assign]

        @dw.workflows.workflow(product="p", tag="t")
        async def wf(ctx: Any) -> Any:
            await ctx.step("a", lambda: 1, rollback=lambda _r: compensated.append("a"))
            await ctx.step("b", lambda: 2, rollback=lambda _r: compensated.append("b"))
            await ctx.step("c", fail)

        def fail() -> None:
            raise RuntimeError("card declined")

        r = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
        assert compensated == ["b"]
        assert r.status == "running"
        steps = {s.step_key: s.rollback_status for s in await dw.store.load_steps("w")}
        assert steps == {"a": None, "b": "rolled_back", "c": None}


async def test_a_healthy_run_asks_the_store_nothing_about_its_lease(store_url: str) -> None:
    async with Ductwork(store=store_url, lease="30s") as dw:
        asked: list[str] = []
        real = dw.store.hold_lease

        async def counting(workflow_id: str, owner: str, lease_s: float) -> bool:
            asked.append(workflow_id)
            return await real(workflow_id, owner, lease_s)

        dw.store.hold_lease = counting  # type: ignore[method-assign]

        @dw.workflows.workflow(product="p", tag="t")
        async def wf(ctx: Any) -> Any:
            for i in range(50):
                await ctx.step(f"s{i}", lambda i=i: i, rollback=lambda _r: None)
            await ctx.step("boom", fail)

        def fail() -> None:
            raise RuntimeError("no")

        r = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
        assert r.status == "rolled_back" and len(r.completed_steps) == 50
        assert asked == []


async def test_a_late_check_renews_a_lease_still_held(store_url: str) -> None:
    async with Ductwork(store=store_url, lease="1s") as dw:

        @dw.workflows.workflow(product="p", tag="t")
        async def wf(ctx: Any) -> Any:
            await ctx.step("a", lambda: 1)
            time.sleep(0.7)  # a stall, but nobody took the run: it goes on
            return await ctx.step("b", lambda: 2)

        r = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
        assert r.status == "completed" and r.output == 2
