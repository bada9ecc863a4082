"""The database operations, shared by every SQL driver: events -> validated statements -> rows."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ductwork.connectors import idempotency
from ductwork.connectors.base import DatabaseConnector, Problem, ResourceSpec
from ductwork.connectors.database.model import (
    Event,
    InputError,
    Schema,
    Table,
    default_value,
    unknown,
)
from ductwork.connectors.database.schema import load_schema, parse_order_by
from ductwork.connectors.database.sql import Builder, Dialect, Statement, bind_named
from ductwork.connectors.util import describe_problems, duration_s, first_env, is_ref
from ductwork.errors import ConnectorError

# Which ctx.database method runs each op (for "wrong method" errors).
METHOD = {"insert": "insert", "query": "query", "update": "update", "delete": "delete",
          "upsert": "upsert", "sql": "execute"}


@dataclass
class Result:
    """One executed statement: its rows (None when it returns no result set) and rowcount."""

    rows: list[dict[str, Any]] | None
    rowcount: int


def check_config(config: Mapping[str, Any], checks: Mapping[str, Callable[[Any], str | None]],
                 at: tuple[str | int, ...] = ()) -> list[Problem]:
    """Unknown keys and bad values of one environment's config; each check returns a message."""
    problems: list[Problem] = []
    for key, value in config.items():
        if key not in checks:
            problems.append(((*at, key), unknown("setting", str(key), list(checks))))
            continue
        msg = checks[key](value)
        if msg:
            problems.append(((*at, key), msg))
    return problems


def is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def is_text(v: Any) -> str | None:
    return None if isinstance(v, str) and v else "must be a non-empty string"


def is_duration(key: str, *, allow_zero: bool = False) -> Callable[[Any], str | None]:
    """A check for a duration setting: "5s", "250ms", a bare number of milliseconds."""
    def check(v: Any) -> str | None:
        if is_ref(v):
            return None  # checked once resolved, when the connector is built
        try:
            duration_s(v, key, allow_zero=allow_zero)
        except ValueError as e:
            return str(e)
        return None
    return check


def definition_problems(definition: Mapping[str, Any], config: Mapping[str, Any]
                        ) -> list[Problem]:
    """Problems of tables/events, reported with the first env's config only."""
    return load_schema(definition)[1] if first_env(definition, config) else []


