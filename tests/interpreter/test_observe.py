"""Engine observers: what they are told, in order; none by default; a broken one harms nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.interpreter.observe import Observer, Observers
from ductwork.store.protocol import RunRow


class Recorder(Observer):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def run_started(self, run: RunRow, resumed: bool) -> Any:
        self.calls.append(("run_started", run.tag, resumed))
        return f"run-token-{run.workflow_id}"

    def run_ended(self, run: RunRow, token: Any, status: str, error: str | None) -> None:
        self.calls.append(("run_ended", token, status))

    def step_started(self, run: RunRow, tag: str, key: str, attempt: int) -> Any:
        self.calls.append(("step_started", tag, attempt))
        return (tag, attempt)

    def step_ended(self, run: RunRow, token: Any, tag: str, key: str, attempt: int,
                   status: str, error: BaseException | None, duration_s: float) -> None:
        assert token == (tag, attempt) and duration_s >= 0
        self.calls.append(("step_ended", tag, attempt, status, type(error).__name__))

    def compensation_started(self, run: RunRow, tag: str, key: str) -> Any:
        self.calls.append(("compensation_started", tag))
        return tag

    def compensation_ended(self, run: RunRow, token: Any, tag: str, key: str, status: str,
                           error: str | None) -> None:
        assert token == tag
        self.calls.append(("compensation_ended", tag, status))

    def signal_wait_started(self, run: RunRow, names: list[str]) -> Any:
        self.calls.append(("signal_wait_started", names))

    def signal_wait_ended(self, run: RunRow, token: Any, names: list[str], status: str) -> None:
        self.calls.append(("signal_wait_ended", names, status))


class Broken(Observer):
    def run_started(self, run: RunRow, resumed: bool) -> Any:
        raise RuntimeError("observer bug")

    def step_ended(self, *args: Any) -> None:
        raise RuntimeError("observer bug")


def test_no_observer_by_default() -> None:
    assert Ductwork(store="sqlite://:memory:").runtime.observer is None


async def test_steps_retries_and_rollback_in_order(dw: Ductwork) -> None:
    rec = Recorder()
    dw.observe(rec)
    tries = []

    def flaky() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError("reset")
        return "ok"

    def boom() -> None:
        raise ValueError("no stock")

    async def handler(ctx: Any) -> Any:
        await ctx.step("charge", flaky, rollback=lambda r: None, retries=1, retry_delay=1)
        await ctx.step("ship", boom)

    dw.workflows.define(product="p", tag="order", handler=handler)
    res = await dw.workflows.execute(product="p", env="dev", tag="order", workflow_id="o-1")
    assert res.status == "rolled_back"
    assert rec.calls == [
        ("run_started", "order", False),
        ("step_started", "charge", 1), ("step_ended", "charge", 1, "retrying", "ConnectionError"),
        ("step_started", "charge", 2), ("step_ended", "charge", 2, "completed", "NoneType"),
        ("step_started", "ship", 1), ("step_ended", "ship", 1, "failed", "ValueError"),
        ("compensation_started", "charge"), ("compensation_ended", "charge", "rolled_back"),
        ("run_ended", "run-token-o-1", "rolled_back"),
    ]


async def test_signal_wait_suspends_then_resumes(store_url: str) -> None:
    dw = Ductwork(store=store_url, inline_wait="50ms")
    rec = Recorder()
    dw.observe(rec)

    async def handler(ctx: Any) -> Any:
        return await ctx.wait_for_signal("go")

    dw.workflows.define(product="p", tag="wait", handler=handler)
    async with dw:
        first = await dw.workflows.execute(product="p", env="dev", tag="wait", workflow_id="w")
        assert first.status == "running"  # suspended: waiting for the signal
        await dw.workflows.signal("w", "go", {"n": 1})
        res = await dw.workflows.result("w", timeout="10s")
    assert res.output == {"n": 1}
    assert rec.calls == [
        ("run_started", "wait", False),
        ("signal_wait_started", ["go"]), ("signal_wait_ended", ["go"], "suspended"),
        ("run_ended", "run-token-w", "waiting"),
        ("run_started", "wait", True),
        ("signal_wait_started", ["go"]), ("signal_wait_ended", ["go"], "received"),
        ("run_ended", "run-token-w", "completed"),
    ]


async def test_a_broken_observer_is_logged_and_the_others_still_hear(
        dw: Ductwork, caplog: pytest.LogCaptureFixture) -> None:
    rec = Recorder()
    dw.observe(Broken())
    dw.observe(rec)
    assert isinstance(dw.runtime.observer, Observers)

    async def handler(ctx: Any) -> Any:
        return await ctx.step("a", lambda: 1)

    dw.workflows.define(product="p", tag="t", handler=handler)
    res = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="b-1")
    assert res.status == "completed" and res.output == 1
    assert ("run_ended", "run-token-b-1", "completed") in rec.calls
    assert "observer bug" in caplog.text


async def test_an_attempt_cut_short_by_closing_is_ended_as_interrupted(store_url: str) -> None:
    dw = Ductwork(store=store_url)
    rec = Recorder()
    dw.observe(rec)
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.sleep(60)

    async def handler(ctx: Any) -> Any:
        await ctx.step("slow", slow)

    dw.workflows.define(product="p", tag="slow", handler=handler)
    await dw.workflows.execute(product="p", env="dev", tag="slow", workflow_id="s-1",
                               timeout="1ms")
    await started.wait()
    await dw.aclose()  # the process closes: the run is released, to be resumed elsewhere
    assert rec.calls[-2:] == [("step_ended", "slow", 1, "interrupted", "NoneType"),
                              ("run_ended", "run-token-s-1", "released")]
