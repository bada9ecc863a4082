"""The component seam: ctx.<kind>.<op>(...) reaches the registered connector."""

from __future__ import annotations

from typing import Any

import pytest

from ductwork import ConfigurationError, Ductwork
from ductwork.testing.doubles import (
    MemoryAction,
    MemoryBroker,
    MemoryDatabase,
    MemoryGraph,
    MemoryNotification,
    MemoryStorage,
)


async def test_every_component_dispatches_to_its_connector(dw: Ductwork) -> None:
    db, broker, graph, store = (MemoryDatabase({"add": "items"}), MemoryBroker(), MemoryGraph(),
                                MemoryStorage())
    note, app = MemoryNotification(), MemoryAction({"ping": {"pong": True}})
    for kind, name, conn in (("database", "db", db), ("broker", "bus", broker),
                             ("graph", "g", graph), ("storage", "files", store),
                             ("notification", "n", note), ("action", "api", app)):
        dw.connectors.register(kind, name, conn)

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        row = await ctx.step("db", lambda: ctx.database.insert(database="db", event="add",
                                                               data={"x": 1}))
        found = await ctx.step("q", lambda: ctx.database.query(database="db", event="add",
                                                               params={"x": 1}))
        await ctx.step("pub", lambda: ctx.messaging.produce(event="bus:orders", message={"a": 1}))
        await ctx.step("pub2", lambda: ctx.publish.send(broker="bus", event="orders",
                                                        input={"message": "m"}))
        node = await ctx.step("node", lambda: ctx.graph.create_node(
            graph="g", labels=["User"], properties={"id": "u1"}))
        up = await ctx.step("up", lambda: ctx.storage.upload(
            storage="files", event="avatars", input={"buffer": b"hi", "file_name": "a.png",
                                                     "mime_type": "image/png"}))
        await ctx.step("sms", lambda: ctx.notification.sms(notification="n", event="code",
                                                           phones=["+1"], message={"c": 1}))
        pong = await ctx.step("ping", lambda: ctx.action.run(app="api", event="ping", input={}))
        return [row, found, node["id"], up["size"], pong]

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "completed", r.error
    assert r.output == [{"id": 1, "x": 1}, [{"id": 1, "x": 1}], "u1", 2, {"pong": True}]
    assert broker.messages == [("orders", {"a": 1}), ("orders", "m")]
    assert note.sent[0]["phones"] == ["+1"]


async def test_a_component_without_a_connector_names_the_resource(dw: Ductwork) -> None:
    dw.connectors.register("database", "users-db", MemoryDatabase())

    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("s", lambda: ctx.database.insert(database="user-db", event="e", data={}))

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.status == "failed"
    assert r.error is not None
    assert "no database resource named 'user-db' is configured for product 'p' (env dev)" \
        in r.error
    assert "did you mean 'users-db'?" in r.error


def test_registering_the_wrong_kind_is_refused(dw: Ductwork) -> None:
    with pytest.raises(ConfigurationError, match="expected a DatabaseConnector"):
        dw.connectors.register("database", "x", MemoryBroker())
    with pytest.raises(ConfigurationError, match="did you mean 'database'"):
        dw.connectors.register("databse", "x", MemoryDatabase())


async def test_bad_messaging_event_shape(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        await ctx.step("s", lambda: ctx.messaging.produce(event="no-colon", message={}))

    r = await dw.workflows.execute(product="p", env="dev", tag="t")
    assert r.error is not None and "event must be 'broker:topic'" in r.error
