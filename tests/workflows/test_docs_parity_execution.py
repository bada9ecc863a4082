"""The execution page of the product's workflow docs, read as acceptance tests: the history a
failed run leaves (event order and data), step_detail's fields, what current_step says while a
run works and waits, and ctx.state / ctx.steps handed back whole."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ductwork import ConfigurationError, Ductwork


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
    assert by_type["step_completed"]["data"] == {"step": "validate-order", "attempts": 1,
                                                 "output": {"valid": True}}
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


async def test_a_failed_rollback_is_reported_with_its_tag_and_error(store_url: str) -> None:
    async with Ductwork(store=store_url, inline_wait="10ms") as dw:
        await _failed_rollback(dw)


async def _failed_rollback(dw: Ductwork) -> None:
    def refund_api_down(result: Any) -> None:
        raise RuntimeError("refund api down")

    @dw.workflows.workflow(product="p", tag="order")
    async def order(ctx: Any) -> Any:
        await ctx.step("reserve", lambda: 1, lambda r: None)
        await ctx.step("charge", lambda: 2, refund_api_down)
        if ctx.input.manual:
            report = await ctx.trigger_rollback("High fraud risk detected")
            await ctx.sleep("30ms")  # suspends: the handler runs again, replaying the report
            return {"failed": [[f["tag"], f["error"]] for f in report["failed_steps"]],
                    "success": report["success"]}
        await ctx.step("ship", _declined)

    r = await dw.workflows.execute("p", "dev", "order", {"manual": False})
    assert r.status == "failed" and r.rollback_result is not None  # a rollback itself failed
    assert r.rollback_result["rolled_back_steps"] == ["reserve"]
    assert r.rollback_result["failed_steps"] == ["charge"]  # a list of tags, as before
    for report in (r.rollback_result, (await dw.workflows.result(r.workflow_id)).rollback_result):
        assert report is not None and report["success"] is False
        failure = report["failed_steps"][0]
        assert (failure["tag"], failure.error) == ("charge", "RuntimeError: refund api down")
        assert failure.to_dict() == {"tag": "charge", "error": "RuntimeError: refund api down"}

    started = await dw.workflows.execute("p", "dev", "order", {"manual": True})
    assert started.status == "running"
    manual = await dw.workflows.result(started.workflow_id, timeout="10s")
    assert manual.output == {"failed": [["charge", "RuntimeError: refund api down"]],
                             "success": False}


async def test_cancelling_a_cancelled_run_reports_why_it_was_cancelled(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="approval", signals=["approve"])
    async def approval(ctx: Any) -> Any:
        await ctx.step("create-order", lambda: {"id": 1}, lambda r: None)
        return await ctx.wait_for_signal("approve", {"timeout": "24h"})

    r = await dw.workflows.execute("p", "dev", "approval", {}, timeout="50ms")
    first = await dw.workflows.cancel(r.workflow_id, "User requested cancellation")
    assert (first["cancelled"], first["rolled_back_steps"]) == (True, ["create-order"])
    second = await dw.workflows.cancel(r.workflow_id, "again")
    assert second == first
    assert (await dw.workflows.status(r.workflow_id))["status"] == "cancelled"


async def test_resume_from_the_failed_step_skipping_a_step_it_never_reached(
        dw: Ductwork) -> None:
    ran: list[str] = []

    @dw.workflows.workflow(product="p", tag="ship")
    async def ship(ctx: Any) -> Any:
        for tag in ("validate-order", "create-shipment", "send-confirmation", "archive"):
            def work(tag: str = tag) -> Any:
                ran.append(tag)
                if tag == "create-shipment" and not ctx.is_restored:
                    raise RuntimeError("carrier down")
                if tag == "send-confirmation":
                    raise RuntimeError("smtp down")  # the problematic step
                return {"done": tag}
            await ctx.step(tag, work)
        return {"restored": ctx.is_restored, "from": ctx.resumed_from}

    first = await dw.workflows.execute("p", "dev", "ship", {}, workflow_id="wf-abc123")
    assert first.status == "failed" and first.failed_step == "create-shipment"
    ran.clear()
    out = await dw.workflows.resume("wf-abc123", from_step="create-shipment",
                                    skip_steps=["send-confirmation"])
    assert out["status"] == "completed", out["error"]
    assert ran == ["create-shipment", "archive"]  # validate-order reused, the skipped not run
    assert out["output"] == {"restored": True, "from": "wf-abc123"}
    assert out["resumed_from"] == "wf-abc123" and out["resumed_checkpoint"] is None
    # A name close to a recorded step is still taken for a typo.
    with pytest.raises(ConfigurationError, match="did you mean 'create-shipment'"):
        await dw.workflows.resume("wf-abc123", skip_steps=["create-shipmnt"])


async def test_a_resumed_run_reads_its_restored_checkpoint_name_and_data(dw: Ductwork) -> None:
    seen: list[Any] = []

    @dw.workflows.workflow(product="p", tag="pay", queries={
        "restored": lambda ctx: ctx.restored_checkpoint and ctx.restored_checkpoint["name"]})
    async def pay(ctx: Any) -> Any:
        if ctx.is_restored:
            cp = ctx.restored_checkpoint
            seen.append([cp.name, cp["name"], cp.get("name"), cp.data, cp == "payment-complete",
                         ctx.resumed_from])
        await ctx.step("charge", lambda: {"id": "ch_1"})
        await ctx.checkpoint("payment-complete", {"chargeId": "ch_1"})
        if ctx.input.get("fail", True):
            raise RuntimeError("warehouse closed")
        return {"restored": ctx.restored_checkpoint}

    first = await dw.workflows.execute("p", "dev", "pay", {}, workflow_id="wf-abc123")
    assert first.status == "failed"
    assert (await dw.workflows.query("wf-abc123", "restored")) is None
    out = await dw.workflows.resume("wf-abc123", from_checkpoint="payment-complete",
                                    input={"fail": False})
    assert out["status"] == "completed", out["error"]
    assert seen == [["payment-complete", "payment-complete", "payment-complete",
                     {"chargeId": "ch_1"}, True, "wf-abc123"]]
    assert out["output"] == {"restored": "payment-complete"}  # stored as its name
    assert out["resumed_checkpoint"] == "payment-complete"
    assert await dw.workflows.query(out["workflow_id"], "restored") == "payment-complete"


async def test_state_set_inside_a_step_is_replayed_with_the_step(store_url: str) -> None:
    # The docs' data-sync example counts synced records with ctx.setState inside each step.
    runs: list[str] = []

    async with Ductwork(store=store_url, inline_wait="10ms") as dw:
        @dw.workflows.workflow(product="p", tag="data-sync")
        async def sync(ctx: Any) -> Any:
            async def sync_record(record_id: int) -> Any:
                runs.append(f"sync-{record_id}")
                synced = (await ctx.get_state("syncedRecords")) or 0
                await ctx.set_state("syncedRecords", synced + 1)
                return {"synced": True}

            for record_id in (1, 2):
                await ctx.step(f"sync-record-{record_id}",
                               lambda record_id=record_id: sync_record(record_id))
            before = await ctx.get_state("syncedRecords")
            await ctx.sleep("30ms")  # suspends: the handler runs again, its steps replayed
            return {"before": before, "after": await ctx.get_state("syncedRecords"),
                    "state": dict(ctx.state)}

        started = await dw.workflows.execute("p", "dev", "data-sync", {})
        assert started.status == "running"
        done = await dw.workflows.result(started.workflow_id, timeout="10s")
    assert done.status == "completed", done.error
    assert done.output == {"before": 2, "after": 2, "state": {"syncedRecords": 2}}
    assert runs == ["sync-1", "sync-2"]  # each step ran once
