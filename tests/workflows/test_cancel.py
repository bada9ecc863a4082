"""cancel(workflow_id, reason): compensation, suspended/pending/orphaned/remote runs."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.errors import ConfigurationError

from .helpers import eventually, log_lines, run_worker, start_worker_process, wait_for_line
from .worker_app import build


def define_trip(dw: Ductwork, undone: list[str], ran: list[str]) -> None:
    @dw.workflows.workflow(product="p", tag="trip")
    async def trip(ctx: Any) -> Any:
        await ctx.step("flight", lambda: "F1", rollback=lambda r: undone.append(r))
        await ctx.step("hotel", lambda: "H1", rollback=lambda r: undone.append(r))
        await ctx.sleep("1h")
        await ctx.step("car", lambda: ran.append("car") or "C1",
                       rollback=lambda r: undone.append(r))
        return "booked"


async def test_cancelling_a_sleeping_run_compensates_newest_first(store_url: str) -> None:
    undone: list[str] = []
    ran: list[str] = []
    dw = Ductwork(store=store_url, inline_wait="20ms")
    define_trip(dw, undone, ran)
    async with dw:
        r = await dw.workflows.execute(product="p", env="dev", tag="trip", workflow_id="t")
        assert r.status == "running"
        out = await dw.workflows.cancel("t", "customer called")
        assert out["cancelled"] is True and out["status"] == "cancelled"
        assert out["rolled_back_steps"] == ["hotel", "flight"]
        st = await dw.workflows.status("t")
        assert st["status"] == "cancelled" and "customer called" in st["error"]
        types = [e["type"] for e in await dw.workflows.history("t")]
        assert "cancel_requested" in types and types[-1] == "workflow_cancelled"
        again = await dw.workflows.cancel("t", "twice")
        assert again["cancelled"] is True and again["rolled_back_steps"] == ["hotel", "flight"]
    assert undone == ["H1", "F1"] and ran == []


async def test_cancel_survives_a_restart_before_it_is_driven(store_url: str) -> None:
    """A process that asks for the cancel but dies first: the mark is durable, so whoever
    claims the run next compensates it."""
    undone: list[str] = []
    ran: list[str] = []
    first = Ductwork(store=store_url, inline_wait="20ms")
    define_trip(first, undone, ran)
    async with first:
        await first.workflows.execute(product="p", env="dev", tag="trip", workflow_id="t")
        run = await first.store.get_run("t")
        assert run is not None
        # What cancel() writes first, without the drive that follows (as if killed here).
        await first.store.update_run("t", {
            "options": '{"cancel_requested": true, "cancel_reason": "stop"}', "wake_at": 0})
    second = Ductwork(store=store_url, inline_wait="20ms")
    define_trip(second, undone, ran)
    async with second:
        (res,) = await second.workflows.recover()
    assert res.status == "cancelled" and res.error == "Workflow cancelled: stop"
    assert undone == ["H1", "F1"] and ran == []


async def test_cancelling_a_run_waiting_in_this_process_interrupts_the_wait(
        store_url: str) -> None:
    dw = Ductwork(store=store_url, inline_wait="30s")
    undone: list[str] = []

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("hold", lambda: "h", rollback=lambda r: undone.append(r))
        return await ctx.wait_for_signal("approve")

    async with dw:
        task = asyncio.ensure_future(
            dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w"))
        await eventually(None, lambda: "w" in dw._engine_obj.contexts  # type: ignore[union-attr]
                         and dw._engine_obj.contexts["w"].completed_steps == ["hold"])
        out = await dw.workflows.cancel("w", "no longer needed")
        res = await task
    assert out["status"] == "cancelled" and out["rolled_back_steps"] == ["hold"]
    assert res.status == "cancelled" and undone == ["h"]


async def test_cancelling_an_inline_sleep(store_url: str) -> None:
    dw = Ductwork(store=store_url, inline_wait="30s")

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("one", lambda: 1)
        await ctx.sleep("20s")
        return "late"

    async with dw:
        task = asyncio.ensure_future(
            dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w"))
        await eventually(None, lambda: _sleeping(dw, "w"))
        out = await dw.workflows.cancel("w", "stop")
        assert (await task).status == "cancelled" and out["cancelled"]


async def _sleeping(dw: Ductwork, wid: str) -> bool:
    return any(s.kind == "sleep" for s in await dw.store.load_steps(wid))


async def test_cancelling_a_pending_dispatch_runs_no_code(store_url: str) -> None:
    dw = Ductwork(store=store_url)
    ran: list[str] = []

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        ran.append("handler")
        return await ctx.step("s", lambda: 1)

    async with dw:
        job = await dw.workflows.dispatch("p", "dev", "t", {}, schedule={"start_at": "1h"})
        out = await dw.workflows.cancel(job["job_id"], "not needed")
        assert out == {"workflow_id": job["job_id"], "cancelled": True, "status": "cancelled",
                       "reason": "not needed", "rolled_back_steps": [], "failed_rollbacks": []}
        async with run_worker(dw):
            pass
    assert ran == []


async def test_cancelling_a_finished_run_changes_nothing(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return await ctx.step("s", lambda: 1)

    await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
    out = await dw.workflows.cancel("w", "late")
    assert out["cancelled"] is False and out["status"] == "completed"
    with pytest.raises(ConfigurationError, match="No workflow run"):
        await dw.workflows.cancel("missing", "x")
    with pytest.raises(ConfigurationError, match="reason"):
        await dw.workflows.cancel("w", "")


async def test_rollback_failure_during_cancel_is_reported(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        def bad(_: Any) -> None:
            raise RuntimeError("refund API down")

        await ctx.step("a", lambda: 1, rollback=bad)
        await ctx.step("b", lambda: 2, rollback=lambda r: None)
        await ctx.sleep("1h")

    r = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
    assert r.status == "running"
    out = await dw.workflows.cancel("w", "stop")
    assert out["status"] == "cancelled"
    assert out["rolled_back_steps"] == ["b"] and out["failed_rollbacks"] == ["a"]


async def test_cancelling_a_run_of_a_killed_process(tmp_path: Path) -> None:
    store, log = f"sqlite:///{tmp_path / 'runs.db'}", str(tmp_path / "effects.log")
    dw = build(store, log)
    async with dw:
        await dw.workflows.dispatch("w", "dev", "steps", {}, workflow_id="k1")
        proc = start_worker_process(store, log, hang="b")
        try:
            await wait_for_line(log, "start k1 b", proc)
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            out = await dw.workflows.cancel("k1", "operator")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    # a completed before the crash and is compensated; b was in flight: never recorded.
    assert out["status"] == "cancelled" and out["rolled_back_steps"] == ["a"]
    assert log_lines(log) == ["start k1 a", "done k1 a", "start k1 b", "undo k1 a"]


async def test_cancelling_a_run_another_live_process_drives(tmp_path: Path) -> None:
    store, log = f"sqlite:///{tmp_path / 'runs.db'}", str(tmp_path / "effects.log")
    dw = build(store, log)
    async with dw:
        await dw.workflows.dispatch("w", "dev", "steps", {}, workflow_id="k1")
        proc = start_worker_process(store, log, hang="b:600", lease="600ms")
        try:
            await wait_for_line(log, "start k1 b", proc)
            out = await dw.workflows.cancel("k1", "operator")
            assert out["cancelled"] is True and out["status"] == "cancelling"
            assert out["rolled_back_steps"] == []
            final = await dw.workflows.result("k1", timeout="20s")
            waited = await dw.workflows.cancel("k1", "operator", timeout="5s")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
    # The owner finished b, then stopped at its next durable point and compensated.
    assert final.status == "cancelled" and waited["rolled_back_steps"] == ["b", "a"]
    lines = log_lines(log)
    assert "start k1 c" not in lines
    assert lines[-2:] == ["undo k1 b", "undo k1 a"]
