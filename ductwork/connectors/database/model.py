"""Declared tables, columns and events of a database resource: parsing, validation, coercion."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from ductwork.util.suggest import did_you_mean

# Identifiers are checked against this before they are quoted into SQL; 63 = PostgreSQL's limit.
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

# Canonical column types and the spellings accepted for them.
TYPES: dict[str, str] = {
    "integer": "integer", "int": "integer",
    "bigint": "bigint",
    "float": "float", "real": "float", "double": "float",
    "numeric": "numeric", "decimal": "numeric",
    "text": "text", "string": "text", "varchar": "text",
    "boolean": "boolean", "bool": "boolean",
    "timestamp": "timestamp", "datetime": "timestamp", "timestamptz": "timestamp",
    "date": "date",
    "json": "json", "jsonb": "json",
    "uuid": "uuid",
    "bytes": "bytes", "blob": "bytes", "bytea": "bytes",
}
OPS = ("insert", "query", "update", "delete", "upsert", "sql")
COLUMN_KEYS = {"type", "primary_key", "auto", "unique", "nullable", "default", "description"}
EVENT_KEYS: dict[str, set[str]] = {
    "insert": {"returning", "idempotency_key"},
    "upsert": {"returning", "key", "update"},
    "update": {"returning", "where", "allow_all"},
    "delete": {"where", "allow_all"},
    "query": {"select", "where", "order_by", "limit", "offset"},
    "sql": {"sql", "params"},
}
COMMON_EVENT_KEYS = {"op", "table", "description"}
NOW = "now"


# Column and event names are short: a looser match than elsewhere still suggests the right one.
HINT_CUTOFF = 0.5


class InputError(ValueError):
    """A caller's input does not fit the declared table/event; the message says how to fix it."""


def unknown(what: str, name: str, known: Mapping[str, Any] | list[str] | set[str]) -> str:
    listed = ", ".join(sorted(str(k) for k in known)) or "none"
    shown = name if len(str(name)) <= 80 else str(name)[:77] + "..."
    hint = did_you_mean(name, known, prefix="; ", cutoff=HINT_CUTOFF)
    return f"unknown {what} {shown!r}{hint} (known: {listed})"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    primary_key: bool = False
    auto: bool = False  # database-generated integer id, or a uuid4 generated on insert
    unique: bool = False
    nullable: bool = True
    default: Any = None  # applied on insert when the column is missing; "now" for timestamps
    has_default: bool = False


@dataclass
class Table:
    name: str
    columns: dict[str, Column]

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in self.columns.values() if c.primary_key]

    def column(self, name: Any) -> Column:
        if not isinstance(name, str) or name not in self.columns:
            raise InputError(unknown(f"column of table '{self.name}':", str(name), self.columns))
        return self.columns[name]


@dataclass
class Event:
    name: str
    op: str
    table: str | None = None
    returning: list[str] | None = None  # None = every declared column
    select: list[str] | None = None
    where: dict[str, Any] = field(default_factory=dict)
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (column, descending)
    limit: int | None = None
    offset: int | None = None
    key: list[str] = field(default_factory=list)
    update: list[str] | None = None  # upsert: columns overwritten on conflict (None = given ones)
    allow_all: bool = False
    idempotency_key: str | None = None  # insert: the unique column the step's key goes in
    sql: str = ""
    params: list[str] = field(default_factory=list)


@dataclass
class Schema:
    tables: dict[str, Table]
    events: dict[str, Event]


def coerce(col: Column, value: Any) -> Any:
    """A caller's value as the column's Python type (None stays None); InputError if it cannot."""
    if value is None:
        return None
    t = col.type

    def bad(expect: str) -> InputError:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        return InputError(f"column '{col.name}' expects {expect}, got {shown}")

    if t in ("integer", "bigint"):
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,19}", value.strip()):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad("an integer")
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            raise bad("a number")
        try:
            return float(value)
        except ValueError:
            raise bad("a number") from None
    if t == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            raise bad("a number")
        try:
            d = Decimal(str(value))
        except InvalidOperation:
            raise bad("a number") from None
        if not d.is_finite():
            raise bad("a finite number")
        return d
    if t == "text":
        if isinstance(value, str):
            return value
        raise bad("text")
    if t == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise bad("true or false")
    if t == "timestamp":
        return _timestamp(value, bad)
    if t == "date":
        if isinstance(value, datetime):
            return value.date()
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value.strip()[:10])
            except ValueError:
                pass
        raise bad("a date (YYYY-MM-DD)")
    if t == "uuid":
        if isinstance(value, uuid.UUID):
            return value
        try:
            return uuid.UUID(str(value))
        except ValueError:
            raise bad("a UUID") from None
    if t == "bytes":
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise bad("bytes")
    if t == "json":
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise bad("a JSON value") from None
        return value
    raise bad(t)  # pragma: no cover - TYPES and this function list the same types


def _timestamp(value: Any, bad: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time())
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise bad("an ISO-8601 timestamp") from None
    else:
        raise bad("an ISO-8601 timestamp")
    # Naive timestamps are taken as UTC so both backends store the same instant.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def default_value(col: Column) -> Any:
    if col.default == NOW:
        now = datetime.now(UTC)
        return now if col.type == "timestamp" else now.date()
    return coerce(col, col.default)
