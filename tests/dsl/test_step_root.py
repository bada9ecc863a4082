"""`${step.idempotency_key}`: the running step's key in YAML, the same one Python steps read."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from ductwork import Ductwork
from ductwork.connectors.idempotency import key_for
from ductwork.dsl.compiler import compile_workflow
from ductwork.dsl.loader import load_file, load_text
from ductwork.dsl.product import compile_product

BROKEN = Path(__file__).parent / "broken"


def echo(ctx: Any, **args: Any) -> Any:
    return {**args, "python": ctx.idempotency_key}


def test_a_call_and_its_rollback_may_read_the_step_key() -> None:
    shop, diagnostics = compile_product(load_file(BROKEN / "product.yaml"))
    assert shop is not None and diagnostics == []
    doc = load_text(textwrap.dedent("""
        workflow: w
        steps:
          - tag: charge
            action.run:
              app: stripe
              event: create-charge
              input: {headers: {Idempotency-Key: "${step.idempotency_key}"}}
            rollback:
              action.run:
                app: stripe
                event: refund-charge
                input: {body: {key: "refund-${step.idempotency_key}", charge: "${result.id}"}}
          - tag: note
            python: m:f
            args: {key: "${step['idempotency_key']}"}
        """), "w.yaml")
    _, diagnostics = compile_workflow(doc, shop)
    assert [d.short() for d in diagnostics] == []


async def test_yaml_and_python_read_the_same_key(tmp_path: Path) -> None:
    specs = tmp_path / "specs" / "shop"
    (specs / "workflows").mkdir(parents=True)
    (specs / "product.yaml").write_text("product: shop\nenvs: [dev]\n")
    (specs / "workflows" / "keys.yaml").write_text(textwrap.dedent("""
        workflow: keys
        steps:
          - tag: first
            python: tests.dsl.test_step_root:echo
            args: {yaml: "${step.idempotency_key}"}
          - tag: second
            python: tests.dsl.test_step_root:echo
            args: {yaml: "${step.idempotency_key}"}
        output: {first: "${steps.first}", second: "${steps.second}"}
        """))
    async with Ductwork(specs=str(tmp_path / "specs"),
                        store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
        r = await dw.workflows.execute(product="shop", env="dev", tag="keys",
                                       workflow_id="k-1")
    assert r.status == "completed", r.error
    first, second = r.output["first"], r.output["second"]
    assert first["yaml"] == first["python"] == key_for("k-1", "first")
    assert second["yaml"] == second["python"] == key_for("k-1", "second")
