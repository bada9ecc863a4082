"""The "SDK Workflow Methods" of the product's workflow docs pass product= and env= to every
call about a run (signal, query, status, cancel, history, step_detail, the re-runs, lineage):
ductwork takes them, and checks that the run is of that product and env."""

from __future__ import annotations

from typing import Any

import pytest

from ductwork import ConfigurationError, Ductwork, RunNotFoundError

SCOPE = {"product": "my-product", "env": "prd"}


async def test_every_call_about_a_run_takes_the_docs_product_and_env(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="my-product", tag="order", signals=["order-approved"],
                           queries={"getProgress": {"handler": lambda ctx: ctx.completed_steps}})
    async def order(ctx: Any) -> Any:
        await ctx.step("validate-order", lambda: {"valid": True})
        approval = await ctx.wait_for_signal("order-approved", {"timeout": "24h"})
        return {"approvedBy": approval["approvedBy"]}

    first = await dw.workflows.execute(product="my-product", env="prd", tag="order", input={},
                                       workflow_id="wf-123", timeout="50ms")
    assert first.status == "running"
    wf = dw.workflows
    assert await wf.query(workflow_id="wf-123", query="getProgress", **SCOPE) == [
        "validate-order"]
    assert (await wf.status(workflow_id="wf-123", **SCOPE))["status"] in ("running", "waiting")
    await wf.signal(workflow_id="wf-123", signal="order-approved",
                    payload={"approvedBy": "manager@company.com"}, **SCOPE)
    done = await wf.result("wf-123", timeout="10s")
    assert done.output == {"approvedBy": "manager@company.com"}
    assert (await wf.step_detail(workflow_id="wf-123", step_tag="validate-order",
                                 **SCOPE))["status"] == "completed"
    events = await wf.history(workflow_id="wf-123", include_step_details=True, **SCOPE)
    assert events[0]["type"] == "workflow_started"
    assert await wf.logs(workflow_id="wf-123", **SCOPE) == []

    replay = await wf.replay(workflow_id="wf-123", reason="audit", **SCOPE)
    assert replay["replayed_from"] == "wf-123"
    restart = await wf.restart(workflow_id="wf-123", input={"x": 1}, **SCOPE)
    assert restart["restarted_from"] == "wf-123"
    resumed = await wf.resume(workflow_id="wf-123", from_step="validate-order", **SCOPE)
    assert resumed["resumed_from"] == "wf-123"
    from_step = await wf.replay_from_step(workflow_id="wf-123", from_step="validate-order",
                                          **SCOPE)
    assert from_step["replayed_from"] == "wf-123"
    related = await wf.related_executions(workflow_id="wf-123", **SCOPE)
    assert len(related["executions"]) == 5
    compared = await wf.compare(workflow_ids=["wf-123", restart["workflow_id"]], **SCOPE)
    assert compared["input_diff"] == {"x": [None, 1]}
    cancelled = await wf.cancel(workflow_id=replay["workflow_id"],
                                reason="User requested cancellation", **SCOPE)
    assert cancelled["cancelled"] is True


async def test_a_run_of_another_product_or_env_is_refused_naming_both(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="my-product", tag="t")
    async def t(ctx: Any) -> Any:
        return 1

    await dw.workflows.execute("my-product", "dev", "t", {}, workflow_id="wf-dev")
    with pytest.raises(ConfigurationError) as wrong_env:
        await dw.workflows.status("wf-dev", product="my-product", env="prd")
    assert str(wrong_env.value) == (
        "status(): run 'wf-dev' is a run of my-product/t in env 'dev', not of product "
        "'my-product' and env 'prd'; check the workflow_id, or leave product= and env= out "
        "(the id alone names the run)")
    with pytest.raises(ConfigurationError, match="not of product 'other'"):
        await dw.workflows.cancel("wf-dev", "x", product="other")
    with pytest.raises(ConfigurationError, match="not of env 'prd'"):
        await dw.workflows.compare(["wf-dev", "wf-dev"], env="prd")
    with pytest.raises(RunNotFoundError):
        await dw.workflows.history("nope", **SCOPE)
    with pytest.raises(ConfigurationError, match="env"):
        await dw.workflows.status("wf-dev", env="")


