"""Data functions: JSON, conversions, numbers, maps and paths, missing values, ids."""

from __future__ import annotations

import json
import math
import uuid as _uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from ductwork.dsl.expr.functions.lists import _ABSENT, dig, field_path
from ductwork.dsl.expr.functions.registry import ArgError, fn
from ductwork.dsl.expr.runtime import Fail, to_json, to_text, truthy

G = "data"


def _check_indent(v: Any) -> None:
    if not 0 <= v <= 8:
        raise ArgError("indent must be a whole number from 0 to 8")


# -- JSON -------------------------------------------------------------------------------------


@fn("parse_json(text: string|bytes) -> any", "the value a JSON text encodes", group=G,
    example="parse_json('{\"a\": [1, 2]}')")
def _parse_json(v: Any) -> Any:
    try:
        return json.loads(v)
    except json.JSONDecodeError as exc:
        raise ArgError(f"not valid JSON: {exc.msg} at character {exc.pos}") from None
    except (ValueError, RecursionError):
        raise ArgError("not valid JSON (too large, nested too deeply, or not UTF-8)") from None


@fn("stringify(value: any, [indent: integer]) -> string",
    "the value as compact JSON text (or indented); dates are written as ISO 8601 text",
    group=G, aliases=("json",), example="stringify({a: [1, true, null]})",
    checks={"indent": _check_indent})
def _stringify(v: Any, indent: int | None = None) -> str:
    try:
        return to_json(v, 0, indent)
    except Fail as exc:
        raise ArgError(exc.message) from None


# -- missing values ---------------------------------------------------------------------------


def _try(thunk: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return True, thunk()
    except Fail as exc:
        if exc.missing:
            return False, None
        raise


@fn("default(value: any, fallback: any) -> any",
    "value, or fallback when value is null or its path is missing", group=G, lazy=True,
    example="default(null, 'friend')")
def _default(value: Callable[[], Any], fallback: Callable[[], Any]) -> Any:
    ok, v = _try(value)
    return v if ok and v is not None else fallback()


@fn("coalesce(value: any, ...) -> any",
    "the first value that is not null and whose path exists (null when none)", group=G,
    lazy=True, example="coalesce(null, 'x')")
def _coalesce(*values: Callable[[], Any]) -> Any:
    for thunk in values:
        ok, v = _try(thunk)
        if ok and v is not None:
            return v
    return None


@fn("exists(value: any) -> boolean", "whether the path exists and is not null", group=G,
    lazy=True, example="exists(null)")
def _exists(value: Callable[[], Any]) -> bool:
    ok, v = _try(value)
    return ok and v is not None


# -- conversions ------------------------------------------------------------------------------


@fn("int(value: number|string|boolean) -> integer",
    "a whole number from a number, numeric text or boolean (truncates toward zero)", group=G,
    example="int('42')")
def _to_int(v: Any) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, str):
        s = v.strip()
        if len(s) > 4000:
            raise ArgError("text is too long to be a number")
        try:
            return int(s)
        except ValueError:
            try:
                v = float(s)
            except ValueError:
                raise ArgError("text is not a number") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise ArgError("cannot convert infinity or NaN to a whole number")
    if isinstance(v, Decimal) and not v.is_finite():
        raise ArgError("cannot convert infinity or NaN to a whole number")
    return int(v)


@fn("float(value: number|string|boolean) -> number",
    "a number (with decimals) from a number, numeric text or boolean", group=G,
    example="float('2.5')")
def _to_float(v: Any) -> float:
    if isinstance(v, str):
        if len(v) > 4000:
            raise ArgError("text is too long to be a number")
        try:
            return float(v.strip())
        except ValueError:
            raise ArgError("text is not a number") from None
    try:
        return float(v)
    except OverflowError:
        raise ArgError("number too large") from None


@fn("str(value: any) -> string",
    "the value as text: strings as they are, null -> 'null', booleans -> 'true'/'false', "
    "lists and maps -> JSON, dates -> ISO 8601", group=G, example="str([1, 'a'])")
def _to_str(v: Any) -> str:
    try:
        return to_text(v, 0)
    except Fail as exc:
        raise ArgError(exc.message) from None


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}


