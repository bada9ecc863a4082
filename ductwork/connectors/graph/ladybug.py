"""Embedded graph provider: ladybug (the maintained Kùzu fork; `kuzu` works as a fallback).

A ladybug database file is locked by the process that opens it: a second process gets an
error. This module opens each database once per process and shares it between connectors;
multi-process deployments (several `ductwork worker`s) need the falkordb provider.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import os
import threading
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

try:
    import ladybug as lb
except ImportError:  # pragma: no cover - the archived upstream `kuzu` has the same API
    lb = importlib.import_module("kuzu")

from ductwork.connectors.base import Problem, ResourceSpec
from ductwork.connectors.graph.cypher import (
    BaseGraph,
    node_result,
    quote_ident,
    rel_result,
    shared_problems,
)
from ductwork.connectors.util import env_path, unknown_keys

DEFAULT_PATH = ".ductwork/graph"
CONFIG_KEYS = {"provider", "path"}

# key (the absolute path; a private key for :memory:) -> [Database, connectors using it]
_DATABASES: dict[str, list[Any]] = {}
_DATABASES_LOCK = threading.Lock()


def _acquire(key: str, path: str) -> Any:
    with _DATABASES_LOCK:
        entry = _DATABASES.get(key)
        if entry is None:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            entry = _DATABASES[key] = [lb.Database(path), 0]
        entry[1] += 1
        return entry[0]


def _release(key: str) -> None:
    with _DATABASES_LOCK:
        entry = _DATABASES.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _DATABASES[key]
            entry[0].close()


def validate_ladybug(definition: dict[str, Any], config: dict[str, Any]) -> list[Problem]:
    problems = unknown_keys(definition, config, CONFIG_KEYS, "ladybug")
    path = config.get("path", DEFAULT_PATH)
    if not isinstance(path, str) or not path:
        problems.append(((*env_path(definition, config), "path"),
                         "path is the database file (relative to the product file)"))
    return problems + shared_problems(definition, config)


def _value(v: Any) -> Any:
    """Result values as JSON-able data; nodes, relationships and paths in the shared shape."""
    if isinstance(v, dict):
        if "_NODES" in v and "_RELS" in v:
            return {"nodes": [_value(n) for n in v["_NODES"]],
                    "relationships": [_value(r) for r in v["_RELS"]]}
        if "_LABEL" in v and "_ID" in v:
            props = {k: _value(x) for k, x in v.items() if not k.startswith("_")}
            if "_SRC" in v:
                return rel_result(str(v["_LABEL"]), props)
            return node_result([str(v["_LABEL"])], props)
        return {str(k): _value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_value(x) for x in v]
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    return v


_PLAIN = (str, int, float, bool, dt.datetime, dt.date, dt.timedelta, uuid.UUID, Decimal)


def _columns(props: Mapping[str, str]) -> dict[str, str]:
    """A table's columns: the `id` key first (always STRING), then the declared properties."""
    return {"id": "STRING", **{k: v for k, v in props.items() if k != "id"}}


def _column_defs(props: Mapping[str, str]) -> str:
    return ", ".join(f"{quote_ident(k)} {t}" for k, t in _columns(props).items())


