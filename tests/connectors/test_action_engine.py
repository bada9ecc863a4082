"""The action connector end to end through the engine: Python and YAML workflows, rollback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork.connectors.action import HttpActionConnector
from ductwork.connectors.base import ResourceSpec, build_connector, resolve_refs
from tests.support.action import EVENTS, reply
from tests.support.action import clean_server as clean_server  # autouse fixture
from tests.support.action import server as server  # module fixture

# -- end to end through the engine (the seed's charge + refund example) --------------------------

def _stripe_for(dw: Any, server: HTTPServer) -> HttpActionConnector:
    """The app connector as the engine would build it: refs resolved into dw's SecretSet."""
    raw = {"base_url": server.url_for(""), "auth": {"type": "bearer",
                                                    "token": "${secrets.STRIPE_KEY}"}}
    config = resolve_refs(raw, secrets=dw.secret_values, collect=dw.secrets)
    spec = ResourceSpec(kind="action", name="stripe", env="dev", product="shop", config=config,
                        definition={"envs": {"dev": raw}, "events": EVENTS}, secrets=dw.secrets)
    conn = build_connector(spec)
    assert isinstance(conn, HttpActionConnector)
    return conn


def _payment_workflow(dw: Any, ship_fails: bool) -> None:
    @dw.workflows.workflow(product="shop", tag="payment")
    async def payment(ctx: Any) -> Any:
        charge = await ctx.step(
            "charge-payment",
            lambda: ctx.action.run(app="stripe", event="create-charge",
                                   input={"body": {"amount": ctx.input.amount}}),
            lambda result: ctx.action.run(app="stripe", event="refund-charge",
                                          input={"body": {"chargeId": result["id"]}}),
        )

        def ship() -> dict[str, Any]:
            if ship_fails:
                raise RuntimeError("warehouse is closed")
            return {"shipped": True}

        await ctx.step("ship", ship)
        return {"charge": charge["id"]}


async def _run_payment(
    server: HTTPServer, store: Path, key: str, *, amount: int, ship_fails: bool
) -> Any:
    """Run the payment workflow once on a Ductwork whose STRIPE_KEY secret is `key`."""
    from ductwork import Ductwork

    async with Ductwork(store=f"sqlite:///{store}", secrets={"STRIPE_KEY": key}) as dw:
        conn = _stripe_for(dw, server)
        dw.connectors.register("action", "stripe", conn)
        _payment_workflow(dw, ship_fails=ship_fails)
        try:
            return await dw.workflows.execute(product="shop", env="dev", tag="payment",
                                              input={"amount": amount})
        finally:
            await conn.aclose()


async def test_engine_charge_then_refund_on_rollback(server: HTTPServer, tmp_path: Any) -> None:
    server.expect_request("/v1/charges", method="POST",
                          headers={"Authorization": "Bearer sk_test_e2e_key"}) \
        .respond_with_json({"id": "ch_e2e", "amount": 500}, 201)
    server.expect_request("/v1/refunds", method="POST").respond_with_json({"id": "re_e2e"})
    result = await _run_payment(server, tmp_path / "runs.db", "sk_test_e2e_key", amount=500,
                                ship_fails=True)
    assert result.status == "rolled_back", result.error
    assert result.failed_step == "ship" and "warehouse is closed" in (result.error or "")
    bodies = [(r.path, r.get_json()) for r, _ in server.log]
    assert bodies == [("/v1/charges", {"amount": 500}), ("/v1/refunds", {"chargeId": "ch_e2e"})]


async def test_engine_completed_run_returns_the_charge(server: HTTPServer, tmp_path: Any) -> None:
    server.expect_request("/v1/charges", method="POST").respond_with_json({"id": "ch_ok"}, 201)
    result = await _run_payment(server, tmp_path / "runs.db", "sk_test_e2e_key", amount=700,
                                ship_fails=False)
    assert result.status == "completed", result.error
    assert result.output == {"charge": "ch_ok"}
    assert result.completed_steps == ["charge-payment", "ship"]


async def test_engine_bad_credentials_fail_the_run_without_leaking_the_key(
    server: HTTPServer, tmp_path: Any
) -> None:
    def reject(request: Request) -> Response:
        echo = request.headers.get("Authorization")
        return reply(401, {"error": {"message": f"Invalid API Key provided: {echo}"}})

    server.expect_request("/v1/charges").respond_with_handler(reject)
    store = tmp_path / "runs.db"
    result = await _run_payment(server, store, "sk_live_do_not_leak", amount=500,
                                ship_fails=False)
    assert result.status == "failed" and result.failed_step == "charge-payment"
    error = result.error or ""
    assert "HTTP 401" in error and "stripe" in error and "create-charge" in error
    assert "Invalid API Key" in error and "sk_live_do_not_leak" not in error
    assert store.stat().st_size > 0
    for path in tmp_path.iterdir():  # the run store and its WAL/SHM files
        assert b"sk_live_do_not_leak" not in path.read_bytes(), path


