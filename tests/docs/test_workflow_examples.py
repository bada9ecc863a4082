"""The workflow examples of the product's own docs (docs/workflows/*.mdx of ductape-docs:
getting started, overview, building workflows, execution, examples), translated to Python
with only the names adapted to Python style (ctx.waitForSignal -> ctx.wait_for_signal, camel
case input keys kept as the docs write them), run against real local servers: one HTTP
server for every app, SQLite databases, the email outbox, local storage and Redis Streams.

Each test names its docs section. The resources are the product files of `specs/` written
for those docs products (copied into the test's folder, without their YAML workflows), or a
product file of this module for the building-workflows tour.

What is adapted beyond names, and why: a database query returns rows, so the Subscription
Billing example reads `rows[0]` where the docs read the query's result as one object; a
downloaded file's `content` is bytes in Python, so the Document Processing example decodes it
before putting it in a JSON body; `Date.now()` is `time.time() * 1000` and
`new Date().toISOString()` is `ctx.transform.now()`; `try/catch` is `try/except StepError`;
`ctx.setState(k, v)` / `ctx.getState(k)`, called without `await` in the docs, are awaited
(`await ctx.set_state(k, v)`): state is journaled durably, so the Python calls are coroutines.

The app variables and constants the building-workflows tour reads (`ctx.variable('stripe',
'api_version')`, `ctx.constant('stripe', 'default_currency')`) are declared in its product
file: `variables:` under the app's dev config, `constants:` beside its `envs:`.

`ctx.quota`, `ctx.fallback` and `ctx.healthcheck` run against the product's declared
`quotas:` and `fallbacks:` (docs/fallback.md): the docs name them (`api-rate-limit`,
`payment-fallback`) without their providers, which are apps of this module's product file; the
health answer's keys are snake case (`last_checked`, `last_latency`).

The definition options and re-run calls are written in the docs' own shapes where Python
allows: signals as `{'input': {field: 'string'}}`, queries as `{'handler': fn}`, envs as
`[{'slug': ..., 'active': ...}]`, `restart(input_override=..., merge_input=True)`.

Not run here, and why: the recording options `branchOverrides`,
`recordInput` and `recordScenarios` and their `$Step{...}` conditions (a Python handler is not
recorded ahead of time: its `if`, `for` and `match` run as written, which the loops-and-switch
test shows); `replayFromStep`'s `debug.pause_after_step` (refused with a clear error: a run
does not pause between steps on its own); the Agentic Workflows page (an RFC of a feature the
product does not have)."""

from __future__ import annotations

import json
import mailbox
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from ductwork import Ductwork
from ductwork.errors import ConfigurationError, StepError
from tests.support.brokers import start_redis, take_stream
from tests.support.http import httpserver as httpserver
from tests.support.http import module_http_server as module_http_server
from tests.support.ports import free_port

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield str(server.extra["url"])
    finally:
        server.stop()


class Apps:
    """Every app of a product file served by one real HTTP server under /<app>: a request is
    matched to its declared event and answered by `responses[(app, event)]` (a value, or a
    function of the JSON body); `calls` records (app, event, body, headers)."""

    def __init__(self, server: HTTPServer, product: dict[str, Any]) -> None:
        self.server = server
        self.responses: dict[tuple[str, str], Any] = {}
        self.calls: list[tuple[str, str, Any, dict[str, str]]] = []
        self.routes: list[tuple[str, re.Pattern[str], str, str]] = []
        for app, spec in (product.get("apps") or {}).items():
            for event, ev in (spec.get("events") or {}).items():
                path = re.sub(r"\{[^}]+\}", "[^/]+", str(ev["path"]))
                self.routes.append((str(ev.get("method", "GET")).upper(),
                                    re.compile(f"^/{re.escape(app)}{path}$"), app, event))
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    def url(self, app: str) -> str:
        return self.server.url_for(f"/{app}")

    def handle(self, request: Request) -> Response:
        for method, pattern, app, event in self.routes:
            if request.method == method and pattern.match(request.path):
                body = request.get_json(silent=True)
                self.calls.append((app, event, body, dict(request.headers)))
                answer = self.responses.get((app, event), {})
                if callable(answer):
                    answer = answer(body)
                status = 200
                if isinstance(answer, tuple):
                    status, answer = answer
                return Response(json.dumps(answer), status=status,
                                content_type="application/json")
        return Response(json.dumps({"error": "no route"}), status=404)

    def sent(self, app: str, event: str) -> list[Any]:
        return [c[2] for c in self.calls if c[:2] == (app, event)]


class Product:
    def __init__(self, dw: Ductwork, apps: Apps, folder: Path, redis_url: str) -> None:
        self.dw, self.apps, self.folder, self.redis_url = dw, apps, folder, redis_url

    def emails(self) -> list[Any]:
        """The outbox's messages in the order they were written: a Maildir key counts the
        messages one process adds (Q<n>), and this test's process writes them all."""
        box = self.folder / ".ductwork" / "outbox"
        if not box.exists():
            return []
        md = mailbox.Maildir(box)

        def written(key: str) -> int:
            found = re.search(r"Q(\d+)", key)
            return int(found.group(1)) if found else 0

        return [md[k] for k in sorted(md.keys(), key=written)]

    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.emails()]


@pytest.fixture
async def open_product(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, httpserver: HTTPServer,
                       redis_url: str) -> AsyncIterator[Callable[..., Any]]:
    opened: list[Ductwork] = []

    async def open_(name: str, text: str | None = None, **kw: Any) -> Product:
        """The product file of specs/<name> (or `text`), with its apps on the HTTP server."""
        text = (SPECS / name / "product.yaml").read_text() if text is None else text
        text = text.replace("redis://127.0.0.1:6379/0", redis_url)
        product = yaml.safe_load(text)
        folder = tmp_path / "specs" / name
        folder.mkdir(parents=True)
        (folder / "product.yaml").write_text(text)
        apps = Apps(httpserver, product)
        for app, spec in (product.get("apps") or {}).items():
            dev = json.dumps(spec["envs"]["dev"])
            for key, var in re.findall(r'"(\w+)": "\$\{env\.(\w+)\}"', dev):
                monkeypatch.setenv(var, apps.url(app) if key == "base_url" else "sk_test")
        dw = Ductwork(specs=tmp_path / "specs", store=f"sqlite:///{tmp_path / 'runs.db'}", **kw)
        await dw.__aenter__()
        opened.append(dw)
        return Product(dw, apps, folder, redis_url)

    yield open_
    for dw in opened:
        await dw.aclose()


# -- getting-started.mdx ------------------------------------------------------------------------
async def test_getting_started_user_onboarding(open_product: Any) -> None:
    p = await open_product("my-product")
    dw = p.dw

    @dw.workflows.workflow(product="my-product", tag="user-onboarding", name="User Onboarding",
                           description="Onboards new users with welcome email and audit log")
    async def onboarding(ctx: Any) -> Any:
        # Step 1: Create user in database
        user = await ctx.step("create-user", lambda: ctx.database.insert(
            database="users-db", event="create-user",
            data={"email": ctx.input.email, "name": ctx.input.name,
                  "created_at": ctx.transform.now()}))
        # Step 2: Send welcome email
        await ctx.step("send-welcome", lambda: ctx.notification.email(
            notification="transactional", event="welcome-email", recipients=[ctx.input.email],
            subject={"name": ctx.input.name}, template={"name": ctx.input.name}),
            None,                    # No rollback needed for email
            {"allow_fail": True})    # Continue even if email fails
        # Step 3: Create audit log
        await ctx.step("audit-log", lambda: ctx.database.insert(
            database="audit-db", event="create-log",
            data={"action": "user_created", "user_id": user["id"],
                  "timestamp": ctx.transform.now()}))
        return {"success": True, "userId": user["id"]}

    result = await dw.workflows.execute(product="my-product", env="dev", tag="user-onboarding",
                                        input={"email": "john@example.com", "name": "John Doe"})
    assert result.status == "completed", result.error
    assert result.output == {"success": True, "userId": 1}
    assert result.completed_steps == ["create-user", "send-welcome", "audit-log"]
    assert set(result.to_dict()) == {"status", "workflow_id", "execution_time", "output",
                                     "completed_steps", "failed_step", "error"}
    assert p.subjects() == ["Welcome, John Doe!"]

    # "Input field not found": the docs' troubleshooting entry.
    bad = await dw.workflows.execute(product="my-product", env="dev", tag="user-onboarding",
                                     input={"email": "x@example.com"})
    assert bad.status == "failed" and bad.error is not None
    assert "Input field not found: name" in bad.error and bad.error.step == "create-user"


async def test_getting_started_rollback_refunds_the_charge(open_product: Any) -> None:
    p = await open_product("my-product")
    p.apps.responses[("stripe", "create-charge")] = {"id": "ch_1"}
    p.apps.responses[("stripe", "refund-charge")] = {"id": "re_1"}

    @p.dw.workflows.workflow(product="my-product", tag="charge")
    async def charge(ctx: Any) -> Any:
        payment = await ctx.step(
            "charge-payment",
            # Main handler
            lambda: ctx.action.run(app="stripe", event="create-charge",
                                   input={"body": {"amount": ctx.input.amount}}),
            # Rollback handler - called if a later step fails
            lambda result: ctx.action.run(app="stripe", event="refund-charge",
                                          input={"body": {"chargeId": result["id"]}}))
        await ctx.step("ship", lambda: 1 / 0)
        return payment

    r = await p.dw.workflows.execute("my-product", "dev", "charge", {"amount": 1000})
    assert r.status == "rolled_back" and r.failed_step == "ship"
    assert p.apps.sent("stripe", "create-charge") == [{"amount": 1000}]
    assert p.apps.sent("stripe", "refund-charge") == [{"chargeId": "ch_1"}]


# -- examples.mdx: E-Commerce Order Fulfillment -------------------------------------------------
def define_order_fulfillment(dw: Ductwork) -> None:
    async def handler(ctx: Any) -> Any:
        ctx.log.info("Starting order fulfillment", {"orderId": ctx.input.orderId})

        # Step 1: Validate order and check inventory
        async def validate() -> Any:
            inventory = await ctx.action.run(app="inventory-api", event="check-availability",
                                             input={"body": {"items": ctx.input.items}})
            return {"available": inventory["allAvailable"],
                    "unavailableItems": inventory.get("unavailableItems") or []}

        validation = await ctx.step("validate-order", validate)
        if not validation["available"]:
            return {"success": False, "reason": "items_unavailable",
                    "unavailableItems": validation["unavailableItems"]}

        # Step 2: Calculate totals and apply discounts
        async def calculate() -> Any:
            subtotal = sum(item.price * item.quantity for item in ctx.input.items)
            discount = 0
            if ctx.input.get("couponCode"):
                coupon = await ctx.action.run(app="promotions-api", event="validate-coupon",
                                              input={"body": {"code": ctx.input.couponCode}})
                if coupon["valid"]:
                    discount = coupon["discountAmount"]
            tax = (subtotal - discount) * 0.08  # 8% tax
            total = subtotal - discount + tax
            return {"subtotal": subtotal, "discount": discount, "tax": tax, "total": total}

        pricing = await ctx.step("calculate-pricing", calculate)

        # Step 3: Process payment (with rollback)
        async def refund(result: Any) -> None:
            await ctx.action.run(app="stripe", event="create-refund",
                                 input={"body": {"charge": result["id"],
                                                 "reason": "order_cancelled"}})
            ctx.log.info("Payment refunded", {"chargeId": result["id"]})

        payment = await ctx.step("process-payment", lambda: ctx.action.run(
            app="stripe", event="create-charge",
            input={"body": {"amount": round(pricing["total"] * 100), "currency": "usd",
                            "customer": ctx.input.customerId,
                            "metadata": {"orderId": ctx.input.orderId}},
                   "headers": {"Idempotency-Key": f"order-{ctx.input.orderId}-payment"}},
            retries=3, timeout=30000), refund)

        # Checkpoint after payment
        await ctx.checkpoint("payment-complete", {"chargeId": payment["id"],
                                                  "amount": pricing["total"]})

        # Step 4: Reserve inventory (with rollback)
        await ctx.step(
            "reserve-inventory",
            lambda: ctx.action.run(app="inventory-api", event="reserve-items",
                                   input={"body": {"orderId": ctx.input.orderId,
                                                   "items": ctx.input.items}}),
            lambda _: ctx.action.run(app="inventory-api", event="release-items",
                                     input={"body": {"orderId": ctx.input.orderId}}))

        # Step 5: Create order record
        order = await ctx.step("create-order-record", lambda: ctx.database.insert(
            database="orders-db", event="create-order",
            data={"order_id": ctx.input.orderId, "customer_id": ctx.input.customerId,
                  "items": ctx.input.items, "subtotal": pricing["subtotal"],
                  "discount": pricing["discount"], "tax": pricing["tax"],
                  "total": pricing["total"], "payment_id": payment["id"],
                  "status": "confirmed", "created_at": ctx.transform.now()}))

        # Step 6: Send confirmation email (non-critical)
        await ctx.step("send-confirmation-email", lambda: ctx.notification.email(
            notification="transactional", event="order-confirmed",
            recipients=[ctx.input.email], subject={"orderId": ctx.input.orderId},
            template={"orderId": ctx.input.orderId, "items": ctx.input.items,
                      "total": pricing["total"], "estimatedDelivery": "3-5 business days"}),
            None, {"allow_fail": True})

        # Step 7: Queue for warehouse fulfillment
        await ctx.step("queue-fulfillment", lambda: ctx.messaging.produce(
            event="warehouse-events:new-order",
            message={"orderId": ctx.input.orderId, "items": ctx.input.items,
                     "shippingAddress": ctx.input.shippingAddress,
                     "priority": "high" if ctx.input.isPrime else "normal"}))

        ctx.log.info("Order fulfilled successfully",
                     {"orderId": ctx.input.orderId, "chargeId": payment["id"]})
        return {"success": True, "orderId": ctx.input.orderId, "orderRecordId": order["id"],
                "chargeId": payment["id"], "total": pricing["total"]}

    dw.workflows.define(
        product="ecommerce", tag="order-fulfillment", name="Order Fulfillment",
        description="Process customer orders from payment to delivery",
        options={"timeout": 600000, "rollback_strategy": "reverse_all"},  # 10 minutes
        signals={"cancel-order": {"type": "object",
                                  "properties": {"reason": {"type": "string"}}}},
        handler=handler)


