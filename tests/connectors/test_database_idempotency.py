"""Insert-once: an insert event with `idempotency_key: <column>` writes one row per step."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.connectors.base import ResourceSpec, build_connector, validate_resource
from ductwork.connectors.database.core import SQLDatabase
from ductwork.errors import ConnectorError
from tests.support.postgres import PgServer, postgres_server

__all__ = ["postgres_server"]  # the session fixture, imported so pytest sees it here

DEFINITION: dict[str, Any] = {
    "tables": {"orders": {"columns": {
        "id": {"type": "integer", "primary_key": True, "auto": True},
        "request_key": {"type": "text", "unique": True},
        "item": "text",
    }}},
    "events": {
        "create-order": {"op": "insert", "table": "orders", "idempotency_key": "request_key"},
        "list-orders": {"op": "query", "table": "orders"},
    },
}


@pytest.fixture(params=["sqlite", "postgres"])
def db_config(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {"provider": "sqlite", "url": "sqlite:///data/orders.db"}
    server: PgServer = request.getfixturevalue("postgres_server")
    schema = "t_" + uuid.uuid4().hex[:12]
    server.psql(f"CREATE SCHEMA {schema}")
    return {"provider": "postgres", "url": server.dsn_for(options=f"-csearch_path={schema}"),
            "create_tables": True}


def connector(config: dict[str, Any], base: Path) -> SQLDatabase:
    conn = build_connector(ResourceSpec(kind="database", name="orders-db", env="dev",
                                        product="shop", config=config, definition=DEFINITION,
                                        base_dir=str(base)))
    assert isinstance(conn, SQLDatabase)
    return conn


async def test_a_step_run_again_after_its_insert_gets_the_same_row(
        db_config: dict[str, Any], tmp_path: Path) -> None:
    db = connector(db_config, tmp_path)
    attempts: list[dict[str, Any]] = []
    try:
        async with Ductwork(store=f"sqlite:///{tmp_path / 'runs.db'}") as dw:
            dw.connectors.register("database", "orders-db", db)

            @dw.workflows.workflow(product="shop", tag="order")
            async def order(ctx: Any) -> Any:
                async def create() -> Any:
                    row = await ctx.database.insert(database="orders-db", event="create-order",
                                                    data={"item": "book"})
                    attempts.append(row)
                    if len(attempts) == 1:  # the insert landed, then the step failed
                        raise ConnectionResetError("connection lost before the reply")
                    return row

                return await ctx.step("create", create, retries=1, retry_delay=1)

            r = await dw.workflows.execute(product="shop", env="dev", tag="order",
                                           workflow_id="o-1")
            r2 = await dw.workflows.execute(product="shop", env="dev", tag="order",
                                            workflow_id="o-2")
        assert r.status == r2.status == "completed", (r.error, r2.error)
        assert attempts[0] == attempts[1] == r.output
        rows = await db.query("list-orders")
        assert len(rows) == 2  # one per run, not per attempt
        assert {row["request_key"] for row in rows} == {r.output["request_key"],
                                                        r2.output["request_key"]}
        # Outside a step a key must be given; given, the same one inserts once too.
        with pytest.raises(ConnectorError, match="call it inside a step"):
            await db.insert("create-order", {"item": "pen"})
        again = [await db.insert("create-order", {"item": "pen", "request_key": "k-1"})
                 for _ in range(2)]
        assert again[0] == again[1] and again[0]["item"] == "pen"
        assert len(await db.query("list-orders")) == 3
    finally:
        await db.aclose()


def test_the_key_column_must_be_a_unique_text_column(tmp_path: Path) -> None:
    definition = {
        "tables": {"t": {"columns": {"id": {"type": "integer", "primary_key": True},
                                     "k": "text", "n": {"type": "integer", "unique": True}}}},
        "events": {"a": {"op": "insert", "table": "t", "idempotency_key": "k"},
                   "b": {"op": "insert", "table": "t", "idempotency_key": "n"},
                   "c": {"op": "insert", "table": "t", "idempotency_key": "nope"},
                   "d": {"op": "query", "table": "t", "idempotency_key": "k"}}}
    config = {"provider": "sqlite", "url": "sqlite:///x.db"}
    found = validate_resource("database", {**definition, "envs": {"dev": config}}, config)
    problems: dict[str, str] = {}
    for path, message in found:
        problems[str(path[1])] = problems.get(str(path[1]), "") + str(message)
    assert "must be unique" in problems["a"]
    assert "make it a text or uuid column" in problems["b"]
    assert "nope" in problems["c"]
    assert "idempotency_key" in problems["d"]  # a query event does not take it
