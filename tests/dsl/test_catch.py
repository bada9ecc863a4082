"""`catch:` in YAML: a failed step (after its retries) runs a handler instead of failing the run."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.dsl.graph import mermaid
from ductwork.dsl.specs import load_specs
from ductwork.errors import ConnectorError
from ductwork.testing.doubles import MemoryAction, MemoryDatabase, MemoryNotification

PRODUCT = """
product: shop
envs: [dev]
apps:
  stripe:
    envs: {dev: {base_url: "http://127.0.0.1:9"}}
    events: {create-charge: {method: POST, path: /v1/charges}}
databases:
  orders-db:
    envs: {dev: {provider: sqlite}}
    tables: {orders: {columns: {id: {type: integer, primary_key: true, auto: true}, n: integer}}}
    events: {create-order: {op: insert, table: orders}, delete-order: {op: delete, table: orders}}
notifications:
  ops:
    envs: {dev: {provider: outbox}}
    events: {alert: {subject: "charge failed", text: "{{ reason }}"}}
"""

PAY = """
workflow: pay
input: {type: object, properties: {status: {type: integer}}}
steps:
  - tag: order
    database.insert: {database: orders-db, event: create-order, data: {n: 1}}
    rollback:
      database.delete: {database: orders-db, event: delete-order, where: {id: "${result.id}"}}
  - tag: charge
    action.run: {app: stripe, event: create-charge, input: {status: "${ctx.input.status}"}}
    retries: 2
    retry_delay: 1ms
    catch:
      - if: "${error.status == 402}"
        steps:
          - tag: notify-ops
            notification.email:
              notification: ops
              event: alert
              recipients: [ops@example.com]
              template: {reason: "${error.message}", type: "${error.type}", step: "${error.step}"}
  - tag: after
    python: tests.dsl.test_catch:after
output: {charge: "${steps.charge}", notified: "${default(steps.notify-ops, null)}",
         after: "${steps.after}"}
"""

APPROVAL = """
workflow: approval
steps:
  - tag: approval
    wait_for_signal: {name: approved, timeout: 20ms}
    catch:
      - steps:
          - set: {why: "${error.type}", of: "${error.step}"}
output: {approval: "${steps.approval}", why: "${state.why}", of: "${state.of}"}
"""

PARENT = """
workflow: parent
steps:
  - tag: kid
    workflow: {tag: failing}
    catch:
      - if: "${error.type == 'ChildWorkflowError'}"
        steps:
          - set: {why: "${error.message}"}
output: {kid: "${steps.kid}", why: "${state.why}"}
"""

FAILING = """
workflow: failing
steps:
  - tag: stop
    fail: "no stock"
