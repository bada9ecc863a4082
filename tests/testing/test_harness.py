"""ductwork.testing: fake clock, step mocks, signal injection and step-history assertions."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest

from ductwork import ConfigurationError, Ductwork, SignalTimeoutError
from ductwork.testing import FakeClock, WorkflowTestEnv

ROOT = Path(__file__).resolve().parents[2]


def order_workflow(env: WorkflowTestEnv, undone: list[Any]) -> None:
    @env.workflow(product="shop", tag="order", signals=["approve"])
    async def order(ctx: Any) -> Any:
        await ctx.step("reserve", lambda: {"sku": ctx.input.sku},
                       lambda r: undone.append(("reserve", r)))
        charge = await ctx.step("charge", lambda: {"id": "real-charge"},
                                lambda r: undone.append(("charge", r)),
                                retries=2, retry_delay="1h")
        await ctx.step("ship", lambda: {"tracking": "T1"})
        return {"charge": charge["id"]}


async def test_a_mocked_step_s_rollback_is_answered_not_run(
        workflow_env: WorkflowTestEnv) -> None:
    undone: list[Any] = []
    order_workflow(workflow_env, undone)
    charge = workflow_env.mock_step("charge", result={"id": "ch_mock"})
    workflow_env.mock_step("ship", error="carrier down")
    run = await workflow_env.execute("shop", "order", {"sku": "book"})

    assert run.status == "rolled_back" and run.failed_step == "ship"
    workflow_env.assert_steps(run, ["reserve", "charge"])
    workflow_env.assert_rolled_back(run, ["charge", "reserve"])
    workflow_env.assert_step(run, "charge", status="rolled_back", output={"id": "ch_mock"},
                             rollback="rolled_back")
    workflow_env.assert_step(run, "ship", status="failed", error="RuntimeError: carrier down")
    # The real refund never ran (there was no real charge); the step that ran for real was
    # compensated for real.
    assert undone == [("reserve", {"sku": "book"})]
    assert charge.rollback_calls == [{"id": "ch_mock"}]
    assert workflow_env.calls("reserve") == 1 and workflow_env.calls("ship") == 1


async def test_run_rollback_runs_the_real_rollback_with_the_mocked_result(
        workflow_env: WorkflowTestEnv) -> None:
    undone: list[Any] = []
    order_workflow(workflow_env, undone)
    charge = workflow_env.mock_step("charge", result={"id": "ch_mock"}, run_rollback=True)
    workflow_env.mock_step("ship", error="carrier down")
    run = await workflow_env.execute("shop", "order", {"sku": "book"})

    workflow_env.assert_rolled_back(run, ["charge", "reserve"])
    assert undone == [("charge", {"id": "ch_mock"}), ("reserve", {"sku": "book"})]
    assert charge.rollback_calls == []
    with pytest.raises(ConfigurationError, match="run_rollback must be True or False"):
        workflow_env.mock_step("charge", result=1, run_rollback="yes")  # type: ignore[arg-type]


async def test_a_mocked_yaml_step_s_rollback_reaches_no_system(tmp_path: Path) -> None:
    # As in a `ductwork test` case: the refund (an HTTP call to the payment app) is not made.
    async with WorkflowTestEnv(specs=ROOT / "specs", product="my-product",
                               sandbox=tmp_path) as env:
        charge = env.mock_step("charge-payment", result={"id": "ch_3", "status": "succeeded"})
        env.mock_step("record-payment", error="audit-db is read-only")
        run = await env.execute("charge-payment", {"amount": 900, "email": "cy@example.com"})
        assert run.status == "rolled_back", run.error
        env.assert_step(run, "charge-payment", rollback="rolled_back")
        assert charge.rollback_calls == [{"id": "ch_3", "status": "succeeded"}]


async def test_a_step_that_ran_before_its_mock_keeps_its_real_rollback() -> None:
    # What decides is who gave the step's result: a mock installed after the step ran (here
    # while the run waits for a signal) does not turn its real rollback off.
    async with WorkflowTestEnv(product="shop") as env:
        undone: list[Any] = []

        @env.workflow(tag="order", signals=["go"])
        async def order(ctx: Any) -> Any:
            await ctx.step("charge", lambda: {"id": "real"}, lambda r: undone.append(r))
            await ctx.wait_for_signal("go")
            await ctx.step("ship", lambda: 1)

        run = await env.execute("order", {})
        assert run.status == "running"
        env.mock_step("charge", result={"id": "mock"})
        env.mock_step("ship", error="carrier down")
        done = await env.signal(run.workflow_id, "go")
        assert done.status == "rolled_back" and undone == [{"id": "real"}]


async def test_assertions_fail_with_the_journal_in_the_message(
        workflow_env: WorkflowTestEnv) -> None:
    order_workflow(workflow_env, [])
    run = await workflow_env.execute("shop", "order", {"sku": "pen"})
    workflow_env.assert_status(run, "completed")
    with pytest.raises(AssertionError, match=r"(?s)completed steps differ.*charge: completed"):
        workflow_env.assert_steps(run, ["reserve", "ship"])
    with pytest.raises(AssertionError, match="no step was rolled back"):
        workflow_env.assert_rolled_back(run)
    with pytest.raises(AssertionError, match="output"):
        workflow_env.assert_step(run, "charge", output={"id": "other"})
    with pytest.raises(AssertionError, match="was not recorded"):
        workflow_env.assert_step(run, "refund")
    with pytest.raises(AssertionError, match="expected never"):
        workflow_env.assert_not_run("ship")


async def test_retry_delays_are_skipped_and_side_effects_used_per_attempt(
        workflow_env: WorkflowTestEnv) -> None:
    order_workflow(workflow_env, [])
    mock = workflow_env.mock_step("charge", side_effect=[TimeoutError, ValueError("busy"),
                                                         {"id": "third-time"}])
    start = workflow_env.clock.now()
    run = await workflow_env.execute("shop", "order", {"sku": "mug"})
    assert run.status == "completed" and run.output == {"charge": "third-time"}
    workflow_env.assert_step(run, "charge", attempts=3)
    assert len(mock.calls) == 3 and workflow_env.calls("charge") == 1
    assert workflow_env.clock.now() - start == pytest.approx(2 * 3600)


async def test_side_effect_function_sees_ctx_and_a_running_out_list_is_an_error(
        workflow_env: WorkflowTestEnv) -> None:
    order_workflow(workflow_env, [])
    workflow_env.mock_step("charge", side_effect=lambda ctx: {"id": f"for-{ctx.input.sku}"})
    workflow_env.mock_step("ship", side_effect=[])
    run = await workflow_env.execute("shop", "order", {"sku": "pen"})
    workflow_env.assert_step(run, "charge", output={"id": "for-pen"})
    assert run.status == "rolled_back" and "side_effect ran out" in (run.error or "")


async def test_a_month_long_sleep_finishes_at_once() -> None:
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    async with WorkflowTestEnv(product="p", start=start) as env:
        @env.workflow(tag="trial")
        async def trial(ctx: Any) -> Any:
            await ctx.step("start-trial", lambda: 1)
            await ctx.sleep("30d")
            return await ctx.step("bill", lambda: "billed")

        run = await env.execute("trial", {"plan": "pro"})  # the default product's "trial"
        assert run.status == "completed" and run.output == "billed"
        assert env.clock.datetime() == start + dt.timedelta(days=30)
    async with WorkflowTestEnv() as bare:
        with pytest.raises(ConfigurationError, match="name the product and the workflow tag"):
            await bare.execute("trial")


async def test_without_auto_advance_a_sleeping_run_waits_for_advance() -> None:
    async with WorkflowTestEnv(product="p", auto_advance=False) as env:
        @env.workflow(tag="trial")
        async def trial(ctx: Any) -> Any:
            await ctx.sleep("1d")
            return await ctx.step("bill", lambda: "billed")

        run = await env.execute("trial")
        assert run.status == "running"
        assert (await env.status(run.workflow_id))["status"] == "sleeping"
        assert await env.advance("23h") == []
        env.assert_not_run("bill")
        (done,) = await env.advance("1h")
        assert done.status == "completed" and done.output == "billed"


async def test_queued_signal_is_delivered_when_the_run_waits(
        workflow_env: WorkflowTestEnv) -> None:
    @workflow_env.workflow(product="p", tag="approval", signals=["approve", "reject"])
    async def approval(ctx: Any) -> Any:
        await ctx.step("submit", lambda: 1)
        return await ctx.wait_for_signal(["approve", "reject"], timeout="7d")

    workflow_env.queue_signal("reject", {"by": "ann"})
    run = await workflow_env.execute("p", "approval")
    assert run.output == {"by": "ann", "_signal": "reject"}


async def test_signal_sent_by_the_test_while_the_run_waits(
        workflow_env: WorkflowTestEnv) -> None:
    @workflow_env.workflow(product="p", tag="approval")
    async def approval(ctx: Any) -> Any:
        got = await ctx.wait_for_signal("approve")
        return await ctx.step("after", lambda: got["by"])

    run = await workflow_env.execute("p", "approval")
    assert run.status == "running"
    assert (await workflow_env.status(run.workflow_id))["status"] == "waiting"
    done = await workflow_env.signal(run.workflow_id, "approve", {"by": "bob"})
    assert done.status == "completed" and done.output == "bob"


async def test_signal_timeout_fires_instantly(workflow_env: WorkflowTestEnv) -> None:
    @workflow_env.workflow(product="p", tag="approval")
    async def approval(ctx: Any) -> Any:
        try:
            await ctx.wait_for_signal("approve", timeout="3d")
        except SignalTimeoutError:
            return "expired"
        return "approved"

    start = workflow_env.clock.now()
    run = await workflow_env.execute("p", "approval")
    assert run.output == "expired"
    assert workflow_env.clock.now() - start == pytest.approx(3 * 86400)


async def test_signals_and_sleeps_inside_a_fan_out(workflow_env: WorkflowTestEnv) -> None:
    @workflow_env.workflow(product="p", tag="fan")
    async def fan(ctx: Any) -> Any:
        async def left() -> Any:
            await ctx.sleep("2h")
            return await ctx.step("left", lambda: "L")

        async def right() -> Any:
            return await ctx.wait_for_signal("go", timeout="1d")

        return await ctx.parallel([left, right])

    workflow_env.queue_signal("go", "R")
    run = await workflow_env.execute("p", "fan")
    assert run.status == "completed" and run.output == ["L", "R"]


async def test_child_workflow_that_sleeps_is_driven_too(workflow_env: WorkflowTestEnv) -> None:
    @workflow_env.workflow(product="p", tag="child")
    async def child(ctx: Any) -> Any:
        await ctx.sleep("1h")
        return await ctx.step("work", lambda: ctx.input["n"] * 2)

    @workflow_env.workflow(product="p", tag="parent")
    async def parent(ctx: Any) -> Any:
        doubled = await ctx.workflow("kid", "child", {"n": 21})
        return await ctx.step("after", lambda: doubled + 0)

    run = await workflow_env.execute("p", "parent")
    assert run.status == "completed" and run.output == 42


async def test_queries_and_definitions_copied_from_an_app() -> None:
    app = Ductwork(store="sqlite://:memory:")

    @app.workflows.workflow(product="p", tag="counter",
                            queries={"count": lambda ctx: ctx.get_state("n", 0)})
    async def counter(ctx: Any) -> Any:
        await ctx.set_state("n", 5)
        await ctx.wait_for_signal("stop")

    async with WorkflowTestEnv(app=app) as env:
        run = await env.execute("p", "counter")
        assert run.status == "running"
        assert await env.query(run.workflow_id, "count") == 5
    await app.aclose()


async def test_yaml_workflow_with_mocked_connectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the order workflow's python: steps import examples.fulfilment
    async with WorkflowTestEnv(specs=ROOT / "specs", product="my-product") as env:
        env.mock_step("store-invoice", result={"file_key": "invoices/o-1.json"})
        env.mock_step("audit-order", result={"id": 1})
        env.mock_step("notify-customer", error="smtp down")
        env.queue_signal("picked-up", {"at": "desk"})
        run = await env.execute("order-fulfilment", input={
            "order_id": "o-1", "email": "a@example.com", "shipping": "pickup",
            "items": [{"sku": "pen", "quantity": 2}]})
        assert run.status == "completed", run.error
        assert run.output["total"] == 300 and run.output["tracking"] is None
        env.assert_step(run, "notify-customer", status="skipped", error="smtp down")


async def test_misuse_is_reported_clearly() -> None:
    env = WorkflowTestEnv()
    with pytest.raises(ConfigurationError, match="not started"):
        _ = env.engine
    with pytest.raises(ConfigurationError, match="one of result=, error=, side_effect="):
        env.mock_step("x", result=1, error="no")
    with pytest.raises(ConfigurationError, match="name the product"):
        env.define(tag="t", handler=lambda ctx: None)
    with pytest.raises(ConfigurationError, match="was not run through this WorkflowTestEnv"):
        env.assert_steps("wf_unknown", [])
    await env.aclose()


async def test_fake_clock_advances_only_on_demand() -> None:
    clock = FakeClock(start=1000.0)
    assert clock.now() == 1000.0
    assert clock.advance("1.5s") == 1001.5
    clock.advance_to(900.0)  # never backwards
    assert clock.now() == 1001.5
    await clock.sleep(10)
    assert clock.now() == 1011.5 and clock.slept == [10]


async def test_mock_rollback_answers_the_rollback(workflow_env: WorkflowTestEnv) -> None:
    undone: list[Any] = []
    order_workflow(workflow_env, undone)
    workflow_env.mock_step("charge", result={"id": "ch_mock"})
    refund = workflow_env.mock_rollback("charge")
    workflow_env.mock_rollback("reserve", error="stock service down")
    workflow_env.mock_step("ship", error="carrier down")
    run = await workflow_env.execute("shop", "order", {"sku": "book"})

    assert run.status == "failed" and "rollback failed for 'reserve'" in str(run.error)
    assert undone == []                       # neither real rollback ran
    assert refund.calls == [{"id": "ch_mock"}]  # given the step's result
    workflow_env.assert_step(run, "charge", rollback="rolled_back")
    workflow_env.assert_step(run, "reserve", rollback="failed")
    workflow_env.assert_step(run, "ship", rollback="not_run")
    with pytest.raises(AssertionError, match="rollback 'failed', expected 'rolled_back'"):
        workflow_env.assert_step(run, "reserve", rollback="rolled_back")
    with pytest.raises(ConfigurationError, match="one of rolled_back, failed, not_run"):
        workflow_env.assert_step(run, "reserve", rollback="done")
    with pytest.raises(ConfigurationError, match="give one of result=, error="):
        workflow_env.mock_rollback("charge", result=1, error="no")


async def test_a_sandbox_keeps_files_in_its_folder_and_refuses_the_network(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    product = tmp_path / "specs" / "my-product"
    shutil.copytree(ROOT / "specs" / "my-product", product,
                    ignore=shutil.ignore_patterns("tests"))
    monkeypatch.chdir(tmp_path)
    box = tmp_path / "box"
    async with WorkflowTestEnv(specs=product.parent, product="my-product", environ={},
                               sandbox=box) as env:
        run = await env.execute("user-onboarding", {"email": "a@example.com", "name": "A"})
        assert run.status == "completed", run.error
        charge = await env.execute("charge-payment", {"amount": 5, "email": "a@example.com"})
    assert charge.status == "failed"
    assert "action/stripe (env dev): a network service (http)" in str(charge.error)
    assert not (product / ".ductwork").exists() and not (tmp_path / ".ductwork").exists()
    dbs = sorted(p.name for p in (box / "my-product" / ".ductwork").iterdir())
    assert dbs == ["audit.db", "outbox", "users.db"]


async def test_the_test_harness_keeps_a_workflow_active_in_no_env_inactive() -> None:
    app = Ductwork(store="sqlite://:memory:")

    @app.workflows.workflow(product="p", tag="off", envs=[{"slug": "dev", "active": False}])
    async def off(ctx: Any) -> Any:
        return 1

    async with WorkflowTestEnv(app=app) as env:
        with pytest.raises(ConfigurationError, match="not active in env 'dev'"):
            await env.execute("p", "off")
    await app.aclose()
