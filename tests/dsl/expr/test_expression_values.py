"""YAML values with embedded expressions: compile_value, templates, sites and their columns."""

from __future__ import annotations

import datetime as dt

import pytest

from ductwork.dsl.expr import parser as expr_parser
from ductwork.dsl.expr.expressions import (
    Expr,
    Value,
    ValueExpressionError,
    compile_value,
    parse,
)
from ductwork.errors import ExpressionError
from tests.support.expressions import scope


def test_whole_expression_keeps_its_type() -> None:
    assert compile_value("${ctx.input.count}").evaluate(scope()) == 3
    assert compile_value("${ ctx.input.items }").evaluate(scope()) == [1, 2, 3]
    assert compile_value("${ctx.input.nothing}").evaluate(scope()) is None
    assert compile_value("${ {a: ctx.input.count} }").evaluate(scope()) == {"a": 3}


def test_is_expression_marks_a_string_that_is_one_expression() -> None:
    assert compile_value("${ctx.input.count}").is_expression
    assert compile_value("${ {a: 1} }").is_expression
    for raw in ("x ${a}", "${a}${b}", "${a} ", "$${a}", "plain", 3, ["${a}"], {"k": "${a}"}):
        assert not compile_value(raw).is_expression, raw


def test_text_around_makes_a_string() -> None:
    v = compile_value("Hello ${ctx.input.name}, you have ${ctx.input.count} items")
    assert v.evaluate(scope()) == "Hello Ada, you have 3 items"
    assert compile_value(" ${ctx.input.count}").evaluate(scope()) == " 3"
    assert compile_value("${ctx.input.count}${ctx.input.count}").evaluate(scope()) == "33"
    assert compile_value("x=${ctx.input.nothing}").evaluate(scope()) == "x=null"
    assert compile_value("x=${true}").evaluate(scope()) == "x=true"
    assert compile_value("x=${ctx.input.user.tags}").evaluate(scope()) == 'x=["a","b"]'
    assert compile_value("${1.5} $").evaluate(scope()) == "1.5 $"


def test_dollar_escape() -> None:
    v = compile_value("costs $${price} and ${ctx.input.count}")
    assert v.evaluate(scope()) == "costs ${price} and 3"
    c = compile_value("$${literal}")
    assert c.is_constant and c.evaluate({}) == "${literal}"
    assert compile_value("$5 and $ {x}").evaluate({}) == "$5 and $ {x}"


def test_braces_and_strings_inside_expressions() -> None:
    assert compile_value("a ${ {'k': '}'}['k'] } b").evaluate({}) == "a } b"
    assert compile_value("${ 'a\\'}' }").evaluate({}) == "a'}"


def test_nested_values_and_sites() -> None:
    raw = {
        "data": {"email": "${ctx.input.email}", "n": ["${ctx.input.count + 1}", 7]},
        "plain": "text",
        3: None,
    }
    v = compile_value(raw)
    assert not v.is_constant
    assert v.evaluate(scope()) == {
        "data": {"email": "ada@example.com", "n": [4, 7]}, "plain": "text", 3: None
    }
    assert [(e.source, off) for e, off in v.expressions()] == [
        ("ctx.input.email", 2), ("ctx.input.count + 1", 2)
    ]
    assert [s.path for s in v.sites()] == [("data", "email"), ("data", "n", 0)]


def test_constant_values_are_fresh_each_time() -> None:
    v = compile_value({"a": [1, 2], "b": "x"})
    assert v.is_constant and v.expressions() == []
    first = v.evaluate({})
    first["a"].append(3)
    assert v.evaluate({}) == {"a": [1, 2], "b": "x"}
    for scalar in (None, 1, 2.5, True, "plain", dt.date(2024, 1, 1)):
        assert compile_value(scalar).evaluate({}) == scalar


def test_expression_offsets_give_columns_in_the_string() -> None:
    v = compile_value("Hi ${ upper(ctx.input.name) }!")
    [(expr, offset)] = v.expressions()
    assert offset == 5
    [(name, col)] = expr.functions()
    assert name == "upper"
    assert "Hi ${ upper(ctx.input.name) }!"[offset + col - 1 :].startswith("upper")


@pytest.mark.parametrize(
    ("raw", "message", "column"),
    [
        ("${ctx.input.}", "unexpected character '.' at column 12; a field name (starting with a "
         "letter or '_') must follow '.'", 12),
        ("Hi ${1 +} there", "unexpected end of expression at column 9; expected a value", 9),
        ("x ${y", "'${' is never closed: add a '}' (the '${' is at column 3)", 3),
        ("${'abc}", "string in '${...}' is never closed (starts at column 3)", 3),
        ("ok ${a} then ${}", "empty expression: write something between '${' and '}' "
         "(at column 16)", 16),
    ],
)
def test_compile_value_errors_are_located_in_the_string(
    raw: str, message: str, column: int
) -> None:
    with pytest.raises(ValueExpressionError) as info:
        compile_value({"a": [raw]})
    assert str(info.value) == message
    assert info.value.column == column
    assert info.value.expression == raw
    assert info.value.path == ("a", 0)
    assert isinstance(info.value, ExpressionError)


def test_runtime_error_inside_a_template() -> None:
    v = compile_value("id=${steps.create-user.idd}")
    with pytest.raises(ExpressionError) as info:
        v.evaluate(scope())
    assert str(info.value).startswith("steps.create-user has no field 'idd'")


def test_template_rejects_values_without_text_form() -> None:
    with pytest.raises(ExpressionError, match="cannot be turned into text"):
        compile_value("x=${item}").evaluate({"item": object()})


def test_value_and_expr_types() -> None:
    assert isinstance(compile_value("x"), Value)
    assert isinstance(parse("x"), Expr)
    assert repr(parse("a.b")) == "Expr('a.b')"
    assert parse("a.b") is parse("a.b")  # parsed once, shared (Exprs are immutable)


@pytest.mark.parametrize(
    "text",
    ["ctx", "ctx.input.email", " steps.create-user.id ", "a.b-c-d.e_f", "x.in.if", "\tenv.K\n"],
)
def test_plain_paths_take_a_shortcut_with_the_same_tree(text: str) -> None:
    shortcut = expr_parser._plain_path(text)
    assert shortcut is not None
    assert shortcut == expr_parser.parser().parse(text)


@pytest.mark.parametrize("text", ["true", "not", "a.__b", "a.b-", "a.b -c", "a[0]", "a.0"])
def test_plain_path_shortcut_declines_everything_else(text: str) -> None:
    assert expr_parser._plain_path(text) is None
