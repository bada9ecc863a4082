"""The registry of library functions: signatures with argument kinds, checked calls, lookup."""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ductwork.dsl.expr.limits import MAX_INT_DIGITS, whole_digits_ok
from ductwork.dsl.expr.runtime import MAX_ITEMS, MAX_TEXT, is_number, type_name

# What an argument may be. Each kind: (runtime test, phrase for messages). `date` and
# `duration` are the two shapes the date functions read (see dates.py).
_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "any": (lambda v: True, "anything"),
    "string": (lambda v: isinstance(v, str), "a string"),
    "number": (is_number, "a number"),
    "integer": (lambda v: type(v) is int, "a whole number"),
    "boolean": (lambda v: isinstance(v, bool), "a boolean"),
    "list": (lambda v: isinstance(v, list | tuple), "a list"),
    "map": (lambda v: isinstance(v, Mapping), "a map"),
    "null": (lambda v: v is None, "null"),
    "bytes": (lambda v: isinstance(v, bytes | bytearray), "bytes"),
    "date": (lambda v: isinstance(v, str | _dt.date) or is_number(v),
             "a date (ISO 8601 text, epoch milliseconds or a datetime)"),
    "duration": (lambda v: isinstance(v, str | _dt.timedelta) or is_number(v),
                 "a duration (e.g. '1d', '90m', '-2h' or milliseconds)"),
}

# Static kinds: what the checker can know of an argument before running (a literal's type, a
# function's result kind). "number" is a result that may be whole or not.
_MATCHES: dict[str, frozenset[str]] = {
    "any": frozenset({"null", "boolean", "integer", "float", "number", "string", "list", "map"}),
    "string": frozenset({"string"}),
    "number": frozenset({"integer", "float", "number"}),
    "integer": frozenset({"integer", "number"}),
    "boolean": frozenset({"boolean"}),
    "list": frozenset({"list"}),
    "map": frozenset({"map"}),
    "null": frozenset({"null"}),
    "bytes": frozenset(),
    "date": frozenset({"string", "integer", "float", "number"}),
    "duration": frozenset({"string", "integer", "float", "number"}),
}


# Kinds whose functions may turn a number into a whole one (int(), floor(), a date from
# epoch milliseconds): a Decimal with a huge exponent is refused there, before the conversion.
_NUMERIC = frozenset({"number", "integer", "date", "duration"})


class ArgError(Exception):
    """Raised by a function body; the caller adds the function name and position."""


def article(name: str) -> str:
    """ "a number", "an ...", and plain "null"."""
    if name == "null":
        return "null"
    return ("an " if name[:1] in "aeiou" else "a ") + name


def phrase(kinds: tuple[str, ...]) -> str:
    """How an argument's expected kinds read in a message: "a string or a number"."""
    shown = [_KINDS[k][1] for k in kinds if k != "null"] or ["null"]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


@dataclass(frozen=True)
class Param:
    """One parameter: its name, accepted kinds, and an optional value check (which raises
    ArgError). The check also runs on literal arguments at validate time."""

    name: str
    kinds: tuple[str, ...]
    optional: bool = False
    check: Callable[[Any], None] | None = None

    def accepts(self, value: Any) -> bool:
        return any(_KINDS[k][0](value) for k in self.kinds)

    def matches_static(self, kinds: frozenset[str]) -> bool:
        """Whether a value of one of the static `kinds` may be accepted."""
        return any(kinds & _MATCHES[k] for k in self.kinds)

    def typed(self) -> str:
        kinds = [k for k in self.kinds if not (self.optional and k == "null")]
        return f"{self.name}: {'|'.join(kinds)}"


@dataclass(frozen=True)
class FunctionInfo:
    """What the compiler and the docs need: arity, signature, argument kinds, result kind."""

    name: str
    min_args: int
    max_args: int | None  # None: any number
    signature: str  # as messages show it: "pad_start(text, width, [fill])"
    doc: str
    deterministic: bool = True  # False for now() and uuid(): differ on every evaluation
    params: tuple[Param, ...] = ()
    returns: str = "any"  # a kind, or kinds joined by "|"
    example: str = ""  # an expression, shown (and run) by docs and tests
    group: str = ""  # the theme it is listed under: text, lists, dates, data
    aliases: tuple[str, ...] = field(default=(), compare=False)  # other names of the function
    primary: str = ""  # the name it is documented under (itself, unless it is an alias)

    def accepts(self, n: int) -> bool:
        return n >= self.min_args and (self.max_args is None or n <= self.max_args)

    def arity(self) -> str:
        if self.max_args == self.min_args:
            n = self.min_args
            return f"{n} argument" + ("" if n == 1 else "s")
        if self.max_args is None:
            return f"at least {self.min_args} argument" + ("" if self.min_args == 1 else "s")
        return f"{self.min_args} to {self.max_args} arguments"

    def param(self, i: int) -> Param | None:
        """The parameter of argument `i` (a variadic function repeats its last one)."""
        if i < len(self.params):
            return self.params[i]
        return self.params[-1] if self.max_args is None and self.params else None

    def typed_signature(self) -> str:
        parts = [f"[{p.typed()}]" if p.optional else p.typed() for p in self.params]
        if self.max_args is None:
            parts.append("...")
        return f"{self.name}({', '.join(parts)}) -> {self.returns}"

    def result_kinds(self) -> frozenset[str]:
        """Static kinds of the result; empty when nothing is known ("any")."""
        kinds = set(self.returns.split("|"))
        if "any" in kinds or "date" in kinds:
            return frozenset()
        return frozenset(kinds)


