"""`ductwork graph`: conditions as two ways (taken / skipped), terminals, dashed catch and
rollback edges."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ductwork.dsl.graph import mermaid
from ductwork.dsl.specs import load_specs
from tests.dsl.features import write_specs
from tests.dsl.test_return import EARLY, UNDO
from tests.dsl.test_rollbacks import CAR, HOTEL, TRIP


def chart(tmp_path: Path, tag: str) -> str:
    specs = write_specs(tmp_path, early=EARLY, undo=UNDO, trip=TRIP, hotel=HOTEL, car=CAR)
    plan = load_specs(specs).workflow("shop", tag)
    assert plan is not None
    return mermaid(plan)


def test_a_condition_a_return_and_a_catch(tmp_path: Path) -> None:
    assert chart(tmp_path, "early") == textwrap.dedent("""\
        flowchart TD
            n1(["start shop/early"])
            n2["order: database.insert orders-db/create-order"]
            n1 --> n2
            n3(["return {status: skipped, order: steps.order.id}"])
            n2 -->|"if default(ctx.input.skip, false)"| n3
            n4["hold: python tests.dsl.features:hold"]
            n2 -->|"skipped"| n4
            n5["charge: action.run stripe/create-charge"]
            n4 --> n5
            n6["note: database.insert audit-db/create-log"]
            n5 -.->|"catch if error.status == 402"| n6
            n7(["return {status: declined, why: error.message}"])
            n6 --> n7
            n8(["after charge"])
            n5 -->|"ok"| n8
            n9>"run fails"]
            n5 -.->|"no handler matched"| n9
            n10["log: database.insert audit-db/create-log"]
            n8 --> n10
            n11(["output"])
            n10 --> n11
    """)


def test_rollback_lists_and_trigger_rollback(tmp_path: Path) -> None:
    assert chart(tmp_path, "undo") == textwrap.dedent("""\
        flowchart TD
            n1(["start shop/undo"])
            n2["order: database.insert orders-db/create-order"]
            n1 --> n2
            n3>"rollback order: database.delete orders-db/delete-order"]
            n2 -.->|"rollback"| n3
            n4>"rollback order: database.insert audit-db/create-log"]
            n3 -.->|"then"| n4
            n5["charge: action.run stripe/create-charge"]
            n2 --> n5
            n6>"rollback charge: action.run stripe/refund-charge"]
            n5 -.->|"rollback"| n6
            n7["hold: python tests.dsl.features:hold"]
            n5 --> n7
            n8(["undo: trigger_rollback: not approved by ${ctx.workflow_id}"])
            n7 -->|"if not default(ctx.input.approve, false)"| n8
            n9>"roll back completed steps (reverse_all), end rolled_back"]
            n8 -.->|"rollback"| n9
            n10["confirm: database.insert audit-db/create-log"]
            n7 -->|"skipped"| n10
            n11(["output"])
            n10 --> n11
    """)


def test_child_rollbacks_and_a_fail_terminal(tmp_path: Path) -> None:
    text = chart(tmp_path, "trip")
    assert '    n2(["book-hotel: workflow hotel (critical)"])' in text
    assert '    n3 -.->|"then"| n4' in text  # refund, then log, then the audit line
    assert '    n9(["stop: fail: no flights left"])' in text
    # a fail ends its way: only the skipped way reaches the output
    assert text.endswith('    n8 -->|"skipped"| n10\n')


def test_when_every_way_ends_there_is_no_end_node(tmp_path: Path) -> None:
    specs = write_specs(tmp_path, both="""
        workflow: both
        input: {type: object, properties: {ok: {type: boolean}}}
        steps:
          - tag: decide
            switch:
              cases:
                - if: "${ctx.input.ok}"
                  steps:
                    - return: done
              default:
                - tag: refuse
                  fail: "not ok"
        output: never
    """)
    plan = load_specs(specs).workflow("shop", "both")
    assert plan is not None
    text = mermaid(plan)
    assert "end switch" not in text and "output" not in text
    assert '    n2 -->|"ctx.input.ok"| n3' in text and '    n2 -->|"default"| n4' in text