ORDER = {"orderId": "o-1", "customerId": "cus_1", "email": "ann@example.com",
         "couponCode": "SPRING10", "isPrime": True, "shippingAddress": {"city": "Oslo"},
         "items": [{"sku": "book", "price": 19.99, "quantity": 3},
                   {"sku": "pen", "price": 0.35, "quantity": 1}]}


async def test_examples_order_fulfillment(open_product: Any) -> None:
    p = await open_product("ecommerce")
    define_order_fulfillment(p.dw)
    a = p.apps.responses
    a[("inventory-api", "check-availability")] = {"allAvailable": True}
    a[("promotions-api", "validate-coupon")] = {"valid": True, "discountAmount": 10}
    a[("stripe", "create-charge")] = {"id": "ch_1"}

    done = await p.dw.workflows.execute("ecommerce", "dev", "order-fulfillment", ORDER)
    assert done.status == "completed", done.error
    subtotal = 19.99 * 3 + 0.35
    total = subtotal - 10 + (subtotal - 10) * 0.08
    assert done.output == {"success": True, "orderId": "o-1", "orderRecordId": 1,
                           "chargeId": "ch_1", "total": total}
    [charge] = [c for c in p.apps.calls if c[1] == "create-charge"]
    assert charge[2]["amount"] == round(total * 100) and charge[2]["metadata"] == {
        "orderId": "o-1"}
    assert charge[3]["Idempotency-Key"] == "order-o-1-payment"
    assert p.subjects() == ["Order o-1 confirmed"]
    [(_, fields)] = await take_stream(p.redis_url, "new-order")
    assert json.loads(fields["data"])["priority"] == "high"
    assert json.loads(fields["data"])["shippingAddress"] == {"city": "Oslo"}

    # Items unavailable: the early return, nothing charged.
    a[("inventory-api", "check-availability")] = {"allAvailable": False,
                                                  "unavailableItems": ["pen"]}
    early = await p.dw.workflows.execute("ecommerce", "dev", "order-fulfillment",
                                         {**ORDER, "orderId": "o-2"})
    assert early.output == {"success": False, "reason": "items_unavailable",
                            "unavailableItems": ["pen"]}
    assert len(p.apps.sent("stripe", "create-charge")) == 1

    # The order record cannot be written (the same order id again): stock released and
    # charge refunded, newest first, each rollback with its step's result.
    a[("inventory-api", "check-availability")] = {"allAvailable": True}
    a[("stripe", "create-charge")] = {"id": "ch_2"}
    dup = await p.dw.workflows.execute("ecommerce", "dev", "order-fulfillment", ORDER)
    assert dup.status == "rolled_back" and dup.failed_step == "create-order-record"
    undo = [(c[0], c[1], c[2]) for c in p.apps.calls if c[1] in ("release-items",
                                                                "create-refund")]
    assert undo == [("inventory-api", "release-items", {"orderId": "o-1"}),
                    ("stripe", "create-refund", {"charge": "ch_2",
                                                 "reason": "order_cancelled"})]


# -- examples.mdx: User Onboarding ---------------------------------------------------------------
def define_user_onboarding(dw: Ductwork) -> None:
    import random

    async def handler(ctx: Any) -> Any:
        async def delete_user(result: Any) -> None:
            # Rollback: Delete user if onboarding fails
            await ctx.database.delete(database="users-db", event="delete-user",
                                      where={"id": result["id"]})

        # Step 1: Create user account
        user = await ctx.step("create-user", lambda: ctx.database.insert(
            database="users-db", event="create-user",
            data={"email": ctx.input.email, "name": ctx.input.name,
                  "password_hash": ctx.input.passwordHash, "status": "pending_verification",
                  "created_at": ctx.transform.now()}), delete_user)

        # Step 2: Generate verification code (state is journaled: a replay keeps the first)
        verification_code = "".join(random.choices("0123456789ABCDEF", k=6))
        await ctx.set_state("verificationCode", verification_code)
        verification_code = await ctx.get_state("verificationCode")

        # Step 3: Send verification email
        await ctx.step("send-verification", lambda: ctx.notification.email(
            notification="transactional", event="email-verification",
            recipients=[ctx.input.email], subject={"appName": "MyApp"},
            template={"name": ctx.input.name, "code": verification_code,
                      "expiresIn": "24 hours"}))

        # Step 4: Wait for email verification
        verification = await ctx.wait_for_signal("email-verified", {"timeout": "24h"})

        # Validate the code
        if verification["code"] != await ctx.get_state("verificationCode"):
            await ctx.trigger_rollback("Invalid verification code")
            return {"success": False, "reason": "invalid_code"}

        # Step 5: Activate user account
        await ctx.step("activate-user", lambda: ctx.database.update(
            database="users-db", event="update-user", where={"id": user["id"]},
            data={"status": "active", "verified_at": ctx.transform.now()}))

        # Step 6: Create user profile
        await ctx.step("create-profile", lambda: ctx.database.insert(
            database="profiles-db", event="create-profile",
            data={"user_id": user["id"], "display_name": ctx.input.name, "avatar_url": None,
                  "bio": None}))

        # Step 7: Send welcome email (non-critical)
        await ctx.step("send-welcome", lambda: ctx.notification.email(
            notification="transactional", event="welcome", recipients=[ctx.input.email],
            template={"name": ctx.input.name, "loginUrl": "https://myapp.com/login"}),
            None, {"allow_fail": True})

        return {"success": True, "userId": user["id"], "email": ctx.input.email}

    dw.workflows.define(product="my-app", tag="user-onboarding", name="User Onboarding",
                        signals={"email-verified": {"type": "object", "properties": {
                            "code": {"type": "string"}}}},
                        handler=handler)


async def test_examples_user_onboarding(open_product: Any) -> None:
    p = await open_product("my-app")
    define_user_onboarding(p.dw)
    wf = p.dw.workflows
    person = {"email": "ann@example.com", "name": "Ann", "passwordHash": "$2b$12$abc"}
    run = await wf.execute("my-app", "dev", "user-onboarding", person)
    assert run.status == "running"  # waiting for email-verified (24h)
    [mail] = p.emails()
    code = re.search(r"your code is ([0-9A-F]{6})", mail.get_payload()).group(1)  # type: ignore[union-attr]
    await wf.signal(run.workflow_id, "email-verified", {"code": code})
    done = await wf.result(run.workflow_id, timeout="30s")
    assert done.status == "completed", done.error
    assert done.output == {"success": True, "userId": 1, "email": "ann@example.com"}
    assert p.subjects() == ["Verify your MyApp email", "Welcome, Ann!"]

    # A wrong code: trigger_rollback deletes the user, the run says why.
    other = await wf.execute("my-app", "dev", "user-onboarding",
                             {**person, "email": "bob@example.com"})
    await wf.signal(other.workflow_id, "email-verified", {"code": "WRONG!"})
    bad = await wf.result(other.workflow_id, timeout="30s")
    assert bad.output == {"success": False, "reason": "invalid_code"}
    assert bad.status == "rolled_back" and bad.rollback_result is not None
    assert bad.rollback_result["rolled_back_steps"] == ["create-user"]


# -- building-workflows.mdx: components, control flow, transform --------------------------------
TOUR = """\
product: tour
envs: [dev]
notifications:
  multi-channel:
    envs: {dev: {provider: outbox}}
    events:
      urgent-alert: {subject: "Urgent", text: "Act now", message: "Act now", title: "Urgent",
                     body: "Act now"}
storage:
  documents:
    envs: {dev: {provider: local, root: files}}
    events: {upload-invoice: {prefix: invoices/}}
"""


