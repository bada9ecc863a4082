"""The set of names a `${...}` resource argument can produce, when the compiler can prove it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ductwork.dsl.expr import expressions
from ductwork.dsl.expr import nodes as ast
from ductwork.dsl.loader import DataPath
from ductwork.errors import ExpressionError

# Functions whose value is always one of their arguments' values.
_PASS_THROUGH = frozenset({"default", "coalesce"})


@dataclass(frozen=True)
class Choice:
    """One name the expression can produce, and where to point when it is wrong."""

    name: str
    path: DataPath  # the YAML value that wrote it: the argument, or an input schema `enum` entry
    offset: int | None  # of the name in the string at `path`; None: the whole value


class Unproven(Exception):
    """The expression's values cannot be listed; the message is the hint that says how."""


def choices(path: DataPath, text: str, input_schema: Any) -> list[Choice]:
    """Every name the one-expression string `text` (at `path`) can produce, in order, or
    Unproven. Provable: written names ('crm'), conditionals and `or` between provable values,
    default()/coalesce(), a literal list or map indexed by anything, and input fields whose
    input schema has an `enum` of names."""
    try:
        value = expressions.compile_value(text)
        sites = value.expressions()
    except ExpressionError:
        raise Unproven("") from None  # the expression checker reports the syntax
    if not value.is_expression or len(sites) != 1:
        raise Unproven(_GENERIC)
    expr, offset = sites[0]
    found = _of(expr.node, path, offset, input_schema)
    out: list[Choice] = []
    for c in found:
        if c.name not in {o.name for o in out}:
            out.append(c)
    return out


_GENERIC = ("the names are checked before the run, so the compiler must know every value: read "
            "an input field whose schema has an enum of names, or choose between written names "
            "(${'a' if ... else 'b'})")


def _of(node: ast.Node, path: DataPath, offset: int, schema: Any) -> list[Choice]:
    if isinstance(node, ast.Const):
        if isinstance(node.value, str):
            return [Choice(node.value, path, offset + node.pos + 1)]
        raise Unproven(f"{_show(node.value)} is not a name")
    if isinstance(node, ast.Cond):
        return [*_of(node.then, path, offset, schema), *_of(node.other, path, offset, schema)]
    if isinstance(node, ast.BoolOp) and node.op == "or":
        return [*_of(node.left, path, offset, schema), *_of(node.right, path, offset, schema)]
    if isinstance(node, ast.Call) and node.name in _PASS_THROUGH and node.args:
        return [c for arg in node.args for c in _of(arg, path, offset, schema)]
    if isinstance(node, ast.Index) and isinstance(node.obj, ast.ListNode | ast.MapNode):
        items = node.obj.items if isinstance(node.obj, ast.ListNode) else node.obj.values
        return [c for item in items for c in _of(item, path, offset, schema)]
    found = ast.path_of(node)
    if found is not None and found[0] == "ctx" and found[1][:1] == ("input",):
        return _enum(found[1][1:], schema)
    raise Unproven(_GENERIC)


def _enum(fields: tuple[str | int, ...], schema: Any) -> list[Choice]:
    """The `enum` of input field `fields` in the workflow's input schema."""
    trail = "ctx.input" + "".join(f".{f}" for f in fields)
    where: DataPath = ("input",)
    for name in fields:
        props = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(name, str) or not isinstance(props, dict) or name not in props:
            raise Unproven(f"declare {trail} in the input schema with an enum of the names it "
                           "may hold (enum: [a, b]), so that each can be checked")
        schema = props[name]
        where = (*where, "properties", name)
    values = schema.get("enum") if isinstance(schema, dict) else None
    if not isinstance(values, list) or not values:
        raise Unproven(f"give {trail} an enum in the input schema (enum: [a, b]) listing the "
                       "names it may hold, so that each can be checked")
    out: list[Choice] = []
    for i, item in enumerate(values):
        if not isinstance(item, str):
            raise Unproven(f"the enum of {trail} holds {_show(item)}, which is not a name")
        out.append(Choice(item, (*where, "enum", i), None))
    return out


def _show(value: Any) -> str:
    return "null" if value is None else repr(value)
