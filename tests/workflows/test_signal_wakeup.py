"""Signals to a run waiting in this process: never missed, checked as any other."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.errors import ConfigurationError


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


async def test_a_signal_to_a_run_driven_here_is_checked_as_any_other(tmp_path: Path) -> None:
    # The run waits in this process: signal() knows its workflow without reading the store, and
    # still refuses a signal it does not declare, and fills in the payload's defaults.
    dw = Ductwork(store=f"sqlite:///{tmp_path / 'runs.db'}", inline_wait="60s")
    schema = {"type": "object", "properties": {"ok": {"type": "boolean", "default": True}}}

    @dw.workflows.workflow(product="p", tag="w", signals={"go": schema})
    async def w(ctx: Any) -> Any:
        return await ctx.wait_for_signal("go", timeout="120s")

    async with dw:
        engine = await dw.workflows._engine()
        started = await dw.workflows.execute("p", "dev", "w", timeout="0ms")
        assert started.workflow_id in engine.journals
        with pytest.raises(ConfigurationError, match="does not accept signal 'goo'"):
            await dw.workflows.signal(started.workflow_id, "goo", {})
        await dw.workflows.signal(started.workflow_id, "go", {})
        res = await dw.workflows.result(started.workflow_id, timeout="10s")
        assert (res.status, res.output) == ("completed", {"ok": True})
        with pytest.raises(ConfigurationError, match="already ended"):
            await dw.workflows.signal(started.workflow_id, "go", {})
