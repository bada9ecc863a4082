"""Rollback lists, and `rollback:`/`critical:` on child workflow steps, as ctx.workflow takes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork, DuctworkError
from tests.dsl.features import Doubles, interrupted, write_specs

HOTEL = """
workflow: hotel
input: {type: object, properties: {nights: {type: integer}}}
steps:
  - tag: charge
    action.run: {app: stripe, event: create-charge, input: {amount: "${ctx.input.nights}"}}
output: {charge: "${steps.charge.id}", nights: "${ctx.input.nights}"}
"""

CAR = """
workflow: car
steps:
  - tag: reserve
    database.insert: {database: orders-db, event: create-order, data: {n: 9}}
output: {order: "${steps.reserve.id}"}
"""

TRIP = """
workflow: trip
options: {rollback_strategy: critical_only}
input: {type: object, properties: {fail: {type: boolean}}}
steps:
  - tag: book-hotel
    workflow: {tag: hotel, input: {nights: 2}}
    critical: true
    rollback:
      - action.run: {app: stripe, event: refund-charge, input: {charge: "${result.charge}"}}
      - log: {level: warn, message: "refunded ${result.nights} nights"}
      - database.insert:
          database: audit-db
          event: create-log
          data: {action: "hotel ${result.charge} refunded"}
  - tag: book-car
    workflow: {tag: car}
    rollback:     # not critical: critical_only leaves it
      database.insert: {database: audit-db, event: create-log, data: {action: car undone}}
  - tag: hold
    python: tests.dsl.features:hold
  - tag: stop
    if: "${default(ctx.input.fail, false)}"
    fail: "no flights left"
output: {hotel: "${steps.book-hotel}", car: "${steps.book-car}"}
"""

class NoFlights(DuctworkError):
    """What the Python twin raises where the YAML has `fail:` (the same message)."""


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    return write_specs(tmp_path, hotel=HOTEL, car=CAR, trip=TRIP)


def define_twin(dw: Ductwork) -> None:
    """The same trip in Python: ctx.workflow(..., rollback=, critical=)."""

    @dw.workflows.workflow(product="shop", tag="trip-py",
                           options={"rollback_strategy": "critical_only"})
    async def trip(ctx: Any) -> Any:
        async def undo_hotel(result: Any) -> None:
            await ctx.action.run(app="stripe", event="refund-charge",
                                 input={"charge": result["charge"]})
            ctx.log.warn(f"refunded {result['nights']} nights")
            await ctx.database.insert(database="audit-db", event="create-log",
                                      data={"action": f"hotel {result['charge']} refunded"})

        async def undo_car(result: Any) -> None:
            await ctx.database.insert(database="audit-db", event="create-log",
                                      data={"action": "car undone"})

        hotel = await ctx.workflow("book-hotel", "hotel", {"nights": 2}, rollback=undo_hotel,
                                   critical=True)
        car = await ctx.workflow("book-car", "car", {}, rollback=undo_car)
        await ctx.step("hold", lambda: "held")
        if ctx.input.get("fail"):
            async def stop() -> None:
                raise NoFlights("no flights left")

            await ctx.step("stop", stop)
        return {"hotel": hotel, "car": car}


async def run(specs: Path, url: str, tag: str, data: dict[str, Any]
              ) -> tuple[Any, Doubles, list[Any]]:
    async with Ductwork(specs=specs, store=url) as dw:
        define_twin(dw)
        d = Doubles(dw)
        result = await dw.workflows.execute(product="shop", env="dev", tag=tag, input=data)
        logs = [(lg["level"], lg["message"]) for lg in await dw.workflows.logs(result.workflow_id)]
        return result, d, logs


@pytest.mark.parametrize("tag", ["trip", "trip-py"])
async def test_a_failure_runs_the_critical_childs_rollback_list(specs: Path, store_url: str,
                                                                 tag: str) -> None:
    result, d, logs = await run(specs, store_url, tag, {"fail": True})
    assert result.status == "rolled_back", result.error
    assert result.rollback_result["rolled_back_steps"] == ["book-hotel"]
    # the list ran in order, each body with the child's output as `result`
    assert d.stripe.calls == [("create-charge", {"amount": 2}),
                              ("refund-charge", {"charge": "ch-1"})]
    assert ("warn", "refunded 2 nights") in logs
    assert d.logs() == ["hotel ch-1 refunded"]  # the car is not critical: left as it is


async def test_yaml_and_python_record_the_same_rollbacks(specs: Path, store_url: str) -> None:
    yaml_run = await run(specs, store_url, "trip", {"fail": True})
    py_run = await run(specs, store_url, "trip-py", {"fail": True})
    assert yaml_run[0].rollback_result == py_run[0].rollback_result
    assert yaml_run[0].error == py_run[0].error
    assert yaml_run[2] == py_run[2]  # the same log lines


async def test_completed_children_are_not_rolled_back(specs: Path, store_url: str) -> None:
    result, d, _ = await run(specs, store_url, "trip", {})
    assert result.status == "completed", result.error
    assert result.output == {"hotel": {"charge": "ch-1", "nights": 2}, "car": {"order": 1}}
    assert [c[0] for c in d.stripe.calls] == ["create-charge"]
    assert d.logs() == []


async def test_child_rollback_after_a_crash(specs: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'replay.db'}"
    result, d = await interrupted(specs, url, lambda dw: dw.workflows.execute(
        product="shop", env="dev", tag="trip", input={"fail": True}, workflow_id="t"))
    assert result.status == "rolled_back", result.error
    # the children finished before the crash: not started again; their recorded output
    # is what the rollback reads
    assert d.stripe.calls == [("refund-charge", {"charge": "ch-1"})]
    assert d.orders.tables == {}
    assert d.logs() == ["hotel ch-1 refunded"]
