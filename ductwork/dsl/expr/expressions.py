"""`${ ... }` expressions of the YAML DSL: parse once, evaluate many times, sandboxed.

The language
------------
Roots (ROOTS): `ctx` (ctx.input.x, ctx.workflow_id, ctx.workflow_tag, ctx.env, ctx.product,
...), `steps` (results by tag), `state`, `result` (only in a rollback: the step's original
result), `item` / `index` (only inside foreach), `env.NAME`, `secrets.NAME`, `error` (where a
failure is handled). `input` is NOT an alias: write `ctx.input.x` (one way to say it); a
bare `input` is an error that suggests `ctx.input`. Which roots exist is decided by the
scope the caller passes to `evaluate`.

Paths: `a.b.c`, `a["key"]`, `a[0]`, `a[-1]`, `a[expr]`. Access works only on maps, lists
and strings; nothing ever reads a Python attribute, so `ctx.__class__` is just a missing
key (and names starting with `__` are refused by the parser anyway).

Hyphens (step tags are kebab-case): a path segment written after a dot may contain inner
hyphens, so `steps.create-user.id` reads step `create-user`. `steps["create-user"].id` is
the same. The segment is one token, so `steps.a-b` is the tag `a-b`, while `steps.a - b`
(with spaces) is a subtraction. The same rule everywhere: `ctx.input.count-1` is the field
`count-1`, not `count` minus 1 (the error for the missing field says "to subtract, put
spaces around '-'"); write `ctx.input.count - 1`. A root name never contains a hyphen:
`index-1` and `x-1` are subtractions. A segment cannot start or end with a hyphen:
`a.b-` is an error and `a.b -c` subtracts.

Literals: null true false, 12, 1.5, 1e3, "text" and 'text' with escapes \\n \\t \\r \\b \\f
\\0 \\\\ \\' \\" \\/ \\$ \\uXXXX; lists [1, 2]; maps {name: 1, "other key": 2}.
Operators, loosest first: `a if cond else b`; `or`; `and`; `not`; `== != < <= > >= in
not in` (comparisons do not chain); `+ -`; `* / // %`; unary `- +`; then `.field`,
`[index]`, `f(args)`. `+` adds numbers or joins two strings or two lists; `*` also repeats
a string/list by a whole number. `and`/`or` return one of their operands, like Python;
truthiness is Python's (null, false, 0, "", [] and {} are false). `true == 1` is false:
a boolean is never a number. Sizes, integers and the work of one evaluation are bounded
(limits.py), each checked before the value is made.

Functions (FUNCTIONS, the library in dsl/expr/functions/, listed in docs/functions.md), also
callable as `transform.name(...)`, and from Python as `ctx.transform.name(...)` with the same
results. `default`, `coalesce` and `exists` treat a missing path (absent key or index, absent
root, or a null on the way) as "no value", so `default(ctx.input.nickname, "friend")` works
when the input has no nickname. problems() also checks arguments: literals and the result
kinds of inner calls against each function's signature.

Strings in YAML values (compile_value): a string that is exactly one `${...}` keeps the
expression's type; text around it makes a string (null -> "null", booleans -> "true"/
"false", lists/maps -> JSON). `$${` writes a literal `${`. Map keys are never evaluated.

Columns in ExpressionError are 1-based character offsets in the expression text (a newline
counts as one character); for compile_value they are offsets in the whole YAML string.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from ductwork.dsl.expr import nodes as ast
from ductwork.dsl.expr.evaluator import (
    ROOTS,
    Fn,
    compile_node,
    may_spend,
    unknown_function_message,
    unknown_name_message,
)
from ductwork.dsl.expr.functions import FUNCTIONS, FunctionInfo
from ductwork.dsl.expr.limits import start, stop
from ductwork.dsl.expr.nodes import Reference
from ductwork.dsl.expr.parser import ParseFailure, parse_ast, string_end
from ductwork.dsl.expr.runtime import Fail, to_text
from ductwork.dsl.expr.typecheck import call_problems
from ductwork.errors import ExpressionError

__all__ = [
    "FUNCTIONS",
    "ROOTS",
    "Expr",
    "ExpressionError",
    "FunctionInfo",
    "Reference",
    "Site",
    "Value",
    "ValueExpressionError",
    "compile_value",
    "parse",
]


class ValueExpressionError(ExpressionError):
    """An expression error inside a YAML value given to compile_value.

    `path` leads from the value to the offending string (keys and list indexes);
    `expression` is that whole string and `column` a 1-based offset inside it.
    """

    def __init__(
        self, message: str, *, expression: str, column: int, path: tuple[Any, ...]
    ) -> None:
        super().__init__(message, expression=expression, column=column)
        self.path = path


def _message(failure: ParseFailure | Fail, column: int) -> str:
    if "{col}" in failure.message:
        return failure.message.replace("{col}", str(column))
    return f"{failure.message} (at column {column})"


class Expr:
    """One parsed `${ ... }` expression (the text between the braces), ready to evaluate."""

    __slots__ = ("_budgeted", "_fn", "node", "source")

    def __init__(self, source: str, node: ast.Node) -> None:
        self.source = source
        self.node = node
        # The closure is built on first evaluation: validating a file only reads the tree.
        self._fn: Fn | None = None
        self._budgeted = False

    def _compile(self) -> Fn:
        self._budgeted = may_spend(self.node)
        fn = self._fn = compile_node(self.node)
        return fn

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        fn = self._fn or self._compile()
        if self._budgeted:
            start()  # a fresh work budget for each evaluation that can do work
        try:
            return fn(scope)
        except Fail as exc:
            raise ExpressionError(exc.message, expression=self.source, column=exc.pos + 1) from None
        except RecursionError:
            raise ExpressionError(
                "expression nested too deeply to evaluate", expression=self.source, column=1
            ) from None
        finally:
            if self._budgeted:
                stop()

    def evaluate_text(self, scope: Mapping[str, Any]) -> str:
        """The value as it appears inside a string ("Hello ${name}")."""
        value = self.evaluate(scope)
        if type(value) is str:
            return value
        try:
            return to_text(value, 0)
        except Fail as exc:
            raise ExpressionError(exc.message, expression=self.source, column=1) from None

    def references(self) -> list[Reference]:
        """Every path read, in source order: Reference(root, path, column, columns)."""
        return ast.references(self.node)

    def functions(self) -> list[tuple[str, int]]:
        """(function name without any `transform.` prefix, 1-based column) of every call."""
        return ast.calls(self.node)

    def path(self) -> Reference | None:
        """The Reference if the whole expression is one path (e.g. `steps.create-user.id`)."""
        refs = ast.path_of(self.node)
        if refs is None:
            return None
        return self.references()[0]

    def problems(self, roots: frozenset[str] | set[str] = ROOTS) -> list[ExpressionError]:
        """What can be known without running: unknown roots, unknown functions, arity, and
        arguments of the wrong kind (a literal, or the result of another function)."""
        out: list[ExpressionError] = []
        memo: dict[int, Any] = {}
        for ref in self.references():
            if ref.root not in roots:
                msg = unknown_name_message(ref.root, frozenset(roots))
                out.append(ExpressionError(msg, expression=self.source, column=ref.column))
        stack: list[ast.Node] = [self.node]
        while stack:
            node = stack.pop()
            stack.extend(node.children())
            if not isinstance(node, ast.Call):
                continue
            info = FUNCTIONS.get(node.name)
            if info is None:
                msg = unknown_function_message(node.written)
            elif not info.accepts(len(node.args)):
                msg = (f"{node.written}() takes {info.arity()}, got {len(node.args)}: "
                       f"{info.signature}")
            else:
                out.extend(ExpressionError(m, expression=self.source, column=pos + 1)
                           for m, pos in call_problems(node, memo))
                continue
            out.append(ExpressionError(msg, expression=self.source, column=node.pos + 1))
        out.sort(key=lambda e: e.column or 0)
        return out

    def __repr__(self) -> str:
        return f"Expr({self.source!r})"


@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Expr:
    return Expr(text, parse_ast(text))


def clear_caches() -> None:
    """Forget every parsed expression (benchmarks use it to measure a fresh process)."""
    _parse_cached.cache_clear()
    _compile_text.cache_clear()


def parse(text: str) -> Expr:
    """Parse the inside of `${...}`; raises ExpressionError(message, expression, column)."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, not {type(text).__name__}")
    try:
        return _parse_cached(text)
    except ParseFailure as exc:
        col = exc.pos + 1
        raise ExpressionError(_message(exc, col), expression=text, column=col) from None
    except RecursionError:  # pragma: no cover - the depth limit comes first
        raise ExpressionError("expression nested too deeply", expression=text, column=1) from None


