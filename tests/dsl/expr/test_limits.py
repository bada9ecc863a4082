"""Evaluation limits: every hostile expression ends in an ExpressionError, before allocating."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ductwork.dsl.expr import limits
from ductwork.dsl.expr.expressions import compile_value, parse
from ductwork.dsl.expr.limits import MAX_CELLS, MAX_TEXT, measure
from ductwork.errors import ExpressionError

HUGE = Decimal("1e999999")  # one short object, a million digits as an integer


def fails(text: str, scope: dict[str, Any] | None = None) -> str:
    with pytest.raises(ExpressionError) as info:
        parse(text).evaluate(scope if scope is not None else {"ctx": {"input": {}}})
    return str(info.value)


@pytest.mark.parametrize(("text", "message"), [
    ("[[0] * 100000] * 100000", "would hold more than 1,000,000 values"),
    ("[range(10000)] * 100000", "would hold more than 1,000,000 values"),
    ("[range(10000)] * 101", "would hold more than 1,000,000 values"),
    ("'' * 99999999999999999999", "longer than 1,000,000 characters"),
    ("'ab' * 500001", "longer than 1,000,000 characters"),
    ("[1] * 99999999999999999999", "more than 100,000 items"),
    ("json([range(10000)] * 99)", "longer than 1,000,000 characters"),
    ("json([[range(10000)] * 50, [range(10000)] * 50])", "would hold more than 1,000,000 values"),
])
def test_repetition_is_sized_before_it_is_made(text: str, message: str) -> None:
    assert message in fails(text)


def test_a_list_literal_of_shared_lists_is_sized_with_every_repeat() -> None:
    # 40 references to one 100,000-item list: small in memory, 4,000,000 values to a reader.
    big = list(range(100_000))
    text = "[" + ", ".join(["ctx.input.big"] * 40) + "]"
    assert "would hold more than 1,000,000 values" in fails(text, {"ctx": {"input": {"big": big}}})
    # Nine of them are fine.
    nine = "[" + ", ".join(["ctx.input.big"] * 9) + "]"
    assert len(parse(nine).evaluate({"ctx": {"input": {"big": big}}})) == 9


def test_concatenation_is_sized_before_copying() -> None:
    scope = {"ctx": {"input": {"s": "x" * 600_000, "l": list(range(60_000))}}}
    assert "longer than 1,000,000 characters" in fails("ctx.input.s + ctx.input.s", scope)
    assert "more than 100,000 items" in fails("ctx.input.l + ctx.input.l", scope)


@pytest.mark.parametrize("text", [
    "json(ctx.input)", "str(ctx.input)", "int(ctx.input.x)", "floor(ctx.input.x)",
    "ceil(ctx.input.x)", "round(ctx.input.x)", "format_date(ctx.input.x)",
    "add(ctx.input.x, 1)", "add('2024-01-01', ctx.input.x)", "timestamp(ctx.input.x)",
])
def test_a_decimal_with_a_huge_exponent_is_never_made_an_integer(text: str) -> None:
    message = fails(text, {"ctx": {"input": {"x": HUGE}}})
    assert "more than 4000 digits" in message


def test_a_huge_decimal_still_works_where_no_integer_is_made() -> None:
    scope = {"ctx": {"input": {"x": HUGE}}}
    assert parse("ctx.input.x > 5").evaluate(scope) is True
    assert parse("'n=' + str(ctx.input.x * 0)").evaluate(scope).startswith("n=")


def test_integer_growth_is_refused_before_multiplying() -> None:
    scope = {"ctx": {"input": {"n": 10**3000}}}
    assert "more than 4,000 digits" in fails("ctx.input.n * ctx.input.n", scope)
    assert parse("ctx.input.n * 1000").evaluate(scope) == 10**3003
    n = 10**3999
    assert parse("ctx.input.n + ctx.input.n").evaluate({"ctx": {"input": {"n": n}}}) == 2 * n


def test_a_200000_term_expression_is_refused_by_its_length_before_parsing() -> None:
    with pytest.raises(ExpressionError) as info:
        parse(" + ".join(["1"] * 200_000))
    assert "expression is too long (799,997 characters, at most 10,000)" in str(info.value)


def test_too_many_terms_are_refused() -> None:
    text = "[" + ",".join(["1"] * 1500) + "]"
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert "too many terms (1,501, at most 1,000)" in str(info.value)


def test_the_work_budget_ends_a_long_evaluation(monkeypatch: pytest.MonkeyPatch) -> None:
    # size(sort(l)) on a 10,000-item list charges 20,000 steps (each call, its argument's
    # size); with a small budget the fourth one is refused.
    monkeypatch.setattr(limits, "MAX_WORK", 70_000)
    scope = {"ctx": {"input": {"l": list(range(10_000))}}}
    text = "size(sort(ctx.input.l)) + size(sort(ctx.input.l)) + size(sort(ctx.input.l))"
    assert parse(text).evaluate(scope) == 30_000
    message = fails(text + " + size(sort(ctx.input.l))", scope)
    assert "expression does too much work (more than 70,000 steps" in message
    assert parse(text).evaluate(scope) == 30_000  # each evaluation starts a fresh budget


def test_measure_counts_shared_values_each_time_without_visiting_them_again() -> None:
    inner = list(range(1000))
    assert measure([inner] * 900, 0) == (1 + 900 * 1001, 0)
    assert measure({"a": "xyz", "b": ["pq"]}, 0) == (4, 7)  # keys are text too
    deep: list[Any] = []
    for _ in range(limits.MAX_NESTING + 2):
        deep = [deep]
    with pytest.raises(limits.Fail, match="nested too deeply"):
        measure(deep, 0)


# -- fuzz: building blocks of hostile expressions, combined ----------------------------------

ATOMS = st.sampled_from([
    "0", "1", "100000", "99999999999999999999", "10000000000", "'ab'", "''", "[0]", "[]",
    "range(10000)", "ctx.input.x", "ctx.input.big", "ctx.input.text", "[ctx.input.big]",
    "json(ctx.input)", "ctx.input.n",
])
OPS = st.sampled_from(["*", "+", "-", "//", "%", "==", "in"])


@st.composite
def hostile(draw: st.DrawFn) -> str:
    text = draw(ATOMS)
    for _ in range(draw(st.integers(0, 5))):
        op, other = draw(OPS), draw(ATOMS)
        wrap = draw(st.sampled_from(["{}", "[{}]", "({})", "json({})", "str({})", "[{}, {}]"]))
        text = wrap.format(f"{text} {op} {other}", text)
    return text


SCOPE = {"ctx": {"input": {"x": HUGE, "big": list(range(20_000)), "text": "y" * 300_000,
                           "n": 10**2500}}}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile())
def test_hostile_expressions_end_in_a_result_within_the_limits_or_an_expression_error(
        text: str) -> None:
    try:
        value = parse(text).evaluate(SCOPE)
    except ExpressionError:
        return
    cells, chars = measure(value, 0)
    assert cells <= MAX_CELLS * 2 and chars <= MAX_TEXT * 11  # a literal of two built parts


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(hostile(), min_size=1, max_size=3), st.text(max_size=5))
def test_hostile_templates_end_in_text_or_an_expression_error(parts: list[str], glue: str) -> None:
    template = glue.join("${" + p + "}" for p in parts)
    try:
        value = compile_value(template).evaluate(SCOPE)
    except ExpressionError:
        return
    assert isinstance(value, str | int | list | dict | Decimal)
