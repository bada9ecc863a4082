"""The template sandbox: Jinja2's, plus budgets on size, numbers, loops and calls per render."""

from __future__ import annotations

import functools
import re
import string
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import TemplateError
from jinja2.filters import pass_eval_context
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_SOURCE = 100_000      # characters of one template's source (checked by validate too)
MAX_OUTPUT = 1_000_000    # characters of one rendered template, and of any text made in it
MAX_ITEMS = 100_000       # items of a list made in a template
MAX_INT_DIGITS = 4000     # digits of a number made in a template
MAX_STEPS = 500_000       # work of one render, ~1 s: 1 a loop iteration, operator or filter,
_CALL = 20                # this much a call (a macro call costs ~20 loop iterations)
MAX_SECONDS = 5.0         # wall-clock backstop of one render (the step budget comes first)
_MAX_INT_BITS = int(MAX_INT_DIGITS * 3.3219280948873626) + 1


class TemplateLimitError(TemplateError):
    """A template went past one of the limits above; the message says which."""


class _Budget(threading.local):
    """What is left of the current render's work, per thread (rendering never awaits); a
    render outside render_bounded() is not charged."""

    active = False
    steps = MAX_STEPS
    started = 0.0


_BUDGET = _Budget()


def _spend(units: int) -> None:
    b = _BUDGET
    if not b.active:
        return
    b.steps -= units
    if b.steps < 0:
        raise TemplateLimitError(f"template does too much work (more than {MAX_STEPS:,} loop "
                                 "iterations, calls and filters)")
    if time.monotonic() - b.started > MAX_SECONDS:
        raise TemplateLimitError(f"template takes too long (more than {MAX_SECONDS:g} s)")


def _size(v: Any) -> int:
    return len(v) if isinstance(v, str | list | tuple | dict) else 0


def _text_cap(n: int, what: str = "text") -> None:
    if n > MAX_OUTPUT:
        raise TemplateLimitError(f"{what} would be longer than {MAX_OUTPUT:,} characters")


def _int_cap(v: Any, where: str) -> None:
    if type(v) is int and abs(v) > MAX_OUTPUT:
        raise TemplateLimitError(f"{where}: {v if v.bit_length() < 64 else 'the number'} is "
                                 f"too large for a template (at most {MAX_OUTPUT:,})")


def _logical_items(v: Any, times: int) -> None:
    """`times` copies of list `v` stay within MAX_ITEMS values, nested lists counted each
    time they repeat (memo by identity, so shared lists are walked once)."""
    limit = MAX_ITEMS // max(times, 1)
    memo: dict[int, int] = {}

    def walk(x: Any, depth: int) -> int:
        if id(x) in memo:
            return memo[id(x)]
        if depth > 100:
            raise TemplateLimitError("list is nested too deeply")
        n = 1 + len(x)
        for item in x:
            if isinstance(item, list | tuple):
                n += walk(item, depth + 1) - 1
            if n > limit:
                raise TemplateLimitError(f"list would hold more than {MAX_ITEMS:,} values "
                                         "(nested ones counted each time they repeat)")
        memo[id(x)] = n
        return n

    walk(v, 0)


# printf-style and str.format-style fields: their widths and precisions are what can make a
# short format string produce a huge text.
_PRINTF = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_SPEC_NUMBER = re.compile(r"\d+")


def _check_printf(fmt: str, args: Any) -> None:
    total = len(fmt) + sum(_size(a) for a in (args if isinstance(args, tuple) else (args,)))
    for m in _PRINTF.finditer(fmt):
        for g in m.groups():
            if g == "*":
                raise TemplateLimitError("'*' widths are not allowed in template formats")
            if g:
                if len(g) > 7:
                    raise TemplateLimitError("format width too large")
                total += int(g)
    _text_cap(total, "formatted text")


def _check_brace_format(fmt: str, args: Iterable[Any]) -> None:
    total = len(fmt) + sum(_size(a) for a in args)
    try:
        fields = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # str.format raises the same error, with its message
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise TemplateLimitError("nested fields in a format spec are not allowed")
        for number in _SPEC_NUMBER.findall(spec or ""):
            if len(number) > 7:
                raise TemplateLimitError("format width too large")
            total += int(number)
    _text_cap(total, "formatted text")


# -- operators ---------------------------------------------------------------------------------


