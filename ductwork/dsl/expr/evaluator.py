"""Evaluation phase: our AST -> nested closures (pure paths get a dict-walking fast path)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from ductwork.dsl.expr import nodes as ast
from ductwork.dsl.expr.functions import FUNCTIONS, ArgError, lookup
from ductwork.dsl.expr.limits import SMALL, spend
from ductwork.dsl.expr.runtime import (
    Fail,
    arith,
    check_built,
    close_hint,
    contains,
    equal,
    get_item,
    negate,
    order,
    render_key,
    truthy,
)

# Run-time values of the roots an expression reads (ctx, steps, state, item, ...), by name.
Bindings = Mapping[str, Any]
Fn = Callable[[Bindings], Any]

ROOTS: frozenset[str] = frozenset(
    {"ctx", "steps", "state", "result", "item", "index", "env", "secrets", "error", "step",
     "variables", "constants"}
)
# Where a root exists, for "not available here" messages.
ROOT_HELP = {
    "result": "it is the step's original result and exists only inside a rollback",
    "item": "it exists only inside a foreach",
    "index": "it exists only inside a foreach",
    "error": "it exists only where a failure is being handled",
    "step": "it is the running step (step.idempotency_key) and exists only in the call of a "
            "step and in its rollback",
    "secrets": "no secrets were given to this run",
}
# Bare names people write for things that live under ctx.
BARE_CTX_NAMES = {
    "input", "workflow_id", "workflow_tag", "product", "checkpoint_name", "checkpoint_data",
}

_MISSING = object()
# What a literal may hold that can make it large (checked with check_built when it does).
_CONTAINERS = frozenset({list, dict, tuple})
_SIZED = frozenset({list, dict, tuple, str})


def unknown_name_message(name: str, known: set[str] | frozenset[str]) -> str:
    if name in ROOT_HELP and name not in known:
        return f"'{name}' is not available here: {ROOT_HELP[name]}"
    if name in BARE_CTX_NAMES:
        return f"unknown name '{name}'; did you mean 'ctx.{name}'?"
    if name == "transform":
        return "transform.* are functions: call one, e.g. transform.upper(x)"
    return f"unknown name '{name}'{close_hint(name, known)} (names: {', '.join(sorted(known))})"


def _unknown_root(name: str, scope: Bindings) -> str:
    known = {k for k in scope if isinstance(k, str)} | ROOTS - set(ROOT_HELP)
    return unknown_name_message(name, known)


def unknown_function_message(written: str) -> str:
    name = written.removeprefix("transform.")
    return f"unknown function '{written}'{close_hint(name, FUNCTIONS)}"


def may_spend(node: ast.Node) -> bool:
    """Whether evaluating the tree can do work proportional to the data (so it needs a work
    budget); paths, literals of scalars and conditions on them never do."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, ast.Call | ast.Binary | ast.ListNode | ast.MapNode | ast.Compare):
            return True
        stack.extend(n.children())
    return False


def compile_node(node: ast.Node) -> Fn:
    return _compile(node)[0]


def _compile(node: ast.Node) -> tuple[Fn, str | None, str | None]:
    """(closure, the path text for messages or None, the root name or None)."""
    found = ast.path_of(node)
    if found is not None and found[1]:
        slow, desc, root = _compile_general(node)
        return _fast_path(found[0], found[1], slow), desc, root
    return _compile_general(node)


def _fast_path(root: str, keys: tuple[str | int, ...], slow: Fn) -> Fn:
    """Walk plain dicts/lists directly; anything unusual reruns the general closure,
    which produces the detailed error (or handles Mapping objects)."""

    def run(scope: Bindings) -> Any:
        try:
            v = scope[root]
            for k in keys:
                t = type(v)
                if t is dict or (t is list and type(k) is int):
                    v = v[k]
                else:
                    return slow(scope)
            return v
        except (KeyError, IndexError):
            return slow(scope)

    if len(keys) == 2 and all(type(k) is str for k in keys):
        k1, k2 = keys

        def run2(scope: Bindings) -> Any:
            try:
                v = scope[root]
                if type(v) is dict:
                    v = v[k1]
                    if type(v) is dict:
                        return v[k2]
            except KeyError:
                pass
            return slow(scope)

        return run2
    return run


