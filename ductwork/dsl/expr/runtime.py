"""Runtime semantics of expressions: field access, operators, truthiness, text conversion."""

from __future__ import annotations

import datetime as _dt
import json
import re
import uuid as _uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from ductwork.dsl.expr.limits import (
    MAX_INT_DIGITS,
    SMALL,
    int_fits,
    measure,
    spend,
    whole_digits_ok,
)
from ductwork.dsl.expr.limits import MAX_ITEMS as MAX_ITEMS  # re-exported for the library
from ductwork.dsl.expr.limits import MAX_TEXT as MAX_TEXT
from ductwork.dsl.expr.limits import Fail as Fail
from ductwork.util.suggest import did_you_mean

_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:-[A-Za-z0-9_]+)*\Z")
# Roots whose field names are not listed in messages (they name environment variables).
_QUIET_ROOTS = {"env", "secrets"}


def type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int | float | Decimal):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "list"
    if isinstance(v, Mapping):
        return "map"
    if isinstance(v, _dt.datetime):
        return "datetime"
    if isinstance(v, _dt.date):
        return "date"
    return type(v).__name__


def is_number(v: Any) -> bool:
    return isinstance(v, int | float | Decimal) and not isinstance(v, bool)


def render_key(key: str | int) -> str:
    """How a path segment is written: `.name`, `[0]` or `["odd key"]`."""
    if isinstance(key, int):
        return f"[{key}]"
    if _SEGMENT.match(key) and not key.startswith("__"):
        return "." + key
    return "[" + json.dumps(key, ensure_ascii=False) + "]"


def describe(desc: str | None, v: Any) -> str:
    return desc if desc is not None else f"the {type_name(v)}"


def close_hint(name: str, names: Iterable[str]) -> str:
    """The "; did you mean 'x'?" ending when one of `names` is close to `name`, else "".

    For run-time messages; compile-time diagnostics use diagnostics.did_you_mean.
    """
    return did_you_mean(name, names, prefix="; ")


def _fields_hint(
    desc: str, root: str | None, mapping: Mapping[Any, Any], key: str
) -> str:
    names = [k for k in _first_keys(mapping, 1000) if isinstance(k, str)]
    head, _, rest = key.partition("-")
    if rest and head in mapping:
        # `x.count-1` is the field "count-1" (kebab-case segments); the user meant arithmetic.
        hint = f"; to subtract, put spaces around '-': '{desc}{render_key(head)} - {rest}'"
    else:
        hint = close_hint(key, names)
    if root in _QUIET_ROOTS:
        return hint
    if not names:
        return hint + " (it is empty)"
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return hint + f" (fields: {shown})"


def _first_keys(mapping: Mapping[Any, Any], n: int) -> list[Any]:
    out: list[Any] = []
    for k in mapping:
        if len(out) >= n:
            break
        out.append(k)
    return out


def _no_key(obj: Mapping[Any, Any], key: str | int, desc: str | None, root: str | None) -> str:
    if isinstance(key, str) and desc is not None and (desc == "ctx.input"
                                                      or desc.startswith("ctx.input.")):
        # The seed's wording, as for ctx.input in a Python handler.
        field = desc[len("ctx.input."):] + "." + key if desc != "ctx.input" else key
        return f"Input field not found: {field}" + _fields_hint(describe(desc, obj), root,
                                                                 obj, key)
    if isinstance(key, str):
        return f"{describe(desc, obj)} has no field '{key}'" + _fields_hint(
            describe(desc, obj), root, obj, key
        )
    return f"{describe(desc, obj)} has no key {key}"


def get_item(obj: Any, key: Any, desc: str | None, root: str | None, pos: int) -> Any:
    """`obj.key` / `obj[key]`, only on maps, lists and strings: never a Python attribute."""
    if isinstance(obj, Mapping):
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise Fail(f"cannot look up a {type_name(key)} key in {describe(desc, obj)}", pos)
        try:
            return obj[key]
        except KeyError:
            raise Fail(lambda: _no_key(obj, key, desc, root), pos, missing=True) from None
    if isinstance(obj, list | tuple | str):
        if isinstance(key, int) and not isinstance(key, bool):
            try:
                return obj[key]
            except IndexError:
                raise Fail(
                    f"{describe(desc, obj)} has no index {key} (size {len(obj)})", pos, missing=True
                ) from None
        kind = type_name(obj)
        if isinstance(key, str):
            hint = "; use size(x) for its size" if key in ("length", "size", "count") else ""
            raise Fail(
                f"{describe(desc, obj)} is a {kind}, it has no field '{key}'{hint}", pos
            )
        raise Fail(f"a {kind} index must be a whole number, not a {type_name(key)}", pos)
    if obj is None:
        what = f"field '{key}'" if isinstance(key, str) else f"index {key!r}"
        raise Fail(f"{describe(desc, obj)} is null, so it has no {what}", pos, missing=True)
    what = f"field '{key}'" if isinstance(key, str) else "index"
    raise Fail(f"{describe(desc, obj)} is a {type_name(obj)}, it has no {what}", pos)


