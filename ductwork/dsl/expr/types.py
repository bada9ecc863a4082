"""The static types of expression values: what validate knows a value can be, or Any."""

from __future__ import annotations

import datetime as _dt
import uuid as _uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from ductwork.util import schema_defaults

# The kinds a value can have at run time, named as runtime.type_name names them (plus
# "integer", a number known to be whole). A Type is a set of kinds: a union.
KINDS = ("null", "boolean", "integer", "number", "string", "list", "map", "datetime", "date",
         "uuid", "bytes")
ALL = frozenset(KINDS)
NUMERIC = frozenset({"integer", "number"})
# How messages name a kind ("a number", "a UUID").
_SHOWN = {"integer": "number", "uuid": "UUID"}


@dataclass(frozen=True, eq=False)
class Type:
    """What a value can be: its possible kinds and, when known, more.

    `fields` lists a map's fields (`closed`: there are no others, so reading another one
    fails at run time); `items` is a list's element type; `values` every value it can have
    (an enum, a const, the product's envs). `where` ends the message of a missing field
    ("in the input schema") and `listing` names the fields in its hint ("declared").
    Unknown is Any (every kind, nothing more): never an error.
    """

    kinds: frozenset[str] = ALL
    fields: Mapping[str, Type] | None = None
    closed: bool = False
    items: Type | None = None
    values: tuple[Any, ...] | None = None
    where: str = ""
    listing: str = "fields"
    required: frozenset[str] | None = None  # fields always present (None: not known)

    @property
    def is_any(self) -> bool:
        return self.kinds == ALL and self.fields is None and self.values is None

    @property
    def known(self) -> bool:
        """Whether the kinds are known (something other than "could be anything")."""
        return self.kinds != ALL

    def only(self, kinds: Iterable[str]) -> bool:
        """Whether every possible kind is one of `kinds` (and the kinds are known)."""
        return self.known and self.kinds <= frozenset(kinds)

    def describe(self) -> str:
        """`a number`, `a string or null`: how a message names what the value is."""
        shown = sorted({_SHOWN.get(k, k) for k in self.kinds if k != "null"})
        words = [("an " if s[0] in "aeiou" else "a ") + s for s in shown]
        if "null" in self.kinds:
            words.append("null")
        return " or ".join(words) if words else "nothing"


ANY = Type()


def of(*kinds: str, **more: Any) -> Type:
    return Type(frozenset(kinds), **more)


NULL = of("null")
BOOLEAN = of("boolean")
INTEGER = of("integer")
NUMBER = of("number")
STRING = of("string")
LIST = of("list")
MAP = of("map")


def list_of(items: Type) -> Type:
    return of("list", items=items)


def record(fields: Mapping[str, Type], *, closed: bool = True, where: str = "",
           listing: str = "fields") -> Type:
    """A map whose fields are known; every one is present."""
    return of("map", fields=dict(fields), closed=closed, where=where, listing=listing,
              required=frozenset(fields))


def non_null(t: Type) -> Type:
    if "null" not in t.kinds or t.kinds == {"null"} or not t.known:
        return t
    values = tuple(v for v in t.values if v is not None) if t.values is not None else None
    return replace(t, kinds=t.kinds - {"null"}, values=values)


def nullable(t: Type) -> Type:
    if "null" in t.kinds:
        return t
    values = (*t.values, None) if t.values is not None else None
    return replace(t, kinds=t.kinds | {"null"}, values=values)


def join(a: Type, b: Type) -> Type:
    """A value that is either an `a` or a `b`."""
    if a is b:
        return a
    if a.is_any or b.is_any:
        return ANY
    kinds = a.kinds | b.kinds
    fields: dict[str, Type] | None = None
    closed = False
    required: frozenset[str] | None = None
    # Only maps contribute fields: a map joined with a list keeps the map's fields.
    fa = a.fields if "map" in a.kinds else None
    fb = b.fields if "map" in b.kinds else None
    if fa is not None and fb is not None:
        fields = {k: join(fa[k], fb[k]) if k in fa and k in fb else fa.get(k) or fb[k]
                  for k in (*fa, *(k for k in fb if k not in fa))}
        closed = a.closed and b.closed
        if a.required is not None and b.required is not None:
            required = a.required & b.required
    elif fa is not None and "map" not in b.kinds:
        fields, closed, required = dict(fa), a.closed, a.required
    elif fb is not None and "map" not in a.kinds:
        fields, closed, required = dict(fb), b.closed, b.required
    items = None
    if "list" in a.kinds and "list" in b.kinds:
        items = join(a.items or ANY, b.items or ANY)
    elif "list" in kinds:
        items = a.items if "list" in a.kinds else b.items
    values = (*a.values, *(v for v in b.values if v not in a.values)) \
        if a.values is not None and b.values is not None else None
    src = a if fa is not None else b
    return Type(kinds, fields, closed, items, values, src.where, src.listing, required)


def join_all(types: Iterable[Type]) -> Type:
    out: Type | None = None
    for t in types:
        out = t if out is None else join(out, t)
    return out if out is not None else ANY


