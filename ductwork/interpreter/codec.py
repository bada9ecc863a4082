"""The one JSON codec for inputs, step results, state and outputs."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import reprlib
import uuid
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

# Tagged forms {"__dw__": kind, "v": text} keep a replayed value the same type as the value
# first returned. A user map that has a "__dw__" key of its own is stored as the tagged form
# {"__dw__": "dict", "v": [[key, value], ...]}, so that no user data ever reads as a tag.
_TAG = "__dw__"
# Containers (maps and lists) nest at most this deep: a bound the encoder checks before any
# recursion can run out of stack, and what stops a value that contains itself.
MAX_DEPTH = 100

SUPPORTED = ("dict (string keys), list, str, int, float, bool, None, datetime, date, time, "
             "Decimal, UUID, bytes or a pydantic model")


class UnstorableValue(ValueError):
    """A value the codec refuses; str() names where it is, from the root the caller named."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.parts: list[str | int] = []  # innermost first, appended while unwinding
        self.root = "value"

    def path(self) -> str:
        out = self.root
        parts: list[str | int | None] = [*self.parts[::-1]]
        if len(parts) > 12:  # a value nested too deep: its first and last levels say enough
            parts = [*parts[:5], None, *parts[-5:]]
        for p in parts:
            if p is None:
                out += "..."
            elif isinstance(p, int):
                out += f"[{p}]"
            elif p.isidentifier():
                out += f".{p}"
            else:
                out += f"[{json.dumps(p, ensure_ascii=True)}]"
        return out

    def __str__(self) -> str:
        return f"{self.path()}: {self.reason}"


_INF = float("inf")
# Python refuses to convert longer integers to text (sys.get_int_max_str_digits()).
_DIGITS = 4300
_BIG = 10 ** _DIGITS
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 40


def _text_error(s: str) -> UnstorableValue | None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as e:
        return UnstorableValue(
            f"the text has a lone surrogate {s[e.start]!r} at position {e.start}, which is not "
            "valid Unicode and cannot be stored (decode bytes with errors='replace')")
    return None


def _walk(v: Any, depth: int, lenient: bool) -> Any:
    """The JSON tree of `v` (tags applied, user maps escaped), checking as it goes. The
    common types are tested by exact type first: this runs on every committed value."""
    t = type(v)
    if t is str:
        if not v.isascii():
            err = _text_error(v)
            if err is not None:
                if lenient:
                    return v.encode("utf-8", "replace").decode("utf-8")
                raise err
        return v
    if t is int:
        if -_BIG < v < _BIG:
            return v
        if lenient:
            return f"<an integer of {v.bit_length()} bits>"
        raise UnstorableValue(f"the integer has more than {_DIGITS} digits, more than can be "
                              "stored as JSON (use a string)")
    if v is None or t is bool:
        return v
    if t is float:
        if v != v or v == _INF or v == -_INF:
            if lenient:
                return repr(v)
            raise UnstorableValue(f"the number {v!r} cannot be stored (JSON has no NaN or "
                                  "infinity; use None or a string)")
        return v
    if t is dict:
        if depth >= MAX_DEPTH:
            return _too_deep(lenient)
        out: dict[str, Any] = {}
        d = depth + 1
        for k, x in v.items():
            if type(k) is not str or not k.isascii():
                k = _key(k, lenient)
            try:
                out[k] = _walk(x, d, lenient)
            except UnstorableValue as e:
                e.parts.append(k)
                raise
        if _TAG in out:
            return {_TAG: "dict", "v": [[k, x] for k, x in out.items()]}
        return out
    if t is list:
        if depth >= MAX_DEPTH:
            return _too_deep(lenient)
        items = []
        d = depth + 1
        for i, x in enumerate(v):
            try:
                items.append(_walk(x, d, lenient))
            except UnstorableValue as e:
                e.parts.append(i)
                raise
        return items
    return _other(v, depth, lenient)


def _too_deep(lenient: bool) -> Any:
    if lenient:
        return "..."
    raise UnstorableValue(f"the value is nested more than {MAX_DEPTH} levels deep (or contains "
                          "itself), more than can be stored")


def _key(k: Any, lenient: bool) -> str:
    if isinstance(k, str):
        k = str.__str__(k)  # a str subclass (StrEnum) as the plain text it holds
        err = _text_error(k)
        if err is None:
            return k
        if lenient:
            return k.encode("utf-8", "replace").decode("utf-8")
        err.reason = "a key: " + err.reason
        raise err
    if lenient:
        return str(k)
    raise UnstorableValue(f"the key {_short.repr(k)} ({type(k).__name__}) is not a string; "
                          "map keys must be strings (JSON objects have text keys)")


