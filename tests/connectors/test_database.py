"""Database connector behaviour, one suite run on SQLite files and on a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ductwork.connectors.base import (
    ResourceSpec,
    build_connector,
)
from ductwork.connectors.database.core import SQLDatabase
from ductwork.errors import ConnectorError
from tests.support.postgres import PgServer, postgres_server

__all__ = ["postgres_server"]  # the session fixture, imported so pytest sees it here


TABLES: dict[str, Any] = {
    "users": {"columns": {
        "id": {"type": "integer", "primary_key": True, "auto": True},
        "email": {"type": "text", "unique": True, "nullable": False},
        "name": "text",
        "age": "integer",
        "score": "numeric",
        "active": {"type": "boolean", "default": True},
        "created_at": {"type": "timestamp", "default": "now"},
        "profile": "json",
    }},
    "audit_log": {"columns": {
        "id": {"type": "integer", "primary_key": True, "auto": True},
        "action": "text",
        "user_id": "integer",
        "timestamp": "timestamp",
    }},
    # Reserved words as names: quoting must make them plain identifiers.
    "order": {"columns": {
        "id": {"type": "uuid", "primary_key": True, "auto": True},
        "select": "text",
        "group": "integer",
    }},
    "things": {"columns": {
        "id": {"type": "uuid", "primary_key": True, "auto": True},
        "big": "bigint",
        "ratio": "float",
        "price": "numeric",
        "day": "date",
        "at": "timestamp",
        "blob": "bytes",
        "doc": "json",
        "flag": "boolean",
    }},
}
EVENTS: dict[str, Any] = {
    "create-user": {"op": "insert", "table": "users"},
    "find-users": {"op": "query", "table": "users", "order_by": "id"},
    "find-active": {"op": "query", "table": "users", "where": {"active": True},
                    "select": ["id", "email"], "order_by": "-id", "limit": 2},
    "rename": {"op": "update", "table": "users", "returning": ["id", "name"]},
    "remove": {"op": "delete", "table": "users"},
    "wipe": {"op": "delete", "table": "users", "allow_all": True},
    "save-user": {"op": "upsert", "table": "users", "key": ["email"]},
    "user-report": {"op": "sql", "params": ["email", "name"],
                    "sql": "select id, email from users where email = :email or name = :name "
                           "order by id"},
    "count-domain": {"op": "sql", "params": ["domain"],
                     "sql": "select count(*) as n from users where email like '%' || :domain"},
    "bump-age": {"op": "sql", "params": ["id"],
                 "sql": "update users set age = coalesce(age, 0) + 1 where id = :id"},
    "create-log": {"op": "insert", "table": "audit_log"},
    "find-logs": {"op": "query", "table": "audit_log", "order_by": "timestamp"},
    "create-order": {"op": "insert", "table": "order"},
    "find-orders": {"op": "query", "table": "order", "order_by": ["group desc", "select"]},
    "save-thing": {"op": "insert", "table": "things"},
    "find-things": {"op": "query", "table": "things"},
}
DEFINITION: dict[str, Any] = {"tables": TABLES, "events": EVENTS}


@pytest.fixture(params=["sqlite", "postgres"])
def db_config(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"provider": "sqlite", "url": "sqlite:///data/users.db"}
    server: PgServer = request.getfixturevalue("postgres_server")
    schema = "t_" + uuid.uuid4().hex[:12]  # a private schema per test keeps tests independent
    server.psql(f"CREATE SCHEMA {schema}")
    return {"provider": "postgres", "url": server.dsn_for(options=f"-csearch_path={schema}"),
            "create_tables": True, "pool": {"min": 1, "max": 4}}


def make_spec(config: dict[str, Any], base_dir: Path, definition: dict[str, Any] | None = None
              ) -> ResourceSpec:
    return ResourceSpec(kind="database", name="users-db", env="dev", product="shop",
                        config=config, definition=definition or DEFINITION,
                        base_dir=str(base_dir))


@pytest.fixture
async def db(db_config: dict[str, Any], tmp_path: Path) -> AsyncIterator[SQLDatabase]:
    conn = build_connector(make_spec(db_config, tmp_path))
    assert isinstance(conn, SQLDatabase)
    try:
        yield conn
    finally:
        await conn.aclose()


async def seed(db: SQLDatabase) -> list[dict[str, Any]]:
    return list(await db.insert("create-user", [
        {"email": "ann@example.com", "name": "Ann", "age": 31, "score": "9.5"},
        {"email": "bob@example.org", "name": "Bob", "age": 25, "active": False},
        {"email": "cy@example.com", "name": None, "age": 40, "score": 1},
        {"email": "Dee@Example.com", "name": "Dee", "age": None},
    ]))


async def emails(db: SQLDatabase, where: dict[str, Any]) -> list[str]:
    return [r["email"] for r in await db.query("find-users", where)]


# -- insert ----------------------------------------------------------------------------------


async def test_insert_returns_the_row_with_generated_and_default_columns(db: SQLDatabase) -> None:
    row = await db.insert("create-user", {"email": "john@example.com", "name": "John Doe",
                                          "profile": {"plan": "pro", "tags": ["a"]}})
    assert isinstance(row["id"], int)
    assert row["email"] == "john@example.com" and row["name"] == "John Doe"
    assert row["active"] is True
    assert row["profile"] == {"plan": "pro", "tags": ["a"]}
    assert isinstance(row["created_at"], datetime) and row["created_at"].tzinfo is not None
    assert abs((datetime.now(UTC) - row["created_at"]).total_seconds()) < 3600
    assert row["age"] is None and row["score"] is None
    again = await db.insert("create-user", {"email": "jane@example.com"})
    assert again["id"] > row["id"]


async def test_insert_a_list_returns_every_row_in_one_transaction(db: SQLDatabase) -> None:
    rows = await seed(db)
    assert [r["email"] for r in rows][:2] == ["ann@example.com", "bob@example.org"]
    assert len({r["id"] for r in rows}) == 4
    with pytest.raises(ConnectorError, match=r"(?i)unique"):
        await db.insert("create-user", [{"email": "new@x.io"}, {"email": "ann@example.com"}])
    # the first row of the failed batch was rolled back with the batch
    assert await emails(db, {"email": "new@x.io"}) == []


async def test_timestamps_accept_iso_strings_and_compare_as_instants(db: SQLDatabase) -> None:
    await db.insert("create-log", [
        {"action": "a", "user_id": 1, "timestamp": "2024-05-01T10:00:00Z"},
        {"action": "b", "user_id": 1, "timestamp": "2024-05-01T12:30:00+02:00"},  # 10:30Z
        {"action": "c", "user_id": 1, "timestamp": datetime(2024, 5, 1, 11, 0)},  # naive = UTC
    ])
    rows = await db.query("find-logs", {"timestamp": {"$gt": "2024-05-01T10:15:00+00:00"}})
    assert [r["action"] for r in rows] == ["b", "c"]
    assert rows[0]["timestamp"] == datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    rows = await db.query("find-logs", {"timestamp": {"$between": [
        "2024-05-01T09:59:00Z", datetime(2024, 5, 1, 10, 45, tzinfo=UTC)]}})
    assert [r["action"] for r in rows] == ["a", "b"]


async def test_every_column_type_round_trips(db: SQLDatabase) -> None:
    when = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=UTC)
    row = await db.insert("save-thing", {
        "big": 2**53 + 1, "ratio": 0.25, "price": Decimal("19.99"), "day": "2024-02-29",
        "at": when.isoformat(), "blob": b"\x00\xffbin", "doc": {"a": [1, 2, {"b": None}]},
        "flag": False,
    })
    assert isinstance(row["id"], uuid.UUID)
    assert row["big"] == 2**53 + 1 and row["ratio"] == 0.25
    assert row["price"] == Decimal("19.99") and row["day"] == date(2024, 2, 29)
    assert row["at"] == when and row["blob"] == b"\x00\xffbin"
    assert row["doc"] == {"a": [1, 2, {"b": None}]} and row["flag"] is False
    [found] = await db.query("find-things", {"id": str(row["id"])})
    assert found == row
    assert await db.query("find-things", {"flag": True}) == []
    assert len(await db.query("find-things", {"price": {"$gt": "19.5"}, "day": {"$lt": date(
        2024, 3, 1)}})) == 1


async def test_bad_values_are_named_before_reaching_the_database(db: SQLDatabase) -> None:
    with pytest.raises(ConnectorError, match="column 'age' expects an integer, got 'abc'"):
        await db.insert("create-user", {"email": "x@y.z", "age": "abc"})
    with pytest.raises(ConnectorError, match="column 'email' expects text"):
        await db.insert("create-user", {"email": 42})
    with pytest.raises(ConnectorError, match="timestamp"):
        await db.insert("create-user", {"email": "x@y.z", "created_at": "yesterday"})
    with pytest.raises(ConnectorError, match="data must be an object"):
        await db.insert("create-user", "email=x")
    with pytest.raises(ConnectorError, match=r"(?i)not null|null value"):
        await db.insert("create-user", {"name": "no email"})
    assert await db.query("find-users") == []


# -- query and where-operators -----------------------------------------------------------------


async def test_where_operators(db: SQLDatabase) -> None:
    await seed(db)
    assert await emails(db, {"email": "ann@example.com"}) == ["ann@example.com"]
    assert await emails(db, {"age": {"$eq": 25}}) == ["bob@example.org"]
    assert await emails(db, {"age": {"$ne": 25}}) == [
        "ann@example.com", "cy@example.com", "Dee@Example.com"]  # NULL age is "not 25"
    assert await emails(db, {"age": {"$gt": 31}}) == ["cy@example.com"]
    assert await emails(db, {"age": {"$gte": 31}}) == ["ann@example.com", "cy@example.com"]
    assert await emails(db, {"age": {"$lt": 31}}) == ["bob@example.org"]
    assert await emails(db, {"age": {"$lte": 31}}) == ["ann@example.com", "bob@example.org"]
    assert await emails(db, {"age": {"$gte": 25, "$lt": 40}}) == [
        "ann@example.com", "bob@example.org"]
    assert await emails(db, {"name": {"$in": ["Bob", "Dee", "Zed"]}}) == [
        "bob@example.org", "Dee@Example.com"]
    assert await emails(db, {"name": {"$in": []}}) == []
    assert await emails(db, {"name": {"$nin": ["Ann", "Bob"]}}) == [
        "cy@example.com", "Dee@Example.com"]
    assert len(await emails(db, {"name": {"$nin": []}})) == 4
    assert await emails(db, {"email": {"$like": "%@example.com"}}) == [
        "ann@example.com", "cy@example.com"]  # LIKE is case-sensitive on both backends
    assert await emails(db, {"email": {"$ilike": "%@EXAMPLE.COM"}}) == [
        "ann@example.com", "cy@example.com", "Dee@Example.com"]
    assert await emails(db, {"name": {"$isNull": True}}) == ["cy@example.com"]
    assert await emails(db, {"name": None}) == ["cy@example.com"]
    assert await emails(db, {"age": {"$isNotNull": False}}) == ["Dee@Example.com"]
    assert await emails(db, {"name": {"$isNotNull": True}, "age": {"$isNull": False}}) == [
        "ann@example.com", "bob@example.org"]
    assert await emails(db, {"age": {"$between": [25, 31]}}) == [
        "ann@example.com", "bob@example.org"]
    assert await emails(db, {"score": {"$gte": "1.0"}}) == ["ann@example.com", "cy@example.com"]
    assert await emails(db, {"active": False}) == ["bob@example.org"]


async def test_like_patterns_escape_with_backslash(db: SQLDatabase) -> None:
    await db.insert("create-user", [{"email": "a@x", "name": "50% off"},
                                    {"email": "b@x", "name": "500 off"},
                                    {"email": "c@x", "name": "a_b"},
                                    {"email": "d@x", "name": "ab"}])
    assert await emails(db, {"name": {"$like": "50%"}}) == ["a@x", "b@x"]
    assert await emails(db, {"name": {"$like": "50\\%%"}}) == ["a@x"]
    assert await emails(db, {"name": {"$ilike": "A\\_%"}}) == ["c@x"]


async def test_logical_operators(db: SQLDatabase) -> None:
    await seed(db)
    assert await emails(db, {"$or": [{"name": "Ann"}, {"age": {"$gt": 35}}]}) == [
        "ann@example.com", "cy@example.com"]
    assert await emails(db, {"$and": [{"age": {"$gt": 20}}, {"age": {"$lt": 30}}]}) == [
        "bob@example.org"]
    assert await emails(db, {"$not": {"email": {"$like": "%.com"}}}) == ["bob@example.org"]
    assert await emails(db, {"active": True, "$or": [{"name": "Bob"}, {"name": "Dee"}]}) == [
        "Dee@Example.com"]


async def test_limit_offset_and_order_from_params_or_the_event(db: SQLDatabase) -> None:
    await seed(db)
    assert await emails(db, {"$order_by": "-age", "$limit": 2}) == [
        "Dee@Example.com", "cy@example.com"]  # NULLs first when descending, on both backends
    assert await emails(db, {"$order_by": ["name asc", "id"], "$offset": 1, "$limit": 2}) == [
        "bob@example.org", "Dee@Example.com"]
    assert await emails(db, {"$order_by": "age", "$offset": 3}) == ["Dee@Example.com"]
    rows = await db.query("find-active")  # event: active only, newest first, limit 2, 2 columns
    assert [sorted(r) for r in rows] == [["email", "id"], ["email", "id"]]
    assert [r["email"] for r in rows] == ["Dee@Example.com", "cy@example.com"]
    rows = await db.query("find-active", {"$limit": 10, "age": {"$gt": 30}})
    assert [r["email"] for r in rows] == ["cy@example.com", "ann@example.com"]
    with pytest.raises(ConnectorError, match=r"\$limit must be a non-negative integer"):
        await db.query("find-users", {"$limit": "1"})


async def test_reserved_words_as_table_and_column_names(db: SQLDatabase) -> None:
    await db.insert("create-order", [{"select": "b", "group": 1}, {"select": "a", "group": 1},
                                     {"select": "c", "group": 2}])
    rows = await db.query("find-orders", {"group": {"$in": [1, 2]}})
    assert [r["select"] for r in rows] == ["c", "a", "b"]


# -- update / delete / upsert ------------------------------------------------------------------


async def test_update_returns_the_updated_rows(db: SQLDatabase) -> None:
    rows = await seed(db)
    updated = await db.update("rename", {"id": rows[0]["id"]}, {"name": "Annie"})
    assert updated == [{"id": rows[0]["id"], "name": "Annie"}]
    assert await db.update("rename", {"email": "nobody@x"}, {"name": "x"}) == []
    many = await db.update("rename", {"age": {"$gte": 31}}, {"name": "Senior"})
    assert sorted(r["id"] for r in many) == sorted([rows[0]["id"], rows[2]["id"]])
    with pytest.raises(ConnectorError, match="refusing to update every row"):
        await db.update("rename", {}, {"name": "everyone"})
    with pytest.raises(ConnectorError, match="refusing to update every row"):
        await db.update("rename", None, {"name": "everyone"})
    with pytest.raises(ConnectorError, match="data must be a non-empty object"):
        await db.update("rename", {"id": 1}, {})
    assert await emails(db, {"name": "everyone"}) == []


async def test_delete_returns_whether_anything_was_deleted(db: SQLDatabase) -> None:
    rows = await seed(db)
    assert await db.delete("remove", {"id": rows[1]["id"]}) is True
    assert await db.delete("remove", {"id": rows[1]["id"]}) is False
    with pytest.raises(ConnectorError, match="refusing to delete every row"):
        await db.delete("remove", {})
    assert len(await db.query("find-users")) == 3
    assert await db.delete("wipe", None) is True  # declared allow_all
    assert await db.query("find-users") == []


async def test_upsert_inserts_then_updates_on_the_key(db: SQLDatabase) -> None:
    first = await db.upsert("save-user", {"email": "u@x.io", "name": "U", "age": 1})
    second = await db.upsert("save-user", {"email": "u@x.io", "name": "U2"})
    assert second["id"] == first["id"] and second["name"] == "U2"
    assert second["age"] == 1  # columns not given are left alone
    assert second["created_at"] == first["created_at"]  # defaults do not overwrite on update
    only_key = await db.upsert("save-user", {"email": "u@x.io"})
    assert only_key["id"] == first["id"]
    both = await db.upsert("save-user", [{"email": "u@x.io", "age": 5}, {"email": "v@x.io"}])
    assert [r["email"] for r in both] == ["u@x.io", "v@x.io"] and both[0]["age"] == 5
    with pytest.raises(ConnectorError, match="upsert needs the key column"):
        await db.upsert("save-user", {"name": "no key"})


# -- raw SQL with named parameters ------------------------------------------------------------


async def test_raw_sql_with_named_parameters(db: SQLDatabase) -> None:
    rows = await seed(db)
    got = await db.execute("user-report", {"email": "bob@example.org", "name": "Dee"})
    assert [r["email"] for r in got] == ["bob@example.org", "Dee@Example.com"]
    assert await db.query("user-report", {"email": "none", "name": "Ann"}) == [
        {"id": rows[0]["id"], "email": "ann@example.com"}]
    [count] = await db.execute("count-domain", {"domain": "example.com"})  # a literal % in sql
    assert count["n"] == 2
    assert await db.execute("bump-age", {"id": rows[3]["id"]}) == {"rowcount": 1}
    with pytest.raises(ConnectorError, match=r"unknown parameter 'emial'.*did you mean 'email'"):
        await db.execute("user-report", {"emial": "x", "name": "y"})
    with pytest.raises(ConnectorError, match=r"missing parameter.*name"):
        await db.execute("user-report", {"email": "x"})


async def test_execute_runs_the_op_of_any_event(db: SQLDatabase) -> None:
    row = await db.execute("create-user", {"email": "e@x.io", "name": "E"})
    assert (await db.execute("find-users", {"email": "e@x.io"}))[0]["id"] == row["id"]
    assert await db.execute("rename", {"where": {"id": row["id"]}, "data": {"name": "F"}}) == [
        {"id": row["id"], "name": "F"}]
    assert await db.execute("remove", {"where": {"id": row["id"]}}) is True
    with pytest.raises(ConnectorError, match=r"takes input \{where\}"):
        await db.execute("remove", {"id": row["id"]})


# -- errors -----------------------------------------------------------------------------------


async def test_unknown_event_and_wrong_method_are_named(db: SQLDatabase) -> None:
    with pytest.raises(ConnectorError, match="unknown event 'create-usr'") as e:
        await db.insert("create-usr", {"email": "x"})
    assert "database/users-db/create-usr (env dev)" in str(e.value)
    assert "create-user" in str(e.value)
    with pytest.raises(ConnectorError, match=r"'find-users' is a query event: call database\.q"):
        await db.insert("find-users", {"email": "x"})


async def test_database_errors_name_resource_event_and_env(db: SQLDatabase) -> None:
    await db.insert("create-user", {"email": "dup@x.io"})
    with pytest.raises(ConnectorError) as e:
        await db.insert("create-user", {"email": "dup@x.io"})
    assert str(e.value).startswith("database/users-db/create-user (env dev): ")
    assert "IntegrityError" in str(e.value) or "UniqueViolation" in str(e.value)
    assert e.value.resource == "users-db" and e.value.event == "create-user"
    assert e.value.env == "dev" and e.value.retryable is False


async def test_concurrent_calls_share_one_connection_or_pool(db: SQLDatabase) -> None:
    rows = await asyncio.gather(*(db.insert("create-user", {"email": f"u{i}@x.io"})
                                  for i in range(25)))
    assert len({r["id"] for r in rows}) == 25
    counts = await asyncio.gather(*(db.query("find-users") for _ in range(10)))
    assert all(len(c) == 25 for c in counts)


# -- injection: values and keys ----------------------------------------------------------------

PAYLOADS = [
    "' OR 1=1 --",
    "'; DROP TABLE users; --",
    "\" OR \"\"=\"",
    "x'); DELETE FROM users; --",
    "%' OR '1'='1",
    ":email",
    "%s",
    "?",
    "\\'; DROP TABLE users; --",
    "$1",
]


async def intact(db: SQLDatabase, n: int) -> None:
    assert len(await db.query("find-users")) == n
    assert len(await db.query("find-orders")) == 0  # the other tables are still there too


async def test_injection_payloads_in_values_are_just_data(db: SQLDatabase) -> None:
    await seed(db)
    for i, p in enumerate(PAYLOADS):
        row = await db.insert("create-user", {"email": f"p{i}@x.io", "name": p})
        assert row["name"] == p
        assert await emails(db, {"name": p}) == [f"p{i}@x.io"]
        assert await emails(db, {"email": p}) == []
        assert await emails(db, {"name": {"$in": [p, "nobody"]}}) == [f"p{i}@x.io"]
        # patterns are data too: at most they match other payload rows (backslash escapes)
        assert set(await emails(db, {"name": {"$like": p}})) <= {
            f"p{j}@x.io" for j in range(i + 1)}
        assert await db.update("rename", {"email": p}, {"name": "hacked"}) == []
        assert await db.delete("remove", {"name": {"$ne": p}, "email": p}) is False
        assert await db.execute("user-report", {"email": p, "name": p}) == [
            {"id": row["id"], "email": f"p{i}@x.io"}]
    await intact(db, 4 + len(PAYLOADS))
    assert await emails(db, {"name": "hacked"}) == []


BAD_KEYS = [
    "email; DROP TABLE users; --",
    'email" = email OR "1',
    "1=1 OR email",
    "email) OR (1=1",
    "users.email",
    "",
]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_injection_payloads_in_keys_are_unknown_columns(db: SQLDatabase, key: str) -> None:
    await seed(db)
    for call in (
        lambda: db.insert("create-user", {key: 1, "email": "k@x.io"}),
        lambda: db.query("find-users", {key: 1}),
        lambda: db.query("find-users", {"$or": [{key: 1}]}),
        lambda: db.update("rename", {"id": 1}, {key: "x"}),
        lambda: db.update("rename", {key: 1}, {"name": "x"}),
        lambda: db.delete("remove", {key: 1}),
        lambda: db.upsert("save-user", {"email": "ann@example.com", key: 1}),
    ):
        with pytest.raises(ConnectorError, match="unknown column of table 'users'") as e:
            await call()
        assert "known: active, age, created_at, email, id, name, profile, score" in str(e.value)
    with pytest.raises(ConnectorError, match="did you mean 'email'"):
        await db.query("find-users", {"email; DROP TABLE users; --": 1})
    await intact(db, 4)


@pytest.mark.parametrize("where", [
    {"$or": "1=1"},
    {"$or": []},
    {"$or": [1, 2]},
    {"$and": {"email": "x"}},
    {"$not": "email"},
    {"$where": "1=1"},
    {"$or; DROP TABLE users": [{"id": 1}]},
    {"email": {"$regex": ".*"}},
    {"email": {"= '' OR 1=1 --": "x"}},
    {"email": {}},
    {"age": {"$in": "1,2"}},
    {"age": {"$between": [1]}},
    {"age": {"$like": "%"}},
    {"name": {"$isNull": "yes"}},
    {"age": {"$gt": None}},
    {"age": "1 OR 1=1"},
    {"$limit": "1; DROP TABLE users"},
    {"$order_by": "email; DROP TABLE users"},
    {"$order_by": "email desc, (select 1)"},
    {"$order_by": "id desc nulls first"},
    {"$order_by": ["id", 3]},
])
async def test_malformed_filters_are_refused(db: SQLDatabase, where: dict[str, Any]) -> None:
    await seed(db)
    with pytest.raises(ConnectorError) as e:
        await db.query("find-users", where)
    assert str(e.value).startswith("database/users-db/find-users (env dev): ")
    with pytest.raises(ConnectorError):
        await db.delete("remove", where)
    await intact(db, 4)


async def test_deeply_nested_filters_are_refused(db: SQLDatabase) -> None:
    where: dict[str, Any] = {"id": 1}
    for _ in range(40):
        where = {"$not": where}
    with pytest.raises(ConnectorError, match="nested deeper"):
        await db.query("find-users", where)


# -- the SQL text itself (no database) ---------------------------------------------------------


def test_named_params_skip_literals_comments_casts_and_dollar_quotes() -> None:
    from ductwork.connectors.database.params import named_params
    from ductwork.connectors.database.postgres import PostgresDialect
    from ductwork.connectors.database.sql import bind_named
    from ductwork.connectors.database.sqlite import SQLiteDialect

    sql = ("select :a, ':b', \"c:d\", x::text, arr[1:2], E'it\\'s :e', -- :f\n"
           "/* :g */ $$ :h $$, $t$ :i $t$, '50%' || :a || :j")
    assert named_params(sql) == ["a", "j"]
    pg = bind_named(PostgresDialect(), sql, ["a", "j"], {"a": 1, "j": "x"})
    assert pg.params == [1, 1, "x"]
    assert pg.sql.startswith("select %s, ':b', \"c:d\", x::text, arr[1:2], E'it\\'s :e'")
    assert "'50%%' || %s || %s" in pg.sql  # a literal % is doubled for psycopg
    lite = bind_named(SQLiteDialect(), "select * from t where a = :a and b like '%' || :a",
                      ["a"], {"a": "v"})
    assert lite.sql == "select * from t where a = ? and b like '%' || ?"
    assert lite.params == ["v", "v"]


def test_built_statements_bind_every_value_and_quote_every_identifier() -> None:
    from ductwork.connectors.database.schema import load_schema
    from ductwork.connectors.database.sql import Builder
    from ductwork.connectors.database.sqlite import SQLiteDialect

    schema, problems = load_schema(DEFINITION)
    assert problems == []
    b = Builder(SQLiteDialect(), schema.tables["users"])
    stmt = b.select({"email": "' OR 1=1 --", "$or": [{"age": {"$in": [1, 2]}},
                                                     {"name": {"$ilike": "a%"}}]},
                    [("created_at", True)], 10, None, ["id", "email"])
    assert stmt.sql == (
        'SELECT "id", "email" FROM "users" WHERE ("email" = ? AND '
        '(("age" IN (?, ?)) OR (lower("name") LIKE lower(?) ESCAPE \'\\\'))) '
        'ORDER BY "created_at" DESC NULLS FIRST LIMIT ?')
    assert stmt.params == ["' OR 1=1 --", 1, 2, "a%", 10]