# -- YAML values with embedded expressions ---------------------------------------------------


class Site(NamedTuple):
    """Where an expression sits: `path` inside the value, `offset` of its text in the string."""

    path: tuple[Any, ...]
    expr: Expr
    offset: int


def _close(s: str, start: int) -> int:
    """Index of the `}` ending the expression whose text starts at `start`."""
    depth, i, n = 0, start, len(s)
    while i < n:
        ch = s[i]
        if ch in "\"'":
            j = string_end(s, i)
            if j >= n:
                raise ParseFailure(
                    "string in '${...}' is never closed (starts at column {col})", i - start
                )
            i = j + 1
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return i
            depth -= 1
        i += 1
    raise ParseFailure("'${' is never closed: add a '}' (the '${' is at column {col})", -2)


def split_template(s: str) -> list[str | tuple[str, int]]:
    """Literal text and (expression text, offset) parts; `$${` is a literal `${`."""
    parts: list[str | tuple[str, int]] = []
    buf: list[str] = []
    i, n = 0, len(s)
    while i < n:
        j = s.find("$", i)
        if j < 0:
            buf.append(s[i:])
            break
        buf.append(s[i:j])
        if s.startswith("$${", j):
            buf.append("${")
            i = j + 3
        elif s.startswith("${", j):
            try:
                end = _close(s, j + 2)
            except ParseFailure as exc:
                exc.pos += j + 2
                raise
            if buf and "".join(buf):
                parts.append("".join(buf))
            buf = []
            parts.append((s[j + 2 : end], j + 2))
            i = end + 1
        else:
            buf.append("$")
            i = j + 1
    if buf and "".join(buf):
        parts.append("".join(buf))
    return parts