class LadybugGraph(BaseGraph):
    """One connection per connector over the process-wide database; calls run in a thread."""

    provider = "ladybug"
    single_label = True

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        raw = str(spec.config.get("path") or DEFAULT_PATH)
        if raw == ":memory:":
            self.path = raw
            self._key = f":memory:{id(self)}"  # in-memory databases are never shared
        else:
            p = Path(raw).expanduser()
            self.path = os.path.abspath(p if p.is_absolute() else Path(spec.base_dir) / p)
            self._key = self.path
        self._conn: Any = None
        self._db_held = False
        self._lock = threading.Lock()
        self._tables: set[str] = set()
        self._rel_tables: set[str] = set()

    def bind(self, op: str, value: Any, path: str = "value") -> Any:
        if value is None or isinstance(value, _PLAIN):
            return value
        if isinstance(value, list | tuple):
            return [self.bind(op, v, path) for v in value]
        if isinstance(value, Mapping):
            return {str(k): self.bind(op, v, path) for k, v in value.items()}
        raise self._err(op, f"{path}: a {type(value).__name__} cannot be stored in the graph")

    # -- connection and schema (called with self._lock held, in a worker thread) --------------
    def _open(self, op: str) -> None:
        try:
            db = _acquire(self._key, self.path)
        except RuntimeError as e:
            text = str(e)
            if "lock" in text.lower():
                raise self._err(op, f"the graph database {self.path} is locked by another "
                                "process; ladybug allows one process per database: run one "
                                "process, or use provider falkordb for multi-process workers "
                                f"({text})") from None
            raise self._err(op, f"cannot open the graph database {self.path}: {text}") from None
        self._db_held = True
        try:
            self._conn = lb.Connection(db)
            self._ensure_schema()
        except Exception:
            self._close()
            raise

    def _execute(self, cypher: str, params: Mapping[str, Any] | None = None) -> list[list[Any]]:
        result = self._conn.execute(cypher, dict(params or {}))
        try:
            rows = []
            while result.has_next():
                rows.append(result.get_next())
            return rows
        finally:
            result.close()

    def _ensure_schema(self) -> None:
        """Create the declared node/relationship tables; add declared columns they lack."""
        tables = self._show_tables()
        for label, props in self.schema.nodes.items():
            if not self._has_table(tables, label, props):
                defs = _column_defs(props)
                self._execute(f"CREATE NODE TABLE IF NOT EXISTS {quote_ident(label)}"
                              f"({defs}, PRIMARY KEY(`id`))")
        for rtype, rel in self.schema.rels.items():
            if not self._has_table(tables, rtype, rel.properties):
                defs = _column_defs(rel.properties)
                self._execute(f"CREATE REL TABLE IF NOT EXISTS {quote_ident(rtype)}(FROM "
                              f"{quote_ident(rel.source)} TO {quote_ident(rel.target)}, {defs})")
        tables = self._show_tables()
        self._tables = set(tables)
        self._rel_tables = {name for name, kind in tables.items() if kind.upper() == "REL"}

    def _show_tables(self) -> dict[str, str]:
        """Table name -> its type (NODE, REL, ...)."""
        return {str(r[1]): str(r[2]) for r in self._execute("CALL show_tables() RETURN *")}

    def _has_table(self, tables: Mapping[str, str], table: str, props: Mapping[str, str]) -> bool:
        """Whether the table exists; when it does, add the declared columns it lacks."""
        if table not in tables:
            return False
        self._add_columns(table, _columns(props))
        return True

    def _add_columns(self, table: str, cols: Mapping[str, str]) -> None:
        info = self._execute(f"CALL table_info('{table}') RETURN *")  # table: an IDENT
        have = {str(r[1]) for r in info}
        for name, ptype in cols.items():
            if name not in have:
                self._execute(f"ALTER TABLE {quote_ident(table)} ADD {quote_ident(name)} {ptype}")

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._db_held:
            self._db_held = False
            _release(self._key)

    # -- running statements -------------------------------------------------------------------
    def _run_sync(self, op: str, cypher: str, params: Mapping[str, Any],
                  write: bool) -> list[dict[str, Any]]:
        with self._lock:
            if self._conn is None:
                self._open(op)
            # A read runs in a read-only transaction, so a declared read action cannot write.
            if not write:
                self._conn.execute("BEGIN TRANSACTION READ ONLY")
            try:
                result = self._conn.execute(cypher, dict(params))
                try:
                    cols = result.get_column_names()
                    rows = []
                    while result.has_next():
                        rows.append({c: _value(v) for c, v in zip(cols, result.get_next(),
                                                                  strict=True)})
                finally:
                    result.close()
            except (RuntimeError, ValueError, TypeError) as e:
                if not write:
                    self._conn.execute("ROLLBACK")
                raise self._err(op, f"ladybug refused the statement: {e}") from None
            if not write:
                self._conn.execute("COMMIT")
            return rows

    async def _run(self, op: str, cypher: str, params: Mapping[str, Any], *,
                   write: bool) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._run_sync, op, cypher, params, write)

    async def _ready(self, op: str) -> None:
        def open_once() -> None:
            with self._lock:
                if self._conn is None:
                    self._open(op)

        await asyncio.to_thread(open_once)

    async def _rels_exist(self, op: str) -> bool:
        await self._ready(op)
        return bool(self._rel_tables)

    async def find_node(self, op: str, node_id: str) -> dict[str, Any] | None:
        await self._ready(op)
        if not self._tables - self._rel_tables:
            return None  # MATCH (n) fails on a database without node tables
        return await super().find_node(op, node_id)

    async def aclose(self) -> None:
        def close() -> None:
            with self._lock:
                self._close()

        await asyncio.to_thread(close)


def create(spec: ResourceSpec) -> LadybugGraph:
    return LadybugGraph(spec)

