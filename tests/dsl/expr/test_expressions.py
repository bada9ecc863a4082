"""Expressions phase: `${ ... }` parsing, evaluation, errors with columns, the sandbox."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ductwork.dsl.expr import parser as expr_parser
from ductwork.dsl.expr.expressions import (
    ROOTS,
    Reference,
    parse,
)
from ductwork.errors import ExpressionError
from tests.support.expressions import err, ev

# -- grammar is built once -------------------------------------------------------------------


def test_grammar_is_loaded_once_and_reused() -> None:
    assert expr_parser.parser() is expr_parser.parser()
    parse("1 + 1")
    parse("2 + 2")
    assert expr_parser.parser.cache_info().misses <= 1


def test_lark_types_never_leave_the_parse_phase() -> None:
    e = parse("steps.create-user.id + len([1, 2]) if ctx.input.count > 1 else null")
    stack = [e.node]
    while stack:
        node = stack.pop()
        assert type(node).__module__ == "ductwork.dsl.expr.nodes"
        for name in node.__slots__:
            value = getattr(node, name)
            assert "lark" not in type(value).__module__
        stack.extend(node.children())


# -- paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ctx.input.email", "ada@example.com"),
        ("ctx.input.user.email", "u@example.com"),
        ("ctx.input.user.tags[1]", "b"),
        ("ctx.input.items[0]", 1),
        ("ctx.input.items[-1]", 3),
        ("ctx.input['name']", "Ada"),
        ('ctx["input"]["name"]', "Ada"),
        ("ctx.workflow_id", "wf-1"),
        ("ctx.workflow_tag", "user-onboarding"),
        ("ctx.env", "dev"),
        ("ctx.product", "shop"),
        ("state.counter", 5),
        ("env.STRIPE_KEY", "sk_test_secret"),
        ("steps.list[1].id", 2),
        ("steps.list[ctx.input.items[0]].id", 2),
        ("ctx.input.nothing", None),
        ("ctx.input.user", {"email": "u@example.com", "tags": ["a", "b"]}),
        ("'abc'[1]", "b"),
    ],
)
def test_paths_read_maps_lists_and_strings(text: str, expected: Any) -> None:
    assert ev(text) == expected


def test_foreach_and_rollback_roots() -> None:
    sc = {"item": {"sku": "X1"}, "index": 2, "result": {"id": "ch_1"}}
    assert ev("item.sku", sc) == "X1"
    assert ev("index + 1", sc) == 3
    assert ev("result.id", sc) == "ch_1"


def test_roots_constant() -> None:
    assert {"ctx", "steps", "state", "result", "item", "index", "env"} <= ROOTS
    assert "input" not in ROOTS


def test_mapping_objects_that_are_not_dicts_are_readable() -> None:
    from types import MappingProxyType

    sc = {"ctx": MappingProxyType({"input": MappingProxyType({"x": 1})})}
    assert ev("ctx.input.x", sc) == 1
    assert "Input field not found: y" in str(err("ctx.input.y", sc))


# -- hyphenated step tags: the good and the confusing cases ----------------------------------


def test_hyphenated_tag_after_dot_is_one_segment() -> None:
    assert ev("steps.create-user.id") == 42
    assert ev('steps["create-user"].id') == 42
    assert ev("steps['create-user']['id']") == 42


def test_hyphen_with_spaces_is_subtraction() -> None:
    assert ev("steps.a - 3") == 7
    assert ev("steps.a-b") == 99  # the tag 'a-b'
    assert ev("steps.a -3") == 7
    assert ev("steps.a- 3") == 7  # a segment cannot end with '-'


def test_hyphen_right_after_a_path_segment_is_part_of_the_name() -> None:
    e = err("ctx.input.count-1")
    assert str(e) == (
        "Input field not found: count-1; to subtract, put spaces around '-': "
        "'ctx.input.count - 1' (fields: email, name, count, amount, items, user, nothing, "
        "first-name)"
    )
    assert e.column == 11
    assert ev("ctx.input.count - 1") == 2
    assert ev("ctx.input.first-name") == "Ada"


def test_hyphen_between_two_paths_needs_spaces() -> None:
    sc = {"item": {"a": 5, "b": 2}}
    assert ev("item.a - item.b", sc) == 3
    e = err("item.a-item.b", sc)  # reads field 'a-item', then '.b'
    assert str(e) == (
        "item has no field 'a-item'; to subtract, put spaces around '-': 'item.a - item' "
        "(fields: a, b)"
    )
    assert parse("item.a-item.b").references()[0].path == ("a-item", "b")


def test_hyphen_after_a_root_name_is_subtraction() -> None:
    sc = {"index": 5, "item": 2}
    assert ev("index-1", sc) == 4
    assert ev("index-item", sc) == 3
    assert ev("index - -1", sc) == 6


def test_hyphenated_references() -> None:
    refs = parse("steps.create-user.id").references()
    assert refs == [Reference("steps", ("create-user", "id"), 1, (7, 19))]
    refs = parse('steps["create-user"].id').references()
    assert refs == [Reference("steps", ("create-user", "id"), 1, (7, 22))]
    refs = parse("steps.a - b").references()
    assert [(r.root, r.path) for r in refs] == [("steps", ("a",)), ("b", ())]


def test_unknown_step_tag_names_known_tags() -> None:
    e = err("steps.create-usr.id")
    assert str(e) == (
        "steps has no field 'create-usr'; did you mean 'create-user'? "
        "(fields: create-user, a, a-b, list)"
    )
    assert e.column == 7


def test_missing_field_names_the_path_and_the_fields() -> None:
    e = err("steps.create-user.idd")
    assert str(e) == "steps.create-user has no field 'idd'; did you mean 'id'? (fields: id, email)"
    assert e.column == 19
    assert e.expression == "steps.create-user.idd"


def test_env_field_names_are_not_listed() -> None:
    e = err("env.STRIPE_KEYY")
    assert str(e) == "env has no field 'STRIPE_KEYY'; did you mean 'STRIPE_KEY'?"
    assert "sk_test" not in str(e)


def test_index_errors() -> None:
    assert str(err("ctx.input.items[5]")) == "ctx.input.items has no index 5 (size 3)"
    assert str(err("ctx.input.items.length")) == (
        "ctx.input.items is a list, it has no field 'length'; use size(x) for its size"
    )
    assert str(err("ctx.input.items['x']")) == "ctx.input.items is a list, it has no field 'x'"
    assert str(err("ctx.input.items[1.5]")) == "a list index must be a whole number, not a number"
    assert str(err("ctx.input.nothing.x")) == "ctx.input.nothing is null, so it has no field 'x'"
    assert str(err("ctx.input.count.x")) == "ctx.input.count is a number, it has no field 'x'"
    assert str(err("ctx.input[true]")) == "cannot look up a boolean key in ctx.input"
    assert str(err("(1 + 2).x")) == "the number is a number, it has no field 'x'"


def test_unknown_and_unavailable_roots() -> None:
    assert str(err("input.email")) == "unknown name 'input'; did you mean 'ctx.input'?"
    assert str(err("result.id")) == (
        "'result' is not available here: it is the step's original result and exists only "
        "inside a rollback"
    )
    assert str(err("item")) == "'item' is not available here: it exists only inside a foreach"
    e = err("stps.x")
    assert str(e).startswith("unknown name 'stps'; did you mean 'steps'?")
    assert e.column == 1
    assert str(err("transform.x")) == "transform.* are functions: call one, e.g. transform.upper(x)"


# -- literals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("null", None),
        ("true", True),
        ("false", False),
        ("0", 0),
        ("42", 42),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("2.5E-1", 0.25),
        ('"double"', "double"),
        ("'single'", "single"),
        (r'"a\"b"', 'a"b'),
        (r"'it\'s'", "it's"),
        (r"'tab\there'", "tab\there"),
        (r"'line\nbreak'", "line\nbreak"),
        (r"'back\\slash'", "back\\slash"),
        (r"'\u00e9t\u00E9'", "été"),
        (r"'\$'", "$"),
        ('"it\'s"', "it's"),
        ("''", ""),
        ("[]", []),
        ("[1, 'two', [3], null,]", [1, "two", [3], None]),
        ("{}", {}),
        ("{a: 1, 'b c': [2], \"d\": {e: null}}", {"a": 1, "b c": [2], "d": {"e": None}}),
        ("{if: 1, true: 2}", {"if": 1, "true": 2}),  # a bare key is just a name
    ],
)
def test_literals(text: str, expected: Any) -> None:
    assert ev(text) == expected


def test_bad_escape_points_at_the_backslash() -> None:
    with pytest.raises(ExpressionError) as info:
        parse(r"'ab\qc'")
    assert info.value.column == 4
    assert "unknown escape '\\q'" in str(info.value)
    with pytest.raises(ExpressionError, match="bad \\\\u escape"):
        parse(r"'\u12'")


def test_duplicate_map_key() -> None:
    with pytest.raises(ExpressionError) as info:
        parse("{a: 1, 'a': 2}")
    assert str(info.value) == "duplicate key 'a' in map (at column 8)"


def test_huge_integer_literal_is_refused() -> None:
    with pytest.raises(ExpressionError, match="number too long"):
        parse("9" * 5000)


# -- operators --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 // 2", -4),
        ("7 % 3", 1),
        ("-ctx.input.count", -3),
        ("+ctx.input.count", 3),
        ("- -2", 2),
        ("2 - 3 - 4", -5),
        ("ctx.input.amount * 2", 25.0),
        ("'a' + 'b'", "ab"),
        ("[1] + [2]", [1, 2]),
        ("'ab' * 2", "abab"),
        ("3 * [0]", [0, 0, 0]),
        ("'x' * -1", ""),
        ("1 == 1.0", True),
        ("1 != 2", True),
        ("'a' < 'b'", True),
        ("2 <= 2", True),
        ("3 > 2.5", True),
        ("[1, 2] < [1, 3]", True),
        ("ctx.input.count >= 3", True),
        ("true == 1", False),
        ("false == 0", False),
        ("null == null", True),
        ("null == false", False),
        ("'1' == 1", False),
        ("2 in ctx.input.items", True),
        ("5 not in ctx.input.items", True),
        ("'mple' in ctx.input.email", True),
        ("'name' in ctx.input", True),
        ("'zzz' in ctx.input", False),
        ("true in [1]", False),
        ("not true", False),
        ("not null", True),
        ("not []", True),
        ("true and 'x'", "x"),
        ("0 and 'x'", 0),
        ("null or 'fallback'", "fallback"),
        ("'set' or 'fallback'", "set"),
        ("not 1 == 2", True),
        ("1 < 2 and 2 < 3", True),
        ("'big' if ctx.input.count > 2 else 'small'", "big"),
        ("'big' if ctx.input.count > 5 else 'small'", "small"),
        ("1 if false else 2 if false else 3", 3),
        ("Decimal_ok", None),
    ],
)
def test_operators(text: str, expected: Any) -> None:
    if text == "Decimal_ok":
        sc = {"item": {"price": Decimal("1.10")}}
        assert ev("item.price * 2", sc) == Decimal("2.20")
        assert ev("item.price + 0.5", sc) == pytest.approx(1.6)
        assert ev("item.price > 1", sc) is True
        return
    assert ev(text) == expected


def test_precedence_of_not_and_or() -> None:
    assert ev("not false and false") is False
    assert ev("true or false and false") is True
    assert ev("1 + 2 == 3 and 'a' in 'abc'") is True


def test_short_circuit_does_not_evaluate_the_other_side() -> None:
    assert ev("false and result.id") is False
    assert ev("true or result.id") is True
    assert ev("1 if true else result.id") == 1


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("1 / 0", "division by zero", 3),
        ("ctx.input.count // 0", "division by zero", 17),
        ("5 % 0", "division by zero", 3),
        (
            "'n=' + ctx.input.count",
            "cannot add string and number; convert with str(x), or write text around ${...} "
            "instead",
            6,
        ),
        ("[1] + 'a'", "cannot add list and string; convert with str(x), or write text around "
         "${...} instead", 5),
        ("'a' - 'b'", "cannot subtract string and string with '-'", 5),
        ("{} * 2", "cannot multiply map and number with '*'", 4),
        ("'a' % 2", "cannot take string % number: both must be numbers", 5),
        ("-'a'", "unary '-' needs a number, not a string", 1),
        ("1 < 'a'", "cannot compare number and string with '<'", 3),
        ("null > 1", "cannot compare null and number with '>'", 6),
        ("1 in 'abc'", "'in' a string needs a string on the left, not a number", 3),
        ("1 in 5", "'in' needs a list, map or string on the right, not a number", 3),
        ("'x' * 2000000", "repetition would make text longer than 1,000,000 characters", 5),
        ("[1] * 200000", "repetition would make a list of more than 100,000 items", 5),
    ],
)
def test_operator_errors(text: str, message: str, column: int) -> None:
    e = err(text)
    assert str(e) == message
    assert e.column == column


# -- parse errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("", "empty expression: write something between '${' and '}' (at column 1)", 1),
        ("   ", "empty expression: write something between '${' and '}' (at column 1)", 1),
        ("upper(x))", "unexpected ')' at column 9; expected end of expression", 9),
        ("f(a b)", "unexpected name 'b' at column 5; expected an operator, ',' or ')'", 5),
        ("1 +", "unexpected end of expression at column 4; expected a value", 4),
        ("(1", "unexpected end of expression at column 3; expected ')'", 3),
        ("[1, 2", "unexpected end of expression at column 6; expected ',' or ']'", 6),
        ("a b", "unexpected name 'b' at column 3; expected an operator or end of expression", 3),
        ("x if y", "unexpected end of expression at column 7; expected 'else' or an operator", 7),
        ("a < b < c", "unexpected '<' at column 7; comparisons do not chain: write "
         "'a < b and b < c'", 7),
        ("{a 1}", "unexpected number 1 at column 4; expected ':'", 4),
        ("f(,)", "unexpected ',' at column 3; expected a value", 3),
        ("x.0", "unexpected character '.' at column 2; index lists with [0], not .0", 2),
        ("x.", "unexpected character '.' at column 2; a field name (starting with a letter or "
         "'_') must follow '.'", 2),
        ("a && b", "unexpected character '&' at column 3; write 'and'", 3),
        ("a || b", "unexpected character '|' at column 3; write 'or'", 3),
        ("!a", "unexpected character '!' at column 1; write 'not x' or 'a != b'", 1),
        ("a = 1", "unexpected character '=' at column 3; write '==' to compare", 3),
        ("a ? b : c", "unexpected character '?' at column 3; write 'a if condition else b'", 3),
        ("'abc", "unexpected character \"'\" at column 1; this string is never closed", 1),
        ("${x}", "unexpected character '$' at column 1; '${' cannot be nested: inside an "
         "expression write the path directly", 1),
        ("ctx.input.upper()", "only functions can be called, e.g. upper(x) or "
         "transform.upper(x); write upper(...) (at column 16)", 16),
        ("(1)(2)", "only functions can be called, e.g. upper(x) or transform.upper(x) "
         "(at column 4)", 4),
        ("transform.a.b(1)", "only functions can be called, e.g. upper(x) or "
         "transform.upper(x); write b(...) (at column 14)", 14),
        ("steps.a-", "unexpected end of expression at column 9; expected a value", 9),
        ("1 +\n  )", "unexpected ')' at column 7; expected a value", 7),
    ],
)
def test_parse_errors_have_readable_messages_and_columns(
    text: str, message: str, column: int
) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert type(info.value) is ExpressionError
    assert str(info.value) == message
    assert info.value.column == column
    assert info.value.expression == text


def test_parse_rejects_non_text() -> None:
    with pytest.raises(ExpressionError, match="must be text"):
        not_text: Any = 12
        parse(not_text)


def test_deep_nesting_is_a_clean_error() -> None:
    assert ev("(" * 500 + "1" + ")" * 500) == 1  # grouping adds no node
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse("[" * 500 + "1" + "]" * 500)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse("not " * 300 + "true")
    with pytest.raises(ExpressionError, match="nested too deeply"):
        parse(" + ".join(["1"] * 300))
    assert ev(" + ".join(["1"] * 90)) == 90


def test_keywords_are_fine_as_field_names_after_a_dot() -> None:
    sc = {"item": {"in": 1, "if": 2, "not": 3, "true": 4, "null": 5}}
    assert ev("item.in + item.if + item.not + item.true + item.null", sc) == 15


def test_expressions_may_span_lines_and_use_tabs() -> None:
    assert ev("1 +\n\t2") == 3


# -- sandbox ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "ctx.__class__",
        '"".__class__',
        "ctx.input.__dict__",
        "__import__",
        "__import__('os')",
        "ctx.__class__.__mro__[1].__subclasses__()",
        "[].__class__",
        "__builtins__",
        "ctx.input.email.__len__",
    ],
)
def test_dunder_names_are_parse_errors(text: str) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    assert "names starting with '__' are not allowed" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [
        "ctx['__class__']",
        "ctx.input['__dict__']",
        "''['__class__']",
        "steps.create-user['__getitem__']",
        "ctx.input.email.upper",
        "ctx.input.items.append",
        "ctx.input.user.keys",
        "ctx.input.user.get",
        "ctx.input.items['pop']",
        "open('/etc/passwd')",
        "eval('1')",
        "exec('x')",
        "getattr(ctx, 'input')",
        "os.system",
        "import('os')",
    ],
)
def test_no_python_attribute_or_builtin_is_reachable(text: str) -> None:
    e = err(text)
    assert "<" not in str(e)  # never a Python object repr


def test_string_keys_reach_only_data() -> None:
    class Sneaky(dict[str, Any]):
        secret_attribute = "leaked"

    sc = {"item": Sneaky(x=1)}
    assert ev("item.x", sc) == 1
    assert "has no field 'secret_attribute'" in str(err("item.secret_attribute", sc))


def test_values_of_other_types_are_opaque() -> None:
    class Obj:
        attr = 1

    sc = {"item": Obj()}
    assert str(err("item.attr", sc)) == "item is a Obj, it has no field 'attr'"
    assert str(err("str(item)", sc)) == "str(): a Obj cannot be turned into text"


def test_a_missing_input_field_uses_the_seed_wording() -> None:
    assert str(err("ctx.input.emial")).startswith("Input field not found: emial")
    assert str(err("ctx.input.user.emial")).startswith("Input field not found: user.emial")
