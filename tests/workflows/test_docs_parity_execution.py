"""The execution page of the product's workflow docs, read as acceptance tests: the history a
failed run leaves (event order and data), step_detail's fields, what current_step says while a
run works and waits, and ctx.state / ctx.steps handed back whole."""

from __future__ import annotations

import asyncio
from typing import Any

from ductwork import Ductwork


def _declined() -> Any:
    raise RuntimeError("Card declined")


async def test_history_of_a_failed_run_has_the_documented_events_and_data(dw: Ductwork) -> None:
    undone: list[Any] = []

    @dw.workflows.workflow(product="p", tag="order")
    async def order(ctx: Any) -> Any:
        await ctx.step("validate-order", lambda: {"valid": True}, undone.append)
        await ctx.checkpoint("validation-complete")
        await ctx.step("process-payment", _declined, retries=2, retry_delay=1)

    r = await dw.workflows.execute("p", "dev", "order", {"orderId": "o-1"},
                                   workflow_id="wf-abc123")
    assert r.status == "rolled_back" and undone == [{"valid": True}]
    h = await dw.workflows.history("wf-abc123")
    documented = ["workflow_started", "step_started", "step_completed", "checkpoint_created",
                  "step_started", "step_failed", "rollback_started", "workflow_rolled_back"]
    assert [e["type"] for e in h.events if e["type"] in documented] == documented
    by_type = {e["type"]: e for e in h.events}  # the last of each type
    assert all(isinstance(e["data"], dict) for e in h.events)
    assert by_type["workflow_started"]["data"]["input"] == {"orderId": "o-1"}
    assert by_type["step_completed"]["data"]["step"] == "validate-order"
    assert by_type["step_started"]["data"] == {"step": "process-payment"}
    assert by_type["checkpoint_created"]["data"] == {"name": "validation-complete",
                                                     "metadata": None}
    failed = by_type["step_failed"]["data"]
    assert failed["step"] == "process-payment" and failed["attempts"] == 3
    assert "Card declined" in failed["error"].message and failed["error"]["code"] == "step_failed"
    stamps = [e["timestamp"] for e in h.events]
    assert stamps == sorted(stamps)

    detail = await dw.workflows.step_detail("wf-abc123", "process-payment")
    assert {k: detail[k] for k in ("tag", "name", "status", "output", "attempts")} == {
        "tag": "process-payment", "name": "process-payment", "status": "failed",
        "output": None, "attempts": 3}
    assert detail["error"].message == str(detail["error"]) and "Card declined" in detail["error"]
    assert detail["error"].code == "step_failed"
    assert detail["duration"] is not None and detail["start_time"] <= detail["end_time"]
    undone_detail = await dw.workflows.step_detail("wf-abc123", "validate-order")
    assert undone_detail["status"] == "rolled_back" and undone_detail["error"] is None
    assert undone_detail["rollback_status"] == "rolled_back"


async def test_current_step_names_what_the_run_is_doing_now(dw: Ductwork) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    seen: list[Any] = []

    async def charge() -> Any:
        started.set()
        await release.wait()
        return {"id": "ch_1"}

    @dw.workflows.workflow(product="p", tag="checkout", signals=["approve"],
                           queries={"now": lambda ctx: ctx.current_step})
    async def checkout(ctx: Any) -> Any:
        await ctx.step("validate", lambda: True)
        seen.append(ctx.current_step)  # between steps: nothing is running
        await ctx.step("charge", charge)
        seen.append(ctx.current_step)
        await ctx.wait_for_signal("approve")
        return "done"

    run = asyncio.create_task(dw.workflows.execute("p", "dev", "checkout", {},
                                                   workflow_id="c-1"))
    await asyncio.wait_for(started.wait(), 10)
    status = await dw.workflows.status("c-1")
    assert status["current_step"] == "charge", status  # the step in flight, not the last done
    assert await dw.workflows.query("c-1", "now") == "charge"
    release.set()
    for _ in range(500):
        if (await dw.workflows.status("c-1"))["current_step"] == "approve":
            break
        await asyncio.sleep(0.01)
    assert await dw.workflows.query("c-1", "now") == "approve"  # the signal it waits for
    await dw.workflows.signal("c-1", "approve", {})
    assert (await run).status == "completed"
    assert seen == [None, None]
    assert (await dw.workflows.status("c-1"))["current_step"] is None


async def test_queries_and_outputs_can_hand_back_ctx_state_and_ctx_steps(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="progress", signals=["go"], queries={
        "getOrderDetails": lambda ctx: {"state": ctx.state, "steps": ctx.steps}})
    async def progress(ctx: Any) -> Any:
        await ctx.set_state("orderStatus", "paid")
        await ctx.step("payment", lambda: {"id": "ch_9"})
        await ctx.wait_for_signal("go")
        return {"state": ctx.state, "steps": ctx.steps}

    r = await dw.workflows.execute("p", "dev", "progress", {}, timeout="50ms")
    details = await dw.workflows.query(r.workflow_id, "getOrderDetails")
    assert details == {"state": {"orderStatus": "paid"}, "steps": {"payment": {"id": "ch_9"}}}
    await dw.workflows.signal(r.workflow_id, "go")
    done = await dw.workflows.result(r.workflow_id, timeout="10s")
    assert done.status == "completed", done.error
    assert done.output == details
