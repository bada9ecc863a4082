"""Typed expression checks: what is flagged fails at run time, and guarded reads are not flagged.

The broken-spec catalogue (broken/expr/) pins each diagnostic; this file pins the quiet side
(patterns that are right must stay accepted) and checks the claims against the evaluator.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from ductwork.dsl.compiler import compile_workflow
from ductwork.dsl.expr import expressions
from ductwork.dsl.loader import load_file, load_text
from ductwork.dsl.plan import ProductSpec
from ductwork.dsl.product import compile_product
from ductwork.errors import ExpressionError

HERE = Path(__file__).parent / "broken"


@pytest.fixture(scope="module")
def shop() -> ProductSpec:
    product, diagnostics = compile_product(load_file(HERE / "product.yaml"))
    assert product is not None and diagnostics == []
    return product


def problems(text: str, shop: ProductSpec) -> list[str]:
    doc = load_text(textwrap.dedent(text), "w.yaml")
    _, diagnostics = compile_workflow(doc, shop)
    return [d.short() for d in diagnostics]


GUARDED = """
workflow: w
input:
  type: object
  required: [vip, express]
  properties:
    vip: {type: boolean}
    express: {type: boolean}
    coupon: {type: string}
steps:
  - tag: bonus
    if: "${ctx.input.vip}"
    python: m:bonus
  - tag: charge
    allow_fail: true
    action.run: {app: stripe, event: create-charge}
  - tag: ship
    switch:
      cases:
        - if: "${ctx.input.express}"
          steps:
            - tag: fast
              python: m:fast
            - log: {message: "${steps.fast.id}"}
      default:
        - tag: slow
          python: m:slow
  - tag: pay
    action.run: {app: stripe, event: create-charge}
    catch:
      - steps:
          - tag: alert
            python: m:alert
          - tag: give-up
            fail: "cannot pay: ${error.message}"
  - tag: same-condition
    if: "${ctx.input.vip}"
    python: m:f
    args: {bonus: "${steps.bonus.amount}"}
  - log:
      message: >-
        ${default(steps.fast.id, steps.slow.id)} ${exists(steps.bonus) and steps.bonus.x}
        ${steps.charge.id if steps.charge else 'none'} ${coalesce(steps.fast, steps.slow)}
        ${steps.charge} ${steps.pay.id} ${'bonus' in steps and steps.bonus.x}
        ${steps.bonus.x if ctx.input.vip else 0}
  - switch:
      cases:
        - if: "${ctx.input.express}"
          steps:
            - log: {message: "${steps.fast.id}"}
output:
  tracking: "${default(steps.fast.tracking, steps.slow.tracking)}"
"""


def test_guarded_reads_of_steps_that_may_not_have_run_are_accepted(shop: ProductSpec) -> None:
    assert problems(GUARDED, shop) == []


QUIET = """
workflow: w
input:
  type: object
  required: [amount, name, tags]
  properties:
    amount: {type: number}
    count: {type: integer}
    name: {type: string}
    tags: {type: array, items: {type: string}}
    extra: {type: object}
    free: {type: object, properties: {a: {type: string}}, additionalProperties: true}
steps:
  - tag: price
    python: m:price
  - tag: user
    database.insert: {database: users-db, event: create-user, data: {email: a}}
  - set: {seen: "${ctx.input.amount * 2}"}
  - log:
      message: >-
        ${ctx.input.amount == 100} ${ctx.input.amount > default(ctx.input.count, 0)}
        ${ctx.input.amount == null} ${ctx.input.name == null} ${ctx.input.name + '!'}
        ${steps.price.total == '100'} ${steps.price.anything.at.all} ${ctx.input.extra.x}
        ${ctx.input.free.whatever} ${upper(ctx.input.name)} ${len(ctx.input.tags)}
        ${state.seen + 1} ${steps.user.email + '@'} ${{a: 1}} ${ctx.env == 'prd'}
        ${'a' * 3} ${ctx.input.tags + ['x']} ${ctx.input.count / 2}
        ${ctx.input.name in ctx.input.tags} ${steps.user.id == 1.0}
      data: {plain: "{item} and {{ name }} and $5 and {not: a path}"}
"""


def test_correct_typed_expressions_are_accepted(shop: ProductSpec) -> None:
    assert problems(QUIET, shop) == []


def test_python_steps_may_set_any_state(shop: ProductSpec) -> None:
    assert problems("""
        workflow: w
        steps:
          - tag: prepare
            python: m:prepare
          - set: {mode: fast}
          - log: {message: "${state.anything} ${state.mode == 'slow'}"}
    """, shop) == []


def test_an_unknown_state_key_inside_default_is_no_run_time_failure(shop: ProductSpec) -> None:
    assert problems("""
        workflow: w
        steps:
          - log: {message: "${default(state.retries, 0)}"}
    """, shop) == []


def test_state_types_join_every_set(shop: ProductSpec) -> None:
    assert problems("""
        workflow: w
        steps:
          - set: {mode: fast}
          - set: {mode: slow}
          - log: {message: "${state.mode == 'medium'}"}
    """, shop) == ["6:37: state.mode is never 'medium', so the comparison is always false"]


# Each flagged expression, evaluated with values of the types validate knew: it fails, or it
# always gives the same answer.
RUN_TIME = [
    ("ctx.input.amount == '100'", {"ctx": {"input": {"amount": 100}}}, False),
    ("ctx.input.active == 'true'", {"ctx": {"input": {"active": True}}}, False),
    ("ctx.env == 'production'", {"ctx": {"env": "prd"}}, False),
    ("ctx.input.name + 1", {"ctx": {"input": {"name": "Ann"}}}, ExpressionError),
    ("upper(ctx.input.amount)", {"ctx": {"input": {"amount": 5}}}, ExpressionError),
    ("ctx.input.age >= '18'", {"ctx": {"input": {"age": 20}}}, ExpressionError),
    ("steps.find.email", {"steps": {"find": [{"email": "a"}]}}, ExpressionError),
    ("steps.skipped.id", {"steps": {}}, ExpressionError),
    ("steps.failed.id", {"steps": {"failed": None}}, ExpressionError),
    ("default(steps.skipped.id, 0)", {"steps": {}}, 0),
    ("steps.a.id-1", {"steps": {"a": {"id": 5}}}, ExpressionError),
    ("-ctx.input.refund", {"ctx": {"input": {"refund": "5"}}}, ExpressionError),
    ("'line ' + index", {"index": 1}, ExpressionError),
    ("state.shiped", {"state": {"shipped": True}}, ExpressionError),
]


@pytest.mark.parametrize(("text", "scope", "want"), RUN_TIME, ids=[r[0] for r in RUN_TIME])
def test_what_is_flagged_fails_or_is_constant_at_run_time(text: str, scope: dict[str, Any],
                                                          want: Any) -> None:
    expr = expressions.parse(text)
    if want is ExpressionError:
        with pytest.raises(ExpressionError):
            expr.evaluate(scope)
    else:
        assert expr.evaluate(scope) == want


def test_text_around_an_expression_makes_a_condition_always_true() -> None:
    for text in ("${flag} ", "${flag}\n", "not ${flag}"):
        value = expressions.compile_value(text).evaluate({"flag": False})
        assert isinstance(value, str) and value  # non-empty text: truthy
