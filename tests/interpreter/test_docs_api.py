"""The Python API as the product's workflow docs call it: input fields named like mapping
methods, the positional options dicts, result.error's fields, call options on every
component, multi-channel send, start_at in epoch milliseconds, and the re-run options."""

from __future__ import annotations

import datetime as dt
import email
import time
from pathlib import Path
from typing import Any

import pytest

from ductwork import ConfigurationError, Ductwork, InputFieldNotFoundError
from ductwork.errors import ConnectorError
from ductwork.interpreter import codec
from ductwork.testing.doubles import MemoryDatabase

ORDER = {"orderId": "o-1", "items": [{"sku": "a", "price": 2, "quantity": 3}],
         "keys": ["k1"], "values": {"a": 1}, "get": "field", "metadata": {"x": 1, "y": 2}}


async def test_input_fields_named_like_mapping_methods_are_the_fields(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="fields")
    async def fields(ctx: Any) -> Any:
        subtotal = sum(i.price * i.quantity for i in ctx.input.items)
        return {"n": len(ctx.input.items), "subtotal": subtotal, "keys": ctx.input.keys,
                "values": ctx.input.values, "get": ctx.input.get,
                "size": ctx.transform.size(ctx.input.metadata),
                "merged": ctx.transform.merge(ctx.input.metadata, {"z": 3}),
                "whole": ctx.input, "as_dict": ctx.input.to_dict()["orderId"],
                "item": ctx.input["items"][0]["sku"]}

    r = await dw.workflows.execute("p", "dev", "fields", ORDER)
    assert r.status == "completed", r.error
    assert r.output == {"n": 1, "subtotal": 6, "keys": ["k1"], "values": {"a": 1},
                        "get": "field", "size": 2, "merged": {"x": 1, "y": 2, "z": 3},
                        "whole": ORDER, "as_dict": "o-1", "item": "a"}


async def test_without_such_fields_the_mapping_methods_remain(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="methods")
    async def methods(ctx: Any) -> Any:
        assert ctx.input.get("missing", "dflt") == "dflt"
        assert sorted(ctx.input.keys()) == ["email", "user"]
        assert dict(ctx.input.items())["email"] == "a@b.c"
        assert ctx.input.user.get("name") == "Ann" and {**ctx.input}["email"] == "a@b.c"
        with pytest.raises(InputFieldNotFoundError, match=r"Input field not found: user\.age"):
            _ = ctx.input.user.age
        return ctx.input.to_dict()

    r = await dw.workflows.execute("p", "dev", "methods", {"email": "a@b.c",
                                                           "user": {"name": "Ann"}})
    assert r.status == "completed", r.error


async def test_result_error_carries_message_step_and_code(dw: Ductwork) -> None:
    def boom() -> None:
        raise RuntimeError("card declined")

    @dw.workflows.workflow(product="p", tag="fails")
    async def fails(ctx: Any) -> Any:
        await ctx.step("charge", boom)

    r = await dw.workflows.execute("p", "dev", "fails", {})
    assert r.status == "failed"
    err = r.error
    assert err is not None
    assert err.message == str(err) == "Step 'charge' failed: RuntimeError: card declined"
    assert (err.step, err.code) == ("charge", "step_failed")
    assert err["message"] == err.message and err["code"] == "step_failed"
    assert err.to_dict() == {"message": err.message, "step": "charge", "code": "step_failed"}
    assert "card declined" in err and type(r.to_dict()["error"]) is str
    stored = await dw.workflows.result(r.workflow_id)
    assert stored.error is not None and stored.error.to_dict() == err.to_dict()

    @dw.workflows.workflow(product="p", tag="slow")
    async def slow(ctx: Any) -> Any:
        await ctx.step("wait", lambda: time.sleep(0.3), timeout="20ms")

    t = await dw.workflows.execute("p", "dev", "slow", {})
    assert t.error is not None and t.error.code == "step_timeout" and t.error.step == "wait"


