"""Types of expressions, and the mistakes they prove: missing fields, mixed kinds, bad arguments."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from ductwork.dsl.diagnostics import did_you_mean, known
from ductwork.dsl.expr import nodes as ast
from ductwork.dsl.expr import types as t
from ductwork.dsl.expr.functions import FUNCTIONS, FunctionInfo
from ductwork.dsl.expr.functions.registry import phrase
from ductwork.dsl.expr.runtime import equal, render_key
from ductwork.dsl.expr.types import Type

# report(0-based position in the expression, length, message, hint)
Report = Callable[[int, int, str, str | None], None]

# The static kinds the function registry speaks of (Param.matches_static); a type with any
# other kind (a datetime, ...) is not judged against a signature.
_REGISTRY_KINDS = frozenset({"null", "boolean", "integer", "number", "string", "list", "map"})
_RETURN_KINDS = {"integer": "integer", "number": "number", "float": "number",
                 "string": "string", "boolean": "boolean", "list": "list", "map": "map",
                 "null": "null"}
_VERB = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "//": "divide",
         "%": "take the remainder of"}
# Pairs of kinds `<` and friends can order (runtime.order).
_ORDERED = (t.NUMERIC, frozenset({"string"}), frozenset({"list"}), frozenset({"datetime"}),
            frozenset({"date"}))


class Roots(Protocol):
    """What the roots of an expression are at the place it is written."""

    def root(self, name: str) -> Type: ...

    def step(self, tag: str) -> Type: ...

    def state(self, key: str) -> Type: ...


def _norm(kinds: frozenset[str]) -> frozenset[str]:
    return frozenset("number" if k == "integer" else k for k in kinds)


def _literal(v: Any) -> str:
    """A constant as an expression writes it: 'text', 100, true, null."""
    if isinstance(v, str):
        return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return json.dumps(v) if v is None or isinstance(v, bool | int | float) else repr(v)


def _has_name(node: ast.Node) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Name):
            return True
        stack.extend(n.children())
    return False


def _typecheck_knows(node: ast.Node) -> bool:
    """Whether typecheck.call_problems already judges this argument (a value computed
    without reading anything, a literal list or map, a comparison, or a call's result)."""
    if not _has_name(node):
        return True
    if isinstance(node, ast.ListNode | ast.MapNode | ast.Compare):
        return True
    if isinstance(node, ast.Unary) and node.op == "not":
        return True
    if isinstance(node, ast.Call):
        info = FUNCTIONS.get(node.name)
        return info is not None and bool(info.result_kinds())
    return False


class Infer:
    """Computes the type of each node of one expression; with `report`, says what is wrong."""

    def __init__(self, roots: Roots, report: Report | None = None) -> None:
        self.roots = roots
        self.report = report

    def type(self, node: ast.Node) -> Type:
        return self.walk(node)[0]

    def _say(self, pos: int, length: int, message: str, hint: str | None = None) -> None:
        if self.report is not None:
            self.report(pos, length, message, hint)

    # -- nodes ----------------------------------------------------------------------------------

    def walk(self, n: ast.Node) -> tuple[Type, str | None]:
        """(type, the path as text for messages, or None when it is not a plain path)."""
        if isinstance(n, ast.Const):
            return t.from_value(n.value), None
        if isinstance(n, ast.Name):
            return self.roots.root(n.name), n.name
        if isinstance(n, ast.Field):
            return self._access(n, n.obj, n.name, n.pos)
        if isinstance(n, ast.Index):
            key = n.key.value if isinstance(n.key, ast.Const) else None
            if isinstance(key, str | int) and not isinstance(key, bool):
                return self._access(n, n.obj, key, n.key.pos)
            self.walk(n.obj)
            self.walk(n.key)
            return t.ANY, None
        if isinstance(n, ast.ListNode):
            items = [self.type(i) for i in n.items]
            return t.list_of(t.join_all(items) if items else t.ANY), None
        if isinstance(n, ast.MapNode):
            return t.record({k: self.type(v) for k, v in zip(n.keys, n.values, strict=True)}), None
        if isinstance(n, ast.Call):
            return self._call(n), None
        if isinstance(n, ast.Unary):
            return self._unary(n), None
        if isinstance(n, ast.Binary):
            return self._binary(n), None
        if isinstance(n, ast.Compare):
            self._compare(n)
            return t.BOOLEAN, None
        if isinstance(n, ast.BoolOp):
            return t.join(self.type(n.left), self.type(n.right)), None
        if isinstance(n, ast.Cond):
            self.type(n.cond)
            return t.join(self.type(n.then), self.type(n.other)), None
        return t.ANY, None  # pragma: no cover - every node kind is handled above

    def _access(self, n: ast.Node, obj: ast.Node, key: str | int, pos: int
                ) -> tuple[Type, str | None]:
        if isinstance(obj, ast.Name) and obj.name in ("steps", "state") and isinstance(key, str):
            # Which tags and keys exist is the checker's business; here they give a type.
            found = self.roots.step(key) if obj.name == "steps" else self.roots.state(key)
            return found, obj.name + render_key(key)
        ot, desc = self.walk(obj)
        out = desc + render_key(key) if desc is not None else None
        if isinstance(key, int):
            if ot.only({"list"}):
                return ot.items or t.ANY, out
            if ot.only({"string"}):
                return t.STRING, out
            return t.ANY, out
        return self._field(ot, desc, key, pos), out

    def _field(self, ot: Type, desc: str | None, name: str, pos: int) -> Type:
        what = desc or "the value"
        if "map" in ot.kinds and ot.fields is not None:
            if name in ot.fields:
                return ot.fields[name]
            if ot.closed:
                self._say(pos, len(name), f"{what} has no field '{name}'"
                          + (f" {ot.where}" if ot.where else ""),
                          _field_hint(name, ot.fields, ot.listing))
            return t.ANY
        if ot.known and "map" not in ot.kinds:
            self._no_fields(ot, what, name, pos)
        return t.ANY

    def _no_fields(self, ot: Type, what: str, name: str, pos: int) -> None:
        if ot.kinds == {"null"}:
            self._say(pos, len(name), f"{what} is always null, so it has no field '{name}'")
            return
        hint = None
        if "list" in ot.kinds:
            hint = (f"use size({what}) for its size" if name in ("length", "size", "count")
                    else f"read one item, e.g. {what}[0].{name}")
        elif "string" in ot.kinds and name in ("length", "size", "count"):
            hint = f"use size({what}) for its length"
        elif ot.kinds <= {"boolean", "integer", "number", "string", "null"}:
            hint = f"it is the value itself: read {what}"
        self._say(pos, len(name), f"{what} is {ot.describe()}: it has no field '{name}'", hint)

    # -- calls ------------------------------------------------------------------------------------

    def _call(self, n: ast.Call) -> Type:
        args = [self.walk(a) for a in n.args]
        info = FUNCTIONS.get(n.name)
        if info is None or not info.accepts(len(n.args)):
            return t.ANY  # reported by Expr.problems
        for i, (arg, (at, desc)) in enumerate(zip(n.args, args, strict=True)):
            self._argument(n, info, i, arg, at, desc)
        if n.name == "default":
            return t.join(t.non_null(args[0][0]), args[1][0])
        if n.name == "coalesce":
            return t.nullable(t.join_all(t.non_null(a) for a, _ in args))
        kinds = [_RETURN_KINDS.get(k) for k in info.returns.split("|")]
        if None in kinds:
            return t.ANY
        out = t.of(*(k for k in kinds if k is not None))
        return t.list_of(t.ANY) if out.kinds == {"list"} else out

    def _argument(self, n: ast.Call, info: FunctionInfo, i: int, arg: ast.Node, at: Type,
                  desc: str | None) -> None:
        p = info.param(i)
        if p is None or not at.known or not at.kinds <= _REGISTRY_KINDS or _typecheck_knows(arg):
            return
        if p.matches_static(frozenset(at.kinds)):
            return
        what = "each argument" if i >= len(info.params) else p.name
        shown = f"{desc} is {at.describe()}" if desc else f"not {at.describe()}"
        hint = _convert_hint(p.kinds, desc)
        self._say(arg.pos, len(desc) if desc else 1,
                  f"{n.written}(): {what} must be {phrase(p.kinds)}, {shown}", hint)

    # -- operators ------------------------------------------------------------------------------

    def _unary(self, n: ast.Unary) -> Type:
        ot, desc = self.walk(n.operand)
        if n.op == "not":
            return t.BOOLEAN
        if ot.known and not ot.kinds & t.NUMERIC:
            self._say(n.pos, 1, f"unary '{n.op}' needs a number, "
                      + (f"{desc} is {ot.describe()}" if desc else f"not {ot.describe()}"),
                      _convert_hint(("number",), desc))
            return t.ANY
        return t.INTEGER if ot.only({"integer"}) else t.NUMBER

    def _binary(self, n: ast.Binary) -> Type:
        (lt, ld), (rt, rd) = self.walk(n.left), self.walk(n.right)
        op = n.op
        both_numbers = bool(lt.kinds & t.NUMERIC and rt.kinds & t.NUMERIC)
        if lt.known and rt.known and not _can_combine(op, lt.kinds, rt.kinds):
            left = _text(n.left, ld, "the left side")
            right = _text(n.right, rd, "the right side")
            self._say(n.pos, len(op), f"cannot {_VERB[op]} {left} ({lt.describe()}) and "
                      f"{right} ({rt.describe()}) with '{op}'",
                      _arith_hint(op, lt, rt, left, right))
            return t.ANY
        if op == "+" and lt.only({"string"}) and rt.only({"string"}):
            return t.STRING
        if op == "+" and lt.only({"list"}) and rt.only({"list"}):
            return t.list_of(t.join(lt.items or t.ANY, rt.items or t.ANY))
        if lt.only(t.NUMERIC) and rt.only(t.NUMERIC):
            whole = lt.only({"integer"}) and rt.only({"integer"}) and op != "/"
            return t.INTEGER if whole else t.NUMBER
        return t.NUMBER if both_numbers and op in ("-", "/", "//", "%") else t.ANY

    def _compare(self, n: ast.Compare) -> None:
        (lt, ld), (rt, rd) = self.walk(n.left), self.walk(n.right)
        if n.op in ("==", "!="):
            self._equality(n, lt, ld, rt, rd)
        elif n.op in ("in", "not in"):
            self._membership(n, lt, ld, rt)
        else:
            self._ordering(n, lt, ld, rt, rd)

    def _equality(self, n: ast.Compare, lt: Type, ld: str | None, rt: Type, rd: str | None
                  ) -> None:
        a, b = t.non_null(lt), t.non_null(rt)
        if not (a.known and b.known) or "null" in (a.kinds | b.kinds):
            return  # unknown, or comparing with null: a check, never a mistake to prove
        always = "false" if n.op == "==" else "true"
        if not _norm(a.kinds) & _norm(b.kinds):
            const, other, other_t, other_d = _literal_side(n, lt, ld, rt, rd)
            self._say(const.pos if const is not None else n.pos, _width(const),
                      f"{_text(n.left, ld, 'the left side')} is {lt.describe()} and "
                      f"{_text(n.right, rd, 'the right side')} is {rt.describe()}: "
                      f"'{n.op}' is always {always}",
                      _equality_hint(n.op, const, other, other_t, other_d))
            return
        for operand, side, desc in ((n.right, lt, ld), (n.left, rt, rd)):
            if isinstance(operand, ast.Const) and operand.value is not None:
                self._never(operand, side, desc, always)

    def _never(self, const: ast.Const, side: Type, desc: str | None, always: str) -> None:
        """`ctx.env == 'production'` where ctx.env is one of the product's envs."""
        if side.values is None or desc is None:
            return
        if any(equal(const.value, v) for v in side.values):
            return
        shown = ", ".join(_literal(v) for v in side.values if v is not None)
        close = did_you_mean(const.value, [v for v in side.values if isinstance(v, str)]) \
            if isinstance(const.value, str) else None
        listed = f"{desc} is one of {shown}" + (f" {side.where}" if side.where else "")
        self._say(const.pos, _width(const), f"{desc} is never {_literal(const.value)}, so the "
                  f"comparison is always {always}", f"{close} ({listed})" if close else listed)

    def _membership(self, n: ast.Compare, lt: Type, ld: str | None, rt: Type) -> None:
        right = n.right
        if isinstance(right, ast.ListNode):
            always = "false" if n.op == "in" else "true"
            for item in right.items:
                if isinstance(item, ast.Const) and item.value is not None:
                    self._never(item, lt, ld, always)
            return
        if rt.known and not rt.kinds & {"list", "map", "string"}:
            self._say(n.pos, len(n.op), f"'{n.op}' needs a list, map or string on the right, "
                      f"not {rt.describe()}")
        elif rt.only({"string"}) and lt.known and "string" not in lt.kinds:
            self._say(n.pos, len(n.op), f"'{n.op}' a string needs a string on the left, not "
                      f"{lt.describe()}", _convert_hint(("string",), ld))

    def _ordering(self, n: ast.Compare, lt: Type, ld: str | None, rt: Type, rd: str | None
                  ) -> None:
        a, b = t.non_null(lt), t.non_null(rt)
        if not (a.known and b.known) or a.kinds == {"null"} or b.kinds == {"null"}:
            return
        if any(a.kinds & group and b.kinds & group for group in _ORDERED):
            return
        const, _, other_t, other_d = _literal_side(n, lt, ld, rt, rd)
        self._say(const.pos if const is not None else n.pos,
                  _width(const) if const is not None else len(n.op),
                  f"cannot compare {_text(n.left, ld, 'the left side')} ({a.describe()}) and "
                  f"{_text(n.right, rd, 'the right side')} ({b.describe()}) with '{n.op}'",
                  _order_hint(n.op, const, other_t, other_d))


# -- hints --------------------------------------------------------------------------------------


def _field_hint(name: str, fields: Any, listing: str) -> str:
    head, dash, _ = name.partition("-")
    if dash and head in fields:
        return f"'{name}' is one field name; to subtract, put spaces around '-'"
    return did_you_mean(name, fields) or f"{listing}: {known(fields)}"


def _text(node: ast.Node, desc: str | None, otherwise: str) -> str:
    """How a message names an operand: its path, its literal, or `otherwise`."""
    if desc is not None:
        return desc
    if isinstance(node, ast.Const):
        return _literal(node.value)
    return otherwise


def _width(const: ast.Const | None) -> int:
    return len(_literal(const.value)) if const is not None else 2


def _literal_side(n: ast.Compare, lt: Type, ld: str | None, rt: Type, rd: str | None
                  ) -> tuple[ast.Const | None, ast.Node, Type, str | None]:
    """(the literal operand if one is, the other operand, its type and text)."""
    if isinstance(n.right, ast.Const):
        return n.right, n.left, lt, ld
    if isinstance(n.left, ast.Const):
        return n.left, n.right, rt, rd
    return None, n.left, lt, ld


def _number_text(v: Any) -> str | None:
    """'100' -> '100' (the number the text spells), else None."""
    if not isinstance(v, str):
        return None
    try:
        float(v.strip())
    except ValueError:
        return None
    return v.strip()


def _equality_hint(op: str, const: ast.Const | None, other: ast.Node, ot: Type,
                   od: str | None) -> str:
    subject = od or "the value"
    if const is None:
        return "convert one side first: str(x), int(x), float(x) or bool(x)"
    v = const.value
    if ot.only({"boolean", "null"}) and isinstance(v, str) and v.lower() in ("true", "false"):
        word = v.lower()
        plain = (subject if (word == "true") == (op == "==") else f"not {subject}")
        return f"write {subject} {op} {word} (no quotes), or just {plain}"
    if ot.only({"boolean", "null"}) and isinstance(v, str):
        return f"{subject} is true or false, never text: write {subject} == true (or just " \
               f"{subject})"
    if ot.only(t.NUMERIC | {"null"}) and (num := _number_text(v)) is not None:
        return f"compare with a number: {subject} {op} {num} (no quotes)"
    if ot.only({"string", "null"}) and isinstance(v, int | float) and not isinstance(v, bool):
        return f"compare with text: {subject} {op} '{v}', or convert: int({subject}) {op} {v}"
    return "convert one side first: str(x), int(x), float(x) or bool(x)"


def _order_hint(op: str, const: ast.Const | None, ot: Type, od: str | None) -> str:
    subject = od or "the value"
    if const is not None and ot.only(t.NUMERIC | {"null"}) and (
            num := _number_text(const.value)) is not None:
        return f"compare with a number: {subject} {op} {num} (no quotes)"
    if ot.kinds & {"datetime", "date"}:
        return f"format_date({subject}) gives ISO 8601 text, which orders like the date"
    return "convert one side first: int(x) or float(x) for numbers, str(x) for text"


def _convert_hint(kinds: tuple[str, ...], desc: str | None) -> str | None:
    x = desc or "x"
    if "string" in kinds:
        return f"convert it first: str({x})"
    if kinds and set(kinds) <= {"number", "integer", "null"}:
        return f"convert it first: int({x}) or float({x})"
    return None


def _arith_hint(op: str, lt: Type, rt: Type, left: str, right: str) -> str:
    if op == "+" and (lt.kinds & {"string"} or rt.kinds & {"string"}):
        text_left = "string" in lt.kinds
        as_text = f"{left} + str({right})" if text_left else f"str({left}) + {right}"
        as_number = f"int({left}) + {right}" if text_left else f"{left} + int({right})"
        word = left if text_left else right
        if word[:1] in "'\"" and _number_text(word[1:-1]) is None:
            return f"to join text write {as_text} (or put the text around ${{...}})"
        return f"to join text write {as_text} (or put the text around ${{...}}); to add " \
               f"numbers write {as_number}"
    if lt.kinds & {"string"} or rt.kinds & {"string"}:
        return f"'{op}' works on numbers: convert the text first with int(x) or float(x)"
    return "both sides must be numbers: convert with int(x) or float(x) first"


def _can_combine(op: str, a: frozenset[str], b: frozenset[str]) -> bool:
    """Whether some pair of possible kinds works with `op` (runtime.arith)."""
    if a & t.NUMERIC and b & t.NUMERIC:
        return True
    if op == "+":
        return bool(a & b & {"string", "list"})
    if op == "*":
        return bool((a & {"string", "list"} and b & t.NUMERIC)
                    or (b & {"string", "list"} and a & t.NUMERIC))
    return False
