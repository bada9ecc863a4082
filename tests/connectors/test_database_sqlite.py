"""SQLite-specific behaviour: file locations, WAL, table creation, config/definition validation."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ductwork.connectors.base import (
    ResourceSpec,
    build_connector,
    validate_resource,
)
from ductwork.connectors.database.sqlite import SQLiteDatabase, sqlite_path
from ductwork.errors import ConnectorError

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
    with closing(sqlite3.connect(file)) as sq:
        assert sq.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert sq.execute("SELECT id, email FROM users").fetchall() == [(row["id"], "a@x.io")]
    # a new connector (a restarted process) sees the same rows
    again = build(spec({"url": "sqlite:///.ductwork/users.db"}, tmp_path))
    try:
        assert [r["email"] for r in await again.query("find-users")] == ["a@x.io"]
    finally:
        await again.aclose()
    # and a closed connector opens the file again when it is used after aclose()
    assert [r["email"] for r in await db.query("find-users")] == ["a@x.io"]
    await db.aclose()
    await db.aclose()


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


# -- end to end through the engine --------------------------------------------------------------

PRODUCT_YAML = """
product: shop
name: Shop
envs: [dev]
databases:
  users-db:
    envs:
      dev: {provider: sqlite, url: "sqlite:///.ductwork/users.db"}
    tables:
      users:
        columns:
          id: {type: integer, primary_key: true, auto: true}
          email: {type: text, unique: true, nullable: false}
          name: text
          created_at: {type: timestamp, default: now}
    events:
      create-user: {op: insert, table: users}
      find-user: {op: query, table: users}
      delete-user: {op: delete, table: users}
  audit-db:
    envs:
      dev: {url: "sqlite:///.ductwork/audit.db"}
    tables:
      logs:
        columns:
          id: {type: integer, primary_key: true, auto: true}
          action: {type: text, nullable: false}
          user_id: integer
          timestamp: timestamp
    events:
      create-log: {op: insert, table: logs}
"""


def onboarding_app(product_dir: Path, store: Path) -> tuple[Any, list[SQLiteDatabase]]:
    import yaml

    from ductwork import Ductwork

    dw = Ductwork(store=f"sqlite:///{store}")
    # Connectors built from the product file's blocks exactly as the engine's registry does,
    # then handed to the engine explicitly.
    product = yaml.safe_load(PRODUCT_YAML)
    conns = []
    for name, block in product["databases"].items():
        conn = build(ResourceSpec(kind="database", name=name, env="dev", product="shop",
                                  config=block["envs"]["dev"], definition=block,
                                  base_dir=str(product_dir)))
        dw.connectors.register("database", name, conn)
        conns.append(conn)

    @dw.workflows.workflow(product="shop", tag="user-onboarding", name="User Onboarding")
    async def onboarding(ctx: Any) -> dict[str, Any]:
        user = await ctx.step(
            "create-user",
            lambda: ctx.database.insert(database="users-db", event="create-user",
                                        data={"email": ctx.input.email, "name": ctx.input.name}),
            rollback=lambda u: ctx.database.delete(database="users-db", event="delete-user",
                                                   where={"id": u["id"]}),
        )
        await ctx.step("audit-log", lambda: ctx.database.insert(
            database="audit-db", event="create-log",
            data={"action": "user_created", "user_id": user["id"],
                  "timestamp": datetime.now(UTC).isoformat()}))

        def activate() -> None:
            if ctx.input.email.endswith("@fail.test"):
                raise RuntimeError("activation service is down")

        await ctx.step("activate", activate)
        return {"success": True, "userId": user["id"]}

    return dw, conns


async def test_onboarding_workflow_writes_rows_and_rolls_back_the_user(tmp_path: Path) -> None:
    product = tmp_path / "specs" / "shop"
    app, conns = onboarding_app(product, tmp_path / "runs.db")
    async with app as dw:
        ok = await dw.workflows.execute(product="shop", env="dev", tag="user-onboarding",
                                        input={"email": "john@example.com", "name": "John"})
        assert ok.status == "completed", ok.error
        assert ok.completed_steps == ["create-user", "audit-log", "activate"]
        user_id = ok.output["userId"]
        bad = await dw.workflows.execute(product="shop", env="dev", tag="user-onboarding",
                                         input={"email": "jane@fail.test", "name": "Jane"})
        assert bad.status == "rolled_back", bad.error
        assert bad.failed_step == "activate" and "activation service is down" in (bad.error or "")
        dup = await dw.workflows.execute(product="shop", env="dev", tag="user-onboarding",
                                         input={"email": "john@example.com", "name": "John 2"})
        assert dup.status == "failed" and dup.failed_step == "create-user"
        assert "database/users-db/create-user (env dev)" in (dup.error or "")
        assert "UNIQUE constraint failed: users.email" in (dup.error or "")
    for conn in conns:
        await conn.aclose()
    users_db = product / ".ductwork" / "users.db"
    audit_db = product / ".ductwork" / "audit.db"
    with closing(sqlite3.connect(users_db)) as sq:
        assert sq.execute("SELECT id, email, name FROM users").fetchall() == [
            (user_id, "john@example.com", "John")]  # Jane's row was deleted by the rollback
    with closing(sqlite3.connect(audit_db)) as sq:
        rows = sq.execute("SELECT action, user_id FROM logs ORDER BY id").fetchall()
    assert rows == [("user_created", user_id), ("user_created", user_id + 1)]


def test_definition_problems_are_reported_once_not_per_environment() -> None:
    definition: dict[str, Any] = {
        "envs": {"dev": {"url": "sqlite:///a.db"}, "staging": {"url": "sqlite:///b.db"},
                 "prd": {"url": "sqlite:///c.db", "bogus": 1}},
        "tables": DEFINITION["tables"],
        "events": {"e": {"op": "insert", "table": "usr"}},
    }
    per_env = {env: [".".join(str(p) for p in path)
                     for path, _ in validate_resource("database", definition, cfg)]
               for env, cfg in definition["envs"].items()}
    assert per_env == {"dev": ["events.e.table"], "staging": [], "prd": ["envs.prd.bogus"]}


ONBOARDING_YAML = """
workflow: user-onboarding
name: User Onboarding
input:
  type: object
  required: [email, name, action]
  properties:
    email: {type: string}
    name: {type: string}
    action: {type: [string, "null"]}