async def test_wait_for_signal_and_child_workflow_take_positional_options(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="payment-processing")
    async def payment(ctx: Any) -> Any:
        return {"chargeId": f"ch-{ctx.input.amount}"}

    @dw.workflows.workflow(product="p", tag="parent", signals=["approve"])
    async def parent(ctx: Any) -> Any:
        try:
            await ctx.wait_for_signal("approve", {"timeout": "30ms"})
        except Exception as e:
            timed_out = type(e).__name__
        child = await ctx.workflow("payment-" + ctx.input.order_id, "payment-processing",
                                   {"amount": 5},
                                   {"timeout": "5m", "retries": 2,
                                    "parent_close_policy": "terminate"})
        return {"timed_out": timed_out, "child": child}

    r = await dw.workflows.execute("p", "dev", "parent", {"order_id": "o1"})
    assert r.status == "completed", r.error
    assert r.output == {"timed_out": "SignalTimeoutError", "child": {"chargeId": "ch-5"}}

    @dw.workflows.workflow(product="p", tag="bad-opts", signals=["approve"])
    async def bad(ctx: Any) -> Any:
        await ctx.wait_for_signal("approve", {"timout": "1s"})

    b = await dw.workflows.execute("p", "dev", "bad-opts", {})
    assert b.status == "failed" and "unknown option(s) ['timout']" in str(b.error)


class Flaky(MemoryDatabase):
    """Fails the first `n` inserts with a transient error, then works; or hangs."""

    def __init__(self, n: int, hang: bool = False) -> None:
        super().__init__({"add": "rows"})
        self.n, self.hang, self.attempts = n, hang, 0

    async def insert(self, event: str, data: Any) -> Any:
        import asyncio

        self.attempts += 1
        if self.hang:
            await asyncio.sleep(5)
        if self.attempts <= self.n:
            raise ConnectorError("connection reset", kind="database", event=event)
        return await super().insert(event, data)


async def test_retries_retry_delay_and_timeout_on_component_calls(dw: Ductwork) -> None:
    flaky, hung = Flaky(2), Flaky(0, hang=True)
    dw.connectors.register("database", "flaky", flaky)
    dw.connectors.register("database", "hung", hung)

    @dw.workflows.workflow(product="p", tag="calls")
    async def calls(ctx: Any) -> Any:
        row = await ctx.step("insert", lambda: ctx.database.insert(
            database="flaky", event="add", data={"a": 1}, retries=2, retry_delay=10))
        try:
            await ctx.database.insert(database="hung", event="add", data={}, timeout=30,
                                      retries=1, retry_delay="5ms")
        except ConnectorError as e:
            return {"row": row, "timeout": str(e)}
        return None

    r = await dw.workflows.execute("p", "dev", "calls", {})
    assert r.status == "completed", r.error
    assert r.output["row"] == {"id": 1, "a": 1} and flaky.attempts == 3
    assert "'insert' timed out after 0.03s" in r.output["timeout"] and hung.attempts == 2
    logs = await dw.workflows.logs(r.workflow_id)
    assert sum("retrying" in lg["message"] for lg in logs) == 3

    # Not retried: an error no retry can fix fails at once.
    plain = MemoryDatabase({"add": "rows"})
    dw.connectors.register("database", "plain", plain)

    @dw.workflows.workflow(product="p", tag="permanent")
    async def permanent(ctx: Any) -> Any:
        await ctx.database.insert(database="plain", event="nope", data={}, retries=5)

    p = await dw.workflows.execute("p", "dev", "permanent", {})
    assert p.status == "failed" and "unknown event 'nope'" in str(p.error)

    @dw.workflows.workflow(product="p", tag="bad")
    async def bad(ctx: Any) -> Any:
        await ctx.database.insert(database="plain", event="add", data={}, retries=-1)

    b = await dw.workflows.execute("p", "dev", "bad", {})
    assert "retries must be a whole number >= 0, got -1" in str(b.error)


MULTI = """\
product: alerts
envs: [dev]
notifications:
  multi-channel:
    envs: {dev: {provider: outbox, maildir: outbox}}
    events:
      urgent-alert:
        subject: "Alert for {{ recipients[0] }}"
        text: "Something needs you"
        message: "Alert: act now"
        title: "Alert"
        body: "Act now"
"""


@pytest.fixture
async def alerts(tmp_path: Path) -> Any:
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "product.yaml").write_text(MULTI)
    async with Ductwork(specs=tmp_path, store=f"sqlite:///{tmp_path / 'runs.db'}") as d:
        yield d, tmp_path / "alerts" / "outbox"


