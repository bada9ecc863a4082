"""Database calls checked before they run: data and filter keys against the declared columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ductwork.connectors.checks import CallProblem, Detail, Path, Runtime, keys_of
from ductwork.connectors.database.model import (
    HINT_CUTOFF,
    Column,
    Event,
    InputError,
    Table,
    coerce,
)
from ductwork.connectors.database.params import named_params
from ductwork.connectors.database.schema import load_schema
from ductwork.connectors.database.sql import LOGICAL, OPERATORS
from ductwork.util.suggest import did_you_mean, suggest

# A query's params may also page and sort (see SQLDatabase.query).
PAGING = ("$limit", "$offset", "$order_by")
# Operators people bring from other query languages, and what to write here.
HABITS = {
    "$regex": "$like takes a SQL pattern: {$like: 'gift%'}",
    "$contains": "$like takes a SQL pattern: {$like: '%text%'}",
    "$startsWith": "$like takes a SQL pattern: {$like: 'text%'}",
    "$exists": "write {$isNotNull: true} (or $isNull)",
    "$ge": "did you mean '$gte'?", "$le": "did you mean '$lte'?",
    "$neq": "did you mean '$ne'?", "$notIn": "did you mean '$nin'?",
    "$not_in": "did you mean '$nin'?", "$equals": "did you mean '$eq'?",
}


def check_call(method: str, definition: Mapping[str, Any],
               args: Mapping[str, Any]) -> list[CallProblem]:
    """Problems of one database.<method> call whose event is declared."""
    schema, _ = load_schema(definition)  # the product check reports the schema's own problems
    ev = schema.events.get(str(args.get("event")))
    if ev is None or (method != "execute" and ev.op != method):
        return []  # the compiler reports an unknown event or one of another operation
    table = schema.tables.get(ev.table) if ev.table else None
    if method == "execute":
        return _execute(ev, table, args.get("input"))
    if table is None:
        return []
    return _by_op(ev, table, method, args)


def _by_op(ev: Event, table: Table, op: str, args: Mapping[str, Any]) -> list[CallProblem]:
    out: list[CallProblem] = []
    if op in ("insert", "upsert"):
        out += _rows(ev, table, args.get("data"), ("data",), upsert=op == "upsert")
    elif op == "update":
        out += _update_data(table, args.get("data"), ("data",))
        out += _filter(table, args.get("where"), ("where",))
        out += _every_row(ev, table, args, "update")
    elif op == "delete":
        out += _filter(table, args.get("where"), ("where",))
        out += _every_row(ev, table, args, "delete")
    elif op == "query":
        out += _filter(table, args.get("params"), ("params",), paging=True)
    return out


def _execute(ev: Event, table: Table | None, value: Any) -> list[CallProblem]:
    """database.execute: a raw-SQL event's parameters, or another op's input."""
    if ev.op == "sql":
        return _sql_input(ev, value)
    if table is None:
        return []
    if ev.op in ("insert", "upsert", "query"):
        op_args = {"data": value} if ev.op != "query" else {"params": value}
        return [(("input", *p[1:]), m) for p, m in _by_op(ev, table, ev.op, op_args)]
    if not isinstance(value, Mapping):
        return []
    out = _filter(table, value.get("where"), ("input", "where"))
    if ev.op == "update":
        out += _update_data(table, value.get("data"), ("input", "data"))
    return out


# -- rows (insert, upsert) --------------------------------------------------------------------


def _required(ev: Event, table: Table, upsert: bool) -> list[Column]:
    """Columns an inserted row must give: NOT NULL without a default and not generated."""
    cols = [c for c in table.columns.values()
            if not c.nullable and not c.has_default and not c.auto]
    if upsert:
        cols += [table.columns[k] for k in ev.key if k in table.columns
                 and table.columns[k] not in cols]
    return cols


def _rows(ev: Event, table: Table, data: Any, at: Path, *, upsert: bool) -> list[CallProblem]:
    if data is None:
        return []  # the schema requires `data`
    if isinstance(data, list):
        if not data:
            return [(at, Detail("data is an empty list: nothing would be written",
                                "give one row {column: value} or a list of them"))]
        out: list[CallProblem] = []
        for i, row in enumerate(data):
            out += _rows(ev, table, row, (*at, i), upsert=upsert)
        return out
    if isinstance(data, Runtime):
        return _runtime_row(ev, table, data, at, upsert)
    if not isinstance(data, Mapping):
        return [(at, Detail(f"data must be a mapping of column -> value, not "
                            f"{type(data).__name__}", f"e.g. data: {{{_first(table)}: ...}}"))]
    out = _values(table, data, at)
    # A misspelt column was reported with the right name: once is enough.
    meant = {suggest(str(k), table.columns, cutoff=HINT_CUTOFF) for k in data
             if k not in table.columns}
    for col in _required(ev, table, upsert):
        if col.name not in data and col.name not in meant:
            out.append((at, _missing(ev, table, col, upsert)))
    return out


def _missing(ev: Event, table: Table, col: Column, upsert: bool) -> Detail:
    if upsert and col.name in ev.key:
        return Detail(f"upsert into table '{table.name}' leaves out '{col.name}', a column of "
                      f"the event's key", f"add {col.name}: ... to data (the key finds the row)")
    return Detail(f"insert into table '{table.name}' leaves out '{col.name}', which is NOT NULL "
                  "and has no default",
                  f"add {col.name}: ... to data, or give the column a default in product.yaml")


def _runtime_row(ev: Event, table: Table, data: Runtime, at: Path,
                 upsert: bool) -> list[CallProblem]:
    known = keys_of(data)
    if known is None:
        return []
    surely, possibly = known
    out: list[CallProblem] = []
    for name in sorted(surely - set(table.columns)):
        out.append((at, Detail(
            f"data always has '{name}', which is not a column of table '{table.name}'",
            _column_hint(name, table))))
    if possibly is not None:
        for col in _required(ev, table, upsert):
            if col.name not in possibly:
                out.append((at, _missing(ev, table, col, upsert)))
    return out


def _update_data(table: Table, data: Any, at: Path) -> list[CallProblem]:
    if isinstance(data, Mapping) and not data:
        return [(at, Detail("data is empty: an update needs at least one column to set",
                            f"e.g. data: {{{_first(table)}: ...}}"))]
    if isinstance(data, Mapping):
        return _values(table, data, at)
    return []


def _values(table: Table, data: Mapping[str, Any], at: Path) -> list[CallProblem]:
    """Unknown columns, and literal values the column's type refuses."""
    out: list[CallProblem] = []
    for key, value in data.items():
        col = table.columns.get(str(key))
        if col is None:
            out.append(((*at, key), _unknown_column(str(key), table)))
            continue
        problem = _value_problem(col, value)
        if problem:
            out.append(((*at, key), problem))
    return out


