"""A database resource's `schema:` (tables, columns, events) loaded into the model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ductwork.connectors.base import Problem
from ductwork.connectors.database.model import (
    COLUMN_KEYS,
    COMMON_EVENT_KEYS,
    EVENT_KEYS,
    HINT_CUTOFF,
    IDENT,
    NOW,
    OPS,
    TYPES,
    Column,
    Event,
    InputError,
    Schema,
    Table,
    coerce,
    unknown,
)
from ductwork.connectors.database.params import named_params
from ductwork.connectors.database.sql import check_where
from ductwork.connectors.util import is_identifier
from ductwork.util.suggest import did_you_mean


def parse_order_by(value: Any) -> list[tuple[str, bool]]:
    """`"name"`, `"-created_at"`, `"created_at desc"` or a list of those -> [(column, desc)]."""
    items = value if isinstance(value, list) else [value]
    out: list[tuple[str, bool]] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise InputError(f"order_by expects a column name or a list of them, got {item!r}")
        text = item.strip()
        desc = False
        if text.startswith("-"):
            desc, text = True, text[1:].strip()
        else:
            parts = text.rsplit(None, 1)
            if len(parts) == 2 and parts[1].lower() in ("asc", "desc"):
                text, desc = parts[0], parts[1].lower() == "desc"
        out.append((text, desc))
    return out


def load_schema(definition: Mapping[str, Any]) -> tuple[Schema, list[Problem]]:
    """Parse `tables:` and `events:` of a resource block; collect every problem found."""
    problems: list[Problem] = []
    tables: dict[str, Table] = {}
    raw_tables = definition.get("tables") or {}
    if not isinstance(raw_tables, Mapping):
        problems.append((("tables",), "tables must be a mapping of table name -> {columns: ...}"))
        raw_tables = {}
    for tname, tdef in raw_tables.items():
        table = _load_table(str(tname), tdef, problems)
        if table is not None:
            tables[table.name] = table
    events: dict[str, Event] = {}
    raw_events = definition.get("events") or {}
    if not isinstance(raw_events, Mapping):
        problems.append((("events",), "events must be a mapping of event name -> {op: ...}"))
        raw_events = {}
    for ename, edef in raw_events.items():
        ev = _load_event(str(ename), edef, tables, problems)
        if ev is not None:
            events[ev.name] = ev
    return Schema(tables, events), problems


def _load_table(name: str, tdef: Any, problems: list[Problem]) -> Table | None:
    at: tuple[str | int, ...] = ("tables", name)
    if not IDENT.match(name):
        problems.append((at, f"table name {name!r} must be letters, digits and _ "
                             "(starting with a letter or _)"))
        return None
    if not isinstance(tdef, Mapping) or not isinstance(tdef.get("columns"), Mapping) \
            or not tdef["columns"]:
        problems.append((at, "a table needs `columns: {name: type | {type: ..., ...}}`"))
        return None
    for k in tdef:
        if k not in ("columns", "description"):
            problems.append(((*at, k), unknown("table key", k, ["columns", "description"])))
    columns: dict[str, Column] = {}
    for cname, cdef in tdef["columns"].items():
        col = _load_column(str(cname), cdef, (*at, "columns", str(cname)), problems)
        if col is not None:
            columns[col.name] = col
    autos = [c for c in columns.values() if c.auto and c.type in ("integer", "bigint")]
    pks = [c for c in columns.values() if c.primary_key]
    if autos and (len(pks) != 1 or not autos[0].primary_key):
        problems.append(((*at, "columns", autos[0].name, "auto"),
                         "an auto integer column must be the table's only primary key"))
    return Table(name, columns)


def _load_column(name: str, cdef: Any, at: tuple[str | int, ...],
                 problems: list[Problem]) -> Column | None:
    if not IDENT.match(name):
        problems.append((at, f"column name {name!r} must be letters, digits and _ "
                             "(starting with a letter or _)"))
        return None
    if isinstance(cdef, str):
        cdef = {"type": cdef}
    if not isinstance(cdef, Mapping):
        problems.append((at, "a column is a type name or {type: ..., primary_key?, auto?, "
                             "unique?, nullable?, default?}"))
        return None
    for k in cdef:
        if k not in COLUMN_KEYS:
            problems.append(((*at, k), unknown("column key", k, COLUMN_KEYS)))
    raw_type = str(cdef.get("type", "")).lower()
    if raw_type not in TYPES:
        problems.append(((*at, "type"), unknown("column type", raw_type or "(missing)",
                                                 sorted(set(TYPES.values())))))
        return None
    ctype = TYPES[raw_type]
    flags = {}
    for k in ("primary_key", "auto", "unique", "nullable"):
        v = cdef.get(k)
        if v is not None and not isinstance(v, bool):
            problems.append(((*at, k), f"{k} must be true or false"))
            v = None
        flags[k] = v
    pk, auto = bool(flags["primary_key"]), bool(flags["auto"])
    if auto and ctype not in ("integer", "bigint", "uuid"):
        problems.append(((*at, "auto"), "auto works on integer, bigint and uuid columns"))
        auto = False
    has_default = "default" in cdef
    default = cdef.get("default")
    if has_default:
        if default == NOW and ctype not in ("timestamp", "date"):
            problems.append(((*at, "default"), "default 'now' works on timestamp/date columns"))
        elif default != NOW:
            try:
                coerce(Column(name, ctype), default)
            except InputError as e:
                problems.append(((*at, "default"), str(e)))
    nullable = not pk if flags["nullable"] is None else bool(flags["nullable"])
    return Column(name, ctype, primary_key=pk, auto=auto, unique=bool(flags["unique"]),
                  nullable=nullable, default=default, has_default=has_default)


def _load_event(name: str, edef: Any, tables: dict[str, Table],
                problems: list[Problem]) -> Event | None:
    at: tuple[str | int, ...] = ("events", name)
    if not isinstance(edef, Mapping) or edef.get("op") not in OPS:
        got = edef.get("op") if isinstance(edef, Mapping) else edef
        problems.append((((*at, "op")) if isinstance(edef, Mapping) else at,
                         f"an event needs `op:` one of {', '.join(OPS)} (got {got!r})"))
        return None
    op = str(edef["op"])
    allowed = COMMON_EVENT_KEYS | EVENT_KEYS[op]
    for k in edef:
        if k not in allowed:
            problems.append(((*at, k), unknown(f"key for a {op} event", k, allowed)))
    ev = Event(name=name, op=op)
    if op == "sql":
        _load_sql_event(ev, edef, at, problems)
        return ev
    tname = edef.get("table")
    table = tables.get(str(tname)) if tname is not None else None
    if table is None:
        problems.append(((*at, "table"), "missing `table:`" if tname is None
                         else unknown("table", str(tname), tables)))
        return None
    ev.table = table.name

    def columns(key: str) -> list[str] | None:
        raw = edef.get(key)
        if raw is None:
            return None
        raw = [raw] if isinstance(raw, str) else raw
        if not isinstance(raw, list) or not raw:
            problems.append(((*at, key), f"{key} must be a list of column names"))
            return None
        for i, c in enumerate(raw):
            if c not in table.columns:
                problems.append(((*at, key, i), unknown(f"column of table '{table.name}':",
                                                        str(c), table.columns)))
        return [str(c) for c in raw]

    ev.returning = columns("returning")
    ev.select = columns("select")
    ev.update = columns("update")
    if op == "upsert":
        ev.key = columns("key") or []
        if not ev.key:
            problems.append(((*at, "key"), "an upsert needs `key: [columns]` naming the "
                                            "primary key or a unique column"))
        elif set(ev.key) != set(table.primary_key) and not (
                len(ev.key) == 1 and ev.key[0] in table.columns
                and table.columns[ev.key[0]].unique):
            problems.append(((*at, "key"), f"key {ev.key} must be the primary key "
                                            f"{table.primary_key} or one unique column"))
    if op == "insert" and "idempotency_key" in edef:
        _load_idempotency_key(ev, table, edef["idempotency_key"], (*at, "idempotency_key"),
                              problems)
    for flag in ("allow_all",):
        if flag in edef and not isinstance(edef[flag], bool):
            problems.append(((*at, flag), f"{flag} must be true or false"))
    ev.allow_all = edef.get("allow_all") is True
    if "where" in edef:
        if not isinstance(edef["where"], Mapping):
            problems.append(((*at, "where"), "where must be a filter mapping"))
        else:
            ev.where = dict(edef["where"])
            try:
                check_where(table, ev.where)
            except InputError as e:
                problems.append(((*at, "where"), str(e)))
    if "order_by" in edef:
        try:
            ev.order_by = parse_order_by(edef["order_by"])
            for c, _ in ev.order_by:
                table.column(c)
        except InputError as e:
            problems.append(((*at, "order_by"), str(e)))
    for key in ("limit", "offset"):
        v = edef.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0):
            problems.append(((*at, key), f"{key} must be a non-negative integer"))
        elif v is not None:
            setattr(ev, key, v)
    return ev


def _load_sql_event(ev: Event, edef: Mapping[str, Any], at: tuple[str | int, ...],
                    problems: list[Problem]) -> None:
    sql, params = edef.get("sql"), edef.get("params") or []
    if not isinstance(sql, str) or not sql.strip():
        problems.append(((*at, "sql"), "a sql event needs `sql:` text with :name parameters"))
        return
    if not isinstance(params, list) or not all(
            is_identifier(p) for p in params):
        problems.append(((*at, "params"), "params must be a list of parameter names"))
        params = []
    ev.sql, ev.params = sql, [str(p) for p in params]
    used = named_params(sql)
    for n in used:
        if n not in ev.params:
            hint = did_you_mean(n, ev.params, prefix="; ", cutoff=HINT_CUTOFF)
            problems.append(((*at, "sql"), f"parameter :{n} is not declared in params{hint}"))
    for i, p in enumerate(ev.params):
        if p not in used:
            problems.append(((*at, "params", i), f"parameter '{p}' is declared but the sql "
                                                 "does not use :" + p))


def _load_idempotency_key(ev: Event, table: Table, raw: Any, at: tuple[str | int, ...],
                          problems: list[Problem]) -> None:
    """`idempotency_key: <column>`: the insert writes the step's idempotency key there and, when
    a row with that key exists (the step ran before its result was recorded), returns it."""
    if not isinstance(raw, str) or raw not in table.columns:
        problems.append((at, "idempotency_key names the column the step's idempotency key is "
                             "written to: " + unknown(f"column of table '{table.name}':",
                                                      str(raw), table.columns)))
        return
    col = table.columns[raw]
    if col.type not in ("text", "uuid"):
        problems.append((at, f"idempotency_key column '{raw}' is {col.type}: the key is a "
                             "UUID, so make it a text or uuid column"))
    elif not (col.unique or table.primary_key == [raw]):
        problems.append((at, f"idempotency_key column '{raw}' must be unique (unique: true, "
                             "or the table's only primary key column): a second insert with "
                             "the same key is what it refuses"))
    else:
        ev.idempotency_key = raw
