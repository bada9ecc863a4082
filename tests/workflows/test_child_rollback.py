"""A completed child workflow is compensated like a step when its parent fails."""

from __future__ import annotations

import time
from typing import Any

from ductwork import Ductwork


async def test_a_completed_child_is_compensated_newest_first(dw: Ductwork) -> None:
    undone: list[Any] = []

    @dw.workflows.workflow(product="p", tag="book-hotel")
    async def hotel(ctx: Any) -> Any:
        return await ctx.step("book", lambda: {"booking": "H-" + ctx.input.city})

    @dw.workflows.workflow(product="p", tag="trip")
    async def trip(ctx: Any) -> Any:
        await ctx.step("flight", lambda: {"pnr": "F1"}, lambda r: undone.append(("flight", r)))
        await ctx.workflow("hotel", "book-hotel", {"city": "Oslo"},
                           rollback=lambda out: undone.append(("hotel", out)))
        await ctx.step("car", lambda: 1 / 0)

    r = await dw.workflows.execute(product="p", env="dev", tag="trip")
    assert r.status == "rolled_back" and r.failed_step == "car"
    assert undone == [("hotel", {"booking": "H-Oslo"}), ("flight", {"pnr": "F1"})]
    assert r.rollback_result is not None
    assert r.rollback_result["rolled_back_steps"] == ["hotel", "flight"]
    rows = {s.step_key: s for s in await dw.store.load_steps(r.workflow_id)}
    assert rows["@child:hotel"].rollback_status == "rolled_back"


async def test_without_a_rollback_the_child_is_left_as_it_is(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="child")
    async def child(ctx: Any) -> Any:
        return await ctx.step("x", lambda: 1)

    @dw.workflows.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        await ctx.workflow("c", "child", {})
        raise RuntimeError("boom")

    r = await dw.workflows.execute(product="p", env="dev", tag="parent")
    assert r.status == "failed"  # nothing had a rollback
    assert (await dw.workflows.status(f"{r.workflow_id}:c"))["status"] == "completed"


async def test_the_child_rollback_survives_a_restart_of_the_parent(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    undone: list[Any] = []

    def define(dw: Ductwork) -> None:
        @dw.workflows.workflow(product="p", tag="child")
        async def child(ctx: Any) -> Any:
            return await ctx.step("x", lambda: {"id": 7})

        @dw.workflows.workflow(product="p", tag="parent")
        async def parent(ctx: Any) -> Any:
            await ctx.workflow("c", "child", {}, rollback=lambda out: undone.append(out))
            await ctx.sleep("300ms")
            await ctx.step("after", lambda: 1 / 0)

    first = Ductwork(store=url, inline_wait="10ms")
    define(first)
    async with first:
        r = await first.workflows.execute(product="p", env="dev", tag="parent", workflow_id="w")
        assert r.status == "running"  # suspended in the sleep
    time.sleep(0.35)
    second = Ductwork(store=url, inline_wait="10ms")
    define(second)
    async with second:
        (res,) = await second.workflows.recover()
    assert res.status == "rolled_back" and undone == [{"id": 7}]