PRODUCT = """
product: shop
envs: [dev, prd]
apps:
  stripe:
    envs:
      dev:
        base_url: "${env.STRIPE_URL}"
        auth: {type: bearer, token: "${secrets.STRIPE_KEY}"}
        retries: 1
        backoff: 10ms
      prd: {base_url: "https://api.stripe.com", auth: {type: bearer, token: "${env.NOPE}"}}
    events:
      create-charge: {method: POST, path: /v1/charges, body: [amount, currency]}
      refund-charge: {method: POST, path: /v1/refunds, body: [charge]}
      ship: {method: POST, path: "/v1/ship/{order}"}
"""

YAML_WORKFLOW = """
workflow: charge-payment
steps:
  - tag: charge-payment
    action.run:
      app: stripe
      event: create-charge
      input: {amount: "${ctx.input.amount}", currency: usd}
    rollback:
      action.run: {app: stripe, event: refund-charge, input: {body: {charge: "${result.id}"}}}
  - tag: ship
    action.run: {app: stripe, event: ship, input: {order: "${ctx.input.order}", fast: true}}
output: {chargeId: "${steps.charge-payment.id}"}
"""


def _product_folder(tmp_path: Any) -> Any:
    folder = tmp_path / "specs" / "shop"
    (folder / "workflows").mkdir(parents=True)
    (folder / "product.yaml").write_text(PRODUCT)
    (folder / "workflows" / "charge-payment.yaml").write_text(YAML_WORKFLOW)
    return tmp_path / "specs"


@pytest.mark.parametrize("ship_status", [200, 503])
async def test_yaml_workflow_from_product_file(
    server: HTTPServer, tmp_path: Any, ship_status: int
) -> None:
    from ductwork import Ductwork

    server.expect_request("/v1/charges", method="POST",
                          headers={"Authorization": "Bearer sk_yaml_key"}) \
        .respond_with_json({"id": "ch_y"}, 201)
    server.expect_request("/v1/refunds", method="POST").respond_with_json({"id": "re_y"})
    server.expect_request("/v1/ship/o-1", method="POST") \
        .respond_with_json({"shipped": ship_status == 200}, ship_status)
    store = tmp_path / "runs.db"
    async with Ductwork(specs=_product_folder(tmp_path), store=f"sqlite:///{store}",
                        secrets={"STRIPE_KEY": "sk_yaml_key"},
                        environ={"STRIPE_URL": server.url_for("")}) as dw:
        result = await dw.workflows.execute(product="shop", env="dev", tag="charge-payment",
                                            input={"amount": 900, "order": "o-1"})
    calls = [(r.path, r.get_json()) for r, _ in server.log]
    if ship_status == 200:
        assert result.status == "completed", result.error
        assert result.output == {"chargeId": "ch_y"}
        assert calls == [("/v1/charges", {"amount": 900, "currency": "usd"}),
                         ("/v1/ship/o-1", {"fast": True})]
    else:
        assert result.status == "rolled_back", result.error
        assert result.failed_step == "ship" and "HTTP 503" in (result.error or "")
        assert calls == [("/v1/charges", {"amount": 900, "currency": "usd"}),
                         ("/v1/ship/o-1", {"fast": True}), ("/v1/ship/o-1", {"fast": True}),
                         ("/v1/refunds", {"charge": "ch_y"})]
    for path in tmp_path.iterdir():
        if path.is_file():
            assert b"sk_yaml_key" not in path.read_bytes(), path


async def test_python_handler_with_registry_built_app(server: HTTPServer, tmp_path: Any) -> None:
    from ductwork import Ductwork

    server.expect_request("/v1/charges/ch_p", method="GET").respond_with_json({"id": "ch_p"})
    async with Ductwork(specs=_product_folder(tmp_path), store="sqlite://:memory:",
                        secrets={"STRIPE_KEY": "sk_py_key"},
                        environ={"STRIPE_URL": server.url_for("")}) as dw:
        @dw.workflows.workflow(product="shop", tag="lookup")
        async def lookup(ctx: Any) -> Any:
            return await ctx.step("get", lambda: ctx.action.run(
                app="stripe", event="refund-charge", input={"params:id": "x"}))

        result = await dw.workflows.execute(product="shop", env="dev", tag="lookup", input={})
        assert result.status == "failed"
        assert "action/stripe/refund-charge (env dev): wrong input: path parameter 'id'" in (
            result.error or "")
        conn = dw.connectors.get("action", "stripe", "shop", "dev")
        assert isinstance(conn, HttpActionConnector)
        assert conn is dw.connectors.get("action", "stripe", "shop", "dev")  # built once
        client = conn.client
    assert client.is_closed  # dw.aclose() closed the app's client
