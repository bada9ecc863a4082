"""A signal sent while a waiting run is still asking the store for one is not missed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ductwork import Ductwork


async def test_a_signal_sent_while_the_run_looks_for_one_wakes_it(tmp_path: Path) -> None:
    # A long inline wait: a lost wake-up would leave the run waiting in the process for it.
    dw = Ductwork(store=f"sqlite:///{tmp_path / 'runs.db'}", inline_wait="60s")

    @dw.workflows.workflow(product="p", tag="w")
    async def w(ctx: Any) -> Any:
        return await ctx.wait_for_signal("go", timeout="120s")

    async with dw:
        engine = await dw.workflows._engine()
        store = engine.store
        looked, go_on = asyncio.Event(), asyncio.Event()
        find = store.find_signal

        async def find_then_pause(workflow_id: str, names: list[str]) -> Any:
            # As a store round trip does: the answer (none yet) is read, and the signal
            # arrives before the run gets it back.
            found = await find(workflow_id, names)
            if found is None and not go_on.is_set():
                looked.set()
                await go_on.wait()
            return found

        store.find_signal = find_then_pause  # type: ignore[method-assign]
        started = await dw.workflows.execute("p", "dev", "w", timeout="0ms")
        await asyncio.wait_for(looked.wait(), 10)
        await dw.workflows.signal(started.workflow_id, "go", {"n": 1})
        go_on.set()
        res = await dw.workflows.result(started.workflow_id, timeout="10s")
        assert (res.status, res.output) == ("completed", {"n": 1})
