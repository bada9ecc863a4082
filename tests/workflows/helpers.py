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


ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def start_worker_process(store: str, log: str, *args: str, hang: str = "",
                         lease: str = "30s", fault: bool = False) -> Any:
    """`ductwork worker --app tests.workflows.worker_app:dw` in a new process."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DW_TEST_STORE": store, "DW_TEST_LOG": log, "DW_TEST_HANG": hang,
           "DW_TEST_LEASE": lease, "PYTHONPATH": str(ROOT)}
    if fault:
        env["DW_TEST_FAULT"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "ductwork.cli", "worker", "--app",
         "tests.workflows.worker_app:dw", "--poll", "50ms", *args],
        cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def log_lines(log: str) -> list[str]:
    import os

    if not os.path.exists(log):
        return []
    with open(log) as f:
        return f.read().splitlines()


async def wait_for_line(log: str, line: str, proc: Any = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while line not in log_lines(log):
        if proc is not None and proc.poll() is not None:
            _out, err = proc.communicate()
            raise AssertionError(f"the worker exited early ({proc.returncode}): {err.decode()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"never logged {line!r}; log: {log_lines(log)}")
        await asyncio.sleep(0.01)