async def test_the_recording_options_are_taken_and_branches_run_as_written(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="my-product", tag="order-fulfillment",
                           branch_overrides={"validate": {"valid": True}})
    async def fulfil(ctx: Any) -> Any:
        validation = await ctx.step("validate", lambda: {"valid": ctx.input.ok,
                                                         "reason": "out of stock"})
        if not validation["valid"]:
            return {"success": False, "error": validation["reason"]}
        payment = await ctx.step("process-payment", lambda: {"id": "ch_1"})
        return {"success": True, "chargeId": payment["id"]}

    @dw.workflows.workflow(product="my-product", tag="handle-by-type",
                           record_scenarios=[{"type": "a"}, {"type": "b"}],
                           record_input={"items": [{"id": "1"}, {"id": "2"}]})
    async def by_type(ctx: Any) -> Any:
        match ctx.input.type:
            case "a":
                await ctx.step("handle-a", lambda: "a")
            case "b":
                await ctx.step("handle-b", lambda: "b")
        for item in ctx.input.get("items", []):
            await ctx.step(f"process-{item['id']}", lambda: True)

    stopped = await dw.workflows.execute("my-product", "dev", "order-fulfillment", {"ok": False})
    assert stopped.output == {"success": False, "error": "out of stock"}
    assert stopped.completed_steps == ["validate"]  # the payment did not run
    paid = await dw.workflows.execute("my-product", "dev", "order-fulfillment", {"ok": True})
    assert paid.completed_steps == ["validate", "process-payment"]
    b = await dw.workflows.execute("my-product", "dev", "handle-by-type",
                                   {"type": "b", "items": [{"id": "7"}]})
    assert b.completed_steps == ["handle-b", "process-7"]

    async def handler(ctx: Any) -> Any:
        return None

    with pytest.raises(ConfigurationError, match="record_scenarios must be a list of input "
                                                 "dicts, got"):
        dw.workflows.define(product="my-product", tag="bad", handler=handler,
                            record_scenarios={"type": "a"})


async def test_result_of_a_dispatched_job_with_retries_is_where_its_retries_end(
        dw: Ductwork) -> None:
    attempts: list[str] = []

    @dw.workflows.workflow(product="my-product", tag="sync-inventory")
    async def sync(ctx: Any) -> Any:
        attempts.append(ctx.workflow_id)
        if len(attempts) < 3:
            raise RuntimeError(f"warehouse offline ({len(attempts)})")
        return await ctx.step("sync", lambda: {"source": ctx.input.source})

    job = await dw.workflows.dispatch(product="my-product", env="dev", workflow="sync-inventory",
                                      input={"source": "warehouse-a"},
                                      options={"retries": 3, "timeout": 300000})
    assert job["status"] == "queued"
    done = await dw.workflows.result(job["job_id"], timeout="10s")
    assert done.status == "completed" and done.output == {"source": "warehouse-a"}
    first = job["job_id"]
    assert attempts == [first, f"{first}#2", f"{first}#3"] and done.workflow_id == f"{first}#3"
    assert (await dw.workflows.status(first))["status"] == "failed"  # each run keeps its end

    # Retries used up: the job's result is its last run's failure.
    attempts.clear()  # the first two runs fail again
    failing = await dw.workflows.dispatch("my-product", "dev", "sync-inventory",
                                          {"source": "b"}, options={"retries": 1})
    last = await dw.workflows.result(failing["job_id"], timeout="10s")
    assert last.status == "failed" and last.workflow_id == f"{failing['job_id']}#2"
    assert "warehouse offline" in str(last.error)


async def test_define_may_be_awaited_as_the_docs_write_it(dw: Ductwork) -> None:
    async def handler(ctx: Any) -> Any:
        return {"userId": 1}

    onboarding = await dw.workflows.define(product="my-product", tag="user-onboarding",
                                           name="User Onboarding", handler=handler)
    assert (onboarding.product, onboarding.tag, onboarding.name) == (
        "my-product", "user-onboarding", "User Onboarding")
    assert dw.workflows.get("my-product", "user-onboarding") is onboarding
    r = await dw.workflows.execute("my-product", "dev", "user-onboarding", {})
    assert r.output == {"userId": 1}
