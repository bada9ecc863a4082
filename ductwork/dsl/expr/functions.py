"""The function library of expressions: pure, size-capped, no access to Python objects."""

from __future__ import annotations

import datetime as _dt
import json
import math
import uuid as _uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ductwork.dsl.expr.runtime import (
    MAX_ITEMS,
    MAX_TEXT,
    Fail,
    is_number,
    to_json,
    to_text,
    truthy,
    type_name,
)
from ductwork.dsl.expr.runtime import contains as _in

MAX_RANGE = 10_000


@dataclass(frozen=True)
class FunctionInfo:
    """What the compiler needs to check a call: arity, signature, and whether it is pure."""

    name: str
    min_args: int
    max_args: int | None  # None: any number
    signature: str
    doc: str
    deterministic: bool = True  # False for now() and uuid(): differ on every evaluation

    def accepts(self, n: int) -> bool:
        return n >= self.min_args and (self.max_args is None or n <= self.max_args)

    def arity(self) -> str:
        if self.max_args == self.min_args:
            n = self.min_args
            return f"{n} argument" + ("" if n == 1 else "s")
        if self.max_args is None:
            return f"at least {self.min_args} argument" + ("" if self.min_args == 1 else "s")
        return f"{self.min_args} to {self.max_args} arguments"


class ArgError(Exception):
    """Raised by a function body; the caller adds the function name and position."""


# name -> (info, implementation, lazy). A lazy function receives thunks (zero-argument
# callables) instead of values, so that default(ctx.input.maybe, 1) can survive a missing path.
_TABLE: dict[str, tuple[FunctionInfo, Callable[..., Any], bool]] = {}


