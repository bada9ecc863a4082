"""HTTP actions send the step's idempotency key: the same on every attempt of one step."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from ductwork import Ductwork
from ductwork.connectors.action import HttpActionConnector
from ductwork.connectors.action_config import validate
from ductwork.connectors.base import ResourceSpec, build_connector
from tests.support.action import clean_server as clean_server  # autouse fixture
from tests.support.action import server as server  # module fixture

EVENTS: dict[str, Any] = {
    "charge": {"method": "POST", "path": "/v1/charges", "body": ["amount"]},
    "refund": {"method": "POST", "path": "/v1/refunds", "body": ["charge"]},
    "lookup": {"method": "GET", "path": "/v1/charges/{id}"},
    "notify": {"method": "POST", "path": "/v1/notify", "idempotency_key": False},
}


@pytest.fixture
async def dw(tmp_path: Path) -> AsyncIterator[Ductwork]:
    async with Ductwork(store=f"sqlite:///{tmp_path / 'runs.db'}") as d:
        yield d


def use_app(dw: Ductwork, server: HTTPServer, **config: Any) -> HttpActionConnector:
    raw = {"base_url": server.url_for(""), **config}
    spec = ResourceSpec(kind="action", name="psp", env="dev", product="shop", config=raw,
                        definition={"envs": {"dev": raw}, "events": EVENTS})
    conn = build_connector(spec)
    assert isinstance(conn, HttpActionConnector)
    dw.connectors.register("action", "psp", conn)
    return conn


def sent(server: HTTPServer, header: str = "Idempotency-Key") -> list[tuple[str, str | None]]:
    return [(req.path, req.headers.get(header)) for req, _ in server.log]


async def test_a_retried_step_sends_the_same_key_each_time(dw: Ductwork,
                                                           server: HTTPServer) -> None:
    conn = use_app(dw, server)
    server.expect_ordered_request("/v1/charges").respond_with_data("busy", 503)
    server.expect_ordered_request("/v1/charges").respond_with_json({"id": "ch_1"})
    keys: list[str] = []

    @dw.workflows.workflow(product="shop", tag="pay")
    async def pay(ctx: Any) -> Any:
        async def charge() -> Any:
            keys.append(ctx.idempotency_key)
            return await ctx.action.run(app="psp", event="charge", input={"amount": 5})

        return await ctx.step("charge", charge, retries=1, retry_delay=1)

    try:
        r = await dw.workflows.execute(product="shop", env="dev", tag="pay", workflow_id="o-1")
    finally:
        await conn.aclose()
    assert r.status == "completed", r.error
    assert keys[0] == keys[1]
    assert sent(server) == [("/v1/charges", keys[0]), ("/v1/charges", keys[0])]


async def test_each_call_of_a_step_and_its_rollback_has_a_key_of_its_own(
        dw: Ductwork, server: HTTPServer) -> None:
    conn = use_app(dw, server)
    server.expect_request("/v1/charges").respond_with_json({"id": "ch_1"})
    server.expect_request("/v1/refunds").respond_with_json({"id": "re_1"})
    server.expect_request("/v1/charges/ch_1").respond_with_json({"id": "ch_1"})
    server.expect_request("/v1/notify").respond_with_json({})
    keys: dict[str, str] = {}

    @dw.workflows.workflow(product="shop", tag="pay")
    async def pay(ctx: Any) -> Any:
        async def charge() -> Any:
            keys["step"] = ctx.idempotency_key
            got = await ctx.action.run(app="psp", event="charge", input={"amount": 5})
            await ctx.action.run(app="psp", event="lookup", input={"id": got["id"]})  # GET
            await ctx.action.run(app="psp", event="notify", input={})  # idempotency_key: false
            await ctx.action.run(app="psp", event="charge", input={"amount": 6})
            return got

        async def refund(result: Any) -> Any:
            keys["rollback"] = ctx.idempotency_key
            return await ctx.action.run(app="psp", event="refund",
                                        input={"charge": result["id"]})

        await ctx.step("charge", charge, rollback=refund)
        await ctx.step("ship", lambda: 1 / 0)

    try:
        r = await dw.workflows.execute(product="shop", env="dev", tag="pay", workflow_id="o-1")
    finally:
        await conn.aclose()
    assert r.status == "rolled_back", r.error
    got = sent(server)
    assert [p for p, _ in got] == ["/v1/charges", "/v1/charges/ch_1", "/v1/notify",
                                   "/v1/charges", "/v1/refunds"]
    first, lookup, notify, second, refund = (k for _, k in got)
    assert first == keys["step"] and refund == keys["rollback"]
    assert lookup is None and notify is None
    assert second is not None and len({first, second, refund}) == 3


async def test_the_header_is_named_per_app_or_turned_off(dw: Ductwork,
                                                         server: HTTPServer) -> None:
    server.expect_request("/v1/charges").respond_with_json({"id": "ch_1"})

    @dw.workflows.workflow(product="shop", tag="pay")
    async def pay(ctx: Any) -> Any:
        return await ctx.step("charge", lambda: ctx.action.run(
            app="psp", event="charge", input={"amount": 5}))

    conn = use_app(dw, server, idempotency_header="X-Request-Id")
    try:
        r = await dw.workflows.execute(product="shop", env="dev", tag="pay", workflow_id="o-1")
    finally:
        await conn.aclose()
    assert r.status == "completed", r.error
    assert sent(server, "X-Request-Id")[0][1] is not None and sent(server)[0][1] is None

    server.clear()
    server.expect_request("/v1/charges").respond_with_json({"id": "ch_2"})
    conn = use_app(dw, server, idempotency_header=False)
    try:
        r = await dw.workflows.execute(product="shop", env="dev", tag="pay", workflow_id="o-2")
    finally:
        await conn.aclose()
    assert r.status == "completed", r.error
    assert [k for _, k in sent(server)] == [None]


async def test_a_key_given_by_the_caller_wins(dw: Ductwork, server: HTTPServer) -> None:
    conn = use_app(dw, server)
    server.expect_request("/v1/charges").respond_with_json({"id": "ch_1"})

    @dw.workflows.workflow(product="shop", tag="pay")
    async def pay(ctx: Any) -> Any:
        return await ctx.step("charge", lambda: ctx.action.run(
            app="psp", event="charge", input={"amount": 5, "headers:idempotency-key": "mine"}))

    try:
        r = await dw.workflows.execute(product="shop", env="dev", tag="pay", workflow_id="o-1")
    finally:
        await conn.aclose()
    assert r.status == "completed", r.error
    assert sent(server) == [("/v1/charges", "mine")]


def test_validate_reports_a_bad_header_name_or_event_flag() -> None:
    definition = {"envs": {"dev": {}}, "events": {
        "charge": {"method": "POST", "path": "/c", "idempotency_key": "yes"}}}
    problems = validate(definition, {"base_url": "https://psp.example",
                                     "idempotency_header": "Bad Header"})
    messages = {p[-1]: str(m) for p, m in problems}
    assert "idempotency_header must be a header name" in messages["idempotency_header"]
    assert "'idempotency_key' must be true or false" in messages["idempotency_key"]


async def test_a_component_call_retried_by_itself_sends_one_key(dw: Ductwork,
                                                                server: HTTPServer) -> None:
    conn = use_app(dw, server)
    server.expect_ordered_request("/v1/charges").respond_with_data("busy", 503)
    server.expect_ordered_request("/v1/charges").respond_with_json({"id": "ch_1"})

    @dw.workflows.workflow(product="shop", tag="pay")
    async def pay(ctx: Any) -> Any:
        async def charge() -> Any:
            got = await ctx.action.run(app="psp", event="charge", input={"amount": 5},
                                       retries=1, retry_delay="1ms")
            return {**got, "key": ctx.idempotency_key}

        return await ctx.step("charge", charge)

    try:
        r = await dw.workflows.execute(product="shop", env="dev", tag="pay", workflow_id="o-1")
    finally:
        await conn.aclose()
    assert r.status == "completed", r.error
    assert sent(server) == [("/v1/charges", r.output["key"])] * 2
