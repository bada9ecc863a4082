"""ctx.idempotency_key: one key per step of a run, the same on every attempt of that step."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

from werkzeug import Request, Response

from ductwork import Ductwork
from tests.support.http import local_http_server
from tests.support.ports import free_port


async def test_the_key_is_stable_per_step_and_distinct_between_steps(dw: Ductwork) -> None:
    seen: dict[str, list[str]] = {}

    def record(tag: str, ctx: Any, fail_first: int = 0) -> str:
        seen.setdefault(tag, []).append(ctx.idempotency_key)
        if len(seen[tag]) <= fail_first:
            raise RuntimeError("the provider timed out")
        return str(ctx.idempotency_key)

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        a = await ctx.step("a", lambda: record("a", ctx, fail_first=2), retries=2,
                           retry_delay=1)
        b = await ctx.step("b", lambda: record("b", ctx))
        b2 = await ctx.step("b", lambda: record("b#2", ctx))  # the 2nd occurrence of a tag
        return [a, b, b2]

    r1 = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="order-1")
    r2 = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="order-2")
    assert r1.status == r2.status == "completed"
    keys1, keys2 = r1.output, r2.output
    assert seen["a"][:3] == [keys1[0]] * 3  # every retry of a step: the same key
    assert len(set(keys1) | set(keys2)) == 6  # per step and per run: all different
    assert all(str(uuid.UUID(k)) == k for k in keys1)  # a UUID fits every provider's rules


async def test_a_step_run_again_by_another_process_has_the_same_key(store_url: str) -> None:
    keys: list[str] = []
    called = asyncio.Event()

    def define(dw: Ductwork, hang: bool) -> None:
        @dw.workflows.workflow(product="p", tag="t")
        async def wf(ctx: Any) -> Any:
            await ctx.step("a", lambda: 1)

            async def charge() -> str:
                keys.append(ctx.idempotency_key)  # the provider got the call ...
                called.set()
                if hang:
                    await asyncio.Event().wait()  # ... and the process stops before the commit
                return str(ctx.idempotency_key)

            return await ctx.step("charge", charge)

    async with Ductwork(store=store_url) as first:
        define(first, hang=True)
        r = await first.workflows.execute(product="p", env="dev", tag="t", workflow_id="w",
                                          timeout="100ms")
        assert r.status == "running"
        await asyncio.wait_for(called.wait(), 10)
    async with Ductwork(store=store_url) as again:  # a new process replays the run
        define(again, hang=False)
        await again.workflows.recover()
        r = await again.workflows.result("w", timeout=10)
    assert r.status == "completed"
    assert len(keys) == 2 and keys[0] == keys[1] == r.output


async def test_a_rollback_has_a_key_of_its_own(dw: Ductwork) -> None:
    got: dict[str, str] = {}

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        def charge() -> str:
            got["charge"] = ctx.idempotency_key
            return "ch_1"

        def refund(_charge: str) -> None:
            got["refund"] = ctx.idempotency_key

        await ctx.step("charge", charge, rollback=refund)
        await ctx.step("ship", lambda: 1 / 0)

    r = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
    assert r.status == "rolled_back"
    assert got["refund"] != got["charge"]
    assert len(got["refund"]) == 36


async def test_outside_a_step_the_key_is_a_clear_error(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        return ctx.idempotency_key

    r = await dw.workflows.execute(product="p", env="dev", tag="t", workflow_id="w")
    assert r.status == "failed"
    assert "ctx.idempotency_key exists only while a step's function" in str(r.error)


async def test_a_fallback_sends_one_key_to_every_provider_it_tries(tmp_path: Path) -> None:
    from tests.interpreter.test_resilience import write_specs

    keys: list[tuple[str, str | None]] = []

    def gateway(name: str, status: int) -> Any:
        def handle(request: Request) -> Response:
            keys.append((name, request.headers.get("Idempotency-Key")))
            return Response('{"id": "x"}', status, content_type="application/json")
        return handle

    with local_http_server() as a, local_http_server() as b:
        a.expect_request("/v1/charges", method="POST").respond_with_handler(gateway("a", 503))
        b.expect_request("/v2/payments", method="POST").respond_with_handler(gateway("b", 200))
        specs = write_specs(tmp_path, (a, b), free_port(), free_port())
        async with Ductwork(specs=str(specs), store=f"sqlite:///{tmp_path / 'r.db'}") as dw:
            @dw.workflows.workflow(product="pay", tag="pay")
            async def handler(ctx: Any) -> Any:
                async def charge() -> Any:
                    got = await ctx.fallback.execute(fallback="charge", input={"amount": 1})
                    return {"provider": got["provider"], "key": ctx.idempotency_key}
                return await ctx.step("charge", charge)

            r = await dw.workflows.execute(product="pay", env="dev", tag="pay",
                                           workflow_id="pay-1")
    assert r.status == "completed", r.error
    # stripe's first try and its retry, then paypal: one logical call, one key.
    assert keys == [("a", r.output["key"]), ("a", r.output["key"]), ("b", r.output["key"])]
