"""A resource named by an expression: allowed when the compiler can list every name it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from ductwork import Ductwork, DuctworkError
from ductwork.dsl import plan as p
from ductwork.dsl.specs import load_specs
from ductwork.errors import CompileError, ConfigurationError
from ductwork.interpreter.plan_runner import PlanRun
from tests.dsl.features import Doubles, interrupted, write_specs

ROUTE = """
workflow: route
input:
  type: object
  required: [region, kind]
  properties:
    region: {type: string, enum: [orders-eu, orders-us]}
    kind: {type: string}
steps:
  - tag: order
    database.insert: {database: "${ctx.input.region}", event: create-order, data: {n: 1}}
  - tag: hold
    python: tests.dsl.features:hold
  - tag: contact
    action.run:
      app: "${'crm' if ctx.input.kind == 'b2b' else 'shop-api'}"
      event: create-contact
      input: {name: "${ctx.input.kind}"}
  - tag: again
    action.run:
      app: "${default({'b2b': 'crm'}[ctx.input.kind], 'shop-api')}"
      event: create-contact
output: {order: "${steps.order}", contact: "${steps.contact.id}", again: "${steps.again.id}"}
"""


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    return write_specs(tmp_path, route=ROUTE)


def chosen(specs: Path) -> list[tuple[str, ...]]:
    plan = load_specs(specs).workflow("shop", "route")
    assert plan is not None
    out = []
    for step in plan.steps:
        if isinstance(step, p.TaskStep) and isinstance(step.body, p.Call):
            assert step.body.resource is None
            out.append(step.body.resources)
    return out


def test_the_compiler_lists_every_name(specs: Path) -> None:
    assert chosen(specs) == [("orders-eu", "orders-us"), ("crm", "shop-api"),
                             ("crm", "shop-api")]


@pytest.mark.parametrize("region,kind,contact", [("orders-us", "b2b", "crm-1"),
                                                 ("orders-eu", "b2c", "shop-1")])
async def test_the_resolved_name_is_used(specs: Path, store_url: str, region: str, kind: str,
                                         contact: str) -> None:
    async with Ductwork(specs=specs, store=store_url) as dw:
        d = Doubles(dw)
        result = await dw.workflows.execute(product="shop", env="dev", tag="route",
                                            input={"region": region, "kind": kind})
    assert result.status == "completed", result.error
    assert result.output == {"order": {"id": 1, "n": 1}, "contact": contact, "again": contact}
    used, other = (d.orders_us, d.orders_eu) if region == "orders-us" else (d.orders_eu,
                                                                            d.orders_us)
    assert used.tables["orders"] == [{"id": 1, "n": 1}] and other.tables == {}
    app, idle = (d.crm, d.shop_api) if kind == "b2b" else (d.shop_api, d.crm)
    assert app.calls == [("create-contact", {"name": kind}), ("create-contact", None)]
    assert idle.calls == []


async def test_an_input_outside_the_enum_is_refused(specs: Path, store_url: str) -> None:
    async with Ductwork(specs=specs, store=store_url) as dw:
        Doubles(dw)
        with pytest.raises(DuctworkError, match="orders-xx"):
            await dw.workflows.execute(product="shop", env="dev", tag="route",
                                       input={"region": "orders-xx", "kind": "b2b"})


def test_a_name_outside_the_checked_set_fails_at_run_time(specs: Path) -> None:
    body = p.Call("database", "insert", None, p.ValueTree.of({}), p.Location("w.yaml", 3, 5),
                  ("orders-eu", "orders-us"))
    PlanRun.check_resource(body, {"database": "orders-us"})
    with pytest.raises(ConfigurationError, match="database 'audit-db' is not one of the names "
                                                 r"this workflow was checked with \(orders-eu, "):
        PlanRun.check_resource(body, {"database": "audit-db"})


async def test_replay_uses_the_recorded_result(specs: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    result, d = await interrupted(specs, url, lambda dw: dw.workflows.execute(
        product="shop", env="dev", tag="route", input={"region": "orders-us", "kind": "b2b"}))
    assert result.status == "completed", result.error
    assert result.output["order"] == {"id": 1, "n": 1}
    assert d.orders_us.tables == {} and d.orders_eu.tables == {}  # not inserted again
    assert len(d.crm.calls) == 2


def test_every_name_must_have_the_event(tmp_path: Path) -> None:
    specs = write_specs(tmp_path, ping="""
        workflow: ping
        input: {type: object, properties: {b2b: {type: boolean}}}
        steps:
          - tag: ping
            action.run: {app: "${'crm' if ctx.input.b2b else 'shop-api'}", event: ping}
    """)
    with pytest.raises(CompileError) as e:
        load_specs(specs)
    (d,) = e.value.diagnostics
    assert (d.line, d.col, d.message) == (6, 75, "unknown event 'ping' for app 'crm'")