steps:
  - tag: create-user
    database.insert:
      database: users-db
      event: create-user
      data: {email: "${ctx.input.email}", name: "${ctx.input.name}"}
    rollback:
      database.delete: {database: users-db, event: delete-user, where: {id: "${result.id}"}}
  - tag: audit-log
    database.insert:
      database: audit-db
      event: create-log
      data: {action: "${ctx.input.action}", user_id: "${steps.create-user.id}"}
output:
  success: true
  userId: "${steps.create-user.id}"
"""


async def test_yaml_onboarding_from_a_product_folder(tmp_path: Path) -> None:
    from ductwork import Ductwork

    product = tmp_path / "specs" / "shop"
    (product / "workflows").mkdir(parents=True)
    (product / "product.yaml").write_text(PRODUCT_YAML)
    (product / "workflows" / "user-onboarding.yaml").write_text(ONBOARDING_YAML)
    async with Ductwork(specs=tmp_path / "specs",
                        store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
        ok = await dw.workflows.execute(
            product="shop", env="dev", tag="user-onboarding",
            input={"email": "ann@example.com", "name": "Ann", "action": "user_created"})
        assert ok.status == "completed", ok.error
        assert ok.output == {"success": True, "userId": 1}
        bad = await dw.workflows.execute(  # the audit row violates NOT NULL: roll back the user
            product="shop", env="dev", tag="user-onboarding",
            input={"email": "bob@example.com", "name": "Bob", "action": None})
        assert bad.status == "rolled_back", bad.error
        assert bad.failed_step == "audit-log"
        assert "database/audit-db/create-log (env dev)" in (bad.error or "")
        assert "NOT NULL constraint failed: logs.action" in (bad.error or "")
    with closing(sqlite3.connect(product / ".ductwork" / "users.db")) as sq:
        assert sq.execute("SELECT id, email FROM users").fetchall() == [(1, "ann@example.com")]
    with closing(sqlite3.connect(product / ".ductwork" / "audit.db")) as sq:
        assert sq.execute("SELECT action, user_id FROM logs").fetchall() == [("user_created", 1)]


def test_product_file_mistakes_are_located_by_the_compiler(tmp_path: Path) -> None:
    from ductwork import Ductwork
    from ductwork.errors import CompileError

    product = tmp_path / "specs" / "shop"
    product.mkdir(parents=True)
    bad = PRODUCT_YAML.replace("find-user: {op: query, table: users}",
                               "find-user: {op: query, table: users, order_by: -emial}")
    (product / "product.yaml").write_text(bad)
    with pytest.raises(CompileError) as e:
        Ductwork(specs=tmp_path / "specs", store="sqlite://:memory:")
    text = str(e.value)
    line = bad.splitlines().index(next(x for x in bad.splitlines() if "emial" in x)) + 1
    assert f"product.yaml:{line}:" in text
    assert "unknown column of table 'users': 'emial'" in text and "'email'" in text
