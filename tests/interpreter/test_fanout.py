"""Fan-out: gather/parallel/foreach replay deterministically and compensate in reverse
completion order."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from ductwork import Ductwork


async def interrupt_then_recover(tmp_path: Path, define: Any, ready: Any) -> Any:
    """Run until `ready()` holds, stop the process's engine mid-flight, recover elsewhere."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    first = Ductwork(store=url)
    define(first)
    await first._engine()
    task = asyncio.ensure_future(first.workflows.execute(product="p", env="dev", tag="t",
                                                         workflow_id="w"))
    async def until_ready() -> None:
        while not ready():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(until_ready(), 5)
    await first.aclose()  # in-flight steps are cancelled and the run is released
    with contextlib.suppress(asyncio.CancelledError):
        await task
    second = Ductwork(store=url)
    define(second)
    async with second:
        (result,) = await second.workflows.recover()
    return result


async def test_gather_replays_recorded_steps_and_reruns_the_one_in_flight(tmp_path: Path
                                                                          ) -> None:
    ran: list[str] = []
    hang = {"on": True}

    def define(dw: Ductwork) -> None:
        @dw.workflows.workflow(product="p", tag="t")
        async def wf(ctx: Any) -> Any:
            async def quick(name: str) -> str:
                ran.append(name)
                return name

            async def slow() -> str:
                ran.append("slow")
                if hang["on"]:  # only in the first process
                    hang["on"] = False
                    await asyncio.sleep(30)
                return "slow"

            results = await asyncio.gather(
                ctx.step("a", lambda: quick("a")), ctx.step("slow", slow),
                ctx.step("b", lambda: quick("b")))
            return await ctx.step("after", lambda: quick("after")) and results

    result = await interrupt_then_recover(
        tmp_path, define, lambda: {"a", "b", "slow"} <= set(ran))
    assert result.status == "completed", result.error
    assert result.output == ["a", "slow", "b"]
    assert ran.count("a") == 1 and ran.count("b") == 1  # recorded: never again
    assert ran.count("slow") == 2  # in flight at the interruption: runs again
    assert ran.count("after") == 1


async def test_parallel_branches_with_several_steps_replay_without_false_alarms(
        tmp_path: Path) -> None:
    ran: list[str] = []
    hang = {"on": True}

    def define(dw: Ductwork) -> None:
        @dw.workflows.workflow(product="p", tag="t")
        async def wf(ctx: Any) -> Any:
            async def left() -> list[Any]:
                x = await ctx.step("l1", lambda: ran.append("l1") or 1)

                async def l2() -> int:
                    ran.append("l2")
                    if hang["on"]:  # only in the first process
                        hang["on"] = False
                        await asyncio.sleep(30)
                    return 2

                return [x, await ctx.step("l2", l2)]

            async def right() -> list[Any]:
                x = await ctx.step("r1", lambda: ran.append("r1") or 3)
                await asyncio.sleep(0.02)  # a non-durable await between recorded steps
                y = await ctx.step("r2", lambda: ran.append("r2") or 4)
                return [x, y]

            return await ctx.parallel([left, right])

    result = await interrupt_then_recover(tmp_path, define,
                                          lambda: {"l2", "r2"} <= set(ran))
    assert result.status == "completed", result.error
    assert result.output == [[1, 2], [3, 4]]
    assert sorted(ran) == sorted(["l1", "l2", "r1", "r2", "l2"])


async def test_foreach_identifies_steps_per_item_whatever_the_completion_order(
        dw: Ductwork) -> None:
    delays = {"x": 0.05, "y": 0.0, "z": 0.02}

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        async def per_item(item: str) -> Any:
            await ctx.step("reserve", lambda: asyncio.sleep(delays[item]))
            return await ctx.step("confirm", lambda: f"confirmed {item}")

        return await ctx.foreach(["x", "y", "z"], per_item, concurrency=3)

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.output == ["confirmed x", "confirmed y", "confirmed z"]
    keys = {s.step_key: s.result for s in await dw.store.load_steps(r.workflow_id)}
    assert keys["0/confirm"] == '"confirmed x"' and keys["1/confirm"] == '"confirmed y"'


async def test_rollback_after_a_fan_out_failure_runs_in_reverse_completion_order(
        dw: Ductwork) -> None:
    undone: list[str] = []

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        def step(name: str, delay: float, fail: bool = False) -> Any:
            async def run() -> str:
                await asyncio.sleep(delay)
                if fail:
                    raise RuntimeError(f"{name} broke")
                return name

            return ctx.step(name, run, lambda r: undone.append(r))

        # bare gather: 'slow' is still running when 'bad' fails; it must finish and be undone
        await asyncio.gather(step("slow", 0.15), step("fast", 0.0), step("mid", 0.05),
                             step("bad", 0.08, fail=True))

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "rolled_back" and r.failed_step == "bad"
    assert undone == ["slow", "mid", "fast"]  # completion order was fast, mid, slow
