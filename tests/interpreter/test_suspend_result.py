"""What execute() and recover() return when a run suspends: built from memory, as stored."""

from __future__ import annotations

from typing import Any

from ductwork import Ductwork


async def test_a_suspended_attempt_reports_the_run_as_the_store_has_it(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t", signals=["go", "more"])
    async def wf(ctx: Any) -> Any:
        await ctx.step("a", lambda: 1)
        await ctx.wait_for_signal("go", timeout="1h")
        await ctx.step("b", lambda: 2)
        await ctx.step("a", lambda: 3)  # a tag seen again keeps its first place
        await ctx.wait_for_signal("more", timeout="1h")
        return await ctx.step("c", lambda: 4)

    engine = await dw.workflows._engine()
    def same(mine: Any, stored: Any) -> None:
        # A running run's execution_time is the time until it is asked: the store's answer,
        # read later, may be a few ms more.
        assert mine.to_dict() | {"execution_time": 0} == stored.to_dict() | {"execution_time": 0}
        assert 0 <= stored.execution_time - mine.execution_time < 60_000

    first = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
    same(first, await engine.result_from_store("w"))
    assert (first.status, first.completed_steps, first.output) == ("running", ["a"], None)

    await dw.workflows.signal("w", "go", {})
    (second,) = await dw.workflows.recover()  # replays a, takes the signal, suspends again
    assert (second.status, second.completed_steps) == ("running", ["a", "b"])
    same(second, await engine.result_from_store("w"))

    await dw.workflows.signal("w", "more", {})
    (third,) = await dw.workflows.recover()
    assert (third.status, third.output, third.completed_steps) == ("completed", 4,
                                                                   ["a", "b", "c"])


async def test_a_caller_that_stops_waiting_gets_the_run_as_the_store_has_it(
        tmp_path: Any) -> None:
    # The wait stays in the process (inline), so the run is still driven here when the caller's
    # timeout passes: its answer comes from memory, and says what the store says.
    dw = Ductwork(store=f"sqlite:///{tmp_path / 'runs.db'}", inline_wait="30s")

    @dw.workflows.workflow(product="p", tag="t", signals=["go"])
    async def wf(ctx: Any) -> Any:
        await ctx.step("a", lambda: 1)
        await ctx.step("b", lambda: 2)
        await ctx.step("a", lambda: 3)
        await ctx.wait_for_signal("go", timeout="1h")
        return await ctx.step("c", lambda: 4)

    async with dw:
        engine = await dw.workflows._engine()
        started = await dw.workflows.execute("p", "dev", "t", workflow_id="w", timeout="0ms")
        assert (started.status, started.output) == ("running", None)
        waited = await dw.workflows.result("w", timeout="300ms")
        stored = await engine.result_from_store("w")
        assert waited.to_dict() | {"execution_time": 0} == stored.to_dict() | {
            "execution_time": 0}
        assert (waited.status, waited.completed_steps) == ("running", ["a", "b"])
        await dw.workflows.signal("w", "go", {})
        done = await dw.workflows.result("w", timeout="10s")
        assert (done.status, done.output, done.completed_steps) == ("completed", 4,
                                                                    ["a", "b", "c"])
