"""Sync step functions run in a worker thread: a timeout interrupts a blocking step, the loop
serves other runs meanwhile, and the abandoned thread's late result is never recorded.

Timing bounds are generous on purpose (the machines are shared): a blocked loop would show as
seconds, not milliseconds.
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.errors import StepTimeoutError
from ductwork.interpreter import codec, threads
from ductwork.interpreter.journal import current_ctx, key_scope

# Set at the end of every test: a thread still "sleeping" wakes and ends (its result dropped).
RELEASE = threading.Event()
BLOCKED: list[float] = []  # when each blocking call started (time.monotonic())


@pytest.fixture(autouse=True)
def _release_threads() -> Iterator[None]:
    RELEASE.clear()
    BLOCKED.clear()
    yield
    RELEASE.set()


def nap(ctx: Any, seconds: float = 5.0) -> str:
    """A blocking sync step (the YAML `python:` target too): sleeps unless released."""
    BLOCKED.append(time.monotonic())
    RELEASE.wait(seconds)
    return "late"


def _ticker(dw: Ductwork, ticks: list[float]) -> None:
    @dw.workflows.workflow(product="p", tag="ticker")
    async def ticker(ctx: Any) -> Any:
        for i in range(10):
            await ctx.step(f"tick{i}", _tick(ticks))
        return len(ticks)


def _tick(ticks: list[float]) -> Any:
    async def tick() -> int:
        for _ in range(500):  # start once the blocking function is asleep (at most 5 s)
            if BLOCKED:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)
        ticks.append(time.monotonic())
        return len(ticks)

    return tick


async def test_timeout_interrupts_a_blocking_sync_step_while_other_runs_go_on(
        dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="blocked")
    async def blocked(ctx: Any) -> Any:
        return await ctx.step("nap", lambda: nap(ctx), timeout="300ms")

    ticks: list[float] = []
    _ticker(dw, ticks)
    t0 = time.monotonic()
    slow, other = await asyncio.gather(
        dw.workflows.execute(product="p", env="dev", tag="blocked"),
        dw.workflows.execute(product="p", env="dev", tag="ticker"))
    elapsed = time.monotonic() - t0
    assert slow.status == "failed" and slow.failed_step == "nap"
    assert slow.error == "Step 'nap' failed: timed out after 300ms"
    assert elapsed < 4.0  # not the 5 s the function sleeps
    assert other.status == "completed" and other.output == 10
    # The ticker ran while the blocked function was still asleep in its thread.
    (started,) = BLOCKED
    assert any(started < t < started + 4.0 for t in ticks)
    (row,) = await dw.store.load_steps(slow.workflow_id)
    assert row.status == "failed" and row.result is None and row.attempts == 1


async def test_step_timeout_error_is_catchable_in_the_handler(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        try:
            await ctx.step("nap", lambda: nap(ctx), timeout="100ms")
        except StepTimeoutError as e:
            return {"caught": type(e).__name__, "step": e.step}
        return "not reached"

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.output == {"caught": "StepTimeoutError", "step": "nap"}


async def test_a_timed_out_sync_step_is_retried_then_succeeds(dw: Ductwork) -> None:
    calls: list[int] = []

    def sometimes_stuck() -> dict[str, int]:
        calls.append(1)
        if len(calls) < 3:
            nap(None)  # the first two attempts hang past the timeout
        return {"attempt": len(calls)}

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("stuck", sometimes_stuck, timeout="150ms", retries=2,
                              retry_delay="10ms")

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "completed", r.error
    assert r.output == {"attempt": 3}
    (row,) = await dw.store.load_steps(r.workflow_id)
    assert row.attempts == 3 and codec.loads(row.result) == {"attempt": 3}
    events = [e for e in await dw.workflows.history(r.workflow_id) if e["type"] == "step_retried"]
    assert len(events) == 2


async def test_a_sync_step_timing_out_every_attempt_fails_and_rolls_back(dw: Ductwork) -> None:
    undone: list[Any] = []

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("reserve", lambda: {"held": 1}, lambda r: undone.append(r))
        await ctx.step("stuck", lambda: nap(ctx), timeout="100ms", retries=1,
                       retry_delay="10ms")

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "rolled_back" and r.failed_step == "stuck"
    assert r.error == "Step 'stuck' failed after 2 attempts: timed out after 100ms"
    assert undone == [{"held": 1}]
    assert len(BLOCKED) == 2


async def test_the_late_result_of_a_timed_out_step_is_never_recorded(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    returned = threading.Event()
    calls: list[str] = []

    def late() -> str:
        calls.append("late")
        RELEASE.wait(5)
        returned.set()
        return "late result"

    def define(dw: Ductwork) -> None:
        @dw.workflows.workflow(product="p", tag="t")
        async def wf(ctx: Any) -> Any:
            first = await ctx.step("slow", late, timeout="100ms", allow_fail=True)
            await ctx.sleep("400ms")  # suspends: the run is replayed from the top on resume
            return {"slow": first}

    first = Ductwork(store=url, inline_wait="10ms")
    define(first)
    async with first:
        r = await first.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
        assert r.status == "running"
        RELEASE.set()  # the abandoned thread now returns its value...
        assert await asyncio.to_thread(returned.wait, 5)
        await asyncio.sleep(0.1)  # ...and the loop gets it (and drops it)
        rows = {s.tag: s for s in await first.store.load_steps("w")}
        assert rows["slow"].status == "skipped" and rows["slow"].result is None
    await asyncio.sleep(0.5)  # the sleep is due
    second = Ductwork(store=url, inline_wait="10ms")
    define(second)
    async with second:
        (res,) = await second.workflows.recover()
        assert res.status == "completed", res.error
        assert res.output == {"slow": None}  # the recorded outcome, not the late value
        rows = {s.tag: s for s in await second.store.load_steps("w")}
        assert rows["slow"].status == "skipped" and rows["slow"].result is None
    assert calls == ["late"]  # replay did not run it again


async def test_sync_steps_see_the_run_context_and_async_steps_stay_on_the_loop(
        dw: Ductwork) -> None:
    loop_thread = threading.get_ident()
    seen: dict[str, Any] = {}

    def sync_step() -> str:
        seen["sync_thread"] = threading.get_ident()
        ctx = current_ctx.get()
        seen["ctx"] = None if ctx is None else ctx.workflow_id
        seen["scope"] = key_scope.get()
        return "ok"

    async def async_step() -> str:
        seen["async_thread"] = threading.get_ident()
        return "ok"

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("async", async_step)
        await ctx.foreach(["a"], lambda item: ctx.step("sync", sync_step))
        return "done"

    r = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="ctx-run")
    assert r.status == "completed", r.error
    assert seen["async_thread"] == loop_thread and seen["sync_thread"] != loop_thread
    assert seen["ctx"] == "ctx-run" and seen["scope"] == "0/"


def test_is_async_tells_coroutine_functions_from_sync_callables() -> None:
    import functools

    async def coro() -> None: ...

    class AsyncCallable:
        async def __call__(self) -> None: ...

    class SyncCallable:
        def __call__(self) -> None: ...

    assert threads.is_async(coro) and threads.is_async(functools.partial(coro))
    assert threads.is_async(AsyncCallable())
    assert not threads.is_async(lambda: coro())  # sync: runs in a thread, its result awaited
    assert not threads.is_async(SyncCallable()) and not threads.is_async(print)


PRODUCT = "product: shop\nenvs: [dev]\n"
YAML = """
workflow: blocked
steps:
  - tag: nap
    python: tests.interpreter.test_blocking_steps:nap
    args: {seconds: 5}
    timeout: 300ms
    retries: 1
    retry_delay: 10ms