"""

GATE = {"open": True, "started": asyncio.Event()}


async def after(ctx: Any) -> str:
    """A step after the catch; holds while GATE is closed (to interrupt the run there)."""
    GATE["started"].set()
    while not GATE["open"]:
        await asyncio.sleep(0.005)
    return "done"


def refuse(data: Any) -> Any:
    raise ConnectorError(f"HTTP {data['status']}: card declined", kind="action",
                         resource="stripe", event="create-charge", status=data["status"])


class Doubles:
    def __init__(self, dw: Ductwork) -> None:
        self.stripe = MemoryAction({"create-charge": refuse})
        self.orders = MemoryDatabase({"create-order": "orders", "delete-order": "orders"})
        self.mail = MemoryNotification()
        dw.connectors.register("action", "stripe", self.stripe)
        dw.connectors.register("database", "orders-db", self.orders)
        dw.connectors.register("notification", "ops", self.mail)


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    root = tmp_path / "specs" / "shop"
    (root / "workflows").mkdir(parents=True)
    (root / "product.yaml").write_text(PRODUCT)
    (root / "workflows" / "pay.yaml").write_text(PAY)
    (root / "workflows" / "approval.yaml").write_text(APPROVAL)
    (root / "workflows" / "parent.yaml").write_text(PARENT)
    (root / "workflows" / "failing.yaml").write_text(FAILING)
    return tmp_path / "specs"


async def test_a_caught_connector_failure_continues(specs: Path, store_url: str) -> None:
    async with Ductwork(specs=specs, store=store_url) as dw:
        d = Doubles(dw)
        result = await dw.workflows.execute(product="shop", env="dev", tag="pay",
                                            input={"status": 402})
        steps = {s.step_key: s for s in await dw.store.load_steps(result.workflow_id)}
    assert result.status == "completed", result.error
    assert result.output == {"charge": None, "notified": {"id": 1, "channel": "email"},
                             "after": "done"}
    assert len(d.stripe.calls) == 3  # the retries ran before the catch
    (mail,) = d.mail.sent
    assert mail["template"]["type"] == "ConnectorError"
    assert mail["template"]["step"] == "charge"
    assert "HTTP 402: card declined" in mail["template"]["reason"]
    # the failure keeps its own row, with what a replay needs to pick the same handler
    assert steps["charge"].status == "failed" and steps["charge"].attempts == 3
    assert json.loads(steps["charge"].meta or "{}") == {"cause_type": "ConnectorError",
                                                         "status": 402}
    assert "charge:error" not in steps
    assert steps["notify-ops"].status == "completed"
    assert d.orders.tables["orders"]  # nothing rolled back


async def test_no_matching_handler_fails_the_run_and_rolls_back(specs: Path,
                                                                store_url: str) -> None:
    async with Ductwork(specs=specs, store=store_url) as dw:
        d = Doubles(dw)
        result = await dw.workflows.execute(product="shop", env="dev", tag="pay",
                                            input={"status": 500})
    assert result.status == "rolled_back", result.error
    assert "HTTP 500: card declined" in str(result.error)
    assert d.mail.sent == []
    assert d.orders.tables["orders"] == []  # the order was deleted by its rollback


async def test_a_caught_signal_timeout(specs: Path, store_url: str) -> None:
    async with Ductwork(specs=specs, store=store_url, inline_wait="5s") as dw:
        result = await dw.workflows.execute(product="shop", env="dev", tag="approval")
    assert result.status == "completed", result.error
    assert result.output == {"approval": None, "why": "SignalTimeoutError", "of": "approval"}


async def test_a_caught_child_workflow_failure(specs: Path, store_url: str) -> None:
    async with Ductwork(specs=specs, store=store_url) as dw:
        result = await dw.workflows.execute(product="shop", env="dev", tag="parent")
        child = await dw.workflows.status(f"{result.workflow_id}:kid")
    assert result.status == "completed", result.error
    assert result.output["kid"] is None
    assert "no stock" in result.output["why"]
    assert child["status"] in ("failed", "rolled_back")


async def test_replay_after_interruption_reruns_nothing(specs: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    GATE["open"], GATE["started"] = False, asyncio.Event()
    first = Ductwork(specs=specs, store=url)
    Doubles(first)
    await first._engine()
    task = asyncio.ensure_future(first.workflows.execute(
        product="shop", env="dev", tag="pay", input={"status": 402}, workflow_id="w"))
    await asyncio.wait_for(GATE["started"].wait(), 5)
    await first.aclose()  # `after` is in flight: the run is released mid-way
    with contextlib.suppress(asyncio.CancelledError):
        await task
    GATE["open"] = True
    second = Ductwork(specs=specs, store=url)
    d = Doubles(second)
    async with second:
        (result,) = await second.workflows.recover()
    assert result.status == "completed", result.error
    assert result.output["notified"] == {"id": 1, "channel": "email"}
    # the recorded failure, error and catch step replayed: no call reached a connector again
    assert d.stripe.calls == [] and d.mail.sent == [] and d.orders.tables == {}


def test_the_graph_draws_the_catch_as_a_branch(specs: Path) -> None:
    plan = load_specs(specs).workflow("shop", "pay")
    assert plan is not None
    chart = mermaid(plan)
    assert '|"catch if error.status == 402"|' in chart
    assert '|"no handler matched"|' in chart
    assert "notify-ops: notification.email ops/alert" in chart