@fn("bool(value: any) -> boolean",
    "truthiness (null, false, 0, '', [] and {} are false); text must be "
    "true/false/yes/no/on/off/1/0", group=G, example="bool('yes')")
def _to_bool(v: Any) -> bool:
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise ArgError("text is not a boolean (true/false, yes/no, on/off, 1/0)")
    return truthy(v)


# -- numbers ----------------------------------------------------------------------------------


def _check_digits(v: Any) -> None:
    if not -30 <= v <= 30:
        raise ArgError("digits must be between -30 and 30")


@fn("round(number: number, [digits: integer]) -> number",
    "the number rounded to digits decimals (0 by default; halves go to the even neighbour)",
    group=G, example="round(2.567, 2)", checks={"digits": _check_digits})
def _round(n: Any, digits: int | None = None) -> Any:
    try:
        return round(n) if digits is None else round(n, digits)
    except (OverflowError, ValueError, ArithmeticError):
        raise ArgError("cannot round infinity or NaN") from None


def _whole(op: Callable[[Any], int], n: Any) -> int:
    try:
        return op(n)
    except (OverflowError, ValueError, ArithmeticError):
        raise ArgError("cannot round infinity or NaN") from None


@fn("floor(number: number) -> integer", "the largest whole number not above the number",
    group=G, example="floor(2.7)")
def _floor(n: Any) -> int:
    return _whole(math.floor, n)


@fn("ceil(number: number) -> integer", "the smallest whole number not below the number",
    group=G, example="ceil(2.1)")
def _ceil(n: Any) -> int:
    return _whole(math.ceil, n)


@fn("abs(number: number) -> number", "the absolute value", group=G, example="abs(-3)")
def _abs(n: Any) -> Any:
    return abs(n)


# -- maps and paths ---------------------------------------------------------------------------


@fn("keys(map: map) -> list", "the keys of a map as a list", group=G,
    example="keys({a: 1, b: 2})")
def _keys(m: Mapping[Any, Any]) -> list[Any]:
    return list(m.keys())


@fn("values(map: map) -> list", "the values of a map as a list", group=G,
    example="values({a: 1, b: 2})")
def _values(m: Mapping[Any, Any]) -> list[Any]:
    return list(m.values())


@fn("merge(map: map, ...) -> map", "one map with the keys of all maps (later ones win)",
    group=G, example="merge({a: 1, b: 1}, {b: 2})")
def _merge(*maps: Mapping[Any, Any]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for m in maps:
        out.update(m)
    return out


def _key_list(keys: Any) -> set[Any]:
    if not all(isinstance(k, str) for k in keys):
        raise ArgError("keys must be a list of strings")
    return set(keys)


@fn("pick(map: map, keys: list) -> map", "the map with only the given keys", group=G,
    example="pick({a: 1, b: 2, c: 3}, ['a', 'c'])")
def _pick(m: Mapping[Any, Any], keys: list[Any]) -> dict[Any, Any]:
    wanted = _key_list(keys)
    return {k: v for k, v in m.items() if k in wanted}


@fn("omit(map: map, keys: list) -> map", "the map without the given keys", group=G,
    example="omit({a: 1, b: 2, c: 3}, ['b'])")
def _omit(m: Mapping[Any, Any], keys: list[Any]) -> dict[Any, Any]:
    unwanted = _key_list(keys)
    return {k: v for k, v in m.items() if k not in unwanted}


def _check_path(v: Any) -> None:
    field_path(v)


@fn("get(value: map|list, path: string, [fallback: any]) -> any",
    "the value at a path given as text ('customer.address.city', 'items.0.sku'), or fallback "
    "(default null) when it is missing or null", group=G,
    example="get({customer: {id: 7}}, 'customer.id')", checks={"path": _check_path})
def _get(v: Any, path: str, fallback: Any = None) -> Any:
    found = dig(v, field_path(path))
    return fallback if found is _ABSENT or found is None else found


# -- ids --------------------------------------------------------------------------------------


@fn("uuid() -> string", "a random UUID (version 4) as text; in a step's arguments or a set: "
    "it is recorded, so a replay sees the same value", group=G, deterministic=False,
    example="uuid()")
def _uuid4() -> str:
    return str(_uuid.uuid4())