async def test_send_to_several_channels_reports_each(alerts: Any) -> None:
    dw, outbox = alerts

    @dw.workflows.workflow(product="alerts", tag="alert")
    async def alert(ctx: Any) -> Any:
        return await ctx.step("send", lambda: ctx.notification.send(
            notification="multi-channel", event="urgent-alert",
            input={"email": {"recipients": [ctx.input.email]},
                   "sms": {"phones": [ctx.input.phone]},
                   "push": {"tokens": [ctx.input.token]}},
            retries=3))

    r = await dw.workflows.execute("alerts", "dev", "alert",
                                   {"email": "ann@example.com", "phone": "+15005550006",
                                    "token": "device-1"})
    assert r.status == "completed", r.error
    assert set(r.output) == {"email", "sms", "push"}
    mails = [email.message_from_bytes(p.read_bytes()) for p in (outbox / "new").iterdir()]
    by_channel = {m.get("X-Ductwork-Channel", "email"): m for m in mails}
    assert len(mails) == 3, [m.items() for m in mails]
    assert any(m["Subject"] == "Alert for ann@example.com" for m in by_channel.values())


async def test_one_failing_channel_fails_the_call_naming_it(alerts: Any) -> None:
    dw, outbox = alerts

    @dw.workflows.workflow(product="alerts", tag="alert")
    async def alert(ctx: Any) -> Any:
        await ctx.step("send", lambda: ctx.notification.send(
            notification="multi-channel", event="urgent-alert",
            input={"email": {"recipients": ["ann@example.com"]},
                   "sms": {"phones": ["not-a-number"]}}))

    r = await dw.workflows.execute("alerts", "dev", "alert", {})
    assert r.status == "failed" and r.error is not None and r.error.step == "send"
    assert "1 of 2 channel(s) failed (sms:" in r.error and "delivered: email" in r.error
    assert len(list((outbox / "new").iterdir())) == 1

    @dw.workflows.workflow(product="alerts", tag="no-address")
    async def no_address(ctx: Any) -> Any:
        await ctx.notification.send(notification="multi-channel", event="urgent-alert",
                                    input={"email": {"phones": ["+15005550006"]}})

    n = await dw.workflows.execute("alerts", "dev", "no-address", {})
    assert "input.email must hold 'recipients'" in str(n.error)


async def test_dispatch_start_at_in_epoch_milliseconds(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="later")
    async def later(ctx: Any) -> Any:
        return 1

    soon = time.time() + 3600
    for start_at in (round(soon * 1000), dt.datetime.fromtimestamp(soon, dt.UTC),
                     dt.datetime.fromtimestamp(soon, dt.UTC).isoformat(), "1h"):
        job = await dw.workflows.dispatch("p", "dev", "later", {},
                                          schedule={"start_at": start_at})
        assert job["status"] == "scheduled"
        at = dt.datetime.fromisoformat(job["scheduled_at"].replace("Z", "+00:00")).timestamp()
        assert abs(at - soon) < 5, (start_at, job)


async def test_replay_options_idempotency_key_resume_input_and_history(dw: Ductwork) -> None:
    seen: list[Any] = []

    @dw.workflows.workflow(product="p", tag="order")
    async def order(ctx: Any) -> Any:
        v = await ctx.step("validate", lambda: {"ok": True})
        await ctx.checkpoint("validated", {"ok": v["ok"]})
        seen.append(ctx.input.get("retry_payment", "unset"))
        if ctx.input.fail:
            raise RuntimeError("payment declined")
        return {"paid": True}

    first = await dw.workflows.execute("p", "dev", "order", {"fail": True})
    assert first.status == "failed"
    a = await dw.workflows.replay(first.workflow_id, reason="debugging",
                                  options={"timeout": "2m", "debug": True},
                                  idempotency_key="replay-attempt-2")
    b = await dw.workflows.replay(first.workflow_id, idempotency_key="replay-attempt-2")
    assert a["workflow_id"] == b["workflow_id"] == "p:order:replay-attempt-2"
    assert a["replayed_from"] == first.workflow_id and len(seen) == 2
    with pytest.raises(ConfigurationError, match="unknown option 'retry'"):
        await dw.workflows.replay(first.workflow_id, options={"retry": 1})

    resumed = await dw.workflows.resume(first.workflow_id, from_checkpoint="validated",
                                        input={"fail": False, "retry_payment": False})
    assert resumed["status"] == "completed" and seen[-1] is False
    assert resumed["resumed_from"] == first.workflow_id

    h = await dw.workflows.history(first.workflow_id, include_step_details=True)
    assert h.replays == ["p:order:replay-attempt-2"] and h["restarts"] == []
    assert h.resumes == [resumed["workflow_id"]]
    assert h.checkpoints[0]["name"] == "validated" and h.checkpoints[0]["data"] == {"ok": True}
    done = [e for e in h.events if e["type"] == "step_completed"]
    assert done[0]["data"]["output"] == {"ok": True} and "duration" in done[0]["data"]
    assert h.to_dict()["status"] == "failed" and h[0]["type"] == "workflow_started"
    plain_history = await dw.workflows.history(first.workflow_id)
    plain = [e for e in plain_history if e["step"] == "validate"][-1]["data"]
    assert plain["output"] == {"ok": True} and "duration" not in plain  # details add duration
    assert codec.loads(codec.dumps(list(plain_history))) == list(plain_history)


