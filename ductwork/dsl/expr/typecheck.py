"""What validate can know of a call's arguments: literal values and the kinds of results."""

from __future__ import annotations

from typing import Any

from ductwork.dsl.expr import nodes as ast
from ductwork.dsl.expr.evaluator import compile_node
from ductwork.dsl.expr.functions import FUNCTIONS, ArgError, FunctionInfo, lookup
from ductwork.dsl.expr.functions.registry import article, check_arg, phrase
from ductwork.dsl.expr.runtime import Fail

_NOT_CONSTANT = object()
# How a static kind is named in messages (as type_name names a value).
_SHOWN = {"integer": "number", "float": "number", "number": "number", "string": "string",
          "boolean": "boolean", "null": "null", "list": "list", "map": "map"}


def _constant(node: ast.Node, memo: dict[int, Any]) -> Any:
    """The value of a subtree that reads nothing and calls only pure functions, else
    _NOT_CONSTANT (also when evaluating it fails: that failure is reported where it is)."""
    key = id(node)
    if key in memo:
        return memo[key]
    value: Any = _NOT_CONSTANT
    if isinstance(node, ast.Const):
        value = node.value
    elif _pure(node):
        try:
            value = compile_node(node)({})
        except (Fail, RecursionError):
            value = _NOT_CONSTANT
    memo[key] = value
    return value


def _pure(node: ast.Node) -> bool:
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Name | ast.Field | ast.Index):
            return False
        if isinstance(n, ast.Call):
            info = FUNCTIONS.get(n.name)
            if info is None or not info.deterministic or not info.accepts(len(n.args)):
                return False
        stack.extend(n.children())
    return True


def _kinds(node: ast.Node, value: Any) -> frozenset[str]:
    """Static kinds of an argument; empty when unknown."""
    if value is not _NOT_CONSTANT:
        if value is None:
            return frozenset({"null"})
        for t, kind in ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string"),
                        (list, "list"), (dict, "map")):
            if isinstance(value, t):
                return frozenset({kind})
        return frozenset()
    if isinstance(node, ast.ListNode):
        return frozenset({"list"})
    if isinstance(node, ast.MapNode):
        return frozenset({"map"})
    if isinstance(node, ast.Compare) or (isinstance(node, ast.Unary) and node.op == "not"):
        return frozenset({"boolean"})
    if isinstance(node, ast.Call) and (info := FUNCTIONS.get(node.name)) is not None:
        return info.result_kinds()
    return frozenset()


def call_problems(node: ast.Call, memo: dict[int, Any]) -> list[tuple[str, int]]:
    """(message, 0-based position) of each argument validate can prove wrong; the call's
    name and arity are already known to be right."""
    entry = lookup(node.name)
    assert entry is not None
    info, impl, lazy = entry
    if lazy:
        return []
    values = [_constant(a, memo) for a in node.args]
    if info.deterministic and all(v is not _NOT_CONSTANT for v in values):
        try:
            impl(*values)
        except ArgError as exc:
            return [(f"{node.written}(): {exc}", node.pos)]
        except Exception:  # the run reports it with its own words; nothing sure to say here
            return []
        return []
    out = []
    for i, (arg, value) in enumerate(zip(node.args, values, strict=True)):
        problem = _argument(info, i, arg, value)
        if problem is not None:
            out.append((f"{node.written}(): {problem}", arg.pos))
    return out


def _argument(info: FunctionInfo, i: int, arg: ast.Node, value: Any) -> str | None:
    p = info.param(i)
    if p is None:
        return None
    if value is not _NOT_CONSTANT:
        try:
            check_arg(info, i, value)
        except ArgError as exc:
            return str(exc)
        return None
    kinds = _kinds(arg, value)
    if kinds and not p.matches_static(kinds):
        what = "each argument" if i >= len(info.params) else p.name
        shown = " or ".join(sorted({article(_SHOWN[k]) for k in kinds}))
        return f"{what} must be {phrase(p.kinds)}, not {shown}"
    return None