def _mul(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int:
        if a.bit_length() + b.bit_length() > _MAX_INT_BITS:
            raise TemplateLimitError(f"number would have more than {MAX_INT_DIGITS} digits")
    elif isinstance(a, str | list | tuple) and type(b) is int:
        return _repeat(a, b)
    elif isinstance(b, str | list | tuple) and type(a) is int:
        return _repeat(b, a)
    return a * b


def _repeat(seq: Any, n: int) -> Any:
    if n > 0:
        if isinstance(seq, str):
            _text_cap(len(seq) * n if n <= MAX_OUTPUT else MAX_OUTPUT + 1)
        else:
            if n > MAX_ITEMS or len(seq) * n > MAX_ITEMS:
                raise TemplateLimitError(f"list would have more than {MAX_ITEMS:,} items")
            _logical_items(seq, n)
        _spend(1 + min(len(seq) * n, MAX_OUTPUT) // 64)
    return seq * n


def _pow(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int and b > 0 and abs(a) > 1 and (
            b > _MAX_INT_BITS or a.bit_length() * (b - 1) > _MAX_INT_BITS):
        raise TemplateLimitError(f"number would have more than {MAX_INT_DIGITS} digits")
    return a**b


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        _text_cap(len(a) + len(b))
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) + len(b) > MAX_ITEMS:
            raise TemplateLimitError(f"list would have more than {MAX_ITEMS:,} items")
    elif type(a) is int and type(b) is int and max(a.bit_length(), b.bit_length()) >= \
            _MAX_INT_BITS:
        raise TemplateLimitError(f"number would have more than {MAX_INT_DIGITS} digits")
    return a + b


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):
        _check_printf(a, b)
    return a % b


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {"*": _mul, "**": _pow, "+": _add, "%": _mod}


# -- filters and calls -------------------------------------------------------------------------


def _check_filter(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """What a filter would make, checked from its arguments before it runs."""
    value = args[0] if args else None
    rest = [*args[1:], *kwargs.values()]
    for v in rest:
        _int_cap(v, f"filter '{name}'")
    if name == "replace" and isinstance(value, str) and len(args) >= 3:
        old, new = str(args[1]), str(args[2])
        count = value.count(old) if old else len(value) + 1
        _text_cap(len(value) + count * max(len(new) - len(old), 0))
    elif name == "join" and isinstance(value, list | tuple):
        sep = str(args[1]) if len(args) > 1 else str(kwargs.get("d", ""))
        _text_cap(sum(len(x) if isinstance(x, str) else 20 for x in value)
                  + len(sep) * len(value))
    elif name in ("indent", "center", "wordwrap") and isinstance(value, str):
        width = next((v for v in rest if type(v) is int), 4)
        _text_cap(len(value) + (value.count("\n") + 1) * width)
    elif name == "format" and isinstance(value, str):
        _check_printf(value, tuple(args[1:]))


def _guard_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    # A filter marked pass_context / pass_eval_context / pass_environment gets that first.
    skip = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(fn)  # keeps that marker
    def guarded(*args: Any, **kwargs: Any) -> Any:
        plain = args[skip:]
        _spend(1 + sum(_size(a) for a in plain) // 64)
        _check_filter(name, plain, kwargs)
        out = fn(*args, **kwargs)
        if isinstance(out, str):
            _text_cap(len(out))
        return out

    return guarded


@pass_eval_context
def _loop(eval_ctx: EvalContext, iterable: Any) -> Iterator[Any]:
    """What every `{% for %}` iterates: the same items, one step of the budget each."""
    for item in iterable:
        _spend(1)
        yield item


@pass_eval_context
def _concat(eval_ctx: EvalContext, parts: list[Any]) -> str:
    """`a ~ b`: sized before joining (a doubling `{% set ns.s = ns.s ~ ns.s %}` stops here)."""
    _text_cap(sum(len(p) if isinstance(p, str) else 20 for p in parts))
    joined: str = (markup_join if eval_ctx.autoescape else str_join)(parts)
    _text_cap(len(joined))
    return joined


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """An immutable sandbox whose operators, filters, calls, loops and `~` are budgeted, with
    no constant folding (jinja would otherwise compute `9**(9**9)` while compiling)."""

    intercepted_binops = frozenset(_BINOPS)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(optimized=False, **kwargs)
        for name, fn in list(self.filters.items()):
            self.filters[name] = _guard_filter(name, fn)
        self.filters["_dw_loop"] = _loop
        self.filters["_dw_concat"] = _concat

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        _spend(1)
        return _BINOPS[operator_](left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        _spend(_CALL + sum(_size(a) for a in args) // 64)
        name = getattr(__obj, "__name__", "")
        for v in (*args, *kwargs.values()):
            _int_cap(v, f"{name or 'call'}()")
        target = getattr(__obj, "__self__", None)
        if isinstance(target, str):
            _check_str_method(target, name, args)
        out = super().call(__context, __obj, *args, **kwargs)
        if isinstance(out, str):
            _text_cap(len(out))
        return out

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_brace_format(fmt, (*args, *kwargs.values()))
            return wrapped(*args, **kwargs)

        return checked

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        if len(source) > MAX_SOURCE:
            raise TemplateLimitError(f"template is too long ({len(source):,} characters, at "
                                     f"most {MAX_SOURCE:,})")
        tree = _Budgeted().visit(super()._parse(source, name, filename))
        assert isinstance(tree, nodes.Template)
        return tree


class _Budgeted(NodeTransformer):
    """Routes every loop's iterable through _dw_loop and every `~` through _dw_concat."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_dw_loop", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(nodes.List(node.nodes, lineno=node.lineno), "_dw_concat", [], [],
                            None, None, lineno=node.lineno)


def _check_str_method(s: str, name: str, args: tuple[Any, ...]) -> None:
    if name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        count = s.count(old) if old else len(s) + 1
        _text_cap(len(s) + count * max(len(new) - len(old), 0))
    elif name == "join" and args and isinstance(args[0], list | tuple):
        _text_cap(sum(len(x) if isinstance(x, str) else 20 for x in args[0])
                  + len(s) * len(args[0]))
    elif name == "expandtabs":
        width = args[0] if args and type(args[0]) is int else 8
        _text_cap(len(s) + s.count("\t") * width)


def render_bounded(template: Any, variables: Mapping[str, Any]) -> str:
    """Render with a fresh budget, stopping as soon as the output passes MAX_OUTPUT."""
    b = _BUDGET
    b.active, b.steps, b.started = True, MAX_STEPS, time.monotonic()
    out: list[str] = []
    total = 0
    try:
        for chunk in template.generate(variables):
            total += len(chunk)
            _text_cap(total, "rendered template")
            out.append(chunk)
    finally:
        b.active = False
    return "".join(out)