async def test_the_docs_definition_shapes_refuse_what_they_cannot_mean(dw: Ductwork) -> None:
    async def handler(ctx: Any) -> Any:
        return None

    with pytest.raises(ConfigurationError) as bad_type:
        dw.workflows.define(product="p", tag="a", handler=handler,
                            signals={"approve": {"input": {"approver_id": "strng"}}})
    assert str(bad_type.value) == (
        "define(p/a): signal 'approve': field 'approver_id' has type 'strng'; write one of "
        "string, number, integer, boolean, object, array; did you mean 'string'?")
    with pytest.raises(ConfigurationError) as bad_env:
        dw.workflows.define(product="p", tag="b", handler=handler,
                            envs=[{"slug": "dev", "active": "yes"}])
    assert str(bad_env.value).startswith(
        "define(p/b): an env is a name such as 'dev', or {'slug': 'dev', 'active': True}; got ")
    dw.workflows.define(product="p", tag="none", handler=handler,
                        envs=[{"slug": "dev", "active": False}])
    with pytest.raises(ConfigurationError) as inactive:
        await dw.workflows.execute("p", "dev", "none", {})
    assert str(inactive.value) == ("Workflow p/none is not active in env 'dev' (envs: none "
                                   "active)")


async def test_restart_input_override_refuses_a_second_input(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="echo")
    async def echo(ctx: Any) -> Any:
        return ctx.input.to_dict()

    first = await dw.workflows.execute("p", "dev", "echo", {"a": 1, "b": 2})
    with pytest.raises(ConfigurationError, match=r"give input= .* or input_override="):
        await dw.workflows.restart(first.workflow_id, {"a": 3}, input_override={"b": 4})
    merged = await dw.workflows.restart(first.workflow_id, {"b": 5}, merge_input=True)
    assert merged["output"] == {"a": 1, "b": 5}
    partial = await dw.workflows.restart(first.workflow_id, input_override={"b": 6})
    assert partial["output"] == {"a": 1, "b": 6}


async def test_get_state_tested_without_await_fails_the_run_saying_so(dw: Ductwork) -> None:
    import asyncio

    @dw.workflows.workflow(product="p", tag="awaited")
    async def awaited(ctx: Any) -> Any:
        await ctx.set_state("retryCount", 0)
        await asyncio.gather(ctx.set_state("a", 1), ctx.set_state("b", 2))
        count = await ctx.get_state("retryCount") or 0
        await ctx.set_state("retryCount", count + 1)
        return {"state": dict(ctx.state), "missing": await ctx.get_state("nope", "dflt")}

    ok = await dw.workflows.execute("p", "dev", "awaited", {})
    assert ok.output == {"state": {"retryCount": 1, "a": 1, "b": 2}, "missing": "dflt"}

    # The docs' JavaScript reads `ctx.getState('retryCount') || 0`: without the await, the
    # test of its truth is an error naming the fix, not a silently true coroutine.
    @dw.workflows.workflow(product="p", tag="unawaited-get")
    async def unawaited_get(ctx: Any) -> Any:
        return ctx.get_state("retryCount") or 0

    g = await dw.workflows.execute("p", "dev", "unawaited-get", {})
    assert g.status == "failed" and str(g.error).startswith(
        "ctx.get_state('retryCount') was used without await: write `await "
        "ctx.get_state('retryCount')`")
