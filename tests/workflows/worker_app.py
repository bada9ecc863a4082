"""Workflows for the multi-process tests: `ductwork worker --app tests.workflows.worker_app:dw`.

Environment: DW_TEST_STORE (store URL), DW_TEST_LOG (side-effect log), DW_TEST_HANG
("b" = step b hangs, "b:400" = step b takes 400 ms; only in the process that sets it),
DW_TEST_LEASE (lease duration)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ductwork import Ductwork


def mark(log: str, text: str) -> None:
    # O_APPEND + fsync: another process reads this file to decide when to kill us.
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, (text + "\n").encode())
    os.fsync(fd)
    os.close(fd)


def build(store: str, log: str, hang: str = "", lease: str = "30s") -> Ductwork:
    dw = Ductwork(store=store, inline_wait="50ms", lease=lease)
    hang_step, _, hang_ms = hang.partition(":")

    @dw.workflows.workflow(product="w", tag="steps")
    async def steps(ctx: Any) -> Any:
        out = []
        for name in ("a", "b", "c"):
            async def body(name: str = name) -> str:
                mark(log, f"start {ctx.workflow_id} {name}")
                if name == hang_step:
                    await asyncio.sleep(float(hang_ms) / 1000 if hang_ms else 3600)
                mark(log, f"done {ctx.workflow_id} {name}")
                return name

            def undo(result: str) -> None:
                mark(log, f"undo {ctx.workflow_id} {result}")

            out.append(await ctx.step(name, body, rollback=undo))
        return out

    @dw.workflows.workflow(product="w", tag="tick")
    async def tick(ctx: Any) -> Any:
        return await ctx.step("tick", lambda: mark(log, f"tick {ctx.workflow_id}") or 1)

    return dw


dw = (build(os.environ["DW_TEST_STORE"], os.environ["DW_TEST_LOG"],
            os.environ.get("DW_TEST_HANG", ""), os.environ.get("DW_TEST_LEASE", "30s"))
      if "DW_TEST_STORE" in os.environ else None)