def _value_problem(col: Column, value: Any) -> Detail | None:
    if _dynamic(value):
        return None
    if value is None:
        if not col.nullable:
            return Detail(f"column '{col.name}' is NOT NULL, so it cannot be set to null",
                          "give a value, or leave the key out to use the column's default")
        return None
    try:
        coerce(col, value)
    except InputError as e:
        article = "an" if col.type[0] in "aeiou" else "a"
        hint = f"'{col.name}' is {article} {col.type} column in product.yaml"
        if col.type in ("numeric", "float") and isinstance(value, str) and "," in value:
            hint = f"write {value.replace(',', '.')}: a dot for decimals"
        return Detail(str(e), hint)
    return None


def _dynamic(value: Any) -> bool:
    if isinstance(value, Runtime):
        return True
    if isinstance(value, Mapping):
        return any(_dynamic(v) for v in value.values())
    if isinstance(value, list):
        return any(_dynamic(v) for v in value)
    return False


# -- filters (where, params) ------------------------------------------------------------------


def _filter(table: Table, where: Any, at: Path, *, paging: bool = False,
            depth: int = 0) -> list[CallProblem]:
    if where is None or isinstance(where, Runtime) or depth > 16:
        return []
    if not isinstance(where, Mapping):
        return [(at, Detail(f"a filter is a mapping of column -> value or {{operator: value}}, "
                            f"not {type(where).__name__}", f"e.g. {{{_first(table)}: ...}}"))]
    out: list[CallProblem] = []
    for key, value in where.items():
        name = str(key)
        here = (*at, key)
        if paging and name in PAGING:
            out += _paging(table, name, value, here)
        elif name.startswith("$"):
            out += _logical(table, name, value, here, depth)
        elif name not in table.columns:
            out.append((here, _unknown_column(name, table)))
        elif isinstance(value, Mapping):
            out += _operators(table.columns[name], value, here)
        else:
            problem = _value_problem(table.columns[name], value) if value is not None else None
            if problem:
                out.append((here, problem))
    return out


