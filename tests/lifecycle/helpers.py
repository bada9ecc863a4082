"""Helpers for the lifecycle tests: waiting on a condition, a worker in the background."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from ductwork import Ductwork


async def eventually(action: Callable[[], Any] | None, check: Callable[[], Any],
                     timeout: float = 15.0, pause: float = 0.02) -> None:
    """Repeat `action` until `check()` is true; fail (not slow down) after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        if action is not None:
            out = action()
            if inspect.isawaitable(out):
                await out
        ok = check()
        if inspect.isawaitable(ok):
            ok = await ok
        if ok:
            return
        if time.monotonic() > deadline:
            raise AssertionError("the condition was never reached")
        await asyncio.sleep(pause)


@asynccontextmanager
async def run_worker(dw: Ductwork, **options: Any) -> AsyncIterator[Any]:
    options.setdefault("poll", "100ms")
    options.setdefault("grace", "2s")
    worker = dw.workflows.worker(**options)
    task = asyncio.create_task(worker.run())
    await worker.started()
    try:
        yield worker
    finally:
        worker.stop()
        await task
