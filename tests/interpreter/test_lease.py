"""A run whose lease another worker took stops at its next commit, whatever the handler catches."""

from __future__ import annotations

from typing import Any

from ductwork import Ductwork


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
