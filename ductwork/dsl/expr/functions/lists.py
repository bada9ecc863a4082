"""List functions: sizes, aggregates, picking/filtering by field, sorting, grouping, slicing."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from ductwork.dsl.expr.functions.registry import ArgError, article, cap_items, fn, one_of
from ductwork.dsl.expr.runtime import Fail, equal, is_number, to_text, truthy, type_name

G = "lists"
MAX_RANGE = 10_000
_ABSENT = object()


def field_path(path: str) -> list[str | int]:
    """`customer.address.city` -> its segments; a whole-number segment indexes a list."""
    if path == "":
        raise ArgError("field must not be empty")
    return [int(s) if s.isdigit() else s for s in path.split(".")]


def _check_field(v: Any) -> None:
    field_path(v)


def dig(value: Any, segments: list[str | int]) -> Any:
    """The value at a field path, or _ABSENT when some segment is missing (never an error)."""
    for seg in segments:
        if isinstance(value, Mapping):
            value = value.get(str(seg), _ABSENT) if isinstance(seg, int) else value.get(
                seg, _ABSENT)
        elif isinstance(value, list | tuple) and isinstance(seg, int):
            value = value[seg] if seg < len(value) else _ABSENT
        else:
            return _ABSENT
        if value is _ABSENT:
            return _ABSENT
    return value


def _fields(items: list[Any], field: str | None, *, strict: bool) -> Iterator[tuple[int, Any]]:
    """(index, value of the field) of each item; the item itself when field is None. `strict`:
    a missing field is an error (aggregates), else null (pluck, filter)."""
    if field is None:
        yield from enumerate(items)
        return
    segments = field_path(field)
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ArgError(f"item {i} is {_a(item)}, not a map with field '{field}'")
        v = dig(item, segments)
        if v is _ABSENT:
            if strict:
                keys = ", ".join(str(k) for k in list(item)[:10])
                raise ArgError(f"item {i} has no field '{field}' (fields: {keys or 'none'})")
            v = None
        yield i, v


def _a(v: Any) -> str:
    return article(type_name(v))


def _numbers(items: list[Any], field: str | None) -> list[Any]:
    out = []
    for i, v in _fields(items, field, strict=True):
        if not is_number(v):
            what = f"item {i}" + (f" field '{field}'" if field else "")
            raise ArgError(f"{what} is {_a(v)}, not a number")
        out.append(v)
    if any(isinstance(x, Decimal) for x in out) and any(type(x) is float for x in out):
        out = [float(x) for x in out]  # Decimal and float do not mix; the float lost exactness
    return out


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


@fn("sum(list: list, [field: string]) -> number",
    "the sum of a list of numbers, or of one field of a list of maps (0 for an empty list)",
    group=G, example="sum([{price: 2}, {price: 3.5}], 'price')", checks={"field": _check_field})
def _sum(items: list[Any], field: str | None = None) -> Any:
    total: Any = 0
    for x in _numbers(items, field):
        total = total + x
    return total


@fn("avg(list: list, [field: string]) -> number",
    "the mean of a list of numbers (or of one field of a list of maps); an empty list is an "
    "error", group=G, example="avg([1, 2, 3, 4])", checks={"field": _check_field})
def _avg(items: list[Any], field: str | None = None) -> Any:
    values = _numbers(items, field)
    if not values:
        raise ArgError("avg() of an empty list")
    total: Any = 0
    for x in values:
        total = total + x
    if all(type(x) is int for x in values) and total % len(values) == 0:
        return total // len(values)
    return total / len(values)


def _extreme(args: tuple[Any, ...], name: str, pick: Any) -> Any:
    if len(args) == 2 and isinstance(args[0], list | tuple) and isinstance(args[1], str):
        items = [v for _, v in _fields(list(args[0]), args[1], strict=True)]
    elif len(args) == 1 and isinstance(args[0], list | tuple):
        items = list(args[0])
    else:
        items = list(args)
    if not items:
        raise ArgError(f"{name}() of an empty list")
    kinds = {_order_kind(x) for x in items}
    if len(kinds) != 1 or None in kinds:
        raise ArgError("values must all be numbers, all strings or all dates")
    return pick(items)


@fn("min(value: any, ...) -> any",
    "the smallest of the arguments, of one list argument, or of one field of a list of maps "
    "(min(list, field))", group=G, example="min([3, 1, 2])")
def _min(*args: Any) -> Any:
    return _extreme(args, "min", min)


@fn("max(value: any, ...) -> any",
    "the largest of the arguments, of one list argument, or of one field of a list of maps "
    "(max(list, field))", group=G, example="max([{n: 3}, {n: 5}], 'n')")
def _max(*args: Any) -> Any:
    return _extreme(args, "max", max)


# -- by field ---------------------------------------------------------------------------------


def _matches(v: Any, value: Any, compare: bool) -> bool:
    return equal(v, value) if compare else truthy(v)


@fn("pluck(list: list, field: string) -> list",
    "the value of field (a path like 'customer.id') of every map of the list; null where it "
    "is missing", group=G, aliases=("map",), example="pluck([{id: 1}, {id: 2}], 'id')",
    checks={"field": _check_field})
def _pluck(items: list[Any], field: str) -> list[Any]:
    return [v for _, v in _fields(items, field, strict=False)]


# `filter(list, field, value)` must tell "value not given" from "value is null": the number of
# arguments does, so these take *rest.
def _filtered(items: list[Any], rest: tuple[Any, ...]) -> Iterator[Any]:
    field = rest[0] if rest else None
    compare = len(rest) == 2
    value = rest[1] if compare else None
    for (_, v), item in zip(_fields(items, field, strict=False), items, strict=True):
        if _matches(v, value, compare):
            yield item


@fn("filter(list: list, [field: string], [value: any]) -> list",
    "the items whose field is truthy, or equals value when one is given; without a field, "
    "the truthy items", group=G, example="filter([{paid: true}, {paid: false}], 'paid')",
    checks={"field": _check_field})
def _filter(items: list[Any], *rest: Any) -> list[Any]:
    return list(_filtered(items, rest))


@fn("find(list: list, field: string, [value: any]) -> any",
    "the first item whose field is truthy (or equals value); null when none does", group=G,
    example="find([{id: 1}, {id: 2}], 'id', 2)", checks={"field": _check_field})
def _find(items: list[Any], *rest: Any) -> Any:
    return next(_filtered(items, rest), None)


@fn("count(list: list, [field: string], [value: any]) -> integer",
    "how many items have a truthy field (or field equal to value); without a field, the "
    "number of items", group=G, example="count([{ok: true}, {ok: false}], 'ok')",
    checks={"field": _check_field})
def _count(items: list[Any], *rest: Any) -> int:
    if not rest:
        return len(items)
    return sum(1 for _ in _filtered(items, rest))


def _key(v: Any) -> Any:
    """A hashable stand-in with the expression language's equality (true is not 1)."""
    if isinstance(v, bool) or v is None:
        return ("b", v)
    if is_number(v) or isinstance(v, str | _dt.date):
        return ("v", v)
    if isinstance(v, list | tuple):
        return ("l", tuple(_key(x) for x in v))
    if isinstance(v, Mapping):
        return ("m", frozenset((k, _key(x)) for k, x in v.items()))
    return ("o", id(v))


