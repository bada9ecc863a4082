"""List functions: sizes, ranges and aggregates."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from ductwork.dsl.expr.functions.registry import ArgError, article, fn
from ductwork.dsl.expr.runtime import is_number, type_name

G = "lists"
MAX_RANGE = 10_000


def _a(v: Any) -> str:
    return article(type_name(v))


# -- sizes ------------------------------------------------------------------------------------


@fn("size(value: string|list|map|null) -> integer",
    "the number of items of a list, keys of a map or characters of a string; null is 0 "
    "(anything else is an error)", group=G, aliases=("length", "len"),
    example="size([1, 2, 3])")
def _size(v: Any) -> int:
    return 0 if v is None else len(v)


@fn("range([start: integer], stop: integer, [step: integer]) -> list",
    f"the whole numbers from start (default 0) up to, not including, stop (at most {MAX_RANGE})",
    group=G, example="range(1, 7, 2)")
def _range(a: int, b: int | None = None, step: int | None = None) -> list[int]:
    start, stop = (0, a) if b is None else (a, b)
    st = 1 if step is None else step
    if st == 0:
        raise ArgError("step must not be 0")
    r = range(start, stop, st)
    if len(r) > MAX_RANGE:
        raise ArgError(f"range would have more than {MAX_RANGE} numbers")
    return list(r)


# -- aggregates -------------------------------------------------------------------------------


@fn("sum(list: list) -> number", "the sum of a list of numbers (0 for an empty list)", group=G,
    example="sum([1, 2.5])")
def _sum(items: list[Any]) -> Any:
    total: Any = 0
    for i, x in enumerate(items):
        if not is_number(x):
            raise ArgError(f"item {i} is {_a(x)}, not a number")
        total = total + x
    return total


def _order_kind(v: Any) -> str | None:
    if is_number(v):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, _dt.datetime):
        return "datetime"
    if isinstance(v, _dt.date):
        return "date"
    return None


def _extreme(args: tuple[Any, ...], name: str, pick: Any) -> Any:
    items = list(args[0]) if len(args) == 1 and isinstance(args[0], list | tuple) else list(args)
    if not items:
        raise ArgError(f"{name}() of an empty list")
    kinds = {_order_kind(x) for x in items}
    if len(kinds) != 1 or None in kinds:
        raise ArgError("values must all be numbers, all strings or all dates")
    return pick(items)


@fn("min(value: any, ...) -> any", "the smallest of the arguments, or of one list argument",
    group=G, example="min([3, 1, 2])")
def _min(*args: Any) -> Any:
    return _extreme(args, "min", min)


@fn("max(value: any, ...) -> any", "the largest of the arguments, or of one list argument",
    group=G, example="max(3, 5)")
def _max(*args: Any) -> Any:
    return _extreme(args, "max", max)
