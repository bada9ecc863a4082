"""specs/ecommerce order-fulfillment (the docs' E-Commerce Order Fulfillment): what the calls
send, and the compensations, which YAML test cases cannot show (mocks replace steps, not
rollbacks, and the apps have no base URL under `ductwork test`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ductwork.errors import ConnectorError
from ductwork.testing import WorkflowTestEnv
from ductwork.testing.doubles import (
    MemoryAction,
    MemoryBroker,
    MemoryDatabase,
    MemoryNotification,
)

PRODUCT = Path(__file__).resolve().parents[2] / "specs" / "ecommerce"
INPUT = {"orderId": "o-1", "customerId": "cus_1", "email": "ann@example.com",
         "couponCode": "SPRING10", "isPrime": True, "shippingAddress": {"city": "Oslo"},
         "items": [{"sku": "book", "price": 19.99, "quantity": 3},
                   {"sku": "pen", "price": 0.35, "quantity": 1}]}


class Shop:
    def __init__(self, env: WorkflowTestEnv, *, order_fails: bool = False) -> None:
        self.inventory = MemoryAction({
            "check-availability": {"allAvailable": True},
            "reserve-items": {"reservationId": "r-1"},
            "release-items": {"released": True}})
        self.promotions = MemoryAction({"validate-coupon": {"valid": True,
                                                            "discountAmount": 10}})
        self.stripe = MemoryAction({"create-charge": {"id": "ch_1"},
                                    "create-refund": {"id": "re_1"}})
        self.orders = MemoryDatabase({"create-order": "orders"})
        self.mail = MemoryNotification()
        self.warehouse = MemoryBroker()
        if order_fails:
            async def refuse(event: str, data: Any) -> Any:
                raise ConnectorError("UNIQUE constraint failed: orders.order_id",
                                     kind="database", resource="orders-db", event=event)
            self.orders.insert = refuse  # type: ignore[method-assign]
        for kind, name, conn in (
                ("action", "inventory-api", self.inventory),
                ("action", "promotions-api", self.promotions), ("action", "stripe", self.stripe),
                ("database", "orders-db", self.orders),
                ("notification", "transactional", self.mail),
                ("broker", "warehouse-events", self.warehouse)):
            env.dw.connectors.register(kind, name, conn)


async def test_the_order_is_priced_charged_recorded_and_queued() -> None:
    async with WorkflowTestEnv(specs=PRODUCT, product="ecommerce", environ={}) as env:
        shop = Shop(env)
        done = await env.execute("ecommerce", "order-fulfillment", INPUT)
        assert done.status == "completed", done.error
        # subtotal 3 x 19.99 + 0.35 = 60.32, minus 10, plus 8% tax
        subtotal = 19.99 * 3 + 0.35
        total = subtotal - 10 + (subtotal - 10) * 0.08
        assert done.output == {"success": True, "orderId": "o-1", "orderRecordId": 1,
                               "chargeId": "ch_1", "total": total}
        [(event, charge)] = shop.stripe.calls
        assert event == "create-charge"
        assert charge == {
            "body": {"amount": 5435, "currency": "usd", "customer": "cus_1",
                     "metadata": {"orderId": "o-1"}},
            "headers": {"Idempotency-Key": "order-o-1-payment"}}
        assert shop.promotions.calls == [("validate-coupon", {"body": {"code": "SPRING10"}})]
        [row] = shop.orders.tables["orders"]
        assert (row["subtotal"], row["discount"], row["total"]) == (subtotal, 10, total)
        assert row["payment_id"] == "ch_1" and row["status"] == "confirmed"
        [(topic, message)] = shop.warehouse.messages
        assert topic == "new-order" and message["priority"] == "high"
        assert shop.mail.sent[0]["template"]["estimatedDelivery"] == "3-5 business days"


async def test_a_failed_order_record_releases_the_stock_and_refunds_the_charge() -> None:
    async with WorkflowTestEnv(specs=PRODUCT, product="ecommerce", environ={}) as env:
        shop = Shop(env, order_fails=True)
        done = await env.execute("ecommerce", "order-fulfillment", {**INPUT, "isPrime": False})
        assert done.status == "rolled_back", done.error
        assert done.failed_step == "create-order-record"
        env.assert_rolled_back(done, ["reserve-inventory", "process-payment"])
        assert shop.inventory.calls[-1] == ("release-items", {"body": {"orderId": "o-1"}})
        assert shop.stripe.calls[-1] == ("create-refund", {"body": {"charge": "ch_1",
                                                                     "reason": "order_cancelled"}})
        logs = await env.dw.workflows.logs(done.workflow_id)
        assert any(entry["message"] == "Payment refunded" for entry in logs)
        assert shop.warehouse.messages == [] and shop.mail.sent == []
