"""A saga run in a child process by test_faults (python saga_crash_app.py STORE LOG MODE).

Four steps with compensations, then a step that fails: the run compensates d, c, b, a. In mode
`execute` the compensation of b hangs after its side effect, so that the test can SIGKILL the
process there; mode `recover` finishes the run in a new process."""

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


async def main(store: str, log: str, mode: str) -> None:
    dw = Ductwork(store=store, inline_wait="100ms")

    async def undo(name: str) -> None:
        mark(log, f"undo {name}")
        if mode == "execute" and name == "b":
            await asyncio.sleep(60)  # killed here: b's compensation ran, its record did not
        mark(log, f"undone {name}")

    async def declined() -> None:
        raise RuntimeError("card declined")

    @dw.workflows.workflow(product="faults", tag="saga")
    async def saga(ctx: Any) -> Any:
        for name in "abcd":
            await ctx.step(name, lambda n=name: mark(log, f"do {n}") or n,
                           rollback=lambda _r, n=name: undo(n))
        await ctx.step("charge", declined)

    async with dw:
        if mode == "execute":
            r = await dw.workflows.execute(product="faults", env="dev", tag="saga",
                                           workflow_id="saga-1")
        else:
            (r,) = await dw.workflows.recover()
        print(r.status, r.error, flush=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