@dataclass(frozen=True, slots=True)
class _Template:
    parts: tuple[str | Expr, ...]

    def __call__(self, scope: Mapping[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else p.evaluate_text(scope) for p in self.parts)


class _WholeExpr:
    """The closure of a string that is exactly one `${...}` (marks Value.is_expression)."""

    __slots__ = ("expr",)

    def __init__(self, expr: Expr) -> None:
        self.expr = expr

    def __call__(self, scope: Mapping[str, Any]) -> Any:
        return self.expr.evaluate(scope)


class Value:
    """A YAML value (scalars, lists, maps) whose strings may embed `${...}` expressions."""

    __slots__ = ("_fn", "_sites", "is_constant", "is_expression", "source")

    def __init__(self, source: Any, fn: Fn, sites: list[Site]) -> None:
        self.source = source
        self._fn = fn
        self._sites = sites
        self.is_constant = not sites
        # The value is a string that is exactly one `${...}`, so it keeps the expression's type.
        self.is_expression = isinstance(source, str) and isinstance(fn, _WholeExpr)

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        """A fresh value each time (lists and maps are rebuilt, never shared)."""
        return self._fn(scope)

    def expressions(self) -> list[tuple[Expr, int]]:
        """Each embedded Expr with the offset of its text (just after `${`) in its string."""
        return [(s.expr, s.offset) for s in self._sites]

    def sites(self) -> list[Site]:
        """Like expressions(), plus the path of the string inside the value."""
        return list(self._sites)

    def __repr__(self) -> str:
        return f"Value({self.source!r})"


def _compile_string(s: str, path: tuple[Any, ...], sites: list[Site]) -> Fn:
    if "$" not in s:
        return lambda scope: s
    try:
        raw = split_template(s)
    except ParseFailure as exc:
        col = exc.pos + 1
        raise ValueExpressionError(
            _message(exc, col), expression=s, column=col, path=path
        ) from None
    parts: list[str | Expr] = []
    for part in raw:
        if isinstance(part, str):
            parts.append(part)
            continue
        text, offset = part
        try:
            expr = _parse_cached(text)
        except ParseFailure as exc:
            col = offset + exc.pos + 1
            raise ValueExpressionError(
                _message(exc, col), expression=s, column=col, path=path
            ) from None
        sites.append(Site(path, expr, offset))
        parts.append(expr)
    if not parts:
        return lambda scope: ""
    if len(parts) == 1:
        only = parts[0]
        if isinstance(only, Expr):
            return _WholeExpr(only)  # the whole string is one expression: keep its type
        return lambda scope: only
    return _Template(tuple(parts))


def _compile_any(v: Any, path: tuple[Any, ...], sites: list[Site]) -> Fn:
    if isinstance(v, str):
        return _compile_string(v, path, sites)
    if isinstance(v, Mapping):
        items = [(k, _compile_any(x, (*path, k), sites)) for k, x in v.items()]
        return lambda scope: {k: f(scope) for k, f in items}
    if isinstance(v, list | tuple):
        fns = [_compile_any(x, (*path, i), sites) for i, x in enumerate(v)]
        return lambda scope: [f(scope) for f in fns]
    return lambda scope: v


@functools.lru_cache(maxsize=4096)
def _compile_text(text: str) -> Value:
    sites: list[Site] = []
    return Value(text, _compile_string(text, (), sites), sites)


def compile_value(value: Any) -> Value:
    """Compile a YAML value; raises ValueExpressionError (an ExpressionError) on a bad string."""
    if type(value) is str:
        # The checker, the argument checks and the compiler each ask for the same strings;
        # a Value is never changed once made, so one is shared.
        return _compile_text(value)
    sites: list[Site] = []
    try:
        fn = _compile_any(value, (), sites)
    except RecursionError:
        raise ExpressionError("value is nested too deeply") from None
    return Value(value, fn, sites)