async def test_building_workflows_send_storage_transform_child_and_signals(
        tmp_path: Path) -> None:
    (tmp_path / "tour").mkdir()
    (tmp_path / "tour" / "product.yaml").write_text(TOUR)
    async with Ductwork(specs=tmp_path, store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:

        @dw.workflows.workflow(product="tour", tag="payment-processing")
        async def payment(ctx: Any) -> Any:
            return {"chargeId": f"ch-{ctx.input.amount}"}

        @dw.workflows.workflow(product="tour", tag="tour", signals=["approved", "rejected"])
        async def tour(ctx: Any) -> Any:
            # ctx.notification.send: generic send, several channels
            sent = await ctx.step("alert", lambda: ctx.notification.send(
                notification="multi-channel", event="urgent-alert",
                input={"email": {"recipients": [ctx.input.email]},
                       "sms": {"phones": [ctx.input.phone]},
                       "push": {"tokens": [ctx.input.token]}},
                retries=3))
            # ctx.storage.upload / download
            uploaded = await ctx.step("upload", lambda: ctx.storage.upload(
                storage="documents", event="upload-invoice",
                input={"buffer": ctx.input.fileData,
                       "file_name": f"invoice-{ctx.input.orderId}.pdf",
                       "mime_type": "application/pdf"}, retries=2))
            file = await ctx.step("download", lambda: ctx.storage.download(
                storage="documents", event="upload-invoice",
                input={"file_key": uploaded["file_key"]}))
            # ctx.transform
            t = ctx.transform
            shapes = {"upper": t.upper(ctx.input.name), "size": t.size(ctx.input.metadata),
                      "length": t.length(ctx.input.tags),
                      "joined": t.join(ctx.input.tags, ", "),
                      "parts": t.split(ctx.input.csv, ","),
                      "formatted": t.format_date(1714566600000, "YYYY-MM-DD"),
                      "parsed": t.parse_json(ctx.input.jsonString)}
            # ctx.workflow: a child, the options as the docs' positional dict
            child = await ctx.workflow("child-payment-123", "payment-processing",
                                       {"amount": ctx.input.amount},
                                       {"timeout": "5m", "retries": 2,
                                        "parent_close_policy": "terminate"})
            # ctx.wait_for_signal: any of several signals, the options positional
            decision = await ctx.wait_for_signal(["approved", "rejected"], {"timeout": "48h"})
            return {"channels": sorted(sent), "file": uploaded, "size": file["size"],
                    "content_type": file["content_type"], "shapes": shapes, "child": child,
                    "decision": decision}

        run = await dw.workflows.execute("tour", "dev", "tour", {
            "email": "ann@example.com", "phone": "+15005550006", "token": "device-1",
            "fileData": "%PDF-1.4", "orderId": "o-7", "name": "ann", "amount": 5,
            "metadata": {"a": 1, "b": 2}, "tags": ["x", "y"], "csv": "a,b",
            "jsonString": '{"k": [1]}'})
        assert run.status == "running", run.error
        await dw.workflows.signal(run.workflow_id, "approved", {"approvedBy": "boss"})
        done = await dw.workflows.result(run.workflow_id, timeout="30s")
        assert done.status == "completed", done.error
        out = done.output
        assert out["channels"] == ["email", "push", "sms"]
        assert out["file"]["file_key"].startswith("invoices/")
        assert out["file"]["file_key"].endswith("-invoice-o-7.pdf")
        assert out["content_type"] == "application/pdf" and out["size"] == 8
        assert out["shapes"] == {"upper": "ANN", "size": 2, "length": 2, "joined": "x, y",
                                 "parts": ["a", "b"], "formatted": "2024-05-01",
                                 "parsed": {"k": [1]}}
        assert out["child"] == {"chargeId": "ch-5"}
        assert out["decision"] == {"approvedBy": "boss", "_signal": "approved"}


# -- execution.mdx -------------------------------------------------------------------------------
async def test_execution_rollback_strategies_and_result_handling(dw: Ductwork) -> None:
    undone: list[str] = []

    def undo(name: str) -> Callable[[Any], None]:
        return lambda _result: undone.append(name)

    def fail() -> None:
        raise RuntimeError("Card declined")

    @dw.workflows.workflow(product="p", tag="critical-only",
                           options={"rollback_strategy": "critical_only"})
    async def critical_only(ctx: Any) -> Any:
        # Payment is critical - always rollback on failure
        await ctx.step("payment", lambda: {"id": "ch"}, undo("payment"), {"critical": True})
        # Analytics is not critical - won't rollback
        await ctx.step("analytics", lambda: 1, undo("analytics"), {"critical": False})
        # Inventory reservation fails
        await ctx.step("inventory", fail)

    @dw.workflows.workflow(product="p", tag="to-checkpoint",
                           options={"rollback_strategy": "to_checkpoint"})
    async def to_checkpoint(ctx: Any) -> Any:
        await ctx.step("create-user", lambda: 1, undo("create-user"))
        await ctx.checkpoint("user-created")  # Checkpoint here
        await ctx.step("payment", lambda: 1, undo("payment"))
        await ctx.step("inventory", fail, undo("inventory"))

    @dw.workflows.workflow(product="p", tag="none", options={"rollback_strategy": "none"})
    async def none(ctx: Any) -> Any:
        await ctx.step("setup", lambda: 1, undo("setup"))
        try:
            await ctx.step("risky-operation", fail)
        except StepError:
            # Manual cleanup
            report = await ctx.trigger_rollback("Manual rollback triggered")
            return {"rolledBackSteps": report["rolled_back_steps"]}

    r = await dw.workflows.execute("p", "dev", "critical-only", {})
    assert (r.status, undone) == ("rolled_back", ["payment"])
    undone.clear()
    r = await dw.workflows.execute("p", "dev", "to-checkpoint", {})
    assert (r.status, undone) == ("rolled_back", ["payment"])
    undone.clear()
    r = await dw.workflows.execute("p", "dev", "none", {})
    assert r.output == {"rolledBackSteps": ["setup"]} and undone == ["setup"]

    # Example: Handling Results (the switch on result.status)
    failed = await dw.workflows.execute("p", "dev", "critical-only", {})
    lines: list[str] = []
    match failed.status:
        case "completed":
            lines.append(f"Order processed: {failed.output}")
        case "failed":
            lines.append(f"Workflow failed at step: {failed.failed_step}")
            lines.append(f"Error: {failed.error and failed.error.message}")
        case "rolled_back":
            assert failed.rollback_result is not None
            lines.append(f"Rolled back steps: {failed.rollback_result['rolled_back_steps']}")
    assert lines == ["Rolled back steps: ['payment']"]
    assert failed.error is not None and failed.error.step == "inventory"
    assert failed.error.code == "step_failed" and "Card declined" in failed.error.message


async def test_execution_dispatch_replay_restart_resume_and_history(dw: Ductwork) -> None:
    attempts: list[Any] = []

    @dw.workflows.workflow(product="p", tag="order-fulfillment")
    async def fulfil(ctx: Any) -> Any:
        if ctx.is_replay:
            ctx.log.info("Replaying workflow", {"original_id": ctx.replayed_from,
                                                "reason": ctx.replay_reason})
        await ctx.step("validate-order", lambda: {"valid": True, "total": 150.0})
        await ctx.checkpoint("payment-complete", {"chargeId": "ch_1"})
        attempts.append(dict(ctx.input.to_dict()))
        if ctx.input.get("retry_payment", True) and "email" not in ctx.input:
            raise RuntimeError("Card declined")
        return {"ok": True}

    # Dispatching: start in an hour, as epoch milliseconds (the docs' Date.now() + 3600000)
    job = await dw.workflows.dispatch("p", "dev", "order-fulfillment", {"orderId": "ORD-123"},
                                      schedule={"start_at": time.time() * 1000 + 3600000})
    assert job["status"] == "scheduled" and job["job_id"]
    cron = await dw.workflows.dispatch("p", "dev", "order-fulfillment", {"reportType": "sales"},
                                       schedule={"cron": "0 * * * *",
                                                 "timezone": "America/New_York"},
                                       options={"retries": 3, "timeout": 300000})
    assert cron["recurring"] is True
    await dw.workflows.cancel_schedule(cron["job_id"])

    first = await dw.workflows.execute("p", "dev", "order-fulfillment", {"orderId": "ORD-123"},
                                       workflow_id="wf-abc123")
    assert first.status == "failed"
    replay = await dw.workflows.replay("wf-abc123", reason="Debugging payment failure",
                                       options={"retries": 5, "timeout": 120000,
                                                "debug": True},
                                       idempotency_key="replay-wf-abc123-attempt-2")
    assert replay["replayed_from"] == "wf-abc123"
    logs = await dw.workflows.logs(replay["workflow_id"])
    assert logs[0]["data"] == {"original_id": "wf-abc123",
                               "reason": "Debugging payment failure"}
    restart = await dw.workflows.restart("wf-abc123", merge_input={
        "email": "corrected@email.com"}, reason="Customer email was incorrect")
    assert restart["status"] == "completed" and restart["restarted_from"] == "wf-abc123"
    resumed = await dw.workflows.resume("wf-abc123", from_checkpoint="payment-complete",
                                        input={"retry_payment": False})
    assert resumed["status"] == "completed" and attempts[-1]["retry_payment"] is False
    again = await dw.workflows.replay_from_step(
        "wf-abc123", "validate-order",
        step_outputs={"validate-order": {"valid": True, "total": 150.00}})
    assert again["replayed_from"] == "wf-abc123"

    history = await dw.workflows.history("wf-abc123", include_step_details=True)
    assert history.events[0]["type"] == "workflow_started"
    assert history.checkpoints[0]["name"] == "payment-complete"
    assert replay["workflow_id"] in history.replays and history.restarts == [
        restart["workflow_id"]]
    detail = await dw.workflows.step_detail("wf-abc123", "validate-order")
    assert detail["status"] == "completed" and detail["output"] == {"valid": True,
                                                                    "total": 150.0}
    related = await dw.workflows.related_executions("wf-abc123")
    assert related["original"] == "wf-abc123"
    kinds = {e["workflow_id"]: e["type"] for e in related["executions"]}
    assert kinds["wf-abc123"] == "original" and kinds[restart["workflow_id"]] == "restart"
    assert kinds[replay["workflow_id"]] == "replay" and kinds[again["workflow_id"]] == "replay"
    assert [e["replayed_from"] for e in related["executions"]
            if e["workflow_id"] == replay["workflow_id"]] == ["wf-abc123"]
    comparison = await dw.workflows.compare(["wf-abc123", restart["workflow_id"]])
    assert comparison["input_diff"]["email"] == [None, "corrected@email.com"]
    assert comparison["outcome_diff"]["wf-abc123"]["status"] == "failed"
    assert comparison["workflows"] == ["wf-abc123", restart["workflow_id"]]


# -- examples.mdx: Document Processing Pipeline --------------------------------------------------
async def test_examples_document_processing(open_product: Any) -> None:
    p = await open_product("doc-processor")
    a = p.apps.responses
    a[("ocr-service", "extract")] = {"text": "Invoice ACME total 42"}
    a[("ml-classifier", "classify")] = {"category": "invoice", "confidence": 0.93}
    a[("data-extractor", "extract")] = lambda body: {"vendor": "ACME", "total": 42,
                                                     "fields": body["fields"]["fields"]}
    a[("search-api", "index")] = {"indexed": True}
    root = p.folder / ".ductwork" / "uploads"
    root.mkdir(parents=True)
    (root / "inbox-1.pdf").write_bytes(b"%PDF-1.4 ACME")

    @p.dw.workflows.workflow(product="doc-processor", tag="document-pipeline",
                             name="Document Processing Pipeline",
                             options={"timeout": 300000})  # 5 minutes for large documents
    async def pipeline(ctx: Any) -> Any:
        ctx.log.info("Processing document", {"documentId": ctx.input.documentId,
                                             "fileName": ctx.input.fileName})
        # Step 1: Download the document
        document = await ctx.step("download-document", lambda: ctx.storage.download(
            storage="uploads", event="get-document", input={"file_key": ctx.input.fileKey}))
        # Step 2: Run OCR extraction. The content is bytes in Python: JSON needs text.
        ocr = await ctx.step("extract-text", lambda: ctx.action.run(
            app="ocr-service", event="extract",
            input={"body": {"content": document["content"].decode(),
                            "contentType": document["content_type"],
                            "options": {"language": "en", "detectLayout": True}}},
            timeout=60000), None, {"retries": 2})
        # Step 3: Classify document type
        classification = await ctx.step("classify-document", lambda: ctx.action.run(
            app="ml-classifier", event="classify",
            input={"body": {"text": ocr["text"], "categories": [
                "invoice", "receipt", "contract", "report", "other"]}}))

        # Step 4: Extract structured data based on document type
        async def extract() -> Any:
            extraction_config = {
                "invoice": {"fields": ["vendor", "total", "date", "items"]},
                "receipt": {"fields": ["store", "total", "date", "items"]},
                "contract": {"fields": ["parties", "terms", "date", "signatures"]},
                "report": {"fields": ["title", "author", "date", "summary"]},
                "other": {"fields": ["title", "content"]},
            }
            return await ctx.action.run(app="data-extractor", event="extract", input={"body": {
                "text": ocr["text"], "documentType": classification["category"],
                "fields": extraction_config[classification["category"]]}})

        extracted_data = await ctx.step("extract-data", extract)
        # Step 5: Store processed document
        processed = await ctx.step("store-result", lambda: ctx.database.insert(
            database="documents-db", event="store-processed",
            data={"original_file_key": ctx.input.fileKey, "file_name": ctx.input.fileName,
                  "document_type": classification["category"],
                  "confidence": classification["confidence"], "extracted_text": ocr["text"],
                  "extracted_data": extracted_data, "processed_at": ctx.transform.now()}))
        # Step 6: Index for search
        await ctx.step("index-document", lambda: ctx.action.run(
            app="search-api", event="index",
            input={"body": {"id": processed["id"], "content": ocr["text"],
                            "metadata": {"type": classification["category"],
                                         "fileName": ctx.input.fileName,
                                         **extracted_data}}}),
            None, {"allow_fail": True})
        # Step 7: Notify user
        await ctx.step("notify-completion", lambda: ctx.notification.push(
            notification="app-notifications", event="document-processed",
            tokens=[ctx.input.deviceToken], title={"fileName": ctx.input.fileName},
            body={"documentType": classification["category"]},
            data={"documentId": processed["id"]}), None, {"allow_fail": True})
        return {"success": True, "documentId": processed["id"],
                "documentType": classification["category"],
                "confidence": classification["confidence"]}

    done = await p.dw.workflows.execute("doc-processor", "dev", "document-pipeline", {
        "documentId": "d-1", "fileName": "acme.pdf", "fileKey": "inbox-1.pdf",
        "deviceToken": "device-1"})
    assert done.status == "completed", done.error
    assert done.output == {"success": True, "documentId": 1, "documentType": "invoice",
                           "confidence": 0.93}
    assert p.apps.sent("ocr-service", "extract")[0]["content"] == "%PDF-1.4 ACME"
    assert p.apps.sent("ocr-service", "extract")[0]["contentType"] == "application/pdf"
    [index] = p.apps.sent("search-api", "index")
    assert index["metadata"] == {"type": "invoice", "fileName": "acme.pdf", "vendor": "ACME",
                                 "total": 42, "fields": ["vendor", "total", "date", "items"]}
    assert p.subjects() == ["acme.pdf is ready"]


# -- examples.mdx: Subscription Billing ----------------------------------------------------------
def define_subscription_billing(dw: Ductwork) -> None:
    async def handler(ctx: Any) -> Any:
        subscription_id, customer_id, amount = (ctx.input.subscriptionId,
                                                ctx.input.customerId, ctx.input.amount)
        ctx.log.info("Processing subscription billing", {"subscriptionId": subscription_id})

        # Step 1: Get subscription details (a query returns rows: the first is the one)
        rows = await ctx.step("get-subscription", lambda: ctx.database.query(
            database="subscriptions-db", event="get-subscription",
            params={"id": subscription_id}))
        subscription = rows[0] if rows else None
        if not subscription or subscription["status"] != "active":
            return {"success": False, "reason": "subscription_inactive"}

        # Step 2: Get payment method
        payment_method = await ctx.step("get-payment-method", lambda: ctx.action.run(
            app="stripe", event="get-payment-method",
            input={"params": {"customerId": customer_id}}))
        if not payment_method["valid"]:
            await ctx.step("notify-payment-issue", lambda: ctx.notification.email(
                notification="billing", event="payment-method-invalid",
                recipients=[subscription["email"]],
                template={"updateUrl": "https://app.com/billing"}), None, {"allow_fail": True})
            return {"success": False, "reason": "invalid_payment_method"}

        # Step 3: Attempt payment (with retries)
        payment_attempt, payment_result, last_error = 0, None, None
        while payment_attempt < 3 and not payment_result:
            payment_attempt += 1
            await ctx.set_state("paymentAttempt", payment_attempt)
            try:
                payment_result = await ctx.step(
                    f"payment-attempt-{payment_attempt}", lambda n=payment_attempt: ctx.action.run(
                        app="stripe", event="create-charge",
                        input={"body": {
                            "amount": amount * 100, "currency": "usd",
                            "customer": customer_id, "payment_method": payment_method["id"],
                            "metadata": {"subscriptionId": subscription_id,
                                         "attempt": n}},
                            "headers": {"Idempotency-Key": f"sub-{subscription_id}-"
                                        f"{ctx.workflow_id}-{n}"}}))
            except StepError as error:
                last_error = error
                ctx.log.warn("Payment attempt failed",
                             {"attempt": payment_attempt, "error": str(error)})
                if payment_attempt < 3:
                    await ctx.sleep(payment_attempt * 2000)  # exponential backoff

        if not payment_result:
            # All payment attempts failed
            await ctx.step("mark-payment-failed", lambda: ctx.database.update(
                database="subscriptions-db", event="update-subscription",
                where={"id": subscription_id},
                data={"status": "past_due",
                      "failed_payments": (subscription["failed_payments"] or 0) + 1,
                      "last_payment_error": str(last_error)}))
            await ctx.step("notify-payment-failed", lambda: ctx.notification.email(
                notification="billing", event="payment-failed",
                recipients=[subscription["email"]],
                template={"amount": amount, "attempts": payment_attempt,
                          "updateUrl": "https://app.com/billing"}), None, {"allow_fail": True})
            return {"success": False, "reason": "payment_failed", "attempts": payment_attempt}

        # Step 4: Record successful payment (critical)
        await ctx.step("record-payment", lambda: ctx.database.insert(
            database="payments-db", event="create-payment",
            data={"subscription_id": subscription_id, "customer_id": customer_id,
                  "charge_id": payment_result["id"], "amount": amount,
                  "status": "succeeded", "created_at": ctx.transform.now()}),
            None, {"critical": True})
        next_billing = ctx.transform.add(ctx.transform.now(), "30d")
        # Step 5: Update subscription
        await ctx.step("update-subscription", lambda: ctx.database.update(
            database="subscriptions-db", event="update-subscription",
            where={"id": subscription_id},
            data={"last_payment_at": ctx.transform.now(), "next_billing_date": next_billing,
                  "failed_payments": 0}))
        # Step 6: Generate invoice
        await ctx.step("generate-invoice", lambda: ctx.action.run(
            app="invoice-service", event="generate",
            input={"body": {"subscriptionId": subscription_id,
                            "chargeId": payment_result["id"], "amount": amount}}))
        # Step 7: Send receipt (non-critical)
        await ctx.step("send-receipt", lambda: ctx.notification.email(
            notification="billing", event="payment-receipt",
            recipients=[subscription["email"]],
            template={"amount": amount, "chargeId": payment_result["id"],
                      "date": ctx.transform.format_date(ctx.transform.now(), "YYYY-MM-DD")}),
            None, {"allow_fail": True})
        return {"success": True, "chargeId": payment_result["id"], "amount": amount,
                "nextBillingDate": next_billing}

    dw.workflows.define(product="billing", tag="subscription-billing",
                        name="Subscription Billing",
                        options={"rollback_strategy": "critical_only"}, handler=handler)


async def test_examples_subscription_billing(open_product: Any) -> None:
    p = await open_product("billing")
    define_subscription_billing(p.dw)
    tries: list[Any] = []

    def charge(body: Any) -> Any:
        tries.append(body)
        return (402, {"error": "card_declined"}) if len(tries) == 1 else {"id": "ch_9"}

    p.apps.responses[("stripe", "get-payment-method")] = {"valid": True, "id": "pm_1"}
    p.apps.responses[("stripe", "create-charge")] = charge
    p.apps.responses[("invoice-service", "generate")] = {"id": "inv_1"}

    @p.dw.workflows.workflow(product="billing", tag="seed")
    async def seed(ctx: Any) -> Any:
        return await ctx.database.update(
            database="subscriptions-db", event="update-subscription", where={"id": "sub_1"},
            data={"status": "active"})

    # The product declares no insert for subscriptions; the connector creates the table, and
    # the test writes the row the way an application would, through SQLite itself.
    await p.dw.workflows.execute("billing", "dev", "seed", {})
    import sqlite3

    with sqlite3.connect(p.folder / ".ductwork" / "subscriptions.db") as db:
        db.execute("insert into subscriptions (id, customer_id, email, status, failed_payments)"
                   " values ('sub_1', 'cus_1', 'ann@example.com', 'active', 0)")

    done = await p.dw.workflows.execute("billing", "dev", "subscription-billing",
                                        {"subscriptionId": "sub_1", "customerId": "cus_1",
                                         "amount": 20})
    assert done.status == "completed", done.error
    assert done.output["chargeId"] == "ch_9" and done.output["success"] is True
    assert [t["metadata"]["attempt"] for t in tries] == [1, 2]
    assert "payment-attempt-1" not in done.completed_steps
    assert p.subjects() == ["Receipt for your payment of 20"]
    logs = await p.dw.workflows.logs(done.workflow_id)
    assert any(lg["message"] == "Payment attempt failed" for lg in logs)


# -- examples.mdx: Approval Workflow -------------------------------------------------------------
def define_expense_approval(dw: Ductwork) -> None:
    decision_schema = {"type": "object", "properties": {"approved": {"type": "boolean"},
                                                        "comments": {"type": "string"}}}

    async def handler(ctx: Any) -> Any:
        request_id, employee_id, amount, description = (
            ctx.input.requestId, ctx.input.employeeId, ctx.input.amount, ctx.input.description)
        await ctx.set_state("status", "pending")
        await ctx.set_state("approvals", [])

        # Step 1: Create expense request
        await ctx.step("create-request", lambda: ctx.database.insert(
            database="expenses-db", event="create-request",
            data={"request_id": request_id, "employee_id": employee_id, "amount": amount,
                  "description": description, "status": "pending_approval",
                  "created_at": ctx.transform.now()}))

        # Step 2: Get approval chain
        def chain_for() -> list[dict[str, Any]]:
            chain = [{"level": "manager", "required": True}]
            if amount > 1000:
                chain.append({"level": "director", "required": True})
            if amount > 5000:
                chain.append({"level": "finance", "required": True})
            return chain

        approval_chain = await ctx.step("get-approval-chain", chain_for)
        await ctx.set_state("approvalChain", approval_chain)

        async def decide(level: str, email: str, signal: str, timeout: str,
                         **extra: Any) -> Any:
            await ctx.set_state("currentApprover", level)
            await ctx.step(f"notify-{level}", lambda: ctx.notification.email(
                notification="approvals", event="approval-request", recipients=[email],
                template={"employeeName": ctx.input.employeeName, "amount": amount,
                          "description": description,
                          "approveUrl": f"https://app.com/approve/{request_id}", **extra}))
            decision = await ctx.wait_for_signal(signal, {"timeout": timeout})
            await ctx.set_state("approvals", [*await ctx.get_state("approvals"), {
                "level": level, "approved": decision["approved"],
                "comments": decision["comments"], "timestamp": time.time() * 1000}])
            return decision

        # Step 3: Manager approval
        manager = await decide("manager", ctx.input.managerEmail, "manager-decision", "48h")
        if not manager["approved"]:
            await ctx.step("mark-rejected", lambda: ctx.database.update(
                database="expenses-db", event="update-request",
                where={"request_id": request_id},
                data={"status": "rejected", "rejected_by": "manager",
                      "rejection_reason": manager["comments"]}))
            await ctx.step("notify-rejection", lambda: ctx.notification.email(
                notification="approvals", event="request-rejected",
                recipients=[ctx.input.employeeEmail],
                template={"amount": amount, "rejectedBy": "Manager",
                          "reason": manager["comments"]}))
            return {"success": False, "status": "rejected", "rejectedBy": "manager",
                    "reason": manager["comments"]}
        # Step 4: Director approval (if needed)
        if amount > 1000:
            director = await decide("director", ctx.input.directorEmail, "director-decision",
                                    "48h", managerApproved=True)
            if not director["approved"]:
                return {"success": False, "status": "rejected", "rejectedBy": "director"}
        # Step 5: Finance approval (if needed)
        if amount > 5000:
            finance = await decide("finance", ctx.input.financeEmail, "finance-decision",
                                   "72h", previousApprovals=await ctx.get_state("approvals"))
            if not finance["approved"]:
                return {"success": False, "status": "rejected", "rejectedBy": "finance"}

        # Step 6: Mark as approved
        await ctx.set_state("status", "approved")
        approvals = await ctx.get_state("approvals")
        await ctx.step("mark-approved", lambda: ctx.database.update(
            database="expenses-db", event="update-request", where={"request_id": request_id},
            data={"status": "approved", "approved_at": ctx.transform.now(),
                  "approvals": approvals}))
        # Step 7: Initiate reimbursement
        await ctx.step("initiate-reimbursement", lambda: ctx.messaging.produce(
            event="payroll-events:process-reimbursement",
            message={"requestId": request_id, "employeeId": employee_id, "amount": amount,
                     "approvals": approvals}))
        # Step 8: Notify employee
        await ctx.step("notify-approval", lambda: ctx.notification.email(
            notification="approvals", event="request-approved",
            recipients=[ctx.input.employeeEmail],
            template={"amount": amount, "description": description,
                      "expectedPayment": "Next payroll cycle"}))
        return {"success": True, "status": "approved", "approvals": approvals}

    dw.workflows.define(
        product="hr-system", tag="expense-approval", name="Expense Approval",
        signals={"manager-decision": decision_schema, "director-decision": decision_schema,
                 "finance-decision": decision_schema},
        queries={"getStatus": lambda ctx: {
            "requestId": ctx.input.requestId, "amount": ctx.input.amount,
            "status": ctx.get_state("status") or "pending",
            "currentApprover": ctx.get_state("currentApprover"),
            "approvals": ctx.get_state("approvals") or []}},
        handler=handler)


async def test_examples_expense_approval(open_product: Any) -> None:
    p = await open_product("hr-system")
    define_expense_approval(p.dw)
    wf = p.dw.workflows
    request = {"requestId": "exp-1", "employeeId": "e-1", "amount": 2500,
               "description": "Conference", "employeeName": "Ann",
               "employeeEmail": "ann@example.com", "managerEmail": "max@example.com",
               "directorEmail": "dora@example.com", "financeEmail": "fin@example.com"}
    run = await wf.execute("hr-system", "dev", "expense-approval", request)
    assert run.status == "running"
    status = await wf.query(run.workflow_id, "getStatus")
    assert status["currentApprover"] == "manager" and status["status"] == "pending"
    # A signal sent before its wait is kept: both decisions go in at once.
    await wf.signal(run.workflow_id, "manager-decision", {"approved": True, "comments": "ok"})
    await wf.signal(run.workflow_id, "director-decision", {"approved": True, "comments": "go"})
    done = await wf.result(run.workflow_id, timeout="30s")
    assert done.status == "completed", done.error
    status = await wf.query(run.workflow_id, "getStatus")
    assert (status["status"], status["currentApprover"]) == ("approved", "director")
    assert [a["level"] for a in done.output["approvals"]] == ["manager", "director"]
    [(_, fields)] = await take_stream(p.redis_url, "process-reimbursement")
    assert json.loads(fields["data"])["requestId"] == "exp-1"
    # The decision email is among those sent (their order in the Maildir is not a contract).
    assert "Your expense of 2500 was approved" in p.subjects()


# -- examples.mdx: Data Sync Workflow ------------------------------------------------------------
def define_data_sync(dw: Ductwork) -> None:
    async def handler(ctx: Any) -> Any:
        source_system, target_system, entity_type = (
            ctx.input.sourceSystem, ctx.input.targetSystem, ctx.input.entityType)
        batch_size = ctx.input.get("batchSize", 100)
        ctx.log.info("Starting data sync", {"sourceSystem": source_system,
                                            "targetSystem": target_system,
                                            "entityType": entity_type})

        # Step 1: Get last sync checkpoint
        async def last() -> Any:
            result = await ctx.database.query(
                database="sync-db", event="get-sync-state",
                params={"source": source_system, "target": target_system,
                        "entity": entity_type})
            return result[0] if result else {"lastSyncedAt": None, "lastSyncedId": None}

        last_sync = await ctx.step("get-last-sync", last)
        # Step 2: Fetch changed records from source
        source_records = await ctx.step("fetch-source-records", lambda: ctx.action.run(
            app=source_system, event="get-records",
            input={"body": {"entityType": entity_type,
                            "modifiedAfter": last_sync["lastSyncedAt"],
                            "limit": batch_size}}))
        if len(source_records["records"]) == 0:
            ctx.log.info("No records to sync")
            return {"success": True, "synced": 0, "conflicts": 0}

        await ctx.set_state("totalRecords", len(source_records["records"]))
        await ctx.set_state("syncedRecords", 0)
        await ctx.set_state("conflicts", [])
        await ctx.checkpoint("records-fetched", {"count": len(source_records["records"])})

        # Step 3: Process each record (state is written between steps: a step's own work
        # is what it returns)
        for record in source_records["records"]:
            async def sync(record: Any = record) -> Any:
                existing = await ctx.action.run(app=target_system, event="get-record",
                                                input={"params": {"id": record["id"]}})
                if existing and existing["modifiedAt"] > record["modifiedAt"]:
                    return {"skipped": True, "reason": "conflict",
                            "targetModified": existing["modifiedAt"]}
                event = "update-record" if existing else "create-record"
                await ctx.action.run(app=target_system, event=event, input={"body": record})
                return {"synced": True}

            outcome = await ctx.step(f"sync-record-{record['id']}", sync)
            if outcome.get("skipped"):
                await ctx.set_state("conflicts", [*await ctx.get_state("conflicts"), {
                    "recordId": record["id"], "sourceModified": record["modifiedAt"],
                    "targetModified": outcome["targetModified"]}])
                ctx.log.warn("Sync conflict detected", {"recordId": record["id"]})
            else:
                await ctx.set_state("syncedRecords", await ctx.get_state("syncedRecords") + 1)

        # Step 4: Update sync state
        last_record = source_records["records"][-1]
        await ctx.step("update-sync-state", lambda: ctx.database.update(
            database="sync-db", event="update-sync-state",
            where={"source": source_system, "target": target_system, "entity": entity_type},
            data={"lastSyncedAt": ctx.transform.now(), "lastSyncedId": last_record["id"]}))
        # Step 5: Report conflicts if any
        conflicts = await ctx.get_state("conflicts") or []
        if len(conflicts) > 0:
            await ctx.step("report-conflicts", lambda: ctx.notification.email(
                notification="system-alerts", event="sync-conflicts",
                recipients=[ctx.input.adminEmail],
                template={"sourceSystem": source_system, "targetSystem": target_system,
                          "entityType": entity_type, "conflictCount": len(conflicts),
                          "conflicts": conflicts}), None, {"allow_fail": True})
        return {"success": True, "synced": await ctx.get_state("syncedRecords"),
                "conflicts": len(conflicts), "hasMore": source_records["hasMore"]}

    dw.workflows.define(product="integration", tag="data-sync", name="Data Synchronization",
                        options={"timeout": 600000, "rollback_strategy": "to_checkpoint"},
                        handler=handler)


async def test_examples_data_sync(open_product: Any) -> None:
    p = await open_product("integration")
    define_data_sync(p.dw)
    a = p.apps.responses
    a[("crm", "get-records")] = {"hasMore": False, "records": [
        {"id": "r1", "modifiedAt": "2024-05-02"}, {"id": "r2", "modifiedAt": "2024-05-02"},
        {"id": "r3", "modifiedAt": "2024-05-01"}]}
    targets = {"r2": {"id": "r2", "modifiedAt": "2024-05-01"},
               "r3": {"id": "r3", "modifiedAt": "2024-05-09"}}
    # GET /records/{id}: what the target holds ({} when it has no such record)
    p.apps.server.clear()
    p.apps.server.expect_request(re.compile(r"^/erp/records/r\d$"), method="GET") \
        .respond_with_handler(lambda r: Response(json.dumps(targets.get(
            r.path.rsplit("/", 1)[-1], {})), content_type="application/json"))
    p.apps.server.expect_request(re.compile(".*")).respond_with_handler(p.apps.handle)

    done = await p.dw.workflows.execute("integration", "dev", "data-sync", {
        "sourceSystem": "crm", "targetSystem": "erp", "entityType": "contact",
        "adminEmail": "ops@example.com"})
    assert done.status == "completed", done.error
    assert done.output == {"success": True, "synced": 2, "conflicts": 1, "hasMore": False}
    assert [c[1] for c in p.apps.calls if c[0] == "erp"] == ["create-record", "update-record"]
    assert p.subjects() == ["1 sync conflicts: crm -> erp (contact)"]


# -- building-workflows.mdx, overview.mdx, step-types.mdx: every component call -----------------
SHOP = """\
product: my-product
envs: [dev]
apps:
  stripe:
    envs: {dev: {base_url: "${env.STRIPE_URL}", variables: {api_version: "2024-06-20"}}}
    constants: {default_currency: usd}
    events:
      create-charge: {method: POST, path: /v1/charges, body: [amount, currency, customer]}
      refund: {method: POST, path: /v1/refunds}
      refund-charge: {method: POST, path: /v1/refunds}
  external-api:
    envs: {dev: {base_url: "${env.EXTERNAL_API_URL}"}}
    events: {fetch-data: {method: POST, path: /data}}
  orders-api:
    envs: {dev: {base_url: "${env.ORDERS_API_URL}"}}
    events:
      validate-order: {method: POST, path: /validate}
      process-item: {method: POST, path: /items}
  inventory-api:
    envs: {dev: {base_url: "${env.INVENTORY_API_URL}"}}
    events:
      check-availability: {method: POST, path: /availability}
      reserve: {method: POST, path: /reserve}
      release: {method: POST, path: /release}
  fraud-detection:
    envs: {dev: {base_url: "${env.FRAUD_DETECTION_URL}"}}
    events: {analyze: {method: POST, path: /analyze}}
  unreliable-service:
    envs: {dev: {base_url: "${env.UNRELIABLE_SERVICE_URL}", retries: 0}}
    events: {fetch: {method: POST, path: /fetch}}
  fallback-service:
    envs: {dev: {base_url: "${env.FALLBACK_SERVICE_URL}"}}
    events: {fetch: {method: POST, path: /fetch}}
  external-service:
    envs: {dev: {base_url: "${env.EXTERNAL_SERVICE_URL}"}}
    events: {fetch-data: {method: POST, path: /fetch}}
  api:
    envs: {dev: {base_url: "${env.API_URL}"}}
    events:
      handle-a: {method: POST, path: /a}
      handle-b: {method: POST, path: /b}
  primary-payments:
    envs: {dev: {base_url: "${env.PRIMARY_PAYMENTS_URL}", retries: 0}}
    events: {charge: {method: POST, path: /charges}}
  backup-payments:
    envs: {dev: {base_url: "${env.BACKUP_PAYMENTS_URL}", retries: 0}}
    events: {charge: {method: POST, path: /charges}}
  rate-api:
    envs: {dev: {base_url: "${env.RATE_API_URL}"}}
    events: {consume: {method: POST, path: /consume}}
  legacy-api:
    envs: {dev: {base_url: "${env.LEGACY_API_URL}", retries: 0}}
    events: {fetch: {method: GET, path: /fetch}}
databases:
  users-db:
    envs: {dev: {provider: sqlite, url: "sqlite:///.ductwork/users.db"}}
    tables:
      users: {columns: {id: {type: integer, primary_key: true, auto: true}, email: text,
                        name: text, status: text}}
    events:
      create-user: {op: insert, table: users}
  orders-db:
    envs: {dev: {provider: sqlite, url: "sqlite:///.ductwork/orders.db"}}
    tables:
      orders:
        columns:
          id: {type: integer, primary_key: true, auto: true}
          customer_id: text
          total: float
          items: json
          payment_id: text
          status: text
    events:
      create-order: {op: insert, table: orders}
      create: {op: insert, table: orders}
      find-by-customer: {op: query, table: orders}
      update-status: {op: update, table: orders}
      remove-order: {op: delete, table: orders}
  analytics-db:
    envs: {dev: {provider: sqlite, url: "sqlite:///.ductwork/orders.db"}}
    events:
      aggregate-sales:
        op: sql
        sql: "select count(*) as orders, :startDate as start_date, :endDate as end_date from orders"
        params: [startDate, endDate]
  inventory-db:
    envs: {dev: {provider: sqlite, url: "sqlite:///.ductwork/inventory.db"}}
    tables:
      reservations: {columns: {id: {type: integer, primary_key: true, auto: true},
                               items: json, orderId: text}}
    events:
      reserve-items: {op: insert, table: reservations}
graphs:
  social-graph:
    envs: {dev: {provider: ladybug, path: .ductwork/graph}}
    schema:
      nodes: {User: {id: STRING, name: STRING, email: STRING, verified: BOOLEAN}}
      relationships: {FOLLOWS: {from: User, to: User, properties: {since: STRING}}}
    actions:
      find-connections:
        cypher: >-
          MATCH (a:User {id: $userId})-[:FOLLOWS*1..2]->(b:User)
          RETURN DISTINCT b.id AS id, $depth AS depth ORDER BY id
        params: [userId, depth]
      compute-influence:
        cypher: "MATCH (a:User)-[:FOLLOWS]->(b:User {id: $userId}) RETURN count(a) AS followers"
        params: [userId]
notifications:
  transactional:
    envs: {dev: {provider: outbox}}
    events:
      order-confirmation: {subject: "Order {{ orderId }}",
                           text: "{{ items | length }} items, {{ total }}"}
      order-confirmed: {subject: "Order {{ orderId }} confirmed", text: "Total {{ total }}"}
  order-notifications:
    envs: {dev: {provider: outbox}}
    events:
      order-confirmed: {subject: "Order {{ orderId }} confirmed", text: "Total {{ total }}"}
  alerts:
    envs: {dev: {provider: outbox}}
    events: {verification-code: {message: "Your code is {{ code }}"}}
  mobile-app:
    envs: {dev: {provider: outbox}}
    events: {order-shipped: {title: "{{ status }}", body: "Tracking {{ trackingNumber }}"}}
  multi-channel:
    envs: {dev: {provider: outbox}}
    events:
      urgent-alert: {subject: "Urgent", text: "Act now", message: "Act now", title: "Urgent",
                     body: "Act now"}
storage:
  documents:
    envs: {dev: {provider: local, root: .ductwork/documents}}
    events: {upload-invoice: {prefix: invoices/}}
  templates:
    envs: {dev: {provider: local, root: .ductwork/templates}}
    events: {get-template: {}}
  temp-files:
    envs: {dev: {provider: local, root: .ductwork/tmp}}
    events: {cleanup: {}}
brokers:
  order-events:
    envs: {dev: {provider: redis, url: "redis://127.0.0.1:6379/0"}}
  warehouse:
    envs: {dev: {provider: redis, url: "redis://127.0.0.1:6379/0"}}
fallbacks:
  payment-fallback:
    providers:
      - {name: primary, app: primary-payments, event: charge}
      - {name: backup, app: backup-payments, event: charge}
quotas:
  api-rate-limit:
    window: 1h
    providers:
      - {name: rate-api, app: rate-api, event: consume, limit: 2}
"""


@pytest.fixture
async def shop(open_product: Any) -> Product:
    return await open_product("my-product", text=SHOP)


async def test_building_workflows_every_component_call(shop: Product) -> None:
    a = shop.apps.responses
    a[("stripe", "create-charge")] = lambda body: {"id": "ch_1", "amount": body["amount"]}
    a[("external-api", "fetch-data")] = {"rows": 3}
    (shop.folder / ".ductwork" / "templates").mkdir(parents=True)
    (shop.folder / ".ductwork" / "templates" / "invoice-template.pdf").write_bytes(b"%PDF-T")
    (shop.folder / ".ductwork" / "tmp").mkdir(parents=True)
    (shop.folder / ".ductwork" / "tmp" / "scratch.bin").write_bytes(b"x")

    @shop.dw.workflows.workflow(product="my-product", tag="components")
    async def components(ctx: Any) -> Any:
        out: dict[str, Any] = {}
        # ctx.action - API Calls: basic call, then with retries and timeout
        out["charge"] = await ctx.action.run(app="stripe", event="create-charge",
                                             input={"body": {"amount": 1000,
                                                             "currency": "usd"}})
        out["fetched"] = await ctx.action.run(
            app="external-api", event="fetch-data",
            input={"body": {"query": ctx.input.query},
                   "headers": {"X-Request-ID": ctx.workflow_id}},
            retries=3, timeout=10000)
        # step-types.mdx: the flat input format
        out["flat"] = await ctx.action.run(
            app="stripe", event="create-charge",
            input={"amount": 1000, "currency": "usd",
                   "headers:Idempotency-Key": ctx.workflow_id},
            retries=3, timeout=10000)
        # ctx.database - Database Operations
        out["record"] = await ctx.database.insert(
            database="orders-db", event="create-order",
            data={"customer_id": ctx.input.customerId, "total": ctx.input.amount,
                  "items": ctx.input.items})
        out["orders"] = await ctx.database.query(database="orders-db",
                                                 event="find-by-customer",
                                                 params={"customer_id": ctx.input.customerId})
        out["aggregate"] = await ctx.database.execute(
            database="analytics-db", event="aggregate-sales",
            input={"startDate": ctx.input["from"], "endDate": ctx.input.to})
        await ctx.database.update(database="orders-db", event="update-status",
                                  where={"id": out["record"]["id"]}, data={"status": "shipped"})
        out["deleted"] = await ctx.database.delete(database="orders-db", event="remove-order",
                                                   where={"id": out["record"]["id"]})
        # ctx.graph - Graph Database
        node = await ctx.graph.create_node(graph="social-graph", labels=["User"],
                                           properties={"name": ctx.input.name,
                                                       "email": ctx.input.email})
        await ctx.graph.update_node(graph="social-graph", id=node["id"],
                                    properties={"verified": True})
        await ctx.graph.create_node(graph="social-graph", labels=["User"],
                                    properties={"id": ctx.input.friendId, "name": "Bo"})
        rel = await ctx.graph.create_relationship(graph="social-graph", from_=node["id"],
                                                  to=ctx.input.friendId, type="FOLLOWS",
                                                  properties={"since": ctx.transform.now()})
        out["connections"] = await ctx.graph.query(graph="social-graph",
                                                   action="find-connections",
                                                   params={"userId": node["id"], "depth": 2})
        out["influence"] = await ctx.graph.execute(graph="social-graph",
                                                   action="compute-influence",
                                                   input={"userId": ctx.input.friendId})
        out["rel_deleted"] = await ctx.graph.delete_relationship(graph="social-graph",
                                                                 id=rel["id"])
        out["node_deleted"] = await ctx.graph.delete_node(graph="social-graph",
                                                          id=ctx.input.friendId)
        # ctx.notification - Send Notifications
        await ctx.notification.email(
            notification="transactional", event="order-confirmation",
            recipients=[ctx.input.email], subject={"orderId": ctx.input.orderId},
            template={"orderId": ctx.input.orderId, "items": ctx.input.items,
                      "total": ctx.input.total})
        await ctx.notification.sms(notification="alerts", event="verification-code",
                                   phones=[ctx.input.phone], message={"code": ctx.input.code})
        await ctx.notification.push(
            notification="mobile-app", event="order-shipped", tokens=[ctx.input.deviceToken],
            title={"status": "Shipped"}, body={"trackingNumber": ctx.input.trackingNumber},
            data={"orderId": ctx.input.orderId})
        out["send"] = await ctx.notification.send(
            notification="multi-channel", event="urgent-alert",
            input={"email": {"recipients": [ctx.input.email]},
                   "sms": {"phones": [ctx.input.phone]},
                   "push": {"tokens": [ctx.input.token]}},
            retries=3)
        # ctx.storage - File Operations
        uploaded = await ctx.storage.upload(
            storage="documents", event="upload-invoice",
            input={"buffer": ctx.input.fileData,
                   "file_name": f"invoice-{ctx.input.orderId}.pdf",
                   "mime_type": "application/pdf"},
            retries=2)
        out["uploaded"] = uploaded
        file = await ctx.storage.download(storage="templates", event="get-template",
                                          input={"file_key": "invoice-template.pdf"})
        out["template"] = [file["content"], file["size"]]
        out["cleaned"] = await ctx.storage.delete(storage="temp-files", event="cleanup",
                                                  input={"file_key": ctx.input.tempFileKey})
        # ctx.messaging - Message Broker
        await ctx.messaging.produce(
            event="order-events:order-created",
            message={"orderId": ctx.input.orderId, "customerId": ctx.input.customerId,
                     "items": ctx.input.items, "timestamp": time.time() * 1000})
        # Data Access: the app's variables (per env) and constants of the product file
        api_version = ctx.variable("stripe", "api_version")
        default_currency = ctx.constant("stripe", "default_currency")
        out["app_values"] = [api_version, default_currency]
        out["defaults"] = [ctx.default(ctx.input.get("currency"), "usd"),
                           ctx.default(ctx.input.get("retries"), 3)]
        # Logging
        ctx.log.debug("Processing step", {"step": "create-user"})
        ctx.log.info("User created", {"userId": node["id"]})
        ctx.log.warn("Retry attempt", {"attempt": 2, "maxRetries": 3})
        ctx.log.error("Step failed", {"error": "none"})
        return out

    done = await shop.dw.workflows.execute("my-product", "dev", "components", {
        "query": "q", "customerId": "c1", "amount": 30.5, "items": [{"sku": "a"}],
        "from": "2024-01-01", "to": "2024-02-01", "name": "Ann", "email": "ann@example.com",
        "friendId": "bo", "orderId": "o-9", "total": 30.5, "phone": "+15005550006",
        "code": "123456", "deviceToken": "dev-1", "trackingNumber": "TRK1", "token": "dev-2",
        "fileData": "%PDF-1.7", "tempFileKey": "scratch.bin"})
    assert done.status == "completed", done.error
    out = done.output
    assert out["charge"] == {"id": "ch_1", "amount": 1000} and out["fetched"] == {"rows": 3}
    [flat] = [c for c in shop.apps.calls if c[1] == "create-charge"][1:]
    assert flat[2] == {"amount": 1000, "currency": "usd"}
    assert flat[3]["Idempotency-Key"] == done.workflow_id
    [fetch] = [c for c in shop.apps.calls if c[1] == "fetch-data"]
    assert fetch[3]["X-Request-Id"] == done.workflow_id
    assert out["record"]["customer_id"] == "c1" and len(out["orders"]) == 1
    assert out["aggregate"] == [{"orders": 1, "start_date": "2024-01-01",
                                 "end_date": "2024-02-01"}]
    assert out["deleted"] is True
    assert out["connections"] == [{"id": "bo", "depth": 2}]
    assert out["influence"] == [{"followers": 1}]
    assert out["rel_deleted"] is True and out["node_deleted"] is True
    assert set(out["send"]) == {"email", "sms", "push"}
    assert out["uploaded"]["content_type"] == "application/pdf"
    assert out["uploaded"]["file_key"].endswith("invoice-o-9.pdf")
    assert out["template"] == [b"%PDF-T", 6] and out["cleaned"] is True
    assert out["defaults"] == ["usd", 3]
    assert out["app_values"] == ["2024-06-20", "usd"]
    [(_, fields)] = await take_stream(shop.redis_url, "order-created")
    assert json.loads(fields["data"])["orderId"] == "o-9"
    assert "Order o-9" in shop.subjects()
    levels = [lg["level"] for lg in await shop.dw.workflows.logs(done.workflow_id)]
    assert levels == ["debug", "info", "warn", "error"]


async def test_building_workflows_quota_fallback_and_step_types_healthcheck(
        shop: Product, monkeypatch: pytest.MonkeyPatch) -> None:
    a = shop.apps.responses
    a[("rate-api", "consume")] = lambda body: {"key": body["key"]}
    a[("primary-payments", "charge")] = (503, {"error": "unavailable"})
    a[("backup-payments", "charge")] = lambda body: {"id": "bk_1", "amount": body["amount"]}
    monkeypatch.setenv("LEGACY_API_URL", f"http://127.0.0.1:{free_port()}")  # nobody there

    # ctx.quota - Rate Limiting: the quota allows 2 calls an hour
    @shop.dw.workflows.workflow(product="my-product", tag="rate-limited")
    async def rate_limited(ctx: Any) -> Any:
        quota_result = await ctx.quota.execute({
            "quota": "api-rate-limit",
            "input": {"key": ctx.input.userId},
            "timeout": 5000,
        })
        if not quota_result["allowed"]:
            raise Exception("Rate limit exceeded")
        return quota_result

    runs = [await shop.dw.workflows.execute("my-product", "dev", "rate-limited",
                                            {"userId": f"u{n}"}) for n in range(3)]
    assert [r.status for r in runs] == ["completed", "completed", "failed"], runs[0].error
    assert runs[0].output["allowed"] is True and runs[0].output["provider"] == "rate-api"
    assert runs[1].output["output"] == {"key": "u1"}
    assert "Rate limit exceeded" in str(runs[2].error)
    assert shop.apps.sent("rate-api", "consume") == [{"key": "u0"}, {"key": "u1"}]
    assert runs[2].completed_steps == ["quota:api-rate-limit"]  # the denial is recorded

    # ctx.fallback - Failure Handling: the primary answers 503, the backup serves
    @shop.dw.workflows.workflow(product="my-product", tag="resilient-payment")
    async def resilient_payment(ctx: Any) -> Any:
        return await ctx.fallback.execute({
            "fallback": "payment-fallback",
            "input": {"amount": ctx.input.amount, "method": ctx.input.paymentMethod},
            "timeout": 30000,
        })

    paid = await shop.dw.workflows.execute("my-product", "dev", "resilient-payment",
                                           {"amount": 25, "paymentMethod": "card"})
    assert paid.status == "completed", paid.error
    assert paid.output["provider"] == "backup"
    assert paid.output["output"] == {"id": "bk_1", "amount": 25}
    [failed] = paid.output["attempts"]
    assert failed["provider"] == "primary" and "503" in failed["error"]
    assert shop.apps.sent("primary-payments", "charge") == [{"amount": 25, "method": "card"}]
    assert shop.apps.sent("backup-payments", "charge") == [{"amount": 25, "method": "card"}]

    # step-types.mdx, ctx.healthcheck.getStatus(tag): status, lastChecked, lastLatency
    @shop.dw.workflows.workflow(product="my-product", tag="health")
    async def health(ctx: Any) -> Any:
        up = await ctx.healthcheck.get_status("rate-api")
        down = await ctx.healthcheck.get_status("legacy-api")
        return {"up": up, "down": down}

    checked = await shop.dw.workflows.execute("my-product", "dev", "health", {})
    assert checked.status == "completed", checked.error
    up, down = checked.output["up"], checked.output["down"]
    assert up["status"] == "available" and down["status"] == "unavailable"
    assert isinstance(up["last_latency"], int | float) and down["last_latency"] is None
    for answer in (up, down):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", answer["last_checked"])
    assert checked.completed_steps == ["healthcheck:rate-api", "healthcheck:legacy-api"]


async def test_overview_quick_example_and_building_complete_example(shop: Product) -> None:
    a = shop.apps.responses
    a[("orders-api", "validate-order")] = lambda body: (
        {"valid": True} if body["orderId"] != "bad" else {"valid": False, "reason": "unknown"})
    a[("stripe", "create-charge")] = {"id": "ch_1"}
    a[("inventory-api", "check-availability")] = {"available": True}
    dw = shop.dw

    @dw.workflows.workflow(product="my-product", tag="order-fulfillment",
                           name="Order Fulfillment")
    async def quick(ctx: Any) -> Any:
        # Step 1: Validate the order
        validation = await ctx.step("validate", lambda: ctx.action.run(
            app="orders-api", event="validate-order",
            input={"body": {"orderId": ctx.input.orderId}}))
        if not validation["valid"]:
            return {"success": False, "error": validation["reason"]}
        # Step 2: Process payment (with rollback)
        payment = await ctx.step(
            "process-payment",
            lambda: ctx.action.run(app="stripe", event="create-charge",
                                   input={"body": {"amount": ctx.input.amount}}),
            # Rollback handler - refund if later steps fail
            lambda result: ctx.action.run(app="stripe", event="refund-charge",
                                          input={"body": {"chargeId": result["id"]}}))
        # Step 3: Reserve inventory
        await ctx.step("reserve-inventory", lambda: ctx.database.insert(
            database="inventory-db", event="reserve-items",
            data={"items": ctx.input.items, "orderId": ctx.input.orderId}))
        # Step 4: Send confirmation email (non-critical)
        await ctx.step("send-confirmation", lambda: ctx.notification.email(
            notification="order-notifications", event="order-confirmed",
            recipients=[ctx.input.email], subject={"orderId": ctx.input.orderId},
            template={"orderId": ctx.input.orderId, "total": ctx.input.amount}),
            None,                   # No rollback needed
            {"allow_fail": True})   # Continue even if email fails
        return {"success": True, "orderId": ctx.input.orderId, "chargeId": payment["id"]}

    # overview.mdx: Executing Workflows
    result = await dw.workflows.execute(product="my-product", env="dev",
                                        tag="order-fulfillment", input={
                                            "orderId": "ORD-12345", "amount": 99.99,
                                            "email": "customer@example.com",
                                            "items": ["SKU-001", "SKU-002"]})
    assert result.status == "completed", result.error
    assert result.output == {"success": True, "orderId": "ORD-12345", "chargeId": "ch_1"}
    assert result.completed_steps == ["validate", "process-payment", "reserve-inventory",
                                      "send-confirmation"]
    early = await dw.workflows.execute("my-product", "dev", "order-fulfillment",
                                       {"orderId": "bad", "amount": 1})
    assert early.output == {"success": False, "error": "unknown"}

    @dw.workflows.workflow(product="my-product", tag="order-fulfillment-complete",
                           name="Order Fulfillment",
                           description="Complete order processing workflow",
                           options={"timeout": 300000, "rollback_strategy": "reverse_all"},
                           signals={"cancel-order": {"type": "object", "properties": {
                               "reason": {"type": "string"}}}})
    async def complete(ctx: Any) -> Any:
        ctx.log.info("Starting order fulfillment", {"orderId": ctx.input.orderId})
        validation = await ctx.step("validate", lambda: ctx.action.run(
            app="inventory-api", event="check-availability",
            input={"body": {"items": ctx.input.items}}))
        if not validation["available"]:
            return {"success": False, "reason": "items_unavailable"}
        payment = await ctx.step(
            "payment",
            lambda: ctx.action.run(app="stripe", event="create-charge",
                                   input={"body": {"amount": ctx.input.amount,
                                                   "customer": ctx.input.customerId}},
                                   retries=3),
            lambda result: ctx.action.run(app="stripe", event="refund",
                                          input={"body": {"chargeId": result["id"]}}))
        await ctx.checkpoint("payment-complete", {"chargeId": payment["id"]})
        await ctx.step(
            "reserve-inventory",
            lambda: ctx.action.run(app="inventory-api", event="reserve",
                                   input={"body": {"items": ctx.input.items}}),
            lambda _: ctx.action.run(app="inventory-api", event="release",
                                     input={"body": {"items": ctx.input.items}}))
        order = await ctx.step("create-order", lambda: ctx.database.insert(
            database="orders-db", event="create",
            data={"customer_id": ctx.input.customerId, "items": ctx.input.items,
                  "total": ctx.input.amount, "payment_id": payment["id"],
                  "status": "processing"}))
        await ctx.step("send-confirmation", lambda: ctx.notification.email(
            notification="transactional", event="order-confirmed",
            recipients=[ctx.input.email],
            template={"orderId": order["id"], "items": ctx.input.items,
                      "total": ctx.input.amount}), None, {"allow_fail": True})
        await ctx.step("queue-fulfillment", lambda: ctx.messaging.produce(
            event="warehouse:new-order",
            message={"orderId": order["id"], "items": ctx.input.items}))
        ctx.log.info("Order fulfilled successfully", {"orderId": order["id"]})
        return {"success": True, "orderId": order["id"], "chargeId": payment["id"]}

    full = await dw.workflows.execute("my-product", "dev", "order-fulfillment-complete", {
        "orderId": "o-1", "items": [{"sku": "a"}], "amount": 12, "customerId": "c1",
        "email": "ann@example.com"})
    assert full.status == "completed", full.error
    assert full.output == {"success": True, "orderId": 1, "chargeId": "ch_1"}
    [(_, fields)] = await take_stream(shop.redis_url, "new-order")
    assert json.loads(fields["data"]) == {"orderId": 1, "items": [{"sku": "a"}]}


async def test_building_workflows_loops_switch_state_and_sleep(shop: Product) -> None:
    shop.apps.responses[("orders-api", "process-item")] = lambda body: {"done": body["id"]}
    shop.apps.responses[("api", "handle-a")] = {"handled": "a"}
    shop.apps.responses[("api", "handle-b")] = {"handled": "b"}
    dw = shop.dw

    # Loops (for): one step per item, a unique tag per iteration
    @dw.workflows.workflow(product="my-product", tag="process-orders", name="Process Orders")
    async def process_orders(ctx: Any) -> Any:
        for item in ctx.input.items:
            await ctx.step(f"process-{item.id}", lambda item=item: ctx.action.run(
                app="orders-api", event="process-item", input={"body": {"id": item.id}}))

    # If/else or switch on input
    @dw.workflows.workflow(product="my-product", tag="handle-by-type", name="Handle by type")
    async def handle_by_type(ctx: Any) -> Any:
        match ctx.input.type:
            case "a":
                await ctx.step("handle-a", lambda: ctx.action.run(app="api", event="handle-a",
                                                                  input={}))
            case "b":
                await ctx.step("handle-b", lambda: ctx.action.run(app="api", event="handle-b",
                                                                  input={}))

    # State management, step results, sleep
    @dw.workflows.workflow(product="my-product", tag="state")
    async def state(ctx: Any) -> Any:
        await ctx.set_state("retryCount", 0)
        await ctx.set_state("lastError", None)
        retry_count = await ctx.get_state("retryCount") or 0
        if retry_count < 3:
            await ctx.set_state("retryCount", retry_count + 1)
        await ctx.step("create-user", lambda: ctx.database.insert(
            database="users-db", event="create-user", data={"email": ctx.input.email}))
        user_result = ctx.steps["create-user"]
        await ctx.sleep(50)       # milliseconds
        await ctx.sleep("50ms")
        return {"state": dict(ctx.state), "userId": user_result["id"],
                "completed": ctx.completed_steps}

    r = await dw.workflows.execute("my-product", "dev", "process-orders",
                                   {"items": [{"id": "1"}, {"id": "2"}]})
    assert r.completed_steps == ["process-1", "process-2"]
    for kind in ("a", "b"):
        r = await dw.workflows.execute("my-product", "dev", "handle-by-type", {"type": kind})
        assert r.completed_steps == [f"handle-{kind}"]
    s = await dw.workflows.execute("my-product", "dev", "state", {"email": "a@b.c"})
    assert s.output == {"state": {"retryCount": 1, "lastError": None}, "userId": 1,
                        "completed": ["create-user"]}


# -- execution.mdx: options, signals, queries, cancel, children, errors -------------------------
async def test_execution_signals_queries_cancel_children_and_errors(shop: Product) -> None:
    a = shop.apps.responses
    a[("stripe", "create-charge")] = {"id": "ch_1"}
    a[("fraud-detection", "analyze")] = lambda body: {
        "riskScore": 0.9 if body["transactionId"] == "ch_risky" else 0.1}
    a[("unreliable-service", "fetch")] = (503, {"error": "down"})
    a[("fallback-service", "fetch")] = {"from": "fallback"}
    a[("external-service", "fetch-data")] = {"rows": 1}
    dw = shop.dw
    refunds: list[Any] = []

    @dw.workflows.workflow(product="my-product", tag="order-workflow",
                           signals=["order-approved", "approved", "rejected", "escalated"],
                           queries={
                               "getProgress": lambda ctx: {
                                   "completedSteps": len(ctx.completed_steps), "totalSteps": 5,
                                   "currentStep": ctx.current_step,
                                   "percentComplete": len(ctx.completed_steps) / 5 * 100},
                               "getOrderDetails": lambda ctx: {
                                   "orderId": ctx.input.orderId,
                                   "status": ctx.state.get("orderStatus"),
                                   "paymentId": (ctx.steps.get("payment") or {}).get("id")}})
    async def order_workflow(ctx: Any) -> Any:
        payment = await ctx.step(
            "payment", lambda: ctx.action.run(
                app="stripe", event="create-charge",
                input={"body": {"amount": 1000},
                       "headers": {"Idempotency-Key": f"{ctx.workflow_id}-payment"}}),
            lambda result: refunds.append(result), {"critical": True})
        await ctx.set_state("orderStatus", "paid")
        # Check for fraud
        fraud_check = await ctx.step("fraud-check", lambda: ctx.action.run(
            app="fraud-detection", event="analyze",
            input={"body": {"transactionId": ctx.input.get("charge", payment["id"])}}))
        if fraud_check["riskScore"] > 0.8:
            result = await ctx.trigger_rollback("High fraud risk detected")
            return {"success": False, "reason": "fraud_detected",
                    "rolledBackSteps": result["rolled_back_steps"]}
        await ctx.checkpoint("payment-complete", {"chargeId": payment["id"]})
        assert (ctx.checkpoint_name, ctx.checkpoint_data) == ("payment-complete",
                                                              {"chargeId": "ch_1"})
        # Wait for manual approval, then for any of several signals
        approval = await ctx.wait_for_signal("order-approved", {"timeout": "24h"})
        ctx.log.info("Approved by", {"by": approval["approvedBy"]})
        result = await ctx.wait_for_signal(["approved", "rejected", "escalated"],
                                           {"timeout": "48h"})
        if result["_signal"] == "approved":
            await ctx.step("process", lambda: "processed")
        elif result["_signal"] == "rejected":
            await ctx.trigger_rollback("Order rejected")
        # Try-catch in steps: the fallback service answers when the primary fails
        async def risky() -> Any:
            try:
                return await ctx.action.run(app="unreliable-service", event="fetch", input={})
            except Exception as error:
                ctx.log.warn("Primary service failed, using fallback", {"error": str(error)})
                return await ctx.action.run(app="fallback-service", event="fetch", input={})

        fetched = await ctx.step("risky-operation", risky)
        await ctx.step("external-api-call", lambda: ctx.action.run(
            app="external-service", event="fetch-data", input={}),
            None, {"retries": 3, "retry_delay": 2000})
        await ctx.step("slow-operation", lambda: "quick", None, {"timeout": 30000})
        await ctx.step("send-notification", lambda: 1 / 0, None, {"allow_fail": True})
        return {"approvedBy": approval["approvedBy"], "decision": result["_signal"],
                "fetched": fetched, "approval": approval}

    # Execution options: workflow_id, idempotency_key, timeout, context
    run = await dw.workflows.execute(product="my-product", env="dev", tag="order-workflow",
                                     input={"orderId": "ORD-12345"},
                                     workflow_id="custom-id-123", timeout=300000,
                                     context={"source": "api", "requestId": "req-abc"})
    assert run.status == "running"
    status = await dw.workflows.status("custom-id-123")
    assert status["status"] == "waiting" and status["completed_steps"] == ["payment",
                                                                           "fraud-check"]
    assert status["state"] == {"orderStatus": "paid"}
    progress = await dw.workflows.query("custom-id-123", "getProgress")
    assert progress["completedSteps"] == 2 and progress["percentComplete"] == 40
    details = await dw.workflows.query("custom-id-123", "getOrderDetails")
    assert details == {"orderId": "ORD-12345", "status": "paid", "paymentId": "ch_1"}
    [charge] = [c for c in shop.apps.calls if c[1] == "create-charge"]
    assert charge[3]["Idempotency-Key"] == "custom-id-123-payment"

    await dw.workflows.signal("custom-id-123", "order-approved",
                              {"approvedBy": "manager@company.com",
                               "comments": "Approved for processing",
                               "timestamp": time.time() * 1000})
    await dw.workflows.signal("custom-id-123", "approved", {})
    done = await dw.workflows.result("custom-id-123", timeout="30s")
    assert done.status == "completed", done.error
    assert done.output["decision"] == "approved" and done.output["fetched"] == {
        "from": "fallback"}
    assert done.output["approval"]["comments"] == "Approved for processing"

    keyed = await dw.workflows.execute("my-product", "dev", "order-workflow",
                                       {"orderId": "ORD-2", "charge": "ch_risky"},
                                       idempotency_key="order-12345")
    assert keyed.workflow_id == "my-product:order-workflow:order-12345"
    assert keyed.output == {"success": False, "reason": "fraud_detected",
                            "rolledBackSteps": ["payment"]}
    assert refunds == [{"id": "ch_1"}]

    # Cancelling a waiting run compensates its completed steps
    waiting = await dw.workflows.execute("my-product", "dev", "order-workflow",
                                         {"orderId": "ORD-3"}, workflow_id="wf-abc123")
    assert waiting.status == "running"
    cancelled = await dw.workflows.cancel("wf-abc123", "User requested cancellation")
    assert cancelled["cancelled"] is True and cancelled["rolled_back_steps"] == ["payment"]

    # Child workflows, with the parent close policy
    @dw.workflows.workflow(product="my-product", tag="payment-processing")
    async def payment_processing(ctx: Any) -> Any:
        return {"chargeId": f"ch-{ctx.input.customerId}-{ctx.input.amount}"}

    @dw.workflows.workflow(product="my-product", tag="parent")
    async def parent(ctx: Any) -> Any:
        payment_result = await ctx.workflow(
            "payment-" + ctx.input.orderId,   # Child workflow ID
            "payment-processing",             # Workflow tag
            {"amount": ctx.input.amount, "customerId": ctx.input.customerId},   # Input
            {"timeout": "5m", "retries": 2,
             "parent_close_policy": "terminate"})   # Cancel child if parent fails
        ctx.log.info("Payment completed", {"chargeId": payment_result["chargeId"]})
        return payment_result

    child = await dw.workflows.execute("my-product", "dev", "parent",
                                       {"orderId": "o1", "amount": 5, "customerId": "c1"})
    assert child.output == {"chargeId": "ch-c1-5"}


async def test_execution_resume_handler_checks_completed_steps(dw: Ductwork) -> None:
    ran: list[str] = []

    @dw.workflows.workflow(product="p", tag="resumable")
    async def resumable(ctx: Any) -> Any:
        if ctx.is_restored:
            ctx.log.info("Resuming workflow", {
                "from_checkpoint": (ctx.restored_checkpoint or {}).get("name")
                if isinstance(ctx.restored_checkpoint, dict) else ctx.restored_checkpoint,
                "completed_steps": ctx.completed_steps})
        # Check if step already completed before running
        def validate() -> str:
            ran.append("validate")
            return "valid"

        def pay() -> str:
            ran.append("pay")
            if ctx.input.fail:
                raise RuntimeError("Card declined")
            return "paid"

        if "validate-order" not in ctx.completed_steps:
            await ctx.step("validate-order", validate)
        await ctx.checkpoint("validation-complete")
        if "process-payment" not in ctx.completed_steps:
            await ctx.step("process-payment", pay)
        return ctx.completed_steps

    first = await dw.workflows.execute("p", "dev", "resumable", {"fail": True})
    assert first.status == "failed"
    resumed = await dw.workflows.resume(first.workflow_id, input={"fail": False})
    assert resumed["status"] == "completed" and resumed["output"] == ["validate-order",
                                                                      "process-payment"]
    assert ran == ["validate", "pay", "pay"]


# -- building-workflows.mdx: definition options in the docs' own shapes --------------------------
async def test_building_workflows_signals_queries_and_envs_as_the_docs_declare_them(
        dw: Ductwork) -> None:
    @dw.workflows.workflow(
        product="my-product", tag="order-process", name="Order Processing",
        description="Handles complete order fulfillment",
        options={"timeout": 300000, "rollback_strategy": "reverse_all"},
        envs=[{"slug": "dev", "active": True}, {"slug": "staging", "active": False},
              {"slug": "prd", "active": True}],
        signals={"approve": {"input": {"approver_id": "string", "comments": "string"}},
                 "cancel": {"input": {"reason": "string"}}},
        queries={"getProgress": {"handler": lambda ctx: {
            "completed_steps": ctx.completed_steps, "current_step": ctx.current_step}}})
    async def order_process(ctx: Any) -> Any:
        await ctx.step("validate", lambda: {"ok": True})
        approval = await ctx.wait_for_signal("approve", {"timeout": "24h"})
        ctx.log.info("Approved by:", {"approver_id": approval["approver_id"]})
        return approval["approver_id"]

    waiting = await dw.workflows.execute("my-product", "prd", "order-process", {},
                                         workflow_id="op-1")
    assert waiting.status == "running"
    assert await dw.workflows.query("op-1", "getProgress") == {
        "completed_steps": ["validate"], "current_step": "approve"}  # the wait
    # The declared input types are the payload's JSON Schema: a number is no string
    with pytest.raises(Exception) as wrong:
        await dw.workflows.signal("op-1", "approve", {"approver_id": 7, "comments": "ok"})
    assert "approver_id" in str(wrong.value)
    await dw.workflows.signal("op-1", "approve", {"approver_id": "mgr-1", "comments": "ok"})
    done = await dw.workflows.result("op-1", timeout="30s")
    assert done.status == "completed" and done.output == "mgr-1"
    # staging is listed with active: false
    with pytest.raises(Exception) as inactive:
        await dw.workflows.execute("my-product", "staging", "order-process", {})
    assert str(inactive.value) == ("Workflow my-product/order-process is not active in env "
                                   "'staging' (envs: dev, prd)")


# -- execution.mdx: restart's partial input override, resume's result, rollback details ---------
async def test_execution_restart_override_resume_checkpoint_and_rollback_history(
        dw: Ductwork) -> None:
    undone: list[str] = []

    @dw.workflows.workflow(product="my-product", tag="signup",
                           options={"rollback_strategy": "to_checkpoint"})
    async def signup(ctx: Any) -> Any:
        await ctx.step("create-user", lambda: {"id": "u1"},
                       lambda result: undone.append(result["id"]))
        await ctx.checkpoint("user-created", {"userId": "u1"})
        await ctx.step("reserve-name", lambda: {"name": "ann"},
                       lambda result: undone.append(result["name"]))

        def send() -> Any:
            if "@" not in ctx.input.email:
                raise ValueError(f"bad email {ctx.input.email}")
            return {"sent": ctx.input.email}

        return await ctx.step("send-welcome", send)

    first = await dw.workflows.execute("my-product", "dev", "signup",
                                       {"orderId": "ORD-123", "email": "wrong"},
                                       workflow_id="wf-abc123")
    assert first.status in ("failed", "rolled_back") and undone == ["ann"]
    # Partial Input Override: only the given fields change, merged with the original
    restart = await dw.workflows.restart("wf-abc123",
                                         input_override={"email": "corrected@email.com"},
                                         merge_input=True)
    assert restart["status"] == "completed", restart.get("error")
    assert restart["output"] == {"sent": "corrected@email.com"}
    run = await dw.workflows.status(restart["workflow_id"])
    assert run["workflow_id"] == restart["workflow_id"]
    compared = await dw.workflows.compare(["wf-abc123", restart["workflow_id"]])
    assert compared["input_diff"] == {"email": ["wrong", "corrected@email.com"]}
    # input_override without merging replaces the input
    whole = await dw.workflows.restart("wf-abc123", input_override={"email": "a@b.c"},
                                       merge_input=False)
    again = await dw.workflows.compare(["wf-abc123", whole["workflow_id"]])
    assert again["input_diff"] == {"orderId": ["ORD-123", None], "email": ["wrong", "a@b.c"]}
    # Resume from a checkpoint: the result names it (resumed_checkpoint)
    resumed = await dw.workflows.resume("wf-abc123", from_checkpoint="user-created",
                                        input={"email": "fixed@email.com"})
    assert resumed["resumed_from"] == "wf-abc123"
    assert resumed["resumed_checkpoint"] == "user-created"
    assert resumed["output"] == {"sent": "fixed@email.com"}
    # history(include_rollback_details=True): each compensated step's rollback outcome
    plain = await dw.workflows.history("wf-abc123")
    detailed = await dw.workflows.history("wf-abc123", include_rollback_details=True)
    def rollbacks(events: list[dict[str, Any]]) -> dict[str, Any]:
        return {e["step"]: e["data"].get("rollback_status") for e in events
                if e["step"] in ("create-user", "reserve-name")
                and e["type"] == "step_completed"}

    assert rollbacks(plain.events) == {"create-user": None, "reserve-name": None}
    assert rollbacks(detailed.events) == {"create-user": None, "reserve-name": "rolled_back"}


# -- step-types.mdx: Data Access, ctx.transform's table, Metadata Properties -------------------
async def test_step_types_data_access_transform_and_metadata(tmp_path: Path) -> None:
    async with Ductwork(store=f"sqlite:///{tmp_path / 'runs.db'}",
                        secrets={"STRIPE_KEY": "sk_test_123"}) as dw:
        @dw.workflows.workflow(product="my-product", tag="reference")
        async def reference(ctx: Any) -> Any:
            t = ctx.transform
            token = ctx.token("STRIPE_KEY")
            return {
                "token_length": len(token),
                "defaults": [ctx.default(None, "usd"), ctx.default("", 3),
                             ctx.default("eur", "usd")],
                "size": t.size({"a": 1, "b": 2}), "length": [t.length([1, 2, 3]),
                                                             t.length("abcd")],
                "parsed": t.parse_json('{"x": [1, 2]}'), "json": t.stringify({"x": 1}),
                "upper": t.upper("ann"), "lower": t.lower("ANN"), "trim": t.trim("  a  "),
                "split": t.split("a,b,c", ","), "join": t.join(["a", "b"], ", "),
                "now": isinstance(t.now(), str),
                "date": t.format_date(1700000000000, "YYYY-MM-DD"),
                "meta": [ctx.workflow_id, ctx.workflow_tag, ctx.env, ctx.product],
                "context": ctx.context, "session": ctx.session, "auth": ctx.auth,
            }

        done = await dw.workflows.execute(
            "my-product", "dev", "reference", {}, workflow_id="wf-ref",
            context={"source": "api", "requestId": "req-abc"},
            session={"user": "u1"}, auth={"role": "admin"})
    assert done.status == "completed", done.error
    out = done.output
    assert out["token_length"] == len("sk_test_123")
    assert out["defaults"] == ["usd", 3, "eur"]
    assert out["size"] == 2 and out["length"] == [3, 4]
    assert out["parsed"] == {"x": [1, 2]} and json.loads(out["json"]) == {"x": 1}
    assert [out["upper"], out["lower"], out["trim"]] == ["ANN", "ann", "a"]
    assert out["split"] == ["a", "b", "c"] and out["join"] == "a, b"
    assert out["now"] is True and out["date"] == "2023-11-14"
    assert out["meta"] == ["wf-ref", "reference", "dev", "my-product"]
    assert out["context"] == {"source": "api", "requestId": "req-abc"}
    assert out["session"] == {"user": "u1"} and out["auth"] == {"role": "admin"}


# -- step-types.mdx: ctx.sleep's formats ---------------------------------------------------------
async def test_step_types_sleep_formats(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="my-product", tag="nap")
    async def nap(ctx: Any) -> Any:
        await ctx.sleep(ctx.input.duration)
        return "awake"

    formats = {5000: 5000, "5s": 5000, "5m": 300000, "1h": 3600000, "1d": 86400000}
    for duration, ms in formats.items():
        run = await dw.workflows.execute("my-product", "dev", "nap", {"duration": duration})
        assert run.status == "running"  # suspended until the wake time
        status = await dw.workflows.status(run.workflow_id)
        assert status["status"] == "sleeping"
        events = (await dw.workflows.history(run.workflow_id)).events
        [slept] = [e for e in events if e["type"] == "sleep_started"]
        assert slept["data"]["duration_ms"] == ms, duration


# -- step-types.mdx: replayFromStep's debug option -----------------------------------------------
async def test_step_types_replay_from_step_debug(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="my-product", tag="ship")
    async def ship(ctx: Any) -> Any:
        order = await ctx.step("create-order", lambda: {"id": "o1"})
        return await ctx.step("create-shipment", lambda: {"order": order["id"]})

    await dw.workflows.execute("my-product", "dev", "ship", {}, workflow_id="wf-ship")
    again = await dw.workflows.replay_from_step(
        "wf-ship", "create-shipment",
        debug={"enabled": True, "log_level": "verbose"})
    assert again["status"] == "completed" and again["replayed_from"] == "wf-ship"
    events = (await dw.workflows.history(again["workflow_id"])).events
    debugs = [e["data"]["debug"] for e in events if (e["data"] or {}).get("debug")]
    assert debugs and all(d == {"enabled": True, "log_level": "verbose"} for d in debugs)
    with pytest.raises(ConfigurationError, match="pause_after_step is not supported"):
        await dw.workflows.replay_from_step("wf-ship", "create-shipment",
                                            debug={"enabled": True, "pause_after_step": True})
    with pytest.raises(ConfigurationError, match="log_level 'verbos' is not one of"):
        await dw.workflows.replay_from_step("wf-ship", "create-shipment",
                                            debug={"log_level": "verbos"})
