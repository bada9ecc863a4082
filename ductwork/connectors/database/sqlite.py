"""SQLite database connector: stdlib sqlite3 on a private thread, one WAL connection each."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ductwork.connectors.base import Problem, ResourceSpec
from ductwork.connectors.database.core import (
    Result,
    SQLDatabase,
    check_config,
    definition_problems,
    is_bool,
    is_duration,
    is_text,
)
from ductwork.connectors.database.model import Column
from ductwork.connectors.database.sql import Dialect, Statement
from ductwork.connectors.util import describe_problems, duration_s, env_path, seconds_suspect

MEMORY = ":memory:"


class SQLiteDialect(Dialect):
    name = "sqlite"
    placeholder = "?"
    # Types the driver cannot store natively are kept as text in a canonical form that sorts
    # and compares correctly (UTC timestamps with microseconds, ISO dates).
    ddl_types = {"integer": "INTEGER", "bigint": "INTEGER", "float": "REAL", "numeric": "NUMERIC",
                 "text": "TEXT", "boolean": "INTEGER", "timestamp": "TEXT", "date": "TEXT",
                 "json": "TEXT", "uuid": "TEXT", "bytes": "BLOB"}

    def column_ddl(self, col: Column, single_pk: bool) -> str:
        if col.auto and col.primary_key and single_pk and col.type in ("integer", "bigint"):
            # AUTOINCREMENT: an id freed by a rollback's delete is never handed out again.
            return f"{self.quote(col.name)} INTEGER PRIMARY KEY AUTOINCREMENT"
        return super().column_ddl(col, single_pk)

    def to_db(self, col: Column, value: Any) -> Any:
        return None if value is None else _to_sqlite(value)

    def from_db(self, col: Column, value: Any) -> Any:
        t = col.type
        try:
            if t == "timestamp" and isinstance(value, str):
                return datetime.fromisoformat(value)
            if t == "date" and isinstance(value, str):
                return date.fromisoformat(value)
            if t == "boolean" and isinstance(value, int):
                return bool(value)
            if t == "json" and isinstance(value, str):
                return json.loads(value)
            if t == "uuid" and isinstance(value, str):
                return uuid.UUID(value)
            if t == "numeric" and isinstance(value, int | float | str):
                return Decimal(str(value))
            if t == "float" and isinstance(value, int):
                return float(value)
        except ValueError:
            return value  # a row written by someone else in another format: hand it back as is
        return value

    def ilike(self, column_sql: str, placeholder: str) -> str:
        return f"lower({column_sql}) LIKE lower({placeholder})"


def _to_sqlite(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return value


def sqlite_path(config: Mapping[str, Any], base_dir: str) -> str:
    """`url: sqlite:///rel/path.db` (relative to the product file), `sqlite:////abs.db`,
    `sqlite://:memory:`, or `path: ...`."""
    raw = config.get("path")
    if raw is None:
        url = str(config.get("url") or "sqlite:///.ductwork/database.db")
        if not url.startswith("sqlite:"):
            raise ValueError(f"url must start with sqlite:// (got {url.split(':', 1)[0]}:...)")
        raw = url[len("sqlite:"):]
        raw = raw[3:] if raw.startswith("///") else raw[2:] if raw.startswith("//") else raw
    raw = str(raw)
    if raw in (MEMORY, "/" + MEMORY, ""):
        return MEMORY
    path = Path(os.path.expanduser(raw))
    return str(path if path.is_absolute() else Path(base_dir) / path)


class SQLiteDatabase(SQLDatabase):
    dialect = SQLiteDialect()

    def __init__(self, spec: ResourceSpec, *, path: str, create_tables: bool,
                 busy_timeout_ms: int) -> None:
        super().__init__(spec, create_tables=create_tables)
        self.path = path
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def _call(self, fn: Any, *args: Any) -> Any:
        if self._thread is None:
            # One worker thread owns the connection: calls are serialized without a lock and
            # the connection never crosses threads.
            self._thread = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"ductwork-sqlite-{self.rspec.name}")
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def ping(self) -> str:
        """SELECT 1 on the file; a file not made yet is fine when its folder is writable
        (the first call creates it; the check creates nothing)."""
        if self.path != MEMORY and not Path(self.path).exists():
            folder = Path(self.path).parent
            while not folder.exists() and folder != folder.parent:
                folder = folder.parent
            if not os.access(folder, os.W_OK):
                raise self._error(f"{self.path} does not exist and {folder} is not writable",
                                  "health")
            return f"{self.path} not created yet (made on first use)"
        return await super().ping()

    async def _connect(self, event: str | None) -> None:
        try:
            await self._call(self._open)
        except (OSError, sqlite3.Error) as e:
            raise self._error(f"cannot open SQLite database {self.path}: "
                              f"{type(e).__name__}: {e}", event) from None

    def _open(self) -> None:
        if self._conn is not None:
            return
        if self.path != MEMORY:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout_ms / 1000)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA foreign_keys=ON")
            # PostgreSQL's LIKE is case-sensitive; make SQLite's agree ($ilike exists for the rest).
            conn.execute("PRAGMA case_sensitive_like=ON")
        except sqlite3.Error:
            conn.close()
            raise
        self._conn = conn

    async def _run(self, statements: Sequence[Statement]) -> list[Result]:
        return list(await self._call(self._run_sync, list(statements)))

    def _run_sync(self, statements: list[Statement]) -> list[Result]:
        conn = self._conn
        assert conn is not None
        read_only = all(s.sql.startswith("SELECT ") for s in statements)
        conn.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
        try:
            results = []
            for s in statements:
                cur = conn.execute(s.sql, s.params)
                rows = None
                if cur.description is not None:
                    names = [d[0] for d in cur.description]
                    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
                results.append(Result(rows, cur.rowcount))
            conn.execute("COMMIT")
            return results
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _driver_error(self, exc: BaseException) -> tuple[str, bool] | None:
        if not isinstance(exc, sqlite3.Error):
            return None
        text = str(exc)
        return f"{type(exc).__name__}: {text}", "locked" in text or "busy" in text

    def _raw_value(self, value: Any) -> Any:
        return _to_sqlite(value)

    async def aclose(self) -> None:
        if self._conn is not None:
            await self._call(self._close)
        thread, self._thread = self._thread, None
        self._ready = False  # a later call opens the file again
        if thread is not None:
            thread.shutdown(wait=True)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _url_problem(v: Any) -> str | None:
    if not isinstance(v, str) or not v.startswith("sqlite:"):
        return "must be a sqlite URL: sqlite:///relative/path.db, sqlite:////abs/path.db " \
               "or sqlite://:memory:"
    return None


CHECKS = {"provider": is_text, "url": _url_problem, "path": is_text, "create_tables": is_bool,
          "busy_timeout": is_duration("busy_timeout", allow_zero=True), "description": is_text}


def validate(definition: dict[str, Any], config: dict[str, Any]) -> list[Problem]:
    """Problems of one environment's SQLite config plus the resource's tables and events."""
    at = env_path(definition, config)
    problems = check_config(config, CHECKS, at)
    if "url" in config and "path" in config:
        problems.append(((*at, "path"), "give either url or path, not both"))
    warning = seconds_suspect("busy_timeout", config.get("busy_timeout"))
    if warning:
        problems.append(((*at, "busy_timeout"), warning))
    return problems + definition_problems(definition, config)


def create(spec: ResourceSpec) -> SQLiteDatabase:
    config = dict(spec.config)
    problems = check_config(config, CHECKS)
    if problems:
        raise spec.error(describe_problems(problems))
    try:
        path = sqlite_path(config, spec.base_dir)
    except ValueError as e:
        raise spec.error(str(e)) from None
    return SQLiteDatabase(spec, path=path, create_tables=bool(config.get("create_tables", True)),
                          busy_timeout_ms=_busy_timeout_ms(config.get("busy_timeout")))


def _busy_timeout_ms(value: Any) -> int:
    # Already checked by CHECKS; SQLite's PRAGMA busy_timeout wants whole milliseconds.
    return 5000 if value is None else round(duration_s(value, "busy_timeout", allow_zero=True)
                                             * 1000)