@fn("unique(list: list, [field: string]) -> list",
    "the items without repeats (the first one kept); with a field, one item per value of it",
    group=G, example="unique([1, 2, 1, 3])", checks={"field": _check_field})
def _unique(items: list[Any], field: str | None = None) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for (_, v), item in zip(_fields(items, field, strict=False), items, strict=True):
        k = _key(v)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out


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


@fn("sort(list: list, [field: string], [order: string]) -> list",
    "the items in ascending order (or 'desc'), by their value or by a field; values must be "
    "all numbers, all strings or all dates; nulls go last", group=G, aliases=("sort_by",),
    example="sort([{n: 2}, {n: 1}], 'n')",
    checks={"field": _check_field, "order": one_of("order", ("asc", "desc"))})
def _sort(items: list[Any], field: str | None = None, order: str | None = None) -> list[Any]:
    pairs = [(v, item) for (_, v), item in zip(_fields(items, field, strict=False), items,
                                                 strict=True)]
    present = [(v, item) for v, item in pairs if v is not None]
    nulls = [item for v, item in pairs if v is None]
    kinds = {_order_kind(v) for v, _ in present}
    if None in kinds or len(kinds) > 1:
        shown = sorted({type_name(v) for v, _ in present})
        raise ArgError(f"cannot sort a mix of {' and '.join(shown)} values: they must be all "
                       "numbers, all strings or all dates")
    try:
        present.sort(key=lambda p: p[0], reverse=order == "desc")
    except TypeError:  # aware and naive datetimes
        raise ArgError("cannot compare these dates (some have a time zone, some not)") from None
    return [item for _, item in present] + nulls


@fn("group_by(list: list, field: string) -> map",
    "a map from each value of field (as text) to the list of items having it, in order of "
    "first appearance", group=G, example="group_by([{s: 'a'}, {s: 'b'}, {s: 'a'}], 's')",
    checks={"field": _check_field})
def _group_by(items: list[Any], field: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for (_, v), item in zip(_fields(items, field, strict=False), items, strict=True):
        try:
            key = to_text(v, 0)
        except Fail as exc:
            raise ArgError(exc.message) from None
        out.setdefault(key, []).append(item)
    return out


# -- positions --------------------------------------------------------------------------------


@fn("first(list: list) -> any", "the first item, or null for an empty list", group=G,
    example="first([1, 2, 3])")
def _first(items: list[Any]) -> Any:
    return items[0] if items else None


@fn("last(list: list) -> any", "the last item, or null for an empty list", group=G,
    example="last([1, 2, 3])")
def _last(items: list[Any]) -> Any:
    return items[-1] if items else None


@fn("reverse(value: list|string) -> list|string", "the list (or text) in reverse order",
    group=G, example="reverse([1, 2, 3])")
def _reverse(v: Any) -> Any:
    return v[::-1] if isinstance(v, str) else list(v)[::-1]


@fn("flatten(list: list) -> list", "the items of the inner lists in one list (one level)",
    group=G, example="flatten([[1, 2], [3], 4])")
def _flatten(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for x in items:
        if isinstance(x, list | tuple):
            out.extend(x)
        else:
            out.append(x)
        cap_items(out)
    return out


@fn("slice(value: list|string, start: integer, [end: integer]) -> list|string",
    "the items (or characters) from start up to, not including, end; negative positions "
    "count from the end", group=G, aliases=("substring",), example="slice('abcdef', 1, 3)")
def _slice(v: Any, start: int, end: int | None = None) -> Any:
    out = v[start:end]
    return out if isinstance(v, str) else list(out)


@fn("index_of(value: list|string, item: any) -> integer",
    "the position of the first item equal to item (or of the substring), -1 when absent",
    group=G, example="index_of(['a', 'b'], 'b')")
def _index_of(v: Any, item: Any) -> int:
    if isinstance(v, str):
        if not isinstance(item, str):
            raise ArgError(f"item must be a string to search a string, not {_a(item)}")
        return v.find(item)
    return next((i for i, x in enumerate(v) if equal(x, item)), -1)