# -- operators ------------------------------------------------------------------------------


def _unify(a: Any, b: Any) -> tuple[Any, Any]:
    # Decimal and float do not mix in Python; a float already lost exactness, so use float.
    if isinstance(a, Decimal) and isinstance(b, float):
        return float(a), b
    if isinstance(b, Decimal) and isinstance(a, float):
        return a, float(b)
    return a, b


def _check_size(v: Any, pos: int) -> Any:
    if isinstance(v, str) and len(v) > MAX_TEXT:
        raise Fail(f"text would be longer than {MAX_TEXT:,} characters", pos)
    if isinstance(v, list) and len(v) > MAX_ITEMS:
        raise Fail(f"list would have more than {MAX_ITEMS:,} items", pos)
    return v


def check_built(v: Any, pos: int) -> None:
    """A list or map being built from `v`'s parts stays within the size limits."""
    measure(v, pos, what="the list or map built here")


def _concat(a: Any, b: Any, pos: int) -> Any:
    """`a + b` on two strings or two lists, sized before anything is copied."""
    if isinstance(a, str):
        if len(a) + len(b) > MAX_TEXT:
            raise Fail(f"text would be longer than {MAX_TEXT:,} characters", pos)
        if len(a) + len(b) > SMALL:
            spend(len(a) + len(b), pos)
        return a + b
    if len(a) + len(b) > MAX_ITEMS:
        raise Fail(f"list would have more than {MAX_ITEMS:,} items", pos)
    if len(a) + len(b) > SMALL:
        spend(len(a) + len(b), pos)
    out = [*a, *b]
    check_built(out, pos)
    return out


def _repeat(seq: Any, n: int, pos: int) -> Any:
    """`seq * n`: the size of the result (nested values counted each time they repeat) is
    known from `seq` and `n`, so it is checked before the repetition is made."""
    if n <= 0:
        return seq[:0]
    if isinstance(seq, str):
        if n > MAX_TEXT or len(seq) * n > MAX_TEXT:
            raise Fail(f"repetition would make text longer than {MAX_TEXT:,} characters", pos)
        if len(seq) * n > SMALL:
            spend(len(seq) * n, pos)
        return seq * n
    if n > MAX_ITEMS or len(seq) * n > MAX_ITEMS:
        raise Fail(f"repetition would make a list of more than {MAX_ITEMS:,} items", pos)
    if seq:
        measure(seq, pos, times=n, what="the repeated list")
        if len(seq) * n > SMALL:
            spend(len(seq) * n, pos)
    return seq * n


def arith(op: str, a: Any, b: Any, pos: int) -> Any:
    if is_number(a) and is_number(b):
        if type(a) is int and type(b) is int and op in "+-*" and not int_fits(a, b, op):
            raise Fail(f"number too large in '{op}' (more than {MAX_INT_DIGITS:,} digits)", pos)
        try:
            # inside the try: a signalling-NaN decimal refuses to become a float
            a, b = _unify(a, b)
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                return a / b
            if op == "//":
                return a // b
            return a % b
        except ZeroDivisionError:
            raise Fail("division by zero", pos) from None
        except (ArithmeticError, ValueError):
            raise Fail(f"number out of range in '{op}'", pos) from None
    if op == "+":
        if isinstance(a, str) and isinstance(b, str):
            return _concat(a, b, pos)
        if isinstance(a, list | tuple) and isinstance(b, list | tuple):
            return _concat(a, b, pos)
        hint = ""
        if isinstance(a, str) or isinstance(b, str):
            hint = "; convert with str(x), or write text around ${...} instead"
        raise Fail(f"cannot add {type_name(a)} and {type_name(b)}{hint}", pos)
    if op == "*":
        if isinstance(a, str | list | tuple) and type(b) is int:
            return _repeat(list(a) if isinstance(a, tuple) else a, b, pos)
        if isinstance(b, str | list | tuple) and type(a) is int:
            return _repeat(list(b) if isinstance(b, tuple) else b, a, pos)
    verb = {"-": "subtract", "*": "multiply", "/": "divide", "//": "divide", "%": "take"}[op]
    if op == "%":
        raise Fail(f"cannot take {type_name(a)} % {type_name(b)}: both must be numbers", pos)
    raise Fail(f"cannot {verb} {type_name(a)} and {type_name(b)} with '{op}'", pos)


