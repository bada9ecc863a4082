"""The getting-started page, translated to Python, against a real SQLite store."""

from __future__ import annotations

import pytest

from ductwork import Ductwork, InputFieldNotFoundError, WorkflowNotFoundError
from ductwork.testing.doubles import MemoryAction, MemoryDatabase, MemoryNotification


def setup_onboarding(dw: Ductwork, notifications: MemoryNotification) -> MemoryDatabase:
    users = MemoryDatabase({"create-user": "users"})
    audit = MemoryDatabase({"create-log": "logs"})
    dw.connectors.register("database", "users-db", users)
    dw.connectors.register("database", "audit-db", audit)
    dw.connectors.register("notification", "transactional", notifications)

    @dw.workflows.workflow(product="my-product", tag="user-onboarding", name="User Onboarding")
    async def onboarding(ctx):  # type: ignore[no-untyped-def]
        user = await ctx.step("create-user", lambda: ctx.database.insert(
            database="users-db", event="create-user",
            data={"email": ctx.input.email, "name": ctx.input.name}))

        async def welcome() -> None:
            await ctx.notification.email(
                notification="transactional", event="welcome-email",
                recipients=[ctx.input.email], subject={"name": ctx.input.name},
                template={"name": ctx.input.name})

        await ctx.step("send-welcome", welcome, None, {"allow_fail": True})
        await ctx.step("audit-log", lambda: ctx.database.insert(
            database="audit-db", event="create-log",
            data={"action": "user_created", "user_id": user["id"]}))
        return {"success": True, "userId": user["id"]}

    return users


async def test_onboarding_completes_with_the_documented_result_shape(dw: Ductwork) -> None:
    mail = MemoryNotification()
    users = setup_onboarding(dw, mail)
    result = await dw.workflows.execute(product="my-product", env="dev", tag="user-onboarding",
                                        input={"email": "john@example.com", "name": "John Doe"})
    assert result.status == "completed"
    assert result.output == {"success": True, "userId": 1}
    assert result.completed_steps == ["create-user", "send-welcome", "audit-log"]
    assert result.failed_step is None and result.error is None
    assert set(result.to_dict()) == {"status", "workflow_id", "execution_time", "output",
                                     "completed_steps", "failed_step", "error"}
    assert isinstance(result.execution_time, int)
    assert users.tables["users"][0]["email"] == "john@example.com"
    assert mail.sent[0]["recipients"] == ["john@example.com"]


async def test_allow_fail_step_failure_lets_the_run_continue(dw: Ductwork) -> None:
    setup_onboarding(dw, MemoryNotification(fail=True))
    result = await dw.workflows.execute(product="my-product", env="dev", tag="user-onboarding",
                                        input={"email": "jane@example.com", "name": "Jane"})
    assert result.status == "completed"
    assert result.completed_steps == ["create-user", "audit-log"]
    detail = {s.tag: s for s in await dw.store.load_steps(result.workflow_id)}
    assert detail["send-welcome"].status == "skipped"
    assert "delivery refused" in (detail["send-welcome"].error or "")


async def test_charge_is_refunded_with_its_original_result_when_a_later_step_fails(
        dw: Ductwork) -> None:
    stripe = MemoryAction({"create-charge": lambda inp: {"id": "ch_1", **inp["body"]},
                           "refund-charge": lambda inp: {"refunded": inp["body"]["chargeId"]}})
    dw.connectors.register("action", "stripe", stripe)

    @dw.workflows.workflow(product="shop", tag="pay")
    async def pay(ctx):  # type: ignore[no-untyped-def]
        await ctx.step(
            "charge-payment",
            lambda: ctx.action.run(app="stripe", event="create-charge",
                                   input={"body": {"amount": ctx.input.amount}}),
            lambda result: ctx.action.run(app="stripe", event="refund-charge",
                                          input={"body": {"chargeId": result["id"]}}))

        def ship() -> None:
            raise RuntimeError("warehouse is closed")

        await ctx.step("ship", ship)

    result = await dw.workflows.execute(product="shop", env="dev", tag="pay",
                                        input={"amount": 4200})
    assert result.status == "rolled_back"
    assert result.failed_step == "ship"
    assert result.error == "Step 'ship' failed: RuntimeError: warehouse is closed"
    assert stripe.calls == [("create-charge", {"body": {"amount": 4200}}),
                            ("refund-charge", {"body": {"chargeId": "ch_1"}})]
    assert result.rollback_result is not None
    assert result.rollback_result["rolled_back_steps"] == ["charge-payment"]


async def test_troubleshooting_workflow_not_found(dw: Ductwork) -> None:
    with pytest.raises(WorkflowNotFoundError, match=r"^Workflow not found: my-product/nope"):
        await dw.workflows.execute(product="my-product", env="dev", tag="nope", input={})


async def test_troubleshooting_step_failed_reports_step_and_error(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx):  # type: ignore[no-untyped-def]
        await ctx.step("create-user", lambda: {"id": 1})
        await ctx.step("charge", lambda: 1 / 0)

    result = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert result.status == "failed"  # nothing had a rollback
    assert result.failed_step == "charge"
    assert result.error == "Step 'charge' failed: ZeroDivisionError: division by zero"


async def test_troubleshooting_input_field_not_found(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx):  # type: ignore[no-untyped-def]
        return await ctx.step("read", lambda: ctx.input.emial)

    result = await dw.workflows.execute(product="p", env="dev", tag="t",
                                        input={"email": "a@b.c"})
    assert result.status == "failed"
    assert result.error == "Step 'read' failed: Input field not found: emial"
    with pytest.raises(InputFieldNotFoundError):
        _ = __import__("ductwork").interpreter.context.InputView({"a": {"b": 1}})["a"]["c"]
