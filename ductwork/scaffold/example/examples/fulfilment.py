"""The Python side of specs/my-product/workflows/order-fulfilment.yaml (its `python:` steps).

Each function receives ctx first, then the step's evaluated `args` as keywords; it may be
sync or async, and what it returns (JSON-able) is the step's result.
"""

from __future__ import annotations

from typing import Any

# A toy price list and stock ledger: enough to show reservations and their release.
PRICES = {"book": 1200, "pen": 150, "mug": 800}
STOCK: dict[str, int] = {"book": 10, "pen": 100, "mug": 5}


def price_order(ctx: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    total = sum(PRICES.get(i["sku"], 1000) * int(i["quantity"]) for i in items)
    return {"total": total, "currency": "usd", "lines": len(items)}


async def reserve_stock(ctx: Any, sku: str, quantity: int) -> dict[str, Any]:
    available = STOCK.get(sku, 0)
    if available < quantity:
        raise ValueError(f"only {available} of {sku} in stock, {quantity} wanted")
    STOCK[sku] = available - quantity
    return {"reservation": f"{ctx.workflow_id}:{sku}", "sku": sku, "quantity": quantity}


async def release_stock(ctx: Any, reservation: dict[str, Any]) -> None:
    STOCK[reservation["sku"]] = STOCK.get(reservation["sku"], 0) + reservation["quantity"]


def ship(ctx: Any, order_id: str, method: str) -> dict[str, Any]:
    return {"tracking": f"{method.upper()}-{order_id}", "method": method}
