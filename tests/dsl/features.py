"""The product and in-memory connectors the YAML language-feature tests run their workflows on."""

from __future__ import annotations

import asyncio
import contextlib
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ductwork import Ductwork
from ductwork.errors import ConnectorError
from ductwork.interpreter.result import ExecutionResult
from ductwork.testing.doubles import MemoryAction, MemoryDatabase, MemoryNotification

PRODUCT = """
product: shop
envs: [dev]
apps:
  stripe:
    envs: {dev: {base_url: "http://127.0.0.1:9"}}
    events:
      create-charge: {method: POST, path: /charges}
      refund-charge: {method: POST, path: /refunds}
  crm:
    envs: {dev: {base_url: "http://127.0.0.1:9"}}
    events: {create-contact: {method: POST, path: /contacts}}
  shop-api:
    envs: {dev: {base_url: "http://127.0.0.1:9"}}
    events: {create-contact: {method: POST, path: /customers}, ping: {method: GET, path: /}}
databases:
  orders-db:
    envs: {dev: {provider: sqlite}}
    tables: {orders: {columns: {id: {type: integer, primary_key: true, auto: true}, n: integer}}}
    events: {create-order: {op: insert, table: orders}, delete-order: {op: delete, table: orders}}
  orders-eu:
    envs: {dev: {provider: sqlite}}
    tables: {orders: {columns: {id: {type: integer, primary_key: true, auto: true}, n: integer}}}
    events: {create-order: {op: insert, table: orders}}
  orders-us:
    envs: {dev: {provider: sqlite}}
    tables: {orders: {columns: {id: {type: integer, primary_key: true, auto: true}, n: integer}}}
    events: {create-order: {op: insert, table: orders}}
  audit-db:
    envs: {dev: {provider: sqlite}}
    tables: {logs: {columns: {id: {type: integer, primary_key: true, auto: true}, action: text}}}
    events: {create-log: {op: insert, table: logs}}
notifications:
  ops:
    envs: {dev: {provider: outbox}}
    events: {alert: {subject: "alert", text: "{{ reason }}"}}
"""


class Doubles:
    """Fresh in-memory connectors for every resource of PRODUCT, registered on one Ductwork."""

    def __init__(self, dw: Ductwork) -> None:
        self.charges = 0

        def create_charge(data: Any) -> dict[str, Any]:
            if isinstance(data, dict) and data.get("amount", 0) > 100:
                raise ConnectorError("HTTP 402: card declined", kind="action",
                                     resource="stripe", event="create-charge", status=402)
            self.charges += 1
            return {"id": f"ch-{self.charges}"}

        self.stripe = MemoryAction({"create-charge": create_charge,
                                    "refund-charge": lambda i: {"refunded": i}})
        self.crm = MemoryAction({"create-contact": {"id": "crm-1"}})
        self.shop_api = MemoryAction({"create-contact": {"id": "shop-1"}, "ping": "pong"})
        self.orders = MemoryDatabase({"create-order": "orders", "delete-order": "orders"})
        self.orders_eu = MemoryDatabase({"create-order": "orders"})
        self.orders_us = MemoryDatabase({"create-order": "orders"})
        self.audit = MemoryDatabase({"create-log": "logs"})
        self.ops = MemoryNotification()
        for kind, name, conn in (
            ("action", "stripe", self.stripe), ("action", "crm", self.crm),
            ("action", "shop-api", self.shop_api), ("database", "orders-db", self.orders),
            ("database", "orders-eu", self.orders_eu), ("database", "orders-us", self.orders_us),
            ("database", "audit-db", self.audit), ("notification", "ops", self.ops),
        ):
            dw.connectors.register(kind, name, conn)

    def logs(self) -> list[str]:
        return [row["action"] for row in self.audit.tables.get("logs", [])]


def write_specs(tmp_path: Path, **workflows: str) -> Path:
    """specs/shop with PRODUCT and the given workflows (tag -> YAML text)."""
    root = tmp_path / "specs" / "shop"
    (root / "workflows").mkdir(parents=True)
    (root / "product.yaml").write_text(PRODUCT)
    for tag, text in workflows.items():
        (root / "workflows" / f"{tag}.yaml").write_text(textwrap.dedent(text))
    return tmp_path / "specs"


# A python step that holds the run while the gate is closed, so that a test can stop the
# process there (the run is then left for recover(), like after a crash).
GATE: dict[str, Any] = {"open": True, "started": asyncio.Event(), "runs": 0}


async def hold(ctx: Any) -> str:
    GATE["runs"] += 1
    GATE["started"].set()
    while not GATE["open"]:
        await asyncio.sleep(0.005)
    return "held"


async def interrupted(specs: Path, url: str, start: Callable[[Ductwork], Awaitable[Any]]
                      ) -> tuple[ExecutionResult, Doubles]:
    """Start a run that reaches `hold`, stop the process there, then recover it in a new
    Ductwork with fresh connectors (returned, to show which calls the replay made again)."""
    GATE["open"], GATE["started"], GATE["runs"] = False, asyncio.Event(), 0
    first = Ductwork(specs=specs, store=url)
    Doubles(first)
    await first._engine()
    task = asyncio.ensure_future(start(first))
    await asyncio.wait_for(GATE["started"].wait(), 5)
    await first.aclose()  # `hold` is in flight: the run is released mid-way
    with contextlib.suppress(asyncio.CancelledError):
        await task
    GATE["open"] = True
    second = Ductwork(specs=specs, store=url)
    doubles = Doubles(second)
    async with second:
        (result,) = await second.workflows.recover()
    return result, doubles
