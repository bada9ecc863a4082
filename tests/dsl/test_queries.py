"""`queries:` in YAML: dw.workflows.query answers from the run's persisted state, like Python's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork, DuctworkError
from ductwork.dsl.specs import load_specs
from tests.dsl.features import Doubles, write_specs

REVIEW = """
workflow: review
input: {type: object, required: [doc], properties: {doc: {type: string}}}
signals: {decide: {type: object}}
queries:
  progress: "${default(state.approved_count, 0)}"
  last: "${default(steps.record.decision, null)}"
  summary:
    doc: "${ctx.input.doc}"
    done: "${ctx.completed_steps}"
    id: "${ctx.workflow_id}"
    order: "${steps.order.id}"
    waiting: "${ctx.current_step}"
  strict: "${steps.record.decision}"
steps:
  - tag: order
    database.insert: {database: orders-db, event: create-order, data: {n: 1}}
  - set: {approved_count: 1}
  - tag: decision
    wait_for_signal: {name: decide, timeout: 1h}
  - tag: record
    python: tests.dsl.test_queries:record
    args: {decision: "${steps.decision.decision}"}
  - set: {approved_count: 2}
output: "${steps.record}"
"""


def record(ctx: Any, decision: str) -> dict[str, Any]:
    return {"decision": decision}


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    return write_specs(tmp_path, review=REVIEW)


async def test_queries_of_a_waiting_then_finished_yaml_run(specs: Path, store_url: str) -> None:
    async with Ductwork(specs=specs, store=store_url, inline_wait="50ms") as dw:
        d = Doubles(dw)
        first = await dw.workflows.execute(product="shop", env="dev", tag="review",
                                           input={"doc": "d-1"}, workflow_id="r-1",
                                           timeout="200ms")
        assert first.status == "running"
        assert await dw.workflows.query("r-1", "progress") == 1
        assert await dw.workflows.query("r-1", "last") is None
        summary = await dw.workflows.query("r-1", "summary")
        assert summary == {"doc": "d-1", "done": ["order"], "id": "r-1", "order": 1,
                           "waiting": "decide"}
        # a step that has not run yet is missing: without default() the query says which
        with pytest.raises(DuctworkError, match=r"query 'strict' of .*review\.yaml"):
            await dw.workflows.query("r-1", "strict")
        assert len(d.orders.tables["orders"]) == 1  # a query never runs the plan

        await dw.workflows.signal("r-1", "decide", {"decision": "yes"})
        done = await dw.workflows.result("r-1", timeout="10s")
        assert done.status == "completed", done.error
        assert await dw.workflows.query("r-1", "progress") == 2
        assert await dw.workflows.query("r-1", "last") == "yes"
        assert await dw.workflows.query("r-1", "strict") == "yes"
        with pytest.raises(DuctworkError, match="declared: last, progress, strict, summary"):
            await dw.workflows.query("r-1", "nope")
    assert len(d.orders.tables["orders"]) == 1  # the replay after the signal did not redo it


def test_queries_are_in_the_plan(specs: Path) -> None:
    plan = load_specs(specs).workflow("shop", "review")
    assert plan is not None
    assert sorted(plan.queries) == ["last", "progress", "strict", "summary"]
    assert plan.queries["progress"].evaluate({"state": {}}) == 0
