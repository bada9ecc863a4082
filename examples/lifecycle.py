"""The run lifecycle in one script: signals, queries, child workflows, fan-out, cancel,
dispatch and schedules run by a worker. `python examples/lifecycle.py` (uses .ductwork/)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ductwork import Ductwork

ROOT = Path(__file__).resolve().parent.parent
dw = Ductwork(store=f"sqlite:///{ROOT / '.ductwork' / 'lifecycle.db'}", inline_wait="200ms")


# Signals and queries: a run waits for a person; anyone can ask how far it got.
@dw.workflows.workflow(
    product="shop", tag="refund-approval", signals={"approve": {"type": "object"}, "reject": None},
    queries={"stage": lambda ctx: {"done": ctx.completed_steps, "amount": ctx.input.amount}})
async def refund_approval(ctx: Any) -> Any:
    await ctx.step("open-ticket", lambda: {"ticket": 7},
                   rollback=lambda r: print("closed ticket", r["ticket"]))
    decision = await ctx.wait_for_signal(["approve", "reject"], timeout="3d")
    return {"decision": decision["_signal"], "by": decision.get("by")}


# Child workflows and fan-out.
@dw.workflows.workflow(product="shop", tag="pack-parcel")
async def pack_parcel(ctx: Any) -> Any:
    return await ctx.step("pack", lambda: {"parcel": f"P-{ctx.input.sku}"})


@dw.workflows.workflow(product="shop", tag="fulfil")
async def fulfil(ctx: Any) -> Any:
    async def reserve(sku: str) -> Any:
        return await ctx.step("reserve", lambda: {"sku": sku, "held": True},
                              rollback=lambda r: print("released", r["sku"]))

    held = await ctx.foreach(ctx.input.skus, reserve, concurrency=4)
    invoice, label = await ctx.parallel([
        lambda: ctx.step("invoice", lambda: {"total": 10 * len(held)}),
        lambda: ctx.step("label", lambda: {"carrier": "dhl"}),
    ])
    parcel = await ctx.workflow("pack", "pack-parcel", {"sku": ctx.input.skus[0]})
    return {"held": len(held), "total": invoice["total"], "carrier": label["carrier"],
            "parcel": parcel["parcel"]}


@dw.workflows.workflow(product="shop", tag="nightly-report")
async def nightly_report(ctx: Any) -> Any:
    return await ctx.step("count", lambda: {"orders": 42})


async def main() -> None:
    async with dw:
        wf = dw.workflows
        # signals + queries
        run = await wf.execute(product="shop", env="dev", tag="refund-approval",
                               input={"amount": 30}, timeout="50ms")
        print("status:", run.status, "| query:", await wf.query(run.workflow_id, "stage"))
        await wf.signal(run.workflow_id, "approve", {"by": "ann"})
        print("result:", (await wf.result(run.workflow_id, timeout="5s")).output)

        # fan-out + child
        done = await wf.execute(product="shop", env="dev", tag="fulfil",
                                input={"skus": ["book", "pen", "mug"]})
        print("fulfil:", done.status, done.output)

        # cancel compensates what completed
        waiting = await wf.execute(product="shop", env="dev", tag="refund-approval",
                                   input={"amount": 5}, timeout="50ms")
        print("cancel:", await wf.cancel(waiting.workflow_id, "customer withdrew"))

        # dispatch and schedules, executed by a worker
        job = await wf.dispatch("shop", "dev", "nightly-report", {})
        every = await wf.dispatch("shop", "dev", "nightly-report", {},
                                  schedule={"every": "100ms", "limit": 2})
        print("queued:", job["status"], "| schedule:", every["recurring"], every["next_run_at"])
        worker = wf.worker(concurrency=4, poll="50ms")
        task = asyncio.create_task(worker.run())
        await asyncio.sleep(1.0)
        worker.stop()
        await task
        runs = (await wf.list(tag="nightly-report"))["runs"]
        print("nightly runs:", sorted(r["status"] for r in runs))


if __name__ == "__main__":
    asyncio.run(main())