def _logical(table: Table, key: str, value: Any, at: Path, depth: int) -> list[CallProblem]:
    if key not in LOGICAL:
        hint = did_you_mean(key, LOGICAL, cutoff=HINT_CUTOFF)
        where = ", ".join(LOGICAL)
        if key in OPERATORS:
            hint = f"{key} goes under a column: {{column: {{{key}: ...}}}}"
        return [(at, Detail(f"unknown logical operator '{key}'",
                            hint or f"the top level of a filter takes columns and {where}",
                            key=True))]
    if key == "$not":
        if isinstance(value, Mapping | Runtime):
            return _filter(table, value, at, depth=depth + 1)
        return [(at, Detail("$not takes a filter mapping", "e.g. $not: {status: done}"))]
    if isinstance(value, Runtime):
        return []
    if not isinstance(value, list) or not value:
        return [(at, Detail(f"{key} takes a non-empty list of filter mappings",
                            f"e.g. {key}: [{{a: 1}}, {{b: 2}}]"))]
    out: list[CallProblem] = []
    for i, item in enumerate(value):
        out += _filter(table, item, (*at, i), depth=depth + 1)
    return out


def _operators(col: Column, ops: Mapping[str, Any], at: Path) -> list[CallProblem]:
    if not ops:
        return [(at, Detail(f"empty operator mapping for column '{col.name}'",
                            f"e.g. {col.name}: {{$eq: ...}}, or give the value itself"))]
    out: list[CallProblem] = []
    for op, arg in ops.items():
        here = (*at, op)
        problem = _operator(col, str(op), arg)
        if problem:
            out.append((here, problem))
    return out


def _operator(col: Column, op: str, arg: Any) -> Detail | None:
    if op not in OPERATORS:
        hint = HABITS.get(op) or did_you_mean(op, OPERATORS)
        if not op.startswith("$"):
            hint = (f"a mapping under a column is read as operators; {col.name} takes "
                    f"{', '.join(OPERATORS)}")
        return Detail(f"unknown operator '{op}' on column '{col.name}'",
                      hint or f"operators: {', '.join(OPERATORS)}", key=True)
    if _dynamic(arg):
        return None
    if op in ("$like", "$ilike"):
        if col.type != "text":
            return Detail(f"{op} works on text columns; '{col.name}' is {col.type}",
                          "compare with $eq, $in or $between instead", key=True)
        if not isinstance(arg, str):
            return Detail(f"{op} on '{col.name}' takes a text pattern", "e.g. 'ann%'")
        return None
    if op in ("$in", "$nin"):
        if not isinstance(arg, list):
            items = [x.strip() for x in arg.split(",")] if isinstance(arg, str) else ["a", "b"]
            return Detail(f"{op} on '{col.name}' takes a list",
                          f"write a list: {op}: [{', '.join(items)}]")
        return next((p for p in (_value_problem(col, v) for v in arg) if p), None)
    if op in ("$isNull", "$isNotNull"):
        return None if isinstance(arg, bool) else Detail(f"{op} takes true or false")
    if op == "$between":
        if not isinstance(arg, list) or len(arg) != 2:
            return Detail(f"$between on '{col.name}' takes [low, high]")
        return next((p for p in (_value_problem(col, v) for v in arg) if p), None)
    if arg is None:
        return None if op in ("$eq", "$ne") else Detail(f"{op} on '{col.name}' needs a value")
    return _value_problem(col, arg)