class SQLDatabase(DatabaseConnector):
    """insert/query/update/delete/upsert/execute for any driver that implements _connect/_run."""

    dialect: ClassVar[Dialect]

    def __init__(self, spec: ResourceSpec, *, create_tables: bool) -> None:
        super().__init__(spec)
        self.rspec = spec
        schema, problems = load_schema(spec.definition)
        if problems:
            raise spec.error(f"invalid database definition: {describe_problems(problems, 5)}; "
                             "run `ductwork validate` for every problem")
        self.schema: Schema = schema
        self.create_tables = create_tables
        self._ready = False
        self._lock = asyncio.Lock()

    # -- driver hooks -------------------------------------------------------------------

    async def _connect(self, event: str | None) -> None:
        """Open the connection/pool; raise self._error(...) when it cannot."""
        raise NotImplementedError

    async def _run(self, statements: Sequence[Statement]) -> list[Result]:
        """Execute the statements in one transaction (all or nothing)."""
        raise NotImplementedError

    def _driver_error(self, exc: BaseException) -> tuple[str, bool] | None:
        """(message, retryable) for a driver exception; None when it is not the driver's.
        retryable False is final: a step does not retry it (a constraint, a syntax error)."""
        return None

    def _create_statements(self) -> list[Statement]:
        return [Builder(self.dialect, t).create_table() for t in self.schema.tables.values()]

    def _raw_value(self, value: Any) -> Any:
        return value

    # -- plumbing -----------------------------------------------------------------------

    def _error(self, message: str, event: str | None, *, retryable: bool | None = None
               ) -> ConnectorError:
        return self.rspec.error(message, event=event, retryable=retryable)

    async def _ensure_ready(self, event: str | None) -> None:
        if self._ready:
            return
        async with self._lock:
            if self._ready:
                return
            await self._connect(event)
            if self.create_tables and self.schema.tables:
                try:
                    await self._run(self._create_statements())
                except Exception as e:
                    desc = self._driver_error(e)
                    if desc is None:
                        raise
                    raise self._error(f"creating the declared tables failed: {desc[0]}", event,
                                      retryable=desc[1]) from None
            self._ready = True

    async def _exec(self, event: str, statements: Sequence[Statement]) -> list[Result]:
        await self._ensure_ready(event)
        try:
            results = await self._run(statements)
        except Exception as e:
            desc = self._driver_error(e)
            if desc is None:
                raise
            raise self._error(desc[0], event, retryable=desc[1]) from None
        for stmt, res in zip(statements, results, strict=True):
            if res.rows and stmt.columns:
                res.rows = [self._typed(stmt, row) for row in res.rows]
        return results

    async def ping(self) -> str:
        """Connect and SELECT 1 (the declared tables are not created)."""
        await self._connect("health")
        try:
            await self._run([Statement("SELECT 1")])
        except Exception as e:
            desc = self._driver_error(e)
            if desc is None:
                raise
            raise self._error(desc[0], "health", retryable=desc[1]) from None
        return "SELECT 1"

    def _typed(self, stmt: Statement, row: dict[str, Any]) -> dict[str, Any]:
        cols = stmt.columns or {}
        out = {}
        for k, v in row.items():
            col = cols.get(k)
            out[k] = self.dialect.from_db(col, v) if col is not None and v is not None else v
        return out

    def _event(self, name: str, *ops: str) -> tuple[Event, Table | None]:
        self.rspec.event(name)  # unknown event -> error listing the declared ones
        ev = self.schema.events[name]
        if ev.op not in ops:
            raise self._error(f"event '{name}' is a {ev.op} event: call "
                              f"database.{METHOD[ev.op]}(...) for it", name, retryable=False)
        return ev, (self.schema.tables[ev.table] if ev.table else None)

    def _builder(self, table: Table | None) -> Builder:
        assert table is not None
        return Builder(self.dialect, table)

    @staticmethod
    def _rows_in(data: Any) -> tuple[list[Mapping[str, Any]], bool]:
        if isinstance(data, Mapping):
            return [data], True
        if isinstance(data, list) and data and all(isinstance(d, Mapping) for d in data):
            return data, False
        raise InputError("data must be an object of column -> value, or a non-empty list of them")

    @staticmethod
    def _with_defaults(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
        for k in row:
            table.column(k)  # the caller's own unknown keys are reported before anything else
        out = dict(row)
        for col in table.columns.values():
            if col.name in out:
                continue
            if col.has_default:
                out[col.name] = default_value(col)
            elif col.auto and col.type == "uuid":
                out[col.name] = uuid.uuid4()
        return out

    @staticmethod
    def _merge(fixed: Mapping[str, Any], given: Mapping[str, Any] | None) -> dict[str, Any]:
        if given is not None and not isinstance(given, Mapping):
            raise InputError(f"a where filter must be a mapping, got {type(given).__name__}")
        if fixed and given:
            return {"$and": [dict(fixed), dict(given)]}
        return dict(fixed or given or {})

    def _wrap(self, event: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except InputError as e:  # the caller's data: the same call fails the same way
            raise self._error(str(e), event, retryable=False) from None

    # -- operations ---------------------------------------------------------------------

    async def insert(self, event: str, data: Any) -> Any:
        ev, table = self._event(event, "insert")

        def build() -> tuple[list[Statement], bool]:
            rows, single = self._rows_in(data)
            b = self._builder(table)
            assert table is not None
            if ev.idempotency_key is not None:
                return [self._insert_once(b, table, ev, r) for r in rows], single
            return [b.insert(self._with_defaults(table, r), ev.returning) for r in rows], single

        stmts, single = self._wrap(event, build)
        return await self._written(event, stmts, single)

    def _insert_once(self, b: Builder, table: Table, ev: Event, row: Mapping[str, Any]
                     ) -> Statement:
        """Insert unless a row with this idempotency key exists, and return that row: a step
        re-run after its insert landed (killed before its result was recorded) gets the row
        it made the first time instead of a second one."""
        col = str(ev.idempotency_key)
        full = dict(row)
        if full.get(col) is None:  # a key given in data wins: the caller chose it
            key = idempotency.next_key()
            if key is None:
                raise InputError(f"event '{ev.name}' inserts once per idempotency key: call it "
                                 f"inside a step (ctx.step), or give data a '{col}' value")
            full[col] = key
        # A conflict re-sets the key to itself: the row stays as it was and RETURNING gives it.
        return b.upsert(self._with_defaults(table, full), [col], [], ev.returning)

    async def upsert(self, event: str, data: Any) -> Any:
        ev, table = self._event(event, "upsert")

        def build() -> tuple[list[Statement], bool]:
            rows, single = self._rows_in(data)
            b = self._builder(table)
            assert table is not None
            stmts = []
            for r in rows:
                missing = [k for k in ev.key if r.get(k) is None]
                if missing:
                    raise InputError(f"upsert needs the key column(s) {', '.join(missing)} "
                                     "in data")
                full = self._with_defaults(table, r)
                stmts.append(b.upsert(full, ev.key, ev.update if ev.update is not None
                                      else [k for k in r if k not in ev.key], ev.returning))
            return stmts, single

        stmts, single = self._wrap(event, build)
        return await self._written(event, stmts, single)

    async def _written(self, event: str, stmts: list[Statement], single: bool) -> Any:
        """The row each insert/upsert returned: the row for one object of data, else a list."""
        out = [r.rows[0] if r.rows else None for r in await self._exec(event, stmts)]
        return out[0] if single else out

    async def query(self, event: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        ev, table = self._event(event, "query", "sql")
        if ev.op == "sql":
            res = await self._raw(ev, params)
            return res if isinstance(res, list) else []

        def build() -> Statement:
            if params is not None and not isinstance(params, Mapping):
                raise InputError(f"params must be a filter mapping, got {type(params).__name__}")
            where = dict(params or {})
            limit = _count("$limit", where.pop("$limit", ev.limit))
            offset = _count("$offset", where.pop("$offset", ev.offset))
            order_raw = where.pop("$order_by", None)
            order = parse_order_by(order_raw) if order_raw is not None else ev.order_by
            return self._builder(table).select(self._merge(ev.where, where), order, limit,
                                               offset, ev.select)

        stmt = self._wrap(event, build)
        return list((await self._exec(event, [stmt]))[0].rows or [])

    async def update(self, event: str, where: Mapping[str, Any] | None, data: Any) -> Any:
        ev, table = self._event(event, "update")

        def build() -> Statement:
            if not isinstance(data, Mapping) or not data:
                raise InputError("data must be a non-empty object of column -> new value")
            merged = self._merge(ev.where, where)
            if not merged and not ev.allow_all:
                raise InputError("refusing to update every row: pass a where filter "
                                 "(or declare `allow_all: true` on the event)")
            return self._builder(table).update(merged, data, ev.returning)

        stmt = self._wrap(event, build)
        return list((await self._exec(event, [stmt]))[0].rows or [])

    async def delete(self, event: str, where: Mapping[str, Any] | None) -> bool:
        ev, table = self._event(event, "delete")

        def build() -> Statement:
            merged = self._merge(ev.where, where)
            if not merged and not ev.allow_all:
                raise InputError("refusing to delete every row: pass a where filter "
                                 "(or declare `allow_all: true` on the event)")
            return self._builder(table).delete(merged)

        stmt = self._wrap(event, build)
        return (await self._exec(event, [stmt]))[0].rowcount > 0

    async def execute(self, event: str, input: Mapping[str, Any] | None = None) -> Any:
        """Raw SQL events; any other event runs its own op with input as its argument(s)."""
        ev, _ = self._event(event, *METHOD)
        if ev.op == "sql":
            return await self._raw(ev, input)
        if ev.op in ("insert", "upsert"):
            return await (self.insert if ev.op == "insert" else self.upsert)(event, input)
        if ev.op == "query":
            return await self.query(event, input)
        shape = "{where, data}" if ev.op == "update" else "{where}"
        if not isinstance(input, Mapping) or not set(input) <= {"where", "data"}:
            raise self._error(f"execute on a {ev.op} event takes input {shape}", event,
                              retryable=False)
        if ev.op == "update":
            return await self.update(event, input.get("where"), input.get("data"))
        return await self.delete(event, input.get("where"))

    async def _raw(self, ev: Event, input: Mapping[str, Any] | None) -> Any:
        def build() -> Statement:
            if input is not None and not isinstance(input, Mapping):
                raise InputError(f"input must be a mapping of parameter -> value, "
                                 f"got {type(input).__name__}")
            stmt = bind_named(self.dialect, ev.sql, ev.params, input)
            stmt.params = [self._raw_value(v) for v in stmt.params]
            return stmt

        stmt = self._wrap(ev.name, build)
        res = (await self._exec(ev.name, [stmt]))[0]
        return res.rows if res.rows is not None else {"rowcount": res.rowcount}


def _count(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{name} must be a non-negative integer, got {value!r}")
    return value
