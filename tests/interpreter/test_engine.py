"""The engine frees what a run held as soon as the run ends."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from ductwork import Ductwork


async def test_a_finished_run_is_freed_without_the_cycle_collector(dw: Ductwork) -> None:
    seen: list[weakref.ref[Any]] = []

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        seen.append(weakref.ref(ctx))
        return await ctx.step("a", lambda: {"n": 1})

    await dw.workflows.execute("p", "dev", "t")  # opens the store
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            assert (await dw.workflows.execute("p", "dev", "t")).status == "completed"
        # Reference counting alone freed each run's ctx (and its journal, which holds it).
        assert [r() for r in seen[1:]] == [None, None, None]
    finally:
        gc.enable()
