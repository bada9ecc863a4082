"""Workflows for the multi-process tests: `ductwork worker --app tests.workflows.worker_app:dw`.

Environment: DW_TEST_STORE (store URL), DW_TEST_LOG (side-effect log), DW_TEST_HANG
("b" = step b hangs, "b:400" = step b takes 400 ms; only in the process that sets it),
DW_TEST_LEASE (lease duration), DW_TEST_FAULT (set: the engine fails on every "poison" run
after its handler returned, see inject_fault)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
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

    @dw.workflows.workflow(product="w", tag="poison")
    async def poison(ctx: Any) -> Any:
        return await ctx.step("work", lambda: mark(log, f"work {ctx.workflow_id}") or 1)

    @dw.workflows.workflow(product="w", tag="echo")
    async def echo(ctx: Any) -> Any:
        return await ctx.step("echo", lambda: ctx.original_input)

    @dw.workflows.workflow(product="w", tag="approval", signals=["go"])
    async def approval(ctx: Any) -> Any:
        await ctx.step("asked", lambda: mark(log, f"asked {ctx.workflow_id}") or 1)
        decision = await ctx.wait_for_signal("go")
        return await ctx.step("apply", lambda: mark(log, f"apply {ctx.workflow_id}") or decision)

    return dw


def inject_fault(log: str) -> Callable[[], None]:
    """Make the engine itself fail on runs of w/poison, after their handler returned (outside
    the workflow's code, where no handler can catch it); returns the undo."""
    from ductwork.interpreter.engine import Engine

    original = Engine._finish

    async def failing_finish(self: Engine, journal: Any, run: Any, *rest: Any) -> Any:
        if run.tag == "poison":
            mark(log, f"fault {run.workflow_id}")
            raise RuntimeError("injected engine fault")
        return await original(self, journal, run, *rest)

    Engine._finish = failing_finish  # type: ignore[method-assign]

    def undo() -> None:
        Engine._finish = original  # type: ignore[method-assign]

    return undo


if os.environ.get("DW_TEST_FAULT") and "DW_TEST_LOG" in os.environ:
    inject_fault(os.environ["DW_TEST_LOG"])
dw = (build(os.environ["DW_TEST_STORE"], os.environ["DW_TEST_LOG"],
            os.environ.get("DW_TEST_HANG", ""), os.environ.get("DW_TEST_LEASE", "30s"))
      if "DW_TEST_STORE" in os.environ else None)