def _compile_general(node: ast.Node) -> tuple[Fn, str | None, str | None]:
    pos = node.pos
    if isinstance(node, ast.Const):
        value = node.value
        return (lambda scope: value), None, None
    if isinstance(node, ast.Name):
        name = node.name

        def get_root(scope: Bindings) -> Any:
            try:
                return scope[name]
            except KeyError:
                raise Fail(lambda: _unknown_root(name, scope), pos, missing=True) from None

        return get_root, name, name
    if isinstance(node, ast.Field | ast.Index):
        return _compile_access(node)
    if isinstance(node, ast.ListNode):
        items = [compile_node(n) for n in node.items]

        def list_(scope: Bindings) -> Any:
            out = [f(scope) for f in items]
            if any(type(v) in _CONTAINERS for v in out):
                check_built(out, pos)
            return out

        return list_, None, None
    if isinstance(node, ast.MapNode):
        pairs = [(k, compile_node(n)) for k, n in zip(node.keys, node.values, strict=True)]

        def map_(scope: Bindings) -> Any:
            out = {k: f(scope) for k, f in pairs}
            if any(type(v) in _CONTAINERS for v in out.values()):
                check_built(out, pos)
            return out

        return map_, None, None
    if isinstance(node, ast.Unary):
        return _compile_unary(node), None, None
    if isinstance(node, ast.Binary):
        op, left, right = node.op, compile_node(node.left), compile_node(node.right)
        return (lambda scope: arith(op, left(scope), right(scope), pos)), None, None
    if isinstance(node, ast.Compare):
        return _compile_compare(node), None, None
    if isinstance(node, ast.BoolOp):
        return _compile_boolop(node), None, None
    if isinstance(node, ast.Cond):
        cond, then, other = (compile_node(n) for n in (node.cond, node.then, node.other))
        return (lambda scope: then(scope) if truthy(cond(scope)) else other(scope)), None, None
    if isinstance(node, ast.Call):
        return _compile_call(node), None, None
    raise AssertionError(f"unknown node {type(node).__name__}")  # pragma: no cover


def _compile_access(node: ast.Field | ast.Index) -> tuple[Fn, str | None, str | None]:
    pos = node.pos
    obj, desc, root = _compile(node.obj)
    if isinstance(node, ast.Field):
        key: Any = node.name
        out_desc = desc + render_key(key) if desc is not None else None

        def field(scope: Bindings) -> Any:
            o = obj(scope)
            if type(o) is dict:
                v = o.get(key, _MISSING)
                if v is not _MISSING:
                    return v
            return get_item(o, key, desc, root, pos)

        return field, out_desc, root
    key_fn = compile_node(node.key)
    literal = node.key.value if isinstance(node.key, ast.Const) else None
    if isinstance(literal, str | int) and not isinstance(literal, bool):
        out_desc = desc + render_key(literal) if desc is not None else None
    else:
        out_desc = None

    def index(scope: Bindings) -> Any:
        return get_item(obj(scope), key_fn(scope), desc, root, pos)

    return index, out_desc, root


def _compile_unary(node: ast.Unary) -> Fn:
    op, operand, pos = node.op, compile_node(node.operand), node.pos
    if op == "not":
        return lambda scope: not truthy(operand(scope))
    return lambda scope: negate(op, operand(scope), pos)


def _compile_compare(node: ast.Compare) -> Fn:
    op, left, right, pos = node.op, compile_node(node.left), compile_node(node.right), node.pos
    if op == "==":
        return lambda scope: equal(left(scope), right(scope))
    if op == "!=":
        return lambda scope: not equal(left(scope), right(scope))
    if op in ("in", "not in"):
        negated = op == "not in"

        def in_(scope: Bindings) -> bool:
            item = left(scope)  # left to right, like every other operator
            return contains(right(scope), item, pos) != negated

        return in_
    return lambda scope: order(op, left(scope), right(scope), pos)


def _compile_boolop(node: ast.BoolOp) -> Fn:
    left, right = compile_node(node.left), compile_node(node.right)
    if node.op == "and":

        def and_(scope: Bindings) -> Any:
            v = left(scope)
            return right(scope) if truthy(v) else v

        return and_

    def or_(scope: Bindings) -> Any:
        v = left(scope)
        return v if truthy(v) else right(scope)

    return or_


def _compile_call(node: ast.Call) -> Fn:
    pos, written = node.pos, node.written
    entry = lookup(node.name)
    if entry is None:
        message = unknown_function_message(written)

        def unknown(scope: Bindings) -> Any:
            raise Fail(message, pos)

        return unknown
    info, impl, lazy = entry
    if not info.accepts(len(node.args)):
        message = f"{written}() takes {info.arity()}, got {len(node.args)}: {info.signature}"

        def bad_arity(scope: Bindings) -> Any:
            raise Fail(message, pos)

        return bad_arity
    args = [compile_node(a) for a in node.args]
    if lazy:

        def call_lazy(scope: Bindings) -> Any:
            try:
                return impl(*[functools.partial(f, scope) for f in args])
            except ArgError as exc:
                raise Fail(f"{written}(): {exc}", pos) from None

        return call_lazy

    def call(scope: Bindings) -> Any:
        values = [f(scope) for f in args]
        # A function's work grows with the size of its arguments: charge it up front (small
        # arguments are not worth the bookkeeping: the number of terms bounds them).
        size = 0
        for v in values:
            if type(v) in _SIZED:
                size += len(v)
        if size > SMALL:
            spend(size, pos)
        try:
            return impl(*values)
        except ArgError as exc:
            raise Fail(f"{written}(): {exc}", pos) from None
        except Fail as exc:
            raise Fail(f"{written}(): {exc.message}", pos) from None
        except (TypeError, ValueError, ArithmeticError, RecursionError) as exc:
            raise Fail(f"{written}() failed ({type(exc).__name__})", pos) from None

    return call

