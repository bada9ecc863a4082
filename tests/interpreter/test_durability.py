"""Crash, restart and replay: completed steps never run twice; replays must match history."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork

APP = Path(__file__).with_name("crash_app.py")


def wait_for_line(log: Path, line: str, proc: subprocess.Popen[bytes], timeout: float = 20
                  ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and line in log.read_text().splitlines():
            return
        if proc.poll() is not None:
            raise AssertionError(f"child exited early: {proc.communicate()}")
        time.sleep(0.01)
    raise AssertionError(f"child never logged {line!r}")


def run_child(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(APP), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


@pytest.mark.parametrize("hang_at,wait_line", [("between", "between"), ("in-b", "start b")])
def test_sigkill_then_recover_in_a_new_process(tmp_path: Path, hang_at: str, wait_line: str
                                               ) -> None:
    db, log = tmp_path / "runs.db", tmp_path / "side-effects.log"
    proc = run_child([str(db), str(log), f"execute:{hang_at}"])
    wait_for_line(log, wait_line, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    rec = run_child([str(db), str(log), "recover"])
    out, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err.decode()
    assert out.decode().strip() == (
        "completed {'names': ['a', 'b', 'c'], 'state': ['a', 'b', 'c']}")
    lines = log.read_text().splitlines()
    assert lines.count("done a") == 1, lines  # a completed before the crash: never again
    assert lines.count("done b") == 1 and lines.count("done c") == 1
    if hang_at == "in-b":
        assert lines.count("start b") == 2  # in flight at the crash: runs again


async def test_durable_sleep_suspends_and_resumes_in_another_instance(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    ran: list[str] = []

    def define(dw: Ductwork) -> None:
        @dw.workflows.workflow(product="p", tag="nap")
        async def wf(ctx: Any) -> Any:
            await ctx.step("before", lambda: ran.append("before") or 1)
            await ctx.sleep("400ms")
            await ctx.step("after", lambda: ran.append("after") or 2)
            return "rested"

    first = Ductwork(store=url, inline_wait="50ms")
    define(first)
    async with first:
        r = await first.workflows.execute(product="p", env="dev", tag="nap")
        assert r.status == "running"
        status = await first.workflows.status(r.workflow_id)
        assert status["status"] == "sleeping" and status["wake_at"] is not None
        assert await first.workflows.recover() == []  # not due yet
    second = Ductwork(store=url, inline_wait="50ms")
    define(second)
    async with second:
        time.sleep(0.45)
        (res,) = await second.workflows.recover()
        assert res.status == "completed" and res.output == "rested"
    assert ran == ["before", "after"]


async def test_replay_that_asks_for_other_steps_fails_loudly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    v1 = Ductwork(store=url, inline_wait="10ms")

    @v1.workflows.workflow(product="p", tag="t")
    async def old(ctx: Any) -> Any:
        await ctx.step("reserve", lambda: 1)
        await ctx.sleep("1h")

    async with v1:
        r = await v1.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
        assert r.status == "running"
        await v1.store.update_run("w", {"wake_at": 0})  # make it due now
    v2 = Ductwork(store=url, inline_wait="10ms")
    ran: list[str] = []

    @v2.workflows.workflow(product="p", tag="t")
    async def new(ctx: Any) -> Any:
        await ctx.step("charge", lambda: ran.append("charge"))

    async with v2:
        (res,) = await v2.workflows.recover()
    assert res.status == "failed"
    assert res.error is not None and "not in the recorded history" in res.error
    assert "step 'reserve'" in res.error
    assert ran == []  # detected before the new step ran


async def test_signal_sent_before_the_wait_is_kept(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t", signals=["approve", "reject"])
    async def wf(ctx: Any) -> Any:
        await ctx.step("prepare", lambda: 1)
        return await ctx.wait_for_signal(["approve", "reject"], timeout="5s")

    r = await dw.workflows.execute(product="p", env="dev", tag="t", timeout="1ms",
                                   workflow_id="s1")
    await dw.workflows.signal("s1", "approve", {"by": "ann"})
    final = await dw.workflows.result("s1", timeout="5s")
    assert r.workflow_id == "s1"
    assert final.status == "completed" and final.output == {"by": "ann", "_signal": "approve"}


async def test_signal_wait_times_out_with_a_catchable_error(dw: Ductwork) -> None:
    from ductwork import SignalTimeoutError

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        try:
            return await ctx.wait_for_signal("approve", timeout="50ms")
        except SignalTimeoutError:
            return "timed out"

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.output == "timed out"


async def test_signal_arriving_while_no_process_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"

    def define(dw: Ductwork) -> None:
        @dw.workflows.workflow(product="p", tag="t")
        async def wf(ctx: Any) -> Any:
            return await ctx.wait_for_signal("approve")

    a = Ductwork(store=url, inline_wait="20ms")
    define(a)
    async with a:
        r = await a.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
        assert (await a.workflows.status("w"))["status"] == "waiting"
    b = Ductwork(store=url, inline_wait="20ms")
    define(b)
    async with b:
        await b.workflows.signal("w", "approve", {"ok": 1})
    c = Ductwork(store=url, inline_wait="20ms")
    define(c)
    async with c:
        (res,) = await c.workflows.recover()
    assert r.status == "running" and res.status == "completed" and res.output == {"ok": 1}


async def test_whole_run_timeout_holds_while_the_run_is_suspended(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    undone: list[Any] = []
    dw = Ductwork(store=url, inline_wait="20ms")

    async def handler(ctx: Any) -> Any:
        await ctx.step("reserve", lambda: {"seat": 1}, lambda r: undone.append(r))
        return await ctx.wait_for_signal("approve")  # no timeout of its own

    dw.workflows.define(product="p", tag="t", handler=handler, options={"timeout": "300ms"})
    async with dw:
        r = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
        assert r.status == "running"
        status = await dw.workflows.status("w")
        assert status["status"] == "waiting" and status["wake_at"] is not None  # the deadline
        time.sleep(0.35)
        (res,) = await dw.workflows.recover()
    assert res.status == "rolled_back"
    assert res.error == "Workflow timed out after 0.3s"
    assert undone == [{"seat": 1}]
