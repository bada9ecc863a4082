"""PostgreSQL-specific behaviour: connection errors with redacted passwords, the pool, raw SQL."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ductwork.connectors.base import (
    ResourceSpec,
    SecretSet,
    build_connector,
    resolve_refs,
    validate_resource,
)
from ductwork.connectors.database.postgres import PostgresDatabase
from ductwork.errors import ConnectorError
from tests.support import postgres as pg_support
from tests.support.ports import free_port
from tests.support.postgres import PgServer, postgres_server, start_postgres

__all__ = ["postgres_server"]


DEFINITION: dict[str, Any] = {
    "tables": {
        "users": {"columns": {
            "id": {"type": "integer", "primary_key": True, "auto": True},
            "email": {"type": "text", "unique": True},
            "tags": "json",
        }},
        "members": {"columns": {
            "org": {"type": "text", "primary_key": True},
            "user_id": {"type": "integer", "primary_key": True},
            "role": "text",
        }},
    },
    "events": {
        "create-user": {"op": "insert", "table": "users"},
        "find-users": {"op": "query", "table": "users", "order_by": "id"},
        "remove-user": {"op": "delete", "table": "users"},
        "add-member": {"op": "upsert", "table": "members", "key": ["org", "user_id"]},
        "by-ids": {"op": "sql", "params": ["ids"],
                   "sql": "select id::text as id_text, email from users "
                          "where id = any(:ids) order by id"},
        "json-param": {"op": "sql", "params": ["doc"],
                       "sql": "select :doc::jsonb ->> 'a' as a, $q$ :not_a_param 50% $q$ as lit"},
        "tagged": {"op": "sql", "params": ["tag"],
                   "sql": "select email from users where tags ? :tag order by id"},
    },
}


def build(s: ResourceSpec) -> PostgresDatabase:
    conn = build_connector(s)
    assert isinstance(conn, PostgresDatabase)
    return conn


def make_spec(url: str, *, env: str = "dev", secrets: SecretSet | None = None,
              provider: str = "postgres", **extra: Any) -> ResourceSpec:
    return ResourceSpec(kind="database", name="users-db", env=env, product="shop",
                        config={"provider": provider, "url": url, **extra},
                        definition=DEFINITION, secrets=secrets)


@pytest.fixture
def schema_url(postgres_server: PgServer) -> str:
    schema = "p_" + uuid.uuid4().hex[:12]
    postgres_server.psql(f"CREATE SCHEMA {schema}")
    return postgres_server.dsn_for(options=f"-csearch_path={schema}")


@pytest.fixture
async def db(schema_url: str) -> AsyncIterator[PostgresDatabase]:
    conn = build(make_spec(schema_url, create_tables=True, pool={"min": 1, "max": 3}))
    try:
        yield conn
    finally:
        await conn.aclose()


async def test_bad_password_names_resource_event_env_and_hides_the_password(
        postgres_server: PgServer) -> None:
    password = "s3cret-" + uuid.uuid4().hex[:8]
    secrets = SecretSet()
    config = resolve_refs(
        {"provider": "postgres",
         "url": f"postgresql://postgres:${{secrets.DB_PASSWORD}}@127.0.0.1:"
                f"{postgres_server.port}/postgres"},
        secrets={"DB_PASSWORD": password}, collect=secrets)
    spec = ResourceSpec(kind="database", name="users-db", env="prd", product="shop",
                        config=config, definition=DEFINITION, secrets=secrets)
    db = build(spec)
    try:
        with pytest.raises(ConnectorError) as e:
            await db.insert("create-user", {"email": "a@x.io"})
    finally:
        await db.aclose()
    msg = str(e.value)
    assert msg.startswith("database/users-db/create-user (env prd): cannot connect to "
                          f"PostgreSQL at 127.0.0.1:{postgres_server.port}/postgres")
    assert "password authentication failed" in msg
    assert password not in msg and password not in repr(e.value.args)
    assert e.value.__cause__ is None and e.value.__suppress_context__  # no driver traceback
    assert e.value.retryable is True


async def test_inline_password_is_redacted_too(postgres_server: PgServer) -> None:
    # No SecretSet from the engine and a password that appears in the server's answer.
    user = "u" + uuid.uuid4().hex[:6]
    db = build(make_spec(postgres_server.dsn_for(user=user, password=user + "pw"),
                                   env="staging"))
    try:
        with pytest.raises(ConnectorError) as e:
            await db.query("find-users")
    finally:
        await db.aclose()
    assert f'user "{user}"' in str(e.value) or "authentication" in str(e.value)
    assert user + "pw" not in str(e.value)


async def test_unreachable_server_is_a_retryable_named_error() -> None:
    port = free_port()
    db = build(make_spec(f"postgresql://app:pw12345@127.0.0.1:{port}/app",
                                   env="prd", connect_timeout="2s"))
    try:
        with pytest.raises(ConnectorError) as e:
            await db.query("find-users")
    finally:
        await db.aclose()
    msg = str(e.value)
    assert msg.startswith("database/users-db/find-users (env prd): cannot connect to "
                          f"PostgreSQL at 127.0.0.1:{port}/app: OperationalError")
    assert "refused" in msg.lower()
    assert "pw12345" not in msg and e.value.retryable


async def test_unknown_database_is_named(postgres_server: PgServer) -> None:
    db = build(make_spec(postgres_server.dsn_for(dbname="nope"), provider="postgresql"))
    try:
        with pytest.raises(ConnectorError, match='database "nope" does not exist'):
            await db.query("find-users")
    finally:
        await db.aclose()


async def test_tables_are_not_created_unless_asked(schema_url: str) -> None:
    db = build(make_spec(schema_url))
    try:
        with pytest.raises(ConnectorError, match=r'relation "users" does not exist.*42P01'):
            await db.insert("create-user", {"email": "a@x.io"})
    finally:
        await db.aclose()


async def test_concurrent_connectors_create_tables_once(schema_url: str) -> None:
    dbs = [build(make_spec(schema_url, create_tables=True)) for _ in range(4)]
    try:
        rows = await asyncio.gather(*(d.insert("create-user", {"email": f"{i}@x.io"})
                                      for i, d in enumerate(dbs)))
        assert sorted(r["id"] for r in rows) == [1, 2, 3, 4]
    finally:
        for d in dbs:
            await d.aclose()


async def test_the_pool_is_created_once_and_reopened_after_aclose(db: PostgresDatabase) -> None:
    await db.insert("create-user", {"email": "a@x.io"})
    pool = db._pool
    assert pool is not None and pool.max_size == 3
    results = await asyncio.gather(*(db.query("find-users") for _ in range(20)))
    assert all(len(r) == 1 for r in results) and db._pool is pool
    await db.aclose()
    assert pool.closed and db._pool is None
    assert len(await db.query("find-users")) == 1  # lazily reconnects
    assert db._pool is not None and db._pool is not pool


async def test_composite_key_upsert(db: PostgresDatabase) -> None:
    a = await db.upsert("add-member", {"org": "acme", "user_id": 1, "role": "member"})
    b = await db.upsert("add-member", {"org": "acme", "user_id": 1, "role": "admin"})
    c = await db.upsert("add-member", {"org": "acme", "user_id": 2, "role": "member"})
    assert a["role"] == "member" and b == {"org": "acme", "user_id": 1, "role": "admin"}
    assert c["user_id"] == 2


async def test_raw_sql_casts_arrays_jsonb_and_dollar_quotes(db: PostgresDatabase) -> None:
    rows = await db.insert("create-user", [{"email": "a@x.io", "tags": {"vip": 1}},
                                           {"email": "b@x.io", "tags": {"new": 1}},
                                           {"email": "c@x.io"}])
    got = await db.execute("by-ids", {"ids": [rows[0]["id"], rows[2]["id"]]})
    assert got == [{"id_text": str(rows[0]["id"]), "email": "a@x.io"},
                   {"id_text": str(rows[2]["id"]), "email": "c@x.io"}]
    assert await db.execute("json-param", {"doc": {"a": "x"}}) == [
        {"a": "x", "lit": " :not_a_param 50% "}]
    assert await db.execute("tagged", {"tag": "vip"}) == [{"email": "a@x.io"}]  # jsonb `?`


async def test_the_test_server_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = start_postgres(tmp_path)  # pytest's tmp_path is not usable by postgres: falls back
    try:
        assert server.dsn.startswith(f"postgresql://postgres:{server.password}@127.0.0.1:")
        assert server.port < 32768
        assert server.psql("select 1 + 1").strip() == "2"
        dsn = server.create_database("other")
        assert dsn.endswith("/other")
    finally:
        server.stop()
        server.stop()  # idempotent
    assert not server.root.exists()
    monkeypatch.delenv("DUCTWORK_PG_BIN", raising=False)
    monkeypatch.setattr(pg_support.glob, "glob", lambda pattern: [])
    with pytest.raises(RuntimeError, match="PostgreSQL server binaries not found"):
        start_postgres()


def test_validate_postgres_config() -> None:
    definition: dict[str, Any] = {**DEFINITION, "envs": {
        "prd": {"provider": "postgres", "url": "postgresql://app:${env.DB_PASSWORD}@db/app",
                "pool": {"min": 1, "max": 10}},
        "bad": {"provider": "postgres", "pool": {"min": 5, "max": 2, "size": 3},
                "connect_timeout": "soon", "create_tables": 1},
    }}
    assert validate_resource("database", definition, definition["envs"]["prd"]) == []
    problems = validate_resource("database", definition, definition["envs"]["bad"])
    paths = {".".join(str(p) for p in path): msg for path, msg in problems}
    assert set(paths) == {"envs.bad", "envs.bad.pool", "envs.bad.connect_timeout",
                          "envs.bad.create_tables"}
    assert "needs `url:" in paths["envs.bad"]
    assert "unknown pool setting 'size'" in paths["envs.bad.pool"]


# -- end to end through the engine, with the password as a secret --------------------------------


def engine_app(store: Path, url_template: str, password: str) -> tuple[Any, PostgresDatabase]:
    from ductwork import Ductwork

    dw = Ductwork(store=f"sqlite:///{store}", secrets={"DB_PASSWORD": password})
    block = {**DEFINITION, "envs": {"prd": {"provider": "postgres", "url": url_template,
                                            "create_tables": True}}}
    # What the engine's registry does for a product file: resolve refs into dw.secrets.
    config = resolve_refs(block["envs"]["prd"], secrets=dw.secret_values, collect=dw.secrets)
    conn = build(ResourceSpec(kind="database", name="users-db", env="prd", product="shop",
                              config=config, definition=block, secrets=dw.secrets))
    dw.connectors.register("database", "users-db", conn)

    @dw.workflows.workflow(product="shop", tag="signup")
    async def signup(ctx: Any) -> dict[str, Any]:
        user = await ctx.step(
            "create-user",
            lambda: ctx.database.insert(database="users-db", event="create-user",
                                        data={"email": ctx.input.email}),
            rollback=lambda u: ctx.database.delete(database="users-db", event="remove-user",
                                                   where={"id": u["id"]}),
        )

        def check() -> None:
            if ctx.input.email.startswith("bad"):
                raise RuntimeError("address rejected")

        await ctx.step("check", check)
        return {"id": user["id"]}

    return dw, conn


async def test_engine_run_on_postgres_and_no_password_in_the_store(
        postgres_server: PgServer, tmp_path: Path) -> None:
    role = "app_" + uuid.uuid4().hex[:8]
    password = "pw-" + uuid.uuid4().hex
    postgres_server.psql(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'; "
                         f"CREATE SCHEMA {role} AUTHORIZATION {role}")
    url = (f"postgresql://{role}:${{secrets.DB_PASSWORD}}@127.0.0.1:{postgres_server.port}"
           f"/postgres?options=-csearch_path%3D{role}")
    store = tmp_path / "runs.db"
    dw, conn = engine_app(store, url, password)
    async with dw:
        ok = await dw.workflows.execute(product="shop", env="prd", tag="signup",
                                        input={"email": "good@x.io"})
        assert ok.status == "completed", ok.error
        bad = await dw.workflows.execute(product="shop", env="prd", tag="signup",
                                         input={"email": "bad@x.io"})
        assert bad.status == "rolled_back", bad.error
        rows = await conn.query("find-users")
        assert [r["email"] for r in rows] == ["good@x.io"]  # the rollback deleted bad@x.io
        await conn.aclose()
    wrong = "wrong-" + uuid.uuid4().hex
    dw, conn = engine_app(store, url, wrong)
    async with dw:
        failed = await dw.workflows.execute(product="shop", env="prd", tag="signup",
                                            input={"email": "x@x.io"})
        await conn.aclose()
    assert failed.status == "failed" and failed.failed_step == "create-user"
    error = failed.error or ""
    assert "database/users-db/create-user (env prd)" in error
    assert "password authentication failed" in error and wrong not in error
    for path in tmp_path.iterdir():  # the run store and its WAL/SHM files
        data = path.read_bytes()
        assert password.encode() not in data and wrong.encode() not in data, path


def test_clusters_of_killed_test_runs_are_reaped() -> None:
    # A child process starts a cluster and dies without stopping it (like a `timeout` kill).
    code = ("import os; from tests.support.postgres import start_postgres; "
            "s = start_postgres(); print(s.root, s.port, flush=True); os._exit(0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).parents[2])
    root_s, port_s = out.stdout.split()
    root = Path(root_s)
    assert (root / "data" / "postmaster.pid").exists()
    assert root in pg_support.reap_orphans()
    assert not root.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", int(port_s)), 1).close()
