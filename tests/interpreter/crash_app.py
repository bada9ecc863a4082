"""A workflow run in a child process by the crash tests (python crash_app.py DB LOG MODE)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from ductwork import Ductwork


def mark(log: str, text: str) -> None:
    # O_APPEND + fsync: the parent reads this file to decide when to kill us.
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, (text + "\n").encode())
    os.fsync(fd)
    os.close(fd)


def build(db: str, log: str, hang_at: str) -> Ductwork:
    dw = Ductwork(store=f"sqlite:///{db}", inline_wait="100ms")

    @dw.workflows.workflow(product="crash", tag="three-steps")
    async def wf(ctx: Any) -> Any:
        async def step(name: str) -> dict[str, str]:
            mark(log, f"start {name}")
            # State set inside a step: replayed with the step, however the run came back.
            await ctx.set_state("done", [*(await ctx.get_state("done", [])), name])
            if hang_at == f"in-{name}":
                await asyncio.sleep(60)
            mark(log, f"done {name}")
            return {"name": name}

        a = await ctx.step("a", lambda: step("a"))
        if hang_at == "between":
            mark(log, "between")
            await asyncio.sleep(60)
        b = await ctx.step("b", lambda: step("b"))
        await ctx.sleep("300ms")  # durable timer across the crash as well
        c = await ctx.step("c", lambda: step("c"))
        return {"names": [a["name"], b["name"], c["name"]],
                "state": await ctx.get_state("done")}

    return dw


async def main(db: str, log: str, mode: str) -> None:
    hang_at = mode.split(":", 1)[1] if ":" in mode else ""
    dw = build(db, log, hang_at)
    async with dw:
        if mode.startswith("execute"):
            r = await dw.workflows.execute(product="crash", env="dev", tag="three-steps",
                                           workflow_id="run-1")
        else:
            (r,) = await dw.workflows.recover()
            r = await dw.workflows.result(r.workflow_id, timeout="10s")
        print(r.status, r.output, flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