def check_arg(info: FunctionInfo, i: int, value: Any) -> None:
    """Raise ArgError unless `value` fits argument `i` of the function."""
    p = info.param(i)
    if p is None:
        return
    if not p.accepts(value):
        what = "each argument" if i >= len(info.params) else p.name
        # "width must be a whole number, not 1.5" says more than "..., not a number".
        got = str(value) if is_number(value) and "integer" in p.kinds else article(
            type_name(value))
        raise ArgError(f"{what} must be {phrase(p.kinds)}, not {got[:40]}")
    if not whole_digits_ok(value) and _NUMERIC.intersection(p.kinds):
        raise ArgError(f"{p.name} is too large (more than {MAX_INT_DIGITS} digits as a whole "
                       "number)")
    if p.check is not None and value is not None:
        p.check(value)


Impl = Callable[..., Any]
# name -> (info, checked implementation, lazy). A lazy function receives thunks (zero-argument
# callables) instead of values, so that default(ctx.input.maybe, 1) can survive a missing path.
TABLE: dict[str, tuple[FunctionInfo, Impl, bool]] = {}

_SIGNATURE = re.compile(r"(?P<name>\w+)\((?P<params>.*)\)\s*->\s*(?P<returns>[\w|]+)\Z")


def _params(text: str, checks: Mapping[str, Callable[[Any], None]]) -> tuple[
        tuple[Param, ...], bool]:
    params: list[Param] = []
    variadic = False
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "...":
            variadic = True
            continue
        optional = part.startswith("[")
        name, _, kinds = part.strip("[]").partition(":")
        name = name.strip()
        kind_list = tuple(k.strip() for k in (kinds or "any").split("|"))
        if optional and "null" not in kind_list:
            kind_list += ("null",)  # an explicit null means "not given"
        for k in kind_list:
            if k not in _KINDS:
                raise ValueError(f"unknown kind {k!r} in {text!r}")
        params.append(Param(name, kind_list, optional, checks.get(name)))
    return tuple(params), variadic


def fn(
    signature: str, doc: str, *, example: str = "", group: str = "", lazy: bool = False,
    deterministic: bool = True, aliases: tuple[str, ...] = (),
    checks: Mapping[str, Callable[[Any], None]] | None = None,
) -> Callable[[Impl], Impl]:
    """Register a function from a typed signature: `pad_start(text: string|number,
    width: integer, [fill: string]) -> string`; `...` repeats the last parameter."""
    m = _SIGNATURE.match(signature)
    if m is None:
        raise ValueError(f"bad signature {signature!r}")
    name = m["name"]
    params, variadic = _params(m["params"], checks or {})
    lo = sum(1 for p in params if not p.optional)
    hi = None if variadic else len(params)
    plain = ", ".join(f"[{p.name}]" if p.optional else p.name for p in params)
    plain += ", ..." if variadic else ""

    def register(impl: Impl) -> Impl:
        for n in (name, *aliases):
            info = FunctionInfo(n, lo, hi, f"{n}({plain})", doc, deterministic, params,
                                m["returns"], example, group,
                                tuple(a for a in (name, *aliases) if a != n), name)
            TABLE[n] = (info, impl if lazy else _checked(info, impl), lazy)
        return impl

    return register


def _checked(info: FunctionInfo, impl: Impl) -> Impl:
    def call(*args: Any) -> Any:
        for i, v in enumerate(args):
            check_arg(info, i, v)
        return impl(*args)

    return call


# -- helpers shared by the themes -------------------------------------------------------------


def cap_text(s: str) -> str:
    if len(s) > MAX_TEXT:
        raise ArgError(f"result would be longer than {MAX_TEXT} characters")
    return s


def cap_items(items: list[Any]) -> list[Any]:
    if len(items) > MAX_ITEMS:
        raise ArgError(f"result would have more than {MAX_ITEMS} items")
    return items


def one_of(what: str, allowed: tuple[str, ...]) -> Callable[[Any], None]:
    """A value check: the argument must be one of `allowed` (e.g. a unit or an order)."""

    def check(v: Any) -> None:
        if v not in allowed:
            raise ArgError(f"{what} must be one of {', '.join(repr(a) for a in allowed)}, "
                           f"not {v!r}"[:300])

    return check
