"""SQLite-specific behaviour: file locations, WAL, table creation, config/definition validation."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from ductwork.connectors.base import (
    ResourceSpec,
    build_connector,
    register_provider,
    register_validator,
    validate_resource,
)
from ductwork.connectors.database.sqlite import SQLiteDatabase, sqlite_path
from ductwork.errors import ConnectorError

register_provider("database", "sqlite", "ductwork.connectors.database.sqlite:create")
register_validator("database", "sqlite", "ductwork.connectors.database.sqlite:validate")

DEFINITION: dict[str, Any] = {
    "tables": {"users": {"columns": {
        "id": {"type": "integer", "primary_key": True, "auto": True},
        "email": {"type": "text", "unique": True},
        "name": "text",
    }}},
    "events": {
        "create-user": {"op": "insert", "table": "users"},
        "find-users": {"op": "query", "table": "users"},
    },
}


def build(s: ResourceSpec) -> SQLiteDatabase:
    conn = build_connector(s)
    assert isinstance(conn, SQLiteDatabase)
    return conn


def spec(config: dict[str, Any], base_dir: Path, definition: dict[str, Any] | None = None,
         env: str = "dev") -> ResourceSpec:
    return ResourceSpec(kind="database", name="users-db", env=env, product="shop",
                        config=config, definition=definition or DEFINITION,
                        base_dir=str(base_dir))


async def test_relative_url_resolves_against_the_product_dir_and_uses_wal(tmp_path: Path) -> None:
    db = build(spec({"provider": "sqlite", "url": "sqlite:///.ductwork/users.db"}, tmp_path))
    try:
        row = await db.insert("create-user", {"email": "a@x.io"})
    finally:
        await db.aclose()
    file = tmp_path / ".ductwork" / "users.db"
    assert file.exists()
    with sqlite3.connect(file) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT id, email FROM users").fetchall() == [(row["id"], "a@x.io")]
    # a new connector (a restarted process) sees the same rows
    again = build(spec({"url": "sqlite:///.ductwork/users.db"}, tmp_path))
    try:
        assert [r["email"] for r in await again.query("find-users")] == ["a@x.io"]
    finally:
        await again.aclose()


def test_url_forms(tmp_path: Path) -> None:
    base = str(tmp_path)
    assert sqlite_path({"url": "sqlite:///rel/x.db"}, base) == str(tmp_path / "rel" / "x.db")
    assert sqlite_path({"url": "sqlite:////abs/x.db"}, base) == "/abs/x.db"
    assert sqlite_path({"url": "sqlite://:memory:"}, base) == ":memory:"
    assert sqlite_path({"url": "sqlite:///:memory:"}, base) == ":memory:"
    assert sqlite_path({"path": "data/x.db"}, base) == str(tmp_path / "data" / "x.db")
    assert sqlite_path({}, base) == str(tmp_path / ".ductwork" / "database.db")
    with pytest.raises(ValueError, match="sqlite://"):
        sqlite_path({"url": "postgresql://h/db"}, base)


async def test_memory_database_and_default_provider(tmp_path: Path) -> None:
    db = build(spec({"url": "sqlite://:memory:"}, tmp_path))  # provider omitted
    try:
        await db.insert("create-user", {"email": "m@x.io"})
        assert len(await db.query("find-users")) == 1
    finally:
        await db.aclose()
    assert list(tmp_path.iterdir()) == []


async def test_without_create_tables_a_missing_table_is_a_named_error(tmp_path: Path) -> None:
    db = build(spec({"url": "sqlite:///x.db", "create_tables": False}, tmp_path,
                              env="staging"))
    try:
        with pytest.raises(ConnectorError, match="no such table: users") as e:
            await db.insert("create-user", {"email": "a@x.io"})
        assert str(e.value).startswith("database/users-db/create-user (env staging): ")
    finally:
        await db.aclose()


async def test_an_unopenable_file_is_a_named_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    db = build(spec({"path": "dir.db"}, tmp_path))
    try:
        with pytest.raises(ConnectorError, match=r"cannot open SQLite database .*dir\.db") as e:
            await db.query("find-users")
        assert e.value.resource == "users-db" and e.value.env == "dev"
    finally:
        await db.aclose()


def test_bad_config_or_definition_fails_when_the_connector_is_built(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match=r"unknown setting 'ulr'.*did you mean 'url'"):
        build_connector(spec({"ulr": "sqlite:///x.db"}, tmp_path))
    with pytest.raises(ConnectorError, match="url: must be a sqlite URL"):
        build_connector(spec({"url": "mysql://x"}, tmp_path))
    broken = {"tables": DEFINITION["tables"], "events": {"e": {"op": "insert", "table": "usr"}}}
    with pytest.raises(ConnectorError, match=r"invalid database definition: events\.e\.table: "
                                             r"unknown table 'usr'"):
        build_connector(spec({}, tmp_path, broken))


def test_validate_accepts_the_readme_example() -> None:
    definition: dict[str, Any] = {
        "envs": {"dev": {"provider": "sqlite", "url": "sqlite:///.ductwork/users.db"}},
        "tables": {"users": {"columns": {
            "id": {"type": "integer", "primary_key": True, "auto": True},
            "email": {"type": "text", "unique": True}, "name": "text",
            "created_at": {"type": "timestamp", "default": "now"}}}},
        "events": {
            "create-user": {"op": "insert", "table": "users", "returning": ["id", "email"]},
            "find-user": {"op": "query", "table": "users", "where": {"email": {"$ne": None}},
                          "order_by": ["-created_at"], "limit": 10},
            "rename": {"op": "update", "table": "users"},
            "remove": {"op": "delete", "table": "users"},
            "save": {"op": "upsert", "table": "users", "key": ["email"]},
            "report": {"op": "sql", "sql": "select * from users where id = :id",
                       "params": ["id"]},
        },
    }
    assert validate_resource("database", definition, definition["envs"]["dev"]) == []


def test_validate_reports_every_problem_with_its_path() -> None:
    definition: dict[str, Any] = {
        "envs": {"dev": {"provider": "sqlite", "url": "postgres://x", "create_tables": "yes",
                         "pool": {"max": 1}}},
        "tables": {
            "users": {"columns": {
                "id": {"type": "integer", "primary_key": True, "auto": True},
                "email": {"type": "txt", "uniq": True},
                "bad name": "text",
                "name": "text",
                "n": {"type": "text", "auto": True},
                "at": {"type": "text", "default": "now"},
                "k": {"type": "integer", "default": "ten"},
            }},
            "drop table x": {"columns": {"a": "text"}},
            "empty": {},
        },
        "events": {
            "no-op": {"table": "users"},
            "bad-op": {"op": "select", "table": "users"},
            "no-table": {"op": "insert", "table": "usrs"},
            "bad-cols": {"op": "query", "table": "users", "select": ["id", "nmae"],
                         "order_by": "nme desc", "limit": -1, "where": {"idd": 1},
                         "returning": ["id"]},
            "bad-upsert": {"op": "upsert", "table": "users", "key": ["id", "n"]},
            "no-key": {"op": "upsert", "table": "users"},
            "bad-sql": {"op": "sql", "sql": "select * from users where id = :id and n = :nn",
                        "params": ["id", "unused"]},
            "empty-sql": {"op": "sql"},
            "bad-delete": {"op": "delete", "table": "users", "allow_all": "yes"},
        },
    }
    problems = validate_resource("database", definition, definition["envs"]["dev"])
    got = {(".".join(str(p) for p in path), msg.split(" (known")[0]) for path, msg in problems}
    expected_paths = {
        "envs.dev.url", "envs.dev.create_tables", "envs.dev.pool",
        "tables.users.columns.email.uniq", "tables.users.columns.email.type",
        "tables.users.columns.bad name", "tables.users.columns.n.auto",
        "tables.users.columns.at.default", "tables.users.columns.k.default",
        "tables.drop table x", "tables.empty",
        "events.no-op.op", "events.bad-op.op", "events.no-table.table",
        "events.bad-cols.select.1", "events.bad-cols.order_by", "events.bad-cols.limit",
        "events.bad-cols.where", "events.bad-cols.returning",
        "events.bad-upsert.key", "events.no-key.key", "events.bad-sql.sql",
        "events.bad-sql.params.1", "events.empty-sql.sql", "events.bad-delete.allow_all",
    }
    assert {p for p, _ in got} == expected_paths
    messages = dict(got)
    assert "did you mean 'unique'" in messages["tables.users.columns.email.uniq"]
    assert "did you mean 'name'" in messages["events.bad-cols.select.1"]
    assert "did you mean 'name'" in messages["events.bad-cols.order_by"]
    assert "did you mean 'users'" in messages["events.no-table.table"]
    assert ":nn is not declared" in messages["events.bad-sql.sql"]
    assert "unknown setting 'pool'" in messages["envs.dev.pool"]
