"""Webhooks in a product file: compiled into the spec; one naming no workflow is a warning."""

from __future__ import annotations

from pathlib import Path

from ductwork.dsl.specs import check_specs, load_specs

PRODUCT = """\
product: shop
envs: [dev]
webhooks:
  order-paid:
    env: dev
    secret: "${secrets.ORDER_HOOK_KEY}"
    idempotency_field: event.id
  refund-issued:
    env: dev
    secret: "${secrets.REFUND_HOOK_KEY}"
"""
WORKFLOW = """\
workflow: order-paid
steps:
  - set: {paid: true}
"""


def write(root: Path) -> Path:
    (root / "shop" / "workflows").mkdir(parents=True)
    (root / "shop" / "product.yaml").write_text(PRODUCT)
    (root / "shop" / "workflows" / "order-paid.yaml").write_text(WORKFLOW)
    return root


def test_webhooks_are_compiled_into_the_spec(tmp_path: Path) -> None:
    specs = load_specs(write(tmp_path / "specs"))
    hooks = specs.products["shop"].webhooks
    assert hooks["order-paid"] == {"env": "dev", "secret": "${secrets.ORDER_HOOK_KEY}",
                                   "idempotency_field": "event.id"}
    assert set(hooks) == {"order-paid", "refund-issued"}


def test_a_webhook_without_a_yaml_workflow_is_a_warning(tmp_path: Path) -> None:
    report = check_specs(write(tmp_path / "specs"))
    assert report.ok
    [warning] = report.warnings
    assert warning.line == 8
    assert warning.message == ("webhook 'refund-issued' names no workflow of product 'shop' "
                               "(fine if a Python workflow 'refund-issued' is defined where "
                               "the server runs)")
    assert warning.hint == "the product's YAML workflows: order-paid"