def _fn(
    signature: str, doc: str, *, lazy: bool = False, deterministic: bool = True,
    aliases: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    name, _, params = signature.partition("(")
    params = params.rstrip(")")
    parts = [p.strip() for p in params.split(",") if p.strip()]
    required = [p for p in parts if not p.startswith("[") and not p.startswith("...")]
    variadic = any(p.startswith("...") or p.endswith("...") for p in parts)
    lo, hi = len(required), None if variadic else len(parts)

    def register(impl: Callable[..., Any]) -> Callable[..., Any]:
        for n in (name, *aliases):
            info = FunctionInfo(n, lo, hi, signature.replace(name, n, 1), doc, deterministic)
            _TABLE[n] = (info, impl, lazy)
        return impl

    return register


def _text(v: Any, what: str = "text") -> str:
    if not isinstance(v, str):
        raise ArgError(f"{what} must be a string, not a {type_name(v)}")
    return v


def _int(v: Any, what: str) -> int:
    if type(v) is not int:
        raise ArgError(f"{what} must be a whole number, not a {type_name(v)}")
    return v


def _cap_text(s: str) -> str:
    if len(s) > MAX_TEXT:
        raise ArgError(f"result would be longer than {MAX_TEXT} characters")
    return s


# -- sizes, JSON, text ------------------------------------------------------------------------


@_fn("size(value)", "number of items of a list/map or characters of a string; null is 0",
     aliases=("length", "len"))
def _size(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, str | list | tuple | Mapping):
        return len(v)
    raise ArgError(f"a {type_name(v)} has no size")


@_fn("parse_json(text)", "the value a JSON string encodes")
def _parse_json(v: Any) -> Any:
    try:
        return json.loads(_text(v))
    except json.JSONDecodeError as exc:
        raise ArgError(f"not valid JSON: {exc.msg} at character {exc.pos}") from None
    except (ValueError, RecursionError):
        raise ArgError("not valid JSON (too large or nested too deeply)") from None


@_fn("stringify(value, [indent])", "the value as compact JSON text (or indented)",
     aliases=("json",))
def _stringify(v: Any, indent: Any = None) -> str:
    if indent is not None and not (type(indent) is int and 0 <= indent <= 8):
        raise ArgError("indent must be a whole number from 0 to 8")
    return to_json(v, 0, indent)


@_fn("upper(text)", "the text in upper case")
def _upper(v: Any) -> str:
    return _text(v).upper()


@_fn("lower(text)", "the text in lower case")
def _lower(v: Any) -> str:
    return _text(v).lower()


@_fn("trim(text, [chars])", "the text without leading/trailing whitespace (or the given chars)")
def _trim(v: Any, chars: Any = None) -> str:
    return _text(v).strip(None if chars is None else _text(chars, "chars"))


@_fn("split(text, [separator], [limit])", "a list of parts (whitespace-separated by default)")
def _split(v: Any, sep: Any = None, limit: Any = None) -> list[str]:
    s = _text(v)
    if sep is not None and _text(sep, "separator") == "":
        raise ArgError("separator must not be empty")
    n = -1 if limit is None else _int(limit, "limit")
    parts = s.split(sep, n)
    if len(parts) > MAX_ITEMS:
        raise ArgError(f"result would have more than {MAX_ITEMS} items")
    return parts


@_fn("join(list, [separator])", "the items as text joined by separator (default ',')")
def _join(items: Any, sep: Any = ",") -> str:
    if not isinstance(items, list | tuple):
        raise ArgError(f"list must be a list, not a {type_name(items)}")
    return _cap_text(_text(sep, "separator").join(to_text(x, 0) for x in items))


@_fn("replace(text, old, new)", "the text with every `old` replaced by `new`")
def _replace(v: Any, old: Any, new: Any) -> str:
    s, o, n = _text(v), _text(old, "old"), _text(new, "new")
    count = len(s) + 1 if o == "" else s.count(o)
    if len(s) + count * (len(n) - len(o)) > MAX_TEXT:
        raise ArgError(f"result would be longer than {MAX_TEXT} characters")
    return s.replace(o, n)


@_fn("starts_with(text, prefix)", "whether the text starts with prefix")
def _starts_with(v: Any, prefix: Any) -> bool:
    return _text(v).startswith(_text(prefix, "prefix"))


@_fn("ends_with(text, suffix)", "whether the text ends with suffix")
def _ends_with(v: Any, suffix: Any) -> bool:
    return _text(v).endswith(_text(suffix, "suffix"))


@_fn("contains(container, item)", "whether a list holds item, a map has key item, or a "
     "string has substring item")
def _contains(container: Any, item: Any) -> bool:
    try:
        return _in(container, item, 0)
    except Fail as exc:
        raise ArgError(exc.message.replace("'in'", "contains()")) from None


# -- dates, ids -------------------------------------------------------------------------------


def _iso_now() -> str:
    now = _dt.datetime.now(_dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@_fn("now()", "the current UTC time as ISO 8601 text, e.g. 2024-05-01T12:00:00.000Z",
     deterministic=False)
def _now() -> str:
    return _iso_now()


def _as_datetime(v: Any) -> _dt.datetime | _dt.date:
    if isinstance(v, _dt.datetime | _dt.date):
        return v
    if is_number(v):
        try:
            return _dt.datetime.fromtimestamp(float(v) / 1000, _dt.UTC)
        except (OverflowError, OSError, ValueError):
            raise ArgError("timestamp out of range") from None
    if isinstance(v, str):
        text = v[:-1] + "+00:00" if v.endswith(("Z", "z")) else v
        try:
            return _dt.datetime.fromisoformat(text)
        except ValueError:
            raise ArgError("date must be ISO 8601 text, e.g. 2024-05-01T12:00:00Z") from None
    raise ArgError(f"date must be ISO text, a datetime or milliseconds, not a {type_name(v)}")


@_fn("format_date(date, [format])", "the date (ISO text, datetime or epoch milliseconds) "
     "formatted with strftime codes, e.g. '%Y-%m-%d'; ISO 8601 by default")
def _format_date(v: Any, fmt: Any = None) -> str:
    d = _as_datetime(v)
    if fmt is None:
        return d.isoformat()
    try:
        return _cap_text(d.strftime(_text(fmt, "format")))
    except ValueError:
        raise ArgError("bad date format") from None


@_fn("uuid()", "a random UUID (version 4) as text", deterministic=False)
def _uuid4() -> str:
    return str(_uuid.uuid4())


# -- missing values ---------------------------------------------------------------------------


def _try(thunk: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return True, thunk()
    except Fail as exc:
        if exc.missing:
            return False, None
        raise


@_fn("default(value, fallback)", "value, or fallback when value is null or its path is missing",
     lazy=True)
def _default(value: Callable[[], Any], fallback: Callable[[], Any]) -> Any:
    ok, v = _try(value)
    return v if ok and v is not None else fallback()


@_fn("coalesce(value, ...)", "the first value that is not null and whose path exists",
     lazy=True)
def _coalesce(*values: Callable[[], Any]) -> Any:
    for thunk in values:
        ok, v = _try(thunk)
        if ok and v is not None:
            return v
    return None


@_fn("exists(value)", "whether the path exists and is not null", lazy=True)
def _exists(value: Callable[[], Any]) -> bool:
    ok, v = _try(value)
    return ok and v is not None


# -- conversions, numbers ---------------------------------------------------------------------


@_fn("int(value)", "a whole number from a number, numeric text or boolean (truncates)")
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
                f = float(s)
            except ValueError:
                raise ArgError("text is not a number") from None
            v = f
    if is_number(v):
        if isinstance(v, float) and not math.isfinite(v):
            raise ArgError("cannot convert infinity or NaN to a whole number")
        return int(v)
    raise ArgError(f"cannot convert a {type_name(v)} to a whole number")


@_fn("float(value)", "a number (with decimals) from a number or numeric text")
def _to_float(v: Any) -> float:
    if isinstance(v, str):
        if len(v) > 4000:
            raise ArgError("text is too long to be a number")
        try:
            return float(v.strip())
        except ValueError:
            raise ArgError("text is not a number") from None
    if is_number(v) or isinstance(v, bool):
        try:
            return float(v)
        except OverflowError:
            raise ArgError("number too large") from None
    raise ArgError(f"cannot convert a {type_name(v)} to a number")


@_fn("str(value)", "the value as text (null -> 'null', maps/lists -> JSON)")
def _to_str(v: Any) -> str:
    try:
        return to_text(v, 0)
    except Fail as exc:
        raise ArgError(exc.message) from None


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0", ""}


@_fn("bool(value)", "truthiness; text must be true/false/yes/no/on/off/1/0")
def _to_bool(v: Any) -> bool:
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise ArgError("text is not a boolean (true/false, yes/no, on/off, 1/0)")
    return truthy(v)


def _number(v: Any, what: str = "value") -> Any:
    if not is_number(v):
        raise ArgError(f"{what} must be a number, not a {type_name(v)}")
    return v


@_fn("round(number, [digits])", "the number rounded to digits decimals (0 by default)")
def _round(v: Any, digits: Any = None) -> Any:
    n = _number(v, "number")
    if digits is None:
        try:
            return round(n)
        except (OverflowError, ValueError):
            raise ArgError("cannot round infinity or NaN") from None
    d = _int(digits, "digits")
    if not -30 <= d <= 30:
        raise ArgError("digits must be between -30 and 30")
    return round(n, d)


@_fn("abs(number)", "the absolute value")
def _abs(v: Any) -> Any:
    return abs(_number(v))


def _numbers(args: tuple[Any, ...], fname: str) -> list[Any]:
    items = list(args[0]) if len(args) == 1 and isinstance(args[0], list | tuple) else list(args)
    if not items:
        raise ArgError(f"{fname}() of an empty list")
    if all(is_number(x) for x in items) or all(isinstance(x, str) for x in items):
        if any(isinstance(x, Decimal) for x in items) and any(type(x) is float for x in items):
            items = [float(x) for x in items]
        return items
    raise ArgError("values must all be numbers or all be strings")


@_fn("min(value, ...)", "the smallest of the arguments, or of one list argument")
def _min(*args: Any) -> Any:
    return min(_numbers(args, "min"))


@_fn("max(value, ...)", "the largest of the arguments, or of one list argument")
def _max(*args: Any) -> Any:
    return max(_numbers(args, "max"))


@_fn("sum(list)", "the sum of a list of numbers (0 for an empty list)")
def _sum(items: Any) -> Any:
    if not isinstance(items, list | tuple):
        raise ArgError(f"list must be a list, not a {type_name(items)}")
    if not items:
        return 0
    values = _numbers((items,), "sum")
    if not is_number(values[0]):
        raise ArgError("sum() needs numbers")
    total: Any = 0
    for x in values:
        total = total + x
    return total


@_fn("range([start], stop, [step])", f"a list of whole numbers (at most {MAX_RANGE})")
def _range(a: Any, b: Any = None, step: Any = None) -> list[int]:
    start, stop = (0, _int(a, "stop")) if b is None else (_int(a, "start"), _int(b, "stop"))
    st = 1 if step is None else _int(step, "step")
    if st == 0:
        raise ArgError("step must not be 0")
    r = range(start, stop, st)
    if len(r) > MAX_RANGE:
        raise ArgError(f"range would have more than {MAX_RANGE} numbers")
    return list(r)


# -- maps -------------------------------------------------------------------------------------


def _map(v: Any, what: str = "value") -> Mapping[Any, Any]:
    if not isinstance(v, Mapping):
        raise ArgError(f"{what} must be a map, not a {type_name(v)}")
    return v


@_fn("keys(map)", "the keys of a map as a list")
def _keys(v: Any) -> list[Any]:
    return list(_map(v, "map").keys())


@_fn("values(map)", "the values of a map as a list")
def _values(v: Any) -> list[Any]:
    return list(_map(v, "map").values())


@_fn("merge(map, ...)", "one map with the keys of all maps (later ones win)")
def _merge(*maps: Any) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for m in maps:
        out.update(_map(m, "each argument"))
    return out


FUNCTIONS: Mapping[str, FunctionInfo] = MappingProxyType({k: v[0] for k, v in _TABLE.items()})


def lookup(name: str) -> tuple[FunctionInfo, Callable[..., Any], bool] | None:
    return _TABLE.get(name)
