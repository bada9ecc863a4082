"""A child process for the fallback crash test: python fallback_crash_app.py SPECS DB MODE."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from ductwork import Ductwork


def build(specs: str, db: str) -> Ductwork:
    dw = Ductwork(specs=specs, store=f"sqlite:///{db}", inline_wait="100ms")

    @dw.workflows.workflow(product="pay", tag="two-charges")
    async def wf(ctx: Any) -> Any:
        first = await ctx.fallback.execute(fallback="charge", input={"amount": 1})
        second = await ctx.fallback.execute(fallback="charge", input={"amount": 2})
        return [first["provider"], second["provider"]]

    return dw


async def main(specs: str, db: str, mode: str) -> None:
    async with build(specs, db) as dw:
        if mode == "execute":
            r = await dw.workflows.execute(product="pay", env="dev", tag="two-charges",
                                           input={}, workflow_id="crash-1")
        else:
            (r,) = await dw.workflows.recover()
            r = await dw.workflows.result(r.workflow_id, timeout="20s")
        print(r.status, r.output, flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