def negate(op: str, v: Any, pos: int) -> Any:
    if not is_number(v):
        raise Fail(f"unary '{op}' needs a number, not a {type_name(v)}", pos)
    try:
        return -v if op == "-" else +v
    except ArithmeticError:  # a signalling-NaN decimal
        raise Fail(f"number out of range in unary '{op}'", pos) from None


def equal(a: Any, b: Any) -> bool:
    # true == 1 is True in Python; in YAML/JSON land a boolean is never a number.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list | tuple | Mapping) and len(a) > SMALL:
        spend(len(a), 0)  # a deep comparison: charged by the outer size, a fair proxy
    try:
        return bool(a == b)
    except Exception:  # a hostile __eq__ never reaches us, but be total anyway
        return False


_ORDERED = (str, _dt.datetime, _dt.date)


def order(op: str, a: Any, b: Any, pos: int) -> bool:
    ok = (
        (is_number(a) and is_number(b))
        or (isinstance(a, list | tuple) and isinstance(b, list | tuple))
        or any(isinstance(a, t) and isinstance(b, t) for t in _ORDERED)
    )
    if not ok:
        raise Fail(f"cannot compare {type_name(a)} and {type_name(b)} with '{op}'", pos)
    try:
        a, b = _unify(a, b)
        if op == "<":
            return bool(a < b)
        if op == "<=":
            return bool(a <= b)
        if op == ">":
            return bool(a > b)
        return bool(a >= b)
    except (TypeError, ValueError, ArithmeticError):  # ValueError: a signalling-NaN decimal
        raise Fail(f"cannot compare these {type_name(a)}s with '{op}'", pos) from None


def contains(container: Any, item: Any, pos: int) -> bool:
    if isinstance(container, str):
        if not isinstance(item, str):
            raise Fail(f"'in' a string needs a string on the left, not a {type_name(item)}", pos)
        return item in container
    if isinstance(container, list | tuple):
        if len(container) > SMALL:
            spend(len(container), pos)
        return any(equal(item, x) for x in container)
    if isinstance(container, Mapping):
        if not isinstance(item, str | int) or isinstance(item, bool):
            return False
        return item in container
    raise Fail(f"'in' needs a list, map or string on the right, not a {type_name(container)}", pos)


def truthy(v: Any) -> bool:
    """Python truthiness: null, false, 0, "" and empty lists/maps are false."""
    if v is None or v is False:
        return False
    if v is True:
        return True
    try:
        return bool(v)
    except Exception:
        return True


# -- text and JSON ----------------------------------------------------------------------------


def _json_default(v: Any) -> Any:
    if isinstance(v, _dt.datetime | _dt.date | _dt.time):
        return v.isoformat()
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError("Infinity and NaN are not JSON")
        if not whole_digits_ok(v):
            raise ValueError(f"{v} has more than {MAX_INT_DIGITS} digits")
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, _uuid.UUID):
        return str(v)
    if isinstance(v, Mapping):
        return dict(v)
    if isinstance(v, tuple):
        return list(v)
    raise TypeError(f"a {type_name(v)} cannot be written as JSON")


def to_json(v: Any, pos: int, indent: int | None = None) -> str:
    if isinstance(v, list | tuple | Mapping):
        # Every value and character shows in the text: refuse what cannot fit before writing.
        cells, chars = measure(v, pos, cells=MAX_TEXT, text=MAX_TEXT,
                              what="the value written as JSON")
        if cells + chars > MAX_TEXT:
            raise Fail(f"JSON text would be longer than {MAX_TEXT:,} characters", pos)
        if cells + chars > SMALL:
            spend(cells + chars, pos)
    try:
        text = json.dumps(
            v,
            ensure_ascii=False,
            separators=(",", ":") if indent is None else (",", ": "),
            indent=indent,
            default=_json_default,
            allow_nan=False,
        )
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise Fail(f"cannot write as JSON: {exc}", pos) from None
    except RecursionError:
        raise Fail("cannot write as JSON: nested too deeply", pos) from None
    return str(_check_size(text, pos))


def to_text(v: Any, pos: int) -> str:
    """How a value appears inside text: strings as-is, JSON spelling for everything else."""
    if isinstance(v, str):
        return v
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        try:
            return str(v)
        except ValueError:
            raise Fail("number too long to write as text", pos) from None
    if isinstance(v, float | Decimal | _uuid.UUID):
        return str(v)
    if isinstance(v, _dt.datetime | _dt.date | _dt.time):
        return v.isoformat()
    if isinstance(v, list | tuple | Mapping):
        return to_json(v, pos)
    raise Fail(f"a {type_name(v)} cannot be turned into text", pos)
