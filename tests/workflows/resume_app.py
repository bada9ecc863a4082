"""A run driven in child processes by the resume crash test (python resume_app.py DB LOG MODE).

MODE: execute | recover | resume, then optional `:hang-<step>` / `:fail-<step>`."""

from __future__ import annotations

import asyncio
import json
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


def build(db: str, log: str, behaviour: str) -> Ductwork:
    dw = Ductwork(store=f"sqlite:///{db}", inline_wait="100ms")

    @dw.workflows.workflow(product="crash", tag="pipeline",
                           options={"rollback_strategy": "to_checkpoint"})
    async def pipeline(ctx: Any) -> Any:
        async def step(name: str, value: Any) -> Any:
            mark(log, f"start {name}")
            if behaviour == f"hang-{name}":
                await asyncio.sleep(60)
            if behaviour == f"fail-{name}":
                raise RuntimeError(f"{name} is down")
            mark(log, f"done {name}")
            return value

        a = await ctx.step("extract", lambda: step("extract", 3),
                           lambda r: mark(log, "undo extract"))
        await ctx.checkpoint("extracted")
        b = await ctx.step("transform", lambda: step("transform", a * 2),
                           lambda r: mark(log, "undo transform"))
        c = await ctx.step("load", lambda: step("load", b + 1))
        return {"loaded": c, "restored": ctx.is_restored, "from": ctx.resumed_from}

    return dw


async def main(db: str, log: str, mode: str) -> None:
    action, _, behaviour = mode.partition(":")
    dw = build(db, log, behaviour)
    async with dw:
        if action == "execute":
            r = await dw.workflows.execute(product="crash", env="dev", tag="pipeline",
                                           workflow_id="orig")
            out: Any = r.to_dict()
        elif action == "resume":
            out = await dw.workflows.resume("orig", from_checkpoint="extracted",
                                            new_workflow_id="resumed")
        else:
            (res,) = await dw.workflows.recover()
            out = res.to_dict()
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