# -- values --------------------------------------------------------------------------------


def kind_of(v: Any) -> str | None:
    """The kind of a concrete value (None for something no expression produces)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float | Decimal):
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
    if isinstance(v, _uuid.UUID):
        return "uuid"
    if isinstance(v, bytes | bytearray):
        return "bytes"
    return None


def from_value(v: Any) -> Type:
    """The type of a constant (a YAML scalar, list or map, or a literal)."""
    kind = kind_of(v)
    if kind is None:
        return ANY
    if kind == "map":
        return record({str(k): from_value(x) for k, x in v.items()})
    if kind == "list":
        return list_of(join_all(from_value(x) for x in v) if v else ANY)
    if kind in ("null", "boolean", "integer", "number", "string"):
        return of(kind, values=(v,))
    return of(kind)


# -- JSON Schema -----------------------------------------------------------------------------

_JSON_KINDS = {"string": ("string",), "number": ("number",), "integer": ("integer",),
               "boolean": ("boolean",), "object": ("map",), "array": ("list",),
               "null": ("null",)}
_MAX_DEPTH = 32


def from_schema(schema: Any, *, where: str = "", listing: str = "declared") -> Type:
    """What a value valid against a JSON Schema can be (always a superset: sound).

    Declared `properties` are the map's fields, closed unless `additionalProperties` or
    `patternProperties` allow more (as the input check has always read them); local
    `$ref`s are followed; `anyOf`/`oneOf` join their branches when the schema says nothing
    else."""
    return _Schema(schema, where, listing).type(schema, 0)


class _Schema:
    def __init__(self, root: Any, where: str, listing: str) -> None:
        self.root, self.where, self.listing = root, where, listing

    def type(self, s: Any, depth: int) -> Type:
        if depth > _MAX_DEPTH or s is True or not isinstance(s, Mapping):
            return ANY
        if isinstance(s.get("$ref"), str):
            return self.type(self.resolve(s["$ref"]), depth + 1)
        if "const" in s:
            return self.narrow(from_value(s["const"]), s)
        if isinstance(s.get("enum"), list) and s["enum"]:
            return self.narrow(join_all(from_value(v) for v in s["enum"]), s)
        t = self.base(s, depth)
        branches = [b for key in ("anyOf", "oneOf") if isinstance(s.get(key), list)
                    for b in s[key]]
        if branches and t.is_any:
            return join_all(self.type(b, depth + 1) for b in branches)
        if (branches or "allOf" in s) and t.fields is not None and s.get(
                "additionalProperties") is not False:
            t = replace(t, closed=False)  # the branches may declare more fields
        return t

    def narrow(self, t: Type, s: Mapping[str, Any]) -> Type:
        if s.get("nullable") is True:
            return nullable(t)
        return t

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return None
        node: Any = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def base(self, s: Mapping[str, Any], depth: int) -> Type:
        raw = s.get("type")
        names = [raw] if isinstance(raw, str) else raw if isinstance(raw, list) else None
        kinds = ALL
        if names is not None:
            found = [k for n in names if isinstance(n, str) for k in _JSON_KINDS.get(n, ())]
            if len(found) and all(isinstance(n, str) and n in _JSON_KINDS for n in names):
                kinds = frozenset(found)
        if s.get("nullable") is True and kinds != ALL:
            kinds |= {"null"}  # OpenAPI 3.0's way to say it
        fields = None
        closed = False
        required = None
        props = s.get("properties")
        if "map" in kinds and isinstance(props, Mapping):
            fields = {str(k): self.type(v, depth + 1) for k, v in props.items()}
            extra = s.get("additionalProperties", None)
            closed = extra in (None, False) and not s.get("patternProperties")
            req = s.get("required")
            required = frozenset(r for r in req if isinstance(r, str)) \
                if isinstance(req, list) else frozenset()
            # A property with a default is always there: a run's input has it filled in.
            required |= schema_defaults.defaulted(self.root, s)
        items = None
        if "list" in kinds:
            raw_items = s.get("items")
            if isinstance(raw_items, Mapping):
                items = self.type(raw_items, depth + 1)
            elif isinstance(s.get("prefixItems"), list):
                items = join_all(self.type(i, depth + 1) for i in s["prefixItems"])
        if kinds == ALL and fields is None and items is None:
            return ANY
        return Type(kinds, fields, closed, items, None, self.where, self.listing, required)


# -- database columns --------------------------------------------------------------------------

# The Python value each declared column type comes back as (connectors/database/sqlite.py
# and postgres.py from_db); a numeric column is a Decimal, which expressions treat as a number.
COLUMN_KINDS = {"integer": "integer", "bigint": "integer", "float": "number",
                "numeric": "number", "text": "string", "boolean": "boolean",
                "timestamp": "datetime", "date": "date", "uuid": "uuid", "bytes": "bytes"}


def from_column(column_type: str, nullable_column: bool) -> Type:
    kind = COLUMN_KINDS.get(column_type)
    if kind is None:
        return ANY  # json columns hold anything
    return of(kind, "null") if nullable_column else of(kind)