def _paging(table: Table, name: str, value: Any, at: Path) -> list[CallProblem]:
    if _dynamic(value):
        return []
    if name == "$order_by":
        items = value if isinstance(value, list) else [value]
        out: list[CallProblem] = []
        for item in items:
            column = str(item).strip().lstrip("-").split()[0] if str(item).strip() else ""
            if column not in table.columns:
                out.append((at, _unknown_column(column, table)))
        return out
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return [(at, Detail(f"{name} is a whole number >= 0", f"e.g. {name}: 10"))]
    return []


def _every_row(ev: Event, table: Table, args: Mapping[str, Any], op: str) -> list[CallProblem]:
    """The connector refuses an update or delete that would touch every row."""
    where = args.get("where")
    if ev.where or ev.allow_all or isinstance(where, Runtime) or where:
        return []
    at: Path = ("where",) if "where" in args else ()
    verb = "delete" if op == "delete" else "update"
    return [(at, Detail(f"database.{op} without a where filter would {verb} every row of "
                        f"table '{table.name}', and the connector refuses",
                        f"pass where: {{{_first(table)}: ...}}, or declare allow_all: true on "
                        f"the event '{ev.name}'"))]


# -- raw SQL ------------------------------------------------------------------------------------


def _sql_input(ev: Event, value: Any) -> list[CallProblem]:
    used = named_params(ev.sql)
    if isinstance(value, Runtime):
        known = keys_of(value)
        if known is None or known[1] is None:
            return []
        given: set[str] = set(known[1])
    elif isinstance(value, Mapping):
        given = {str(k) for k in value}
    elif value is None:
        given = set()
    else:
        return []
    out: list[CallProblem] = []
    if isinstance(value, Mapping):
        for key in value:
            if key not in ev.params:
                close = suggest(str(key), ev.params, cutoff=HINT_CUTOFF)
                given.add(close or "")  # reported with the right name: once is enough
                hint = f"did you mean '{close}'?" if close else ""
                out.append((("input", key), Detail(
                    f"event '{ev.name}' has no parameter '{key}'",
                    hint or f"its sql takes {', '.join(':' + p for p in ev.params) or 'none'}",
                    key=True)))
    missing = [n for n in used if n not in given]
    if missing:
        out.append((("input",) if value is not None else (), Detail(
            f"the sql of event '{ev.name}' needs :{' :'.join(missing)}, which the call does "
            "not pass", f"add {', '.join(f'{n}: ...' for n in missing)} to input")))
    return out


# -- messages -----------------------------------------------------------------------------------


def _unknown_column(name: str, table: Table) -> Detail:
    return Detail(f"unknown column '{name}' in table '{table.name}'", _column_hint(name, table),
                  key=True)


def _column_hint(name: str, table: Table) -> str:
    pk = table.primary_key
    own = {f"{table.name}_id", f"{table.name.removesuffix('s')}_id"}
    if len(pk) == 1 and name.lower() in own and name != pk[0]:
        # `order_id` on table orders is the row's own key: spelled `id` here.
        return f"did you mean '{pk[0]}'? (the key of table '{table.name}')"
    return (did_you_mean(name, table.columns, cutoff=HINT_CUTOFF)
            or f"the columns are {', '.join(table.columns)}")


def _first(table: Table) -> str:
    return next(iter(table.columns), "column")