def _other(v: Any, depth: int, lenient: bool) -> Any:
    """Everything but the exact JSON types: the tagged types, subclasses, pydantic models."""
    if isinstance(v, dt.datetime):
        return {_TAG: "datetime", "v": dt.datetime.isoformat(v)}
    if isinstance(v, dt.date):
        return {_TAG: "date", "v": dt.date.isoformat(v)}
    if isinstance(v, dt.time):
        return {_TAG: "time", "v": dt.time.isoformat(v)}
    if isinstance(v, decimal.Decimal):
        return {_TAG: "decimal", "v": str(v)}
    if isinstance(v, uuid.UUID):
        return {_TAG: "uuid", "v": str(v)}
    if isinstance(v, bytes | bytearray | memoryview):
        return {_TAG: "bytes", "v": base64.b64encode(bytes(v)).decode("ascii")}
    # Subclasses of the JSON types (StrEnum, IntEnum, OrderedDict ...) are stored as the
    # plain value they hold; they come back as that plain type, on every run alike.
    if isinstance(v, str):
        return _walk(str.__str__(v), depth, lenient)
    if isinstance(v, int):
        return _walk(int.__int__(v), depth, lenient)
    if isinstance(v, float):
        return _walk(float.__float__(v), depth, lenient)
    # A read-only view of a dict (ctx.state, ctx.steps) is stored as the map it shows.
    if isinstance(v, dict | MappingProxyType):
        return _walk(dict(v), depth, lenient)
    if isinstance(v, list):
        return _walk(list(v), depth, lenient)
    data = getattr(type(v), "__ductwork_data__", None)  # ctx.input, or a part of it
    if data is not None:
        return _walk(data(v), depth, lenient)
    dump = getattr(v, "model_dump", None)  # pydantic v2 models: stored as their JSON form
    if callable(dump) and hasattr(type(v), "model_fields"):
        return _walk(dump(mode="json"), depth, lenient)
    if lenient:
        if isinstance(v, tuple | set | frozenset):
            return _walk(list(v), depth, lenient)
        return _short.repr(v)
    name = type(v).__name__
    hint = {"tuple": "; use a list", "set": "; use a sorted list",
            "frozenset": "; use a sorted list"}.get(name, "")
    raise UnstorableValue(f"object of type {name} is not JSON serializable{hint}")


def _decode_map(pairs: Any) -> Any:
    if isinstance(pairs, list) and all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
        return dict(pairs)
    raise ValueError("not a list of [key, value] pairs")


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "decimal": decimal.Decimal,
    "uuid": uuid.UUID,
    "bytes": lambda v: base64.b64decode(v, validate=True),
}


def _hook(obj: dict[str, Any]) -> Any:
    tag = obj.get(_TAG)
    if tag is None or len(obj) != 2 or "v" not in obj:
        return obj
    v = obj["v"]
    try:
        if tag == "dict":
            return _decode_map(v)
        dec = _DECODERS.get(tag) if isinstance(v, str) else None
        return obj if dec is None else dec(v)
    except (ValueError, TypeError, ArithmeticError, binascii.Error):
        # Only data written before user maps were escaped can look like a tag and not be
        # one: such a map reads back as it was stored.
        return obj


_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                            check_circular=False)
_decoder = json.JSONDecoder(object_hook=_hook)
# The C encoder _encoder.encode() builds anew on every call, built once: every committed
# value is encoded, and this saves ~1 us of the ~1.5 us a small value took (measured on a
# step result {"i": 5}). No state is kept between calls: no markers (the walk bounds the
# depth), no default (the walk leaves only JSON types).
_make_c_encoder = json.encoder.c_make_encoder  # type: ignore[attr-defined]  # not in typeshed
_c_encoder = None if _make_c_encoder is None else _make_c_encoder(
    None, _encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, False)
# decode()'s scanner (with _hook), called directly by loads().
_scan: Callable[[str, int], tuple[Any, int]] = _decoder.scan_once  # type: ignore[attr-defined]


def _encode(tree: Any) -> str:
    """The JSON text of a tree _walk built (same text as _encoder.encode)."""
    if _c_encoder is None:  # a Python without the C accelerator
        return _encoder.encode(tree)
    return "".join(_c_encoder(tree, 0))


def dumps(value: Any, root: str = "value") -> str:
    """Encode; raises UnstorableValue (a ValueError) naming the path of what cannot be stored,
    from `root` ("result.items[3].when")."""
    try:
        return _encode(_walk(value, 0, False))
    except UnstorableValue as e:
        e.root = root
        raise


def dumps_value(value: Any, root: str = "value") -> tuple[str, Any]:
    """dumps(), and the value as loads() of that text gives it back: what a handler is handed
    on the first run, so that it gets the same on a replay. Without a tag in the text the
    encoder's own tree is that value (it is built of new maps and lists), with no decoding."""
    if value is None:  # a handler or step that returns nothing
        return "null", None
    try:
        tree = _walk(value, 0, False)
    except UnstorableValue as e:
        e.root = root
        raise
    text = _encode(tree)
    return text, (loads(text) if _TAG in text else tree)


def dumps_lenient(value: Any) -> str:
    """Encode for logs and events, which must never fail: what cannot be stored is written
    as text (a repr, shortened), tuples and sets as lists, deep nesting cut at "..."."""
    return _encode(_walk(value, 0, True))


def loads(text: str | None) -> Any:
    if text is None:
        return None
    # The scanner decode() calls, called directly: decode() also matches a regex for the
    # whitespace around the value (none in what dumps wrote), 1.2 of its 1.6 us on a small
    # value. Anything else (whitespace, bad JSON) goes through decode() for its exact error.
    try:
        value, end = _scan(text, 0)
    except StopIteration:
        return _decoder.decode(text)
    return value if end == len(text) else _decoder.decode(text)