"""


async def test_yaml_python_step_with_a_sync_function_times_out(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    (specs / "shop" / "workflows").mkdir(parents=True)
    (specs / "shop" / "product.yaml").write_text(PRODUCT)
    (specs / "shop" / "workflows" / "blocked.yaml").write_text(textwrap.dedent(YAML))
    ticks: list[float] = []
    async with Ductwork(specs=specs, store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
        @dw.workflows.workflow(product="shop", tag="ticker")
        async def ticker(ctx: Any) -> Any:
            for i in range(10):
                await ctx.step(f"tick{i}", _tick(ticks))
            return len(ticks)

        t0 = time.monotonic()
        slow, other = await asyncio.gather(
            dw.workflows.execute(product="shop", env="dev", tag="blocked"),
            dw.workflows.execute(product="shop", env="dev", tag="ticker"))
        elapsed = time.monotonic() - t0
    assert slow.status == "failed" and slow.failed_step == "nap"
    assert slow.error == "Step 'nap' failed after 2 attempts: timed out after 300ms"
    assert elapsed < 6.0  # two attempts of 300 ms, not 2 x 5 s
    assert other.status == "completed"
    assert len(BLOCKED) == 2
    assert any(BLOCKED[0] < t < BLOCKED[0] + 4.0 for t in ticks)
