"""Dialect-neutral SQL from validated identifiers: statements, where-operators, :name params."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ductwork.connectors.database.model import (
    HINT_CUTOFF,
    IDENT,
    Column,
    InputError,
    Table,
    coerce,
    unknown,
)
from ductwork.connectors.database.params import scan_params
from ductwork.util.suggest import did_you_mean

COMPARE = {"$eq": "=", "$ne": "<>", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = (*COMPARE, "$in", "$nin", "$like", "$ilike", "$isNull", "$isNotNull", "$between")
LOGICAL = ("$and", "$or", "$not")
MAX_DEPTH = 16  # nested $and/$or/$not; deeper filters are almost certainly an attack or a bug


class Dialect:
    """What differs between databases: placeholders, DDL types, value conversion, ILIKE."""

    name = ""
    placeholder = "?"
    escape_percent = False  # psycopg reads % in the query text as a placeholder marker
    ddl_types: Mapping[str, str] = {}

    def quote(self, ident: str) -> str:
        # Identifiers were already checked against IDENT (or the declared names); quoting
        # keeps reserved words like "order" or "user" usable as column names.
        if not IDENT.match(ident):
            raise InputError(f"invalid identifier {ident!r}")
        return '"' + ident.replace('"', '""') + '"'

    def column_ddl(self, col: Column, single_pk: bool) -> str:
        parts = [self.quote(col.name), self.ddl_types[col.type]]
        if col.primary_key and single_pk:
            parts.append("PRIMARY KEY")
        elif not col.nullable:
            parts.append("NOT NULL")
        if col.unique and not col.primary_key:
            parts.append("UNIQUE")
        return " ".join(parts)

    def to_db(self, col: Column, value: Any) -> Any:
        return value

    def from_db(self, col: Column, value: Any) -> Any:
        return value

    def ilike(self, column_sql: str, placeholder: str) -> str:
        return f"{column_sql} ILIKE {placeholder}"


@dataclass
class Statement:
    """One SQL statement with its bound parameters; `columns` types the returned rows."""

    sql: str
    params: list[Any] = field(default_factory=list)
    columns: Mapping[str, Column] | None = None


class Builder:
    """Builds statements for one table; every identifier is checked against the declaration."""

    def __init__(self, dialect: Dialect, table: Table) -> None:
        self.d, self.table = dialect, table
        self.q = dialect.quote

    def _value(self, col: Column, value: Any, params: list[Any]) -> str:
        params.append(self.d.to_db(col, coerce(col, value)))
        return self.d.placeholder

    def _returning(self, returning: Sequence[str] | None) -> tuple[str, dict[str, Column]]:
        names = list(returning) if returning else list(self.table.columns)
        cols = {n: self.table.column(n) for n in names}
        return ", ".join(self.q(n) for n in names), cols

    def insert(self, data: Mapping[str, Any], returning: Sequence[str] | None) -> Statement:
        params: list[Any] = []
        cols = [self.table.column(k) for k in data]
        ret, types = self._returning(returning)
        t = self.q(self.table.name)
        if not cols:
            return Statement(f"INSERT INTO {t} DEFAULT VALUES RETURNING {ret}", params, types)
        values = ", ".join(self._value(c, data[c.name], params) for c in cols)
        names = ", ".join(self.q(c.name) for c in cols)
        return Statement(f"INSERT INTO {t} ({names}) VALUES ({values}) RETURNING {ret}",
                         params, types)

    def upsert(self, data: Mapping[str, Any], key: Sequence[str], update: Sequence[str] | None,
               returning: Sequence[str] | None) -> Statement:
        stmt = self.insert(data, returning)
        head, _, ret = stmt.sql.partition(" RETURNING ")
        given = [k for k in data if k not in key]
        chosen = [c for c in (update if update is not None else given) if c in data]
        # DO NOTHING would return no row on conflict; re-setting the key keeps RETURNING useful.
        sets = chosen or list(key)
        assignments = ", ".join(f"{self.q(c)} = excluded.{self.q(c)}" for c in sets)
        conflict = ", ".join(self.q(self.table.column(k).name) for k in key)
        stmt.sql = (f"{head} ON CONFLICT ({conflict}) DO UPDATE SET {assignments} "
                    f"RETURNING {ret}")
        return stmt

    def select(self, where: Mapping[str, Any], order_by: Sequence[tuple[str, bool]],
               limit: int | None, offset: int | None,
               columns: Sequence[str] | None) -> Statement:
        params: list[Any] = []
        cols, types = self._returning(columns)
        sql = f"SELECT {cols} FROM {self.q(self.table.name)}" + self._where_clause(where, params)
        if order_by:
            # Explicit NULLS placement: SQLite and PostgreSQL disagree on the default.
            sql += " ORDER BY " + ", ".join(
                f"{self.q(self.table.column(c).name)} "
                + ("DESC NULLS FIRST" if desc else "ASC NULLS LAST")
                for c, desc in order_by)
        if limit is not None or offset is not None:
            sql += f" LIMIT {self.d.placeholder}"
            params.append(-1 if limit is None and self.d.name == "sqlite" else limit)
        if offset is not None:
            sql += f" OFFSET {self.d.placeholder}"
            params.append(offset)
        return Statement(sql, params, types)

    def update(self, where: Mapping[str, Any], data: Mapping[str, Any],
               returning: Sequence[str] | None) -> Statement:
        params: list[Any] = []
        sets = ", ".join(f"{self.q(c.name)} = {self._value(c, data[c.name], params)}"
                         for c in (self.table.column(k) for k in data))
        ret, types = self._returning(returning)
        sql = f"UPDATE {self.q(self.table.name)} SET {sets}" + self._where_clause(where, params)
        return Statement(sql + f" RETURNING {ret}", params, types)

    def delete(self, where: Mapping[str, Any]) -> Statement:
        params: list[Any] = []
        sql = f"DELETE FROM {self.q(self.table.name)}" + self._where_clause(where, params)
        return Statement(sql, params)

    def create_table(self) -> Statement:
        pks = self.table.primary_key
        defs = [self.d.column_ddl(c, len(pks) == 1) for c in self.table.columns.values()]
        if len(pks) > 1:
            defs.append("PRIMARY KEY (" + ", ".join(self.q(c) for c in pks) + ")")
        return Statement(f"CREATE TABLE IF NOT EXISTS {self.q(self.table.name)} "
                         f"({', '.join(defs)})")

    # -- where ---------------------------------------------------------------------------

    def _where_clause(self, where: Mapping[str, Any] | None, params: list[Any]) -> str:
        """The " WHERE <condition>" of a filter, or "" when it selects every row."""
        cond = self.where(where, params)
        return f" WHERE {cond}" if cond else ""

    def where(self, where: Mapping[str, Any] | None, params: list[Any], depth: int = 0) -> str:
        """Compile a filter map into SQL text; values are appended to params, never inlined."""
        if not where:
            return ""
        if not isinstance(where, Mapping):
            raise InputError(f"a where filter must be a mapping of column -> value or "
                             f"{{operator: value}}, got {type(where).__name__}")
        if depth > MAX_DEPTH:
            raise InputError(f"where filter nested deeper than {MAX_DEPTH} levels")
        parts = [self._term(k, v, params, depth) for k, v in where.items()]
        parts = [p for p in parts if p]
        return " AND ".join(parts) if len(parts) <= 1 else "(" + " AND ".join(parts) + ")"

    def _term(self, key: Any, value: Any, params: list[Any], depth: int) -> str:
        if isinstance(key, str) and key.startswith("$"):
            return self._logical(key, value, params, depth)
        col = self.table.column(key)
        qcol = self.q(col.name)
        if isinstance(value, Mapping):
            if not value:
                raise InputError(f"empty operator map for column '{col.name}'")
            return " AND ".join(self._op(col, qcol, str(op), arg, params)
                                for op, arg in value.items())
        return self._op(col, qcol, "$eq", value, params)

    def _logical(self, key: str, value: Any, params: list[Any], depth: int) -> str:
        if key not in LOGICAL:
            hint = did_you_mean(key, LOGICAL, prefix="; ", cutoff=HINT_CUTOFF)
            raise InputError(f"unknown logical operator {key[:40]!r}{hint} "
                             f"(filters use {', '.join(LOGICAL)} at the top level and "
                             f"{', '.join(OPERATORS)} under a column)")
        if key == "$not":
            inner = self.where(value, params, depth + 1) if isinstance(value, Mapping) else None
            if inner is None:
                raise InputError("$not expects a filter mapping")
            return f"NOT ({inner})" if inner else ""
        if not isinstance(value, list) or not value or not all(
                isinstance(v, Mapping) for v in value):
            raise InputError(f"{key} expects a non-empty list of filter mappings")
        parts = [self.where(v, params, depth + 1) or "1=1" for v in value]
        joiner = " AND " if key == "$and" else " OR "
        return "(" + joiner.join(f"({p})" for p in parts) + ")"

    def _op(self, col: Column, qcol: str, op: str, arg: Any, params: list[Any]) -> str:
        ph = self.d.placeholder
        if op in COMPARE:
            if arg is None:
                if op == "$eq":
                    return f"{qcol} IS NULL"
                if op == "$ne":
                    return f"{qcol} IS NOT NULL"
                raise InputError(f"{op} on '{col.name}' needs a value, got null")
            if op == "$ne":
                # Plain <> drops NULL rows; "not equal to x" should include them.
                self._value(col, arg, params)
                return f"({qcol} <> {ph} OR {qcol} IS NULL)"
            return f"{qcol} {COMPARE[op]} {self._value(col, arg, params)}"
        if op in ("$in", "$nin"):
            if not isinstance(arg, list | tuple):
                raise InputError(f"{op} on '{col.name}' expects a list")
            if not arg:
                return "1=0" if op == "$in" else "1=1"
            phs = ", ".join(self._value(col, v, params) for v in arg)
            if op == "$in":
                return f"{qcol} IN ({phs})"
            return f"({qcol} NOT IN ({phs}) OR {qcol} IS NULL)"
        if op in ("$like", "$ilike"):
            if col.type != "text":
                raise InputError(f"{op} works on text columns; '{col.name}' is {col.type}")
            if not isinstance(arg, str):
                raise InputError(f"{op} on '{col.name}' expects a text pattern")
            params.append(arg)
            # Backslash escapes % and _ on both backends (PostgreSQL's default; SQLite has none).
            like = f"{qcol} LIKE {ph}" if op == "$like" else self.d.ilike(qcol, ph)
            return like + " ESCAPE '\\'"
        if op in ("$isNull", "$isNotNull"):
            if not isinstance(arg, bool):
                raise InputError(f"{op} on '{col.name}' expects true or false")
            null = arg if op == "$isNull" else not arg
            return f"{qcol} IS NULL" if null else f"{qcol} IS NOT NULL"
        if op == "$between":
            if not isinstance(arg, list | tuple) or len(arg) != 2:
                raise InputError(f"$between on '{col.name}' expects [low, high]")
            lo = self._value(col, arg[0], params)
            hi = self._value(col, arg[1], params)
            return f"{qcol} BETWEEN {lo} AND {hi}"
        raise InputError(f"{unknown('operator', op, list(OPERATORS))} on column '{col.name}'")


class _NoDialect(Dialect):
    def to_db(self, col: Column, value: Any) -> Any:
        return value


def check_where(table: Table, where: Mapping[str, Any]) -> None:
    """Validate a filter against a table without a database (for `ductwork validate`)."""
    Builder(_NoDialect(), table).where(where, [])


# -- raw SQL with :name parameters --------------------------------------------------------

def bind_named(dialect: Dialect, sql: str, declared: Sequence[str],
               values: Mapping[str, Any] | None) -> Statement:
    """`:name` -> the driver's placeholder; values are taken only from declared names."""
    values = dict(values or {})
    for k in values:
        if k not in declared:
            raise InputError(unknown("parameter", str(k), list(declared)))
    text, names = scan_params(sql, dialect.placeholder, dialect.escape_percent)
    missing = [n for n in dict.fromkeys(names) if n not in values]
    if missing:
        raise InputError("missing parameter(s): " + ", ".join(missing))
    return Statement(text, [values[n] for n in names])
