"""`return:` and `trigger_rollback:` in YAML: a run that ends before its last step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.dsl import plan as p
from ductwork.dsl.specs import load_specs
from tests.dsl.features import Doubles, interrupted, write_specs

EARLY = """
workflow: early
input: {type: object, properties: {skip: {type: boolean}, amount: {type: integer}}}
steps:
  - tag: order
    database.insert: {database: orders-db, event: create-order, data: {n: 1}}
  - if: "${default(ctx.input.skip, false)}"
    return: {status: skipped, order: "${steps.order.id}"}
  - tag: hold
    python: tests.dsl.features:hold
  - tag: charge
    action.run: {app: stripe, event: create-charge, input: {amount: "${ctx.input.amount}"}}
    catch:
      - if: "${error.status == 402}"
        steps:
          - tag: note
            database.insert: {database: audit-db, event: create-log, data: {action: declined}}
          - return: {status: declined, why: "${error.message}"}
  - tag: log
    database.insert: {database: audit-db, event: create-log, data: {action: charged}}
# Read only when the steps run to the end: `steps.hold` does not exist after an early return.
output: {status: charged, hold: "${steps.hold}", charge: "${steps.charge.id}"}
"""

UNDO = """
workflow: undo
options: {rollback_strategy: none}
input: {type: object, properties: {approve: {type: boolean}}}
steps:
  - tag: order
    database.insert: {database: orders-db, event: create-order, data: {n: 1}}
    rollback:
      - database.delete: {database: orders-db, event: delete-order, where: {id: "${result.id}"}}
      - database.insert:
          database: audit-db
          event: create-log
          data: {action: "order ${result.id} deleted"}
  - tag: charge
    action.run: {app: stripe, event: create-charge, input: {amount: 5}}
    rollback:
      action.run: {app: stripe, event: refund-charge, input: {charge: "${result.id}"}}
  - tag: hold
    python: tests.dsl.features:hold
  - tag: undo
    if: "${not default(ctx.input.approve, false)}"
    trigger_rollback:
      reason: "not approved by ${ctx.workflow_id}"
      output: {status: cancelled, undone: "${result.rolled_back_steps}", ok: "${result.success}"}
  - tag: confirm
    database.insert: {database: audit-db, event: create-log, data: {action: confirmed}}
output: {status: confirmed}
"""


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    return write_specs(tmp_path, early=EARLY, undo=UNDO)


async def run(specs: Path, url: str, tag: str, data: dict[str, Any]) -> tuple[Any, Doubles]:
    async with Ductwork(specs=specs, store=url) as dw:
        d = Doubles(dw)
        result = await dw.workflows.execute(product="shop", env="dev", tag=tag, input=data,
                                            workflow_id="w")
        return result, d


async def test_a_return_ends_the_run_with_its_output(specs: Path, store_url: str) -> None:
    result, d = await run(specs, store_url, "early", {"skip": True})
    assert result.status == "completed", result.error
    # the workflow `output:` was not evaluated (it reads steps.hold, which never ran)
    assert result.output == {"status": "skipped", "order": 1}
    assert result.completed_steps == ["order"]
    assert d.stripe.calls == [] and d.logs() == []


async def test_without_the_return_the_steps_run_to_the_end(specs: Path, store_url: str) -> None:
    result, d = await run(specs, store_url, "early", {"amount": 5})
    assert result.status == "completed", result.error
    assert result.output == {"status": "charged", "hold": "held", "charge": "ch-1"}
    assert d.logs() == ["charged"]


async def test_a_return_in_a_catch_handler(specs: Path, store_url: str) -> None:
    result, d = await run(specs, store_url, "early", {"amount": 500})
    assert result.status == "completed", result.error
    assert result.output["status"] == "declined"
    assert "HTTP 402: card declined" in result.output["why"]
    assert d.logs() == ["declined"]  # the step after the catch did not run


async def test_a_return_after_a_crash_replays_without_redoing_steps(specs: Path,
                                                                    tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    result, d = await interrupted(specs, url, lambda dw: dw.workflows.execute(
        product="shop", env="dev", tag="early", input={"amount": 500}, workflow_id="w"))
    assert result.status == "completed", result.error
    assert result.output["status"] == "declined"
    # the order was recorded before the crash: the recovered run did not insert it again
    assert d.orders.tables == {}
    assert len(d.stripe.calls) == 1 and d.logs() == ["declined"]


async def test_trigger_rollback_compensates_and_ends_rolled_back(specs: Path,
                                                                  store_url: str) -> None:
    result, d = await run(specs, store_url, "undo", {})
    assert result.status == "rolled_back", result.error
    assert result.output == {"status": "cancelled", "undone": ["charge", "order"], "ok": True}
    assert result.error is None and result.failed_step is None
    assert result.rollback_result is not None
    assert result.rollback_result["reason"] == "not approved by w"
    assert d.stripe.calls[-1] == ("refund-charge", {"charge": "ch-1"})
    # the order's rollback list ran in order: delete, then the audit line
    assert d.orders.tables["orders"] == []
    assert d.logs() == ["order 1 deleted"]


async def test_without_trigger_rollback_the_run_completes(specs: Path, store_url: str) -> None:
    result, d = await run(specs, store_url, "undo", {"approve": True})
    assert result.status == "completed", result.error
    assert result.output == {"status": "confirmed"}
    assert [c[0] for c in d.stripe.calls] == ["create-charge"]
    assert d.logs() == ["confirmed"]


async def test_trigger_rollback_after_a_crash(specs: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    result, d = await interrupted(specs, url, lambda dw: dw.workflows.execute(
        product="shop", env="dev", tag="undo", input={}, workflow_id="w"))
    assert result.status == "rolled_back", result.error
    assert result.output == {"status": "cancelled", "undone": ["charge", "order"], "ok": True}
    # nothing before the crash ran again; the rollbacks got the recorded results
    assert d.stripe.calls == [("refund-charge", {"charge": "ch-1"})]
    assert d.logs() == ["order 1 deleted"]
    async with Ductwork(specs=specs, store=url) as dw:
        history = [e["type"] for e in await dw.workflows.history("w")]
    assert history.count("step_rolled_back") == 2


def test_the_plan_holds_return_and_trigger_rollback(specs: Path) -> None:
    plans = load_specs(specs)
    early, undo = plans.workflow("shop", "early"), plans.workflow("shop", "undo")
    assert early is not None and undo is not None
    ret = early.steps[1]
    assert isinstance(ret, p.ReturnStep) and ret.when is not None
    assert ret.value.evaluate({"steps": {"order": {"id": 3}}}) == {"status": "skipped",
                                                                   "order": 3}
    trig = undo.steps[3]
    assert isinstance(trig, p.TriggerRollbackStep) and trig.output is not None
    order = undo.steps[0]
    assert isinstance(order, p.TaskStep) and len(order.rollback) == 2
