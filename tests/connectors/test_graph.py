"""Graph connectors: one behavioural suite on embedded ladybug and on a real FalkorDB server."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ductwork.connectors.base import (
    GraphConnector,
    ResourceSpec,
    SecretSet,
    build_connector,
    resolve_refs,
    validate_resource,
)
from ductwork.errors import ConnectorError
from tests.support.falkordb import FalkorServer
from tests.support.falkordb import falkordb_server as falkordb_server  # session fixture

SCHEMA: dict[str, Any] = {
    "nodes": {
        "User": {"id": "STRING", "name": "STRING", "age": "INT64", "tags": "STRING[]"},
        "Post": {"title": "STRING"},
    },
    "relationships": {
        "FOLLOWS": {"from": "User", "to": "User", "properties": {"since": "INT64"}},
        "WROTE": {"from": "User", "to": "Post"},
    },
}
ACTIONS: dict[str, Any] = {
    "friends-of": {"cypher": "MATCH (a:User {id: $id})-[:FOLLOWS]->(b:User) "
                             "RETURN b.id AS id, b.name AS name ORDER BY id", "params": ["id"]},
    "by-name": {"cypher": "MATCH (u:User) WHERE u.name = $name RETURN u.id AS id",
                "params": ["name"]},
    "user": {"cypher": "MATCH (u:User {id: $id}) RETURN u", "params": ["id"]},
    "count-users": {"cypher": "MATCH (u:User) RETURN count(u) AS c"},
    "rename": {"cypher": "MATCH (u:User {id: $id}) SET u.name = $name RETURN u.name AS name",
               "params": ["id", "name"]},
    "sneaky": {"cypher": "MATCH (u:User) SET u.name = 'pwned' RETURN count(u) AS c",
               "mode": "read"},
    "reach": {"cypher": "MATCH p = (a:User {id: $id})-[:FOLLOWS*1..2]->(b:User) "
                        "RETURN p, b.id AS id ORDER BY id", "params": ["id"]},
    "echo": {"cypher": "RETURN $v AS v", "params": ["v"]},
}


def make(config: dict[str, Any], *, base_dir: Path, environ: dict[str, str] | None = None,
         schema: dict[str, Any] | None = SCHEMA, actions: dict[str, Any] | None = None,
         env: str = "dev") -> GraphConnector:
    secrets = SecretSet()
    resolved = resolve_refs(config, environ=environ or {}, collect=secrets)
    definition: dict[str, Any] = {"envs": {env: config},
                                  "actions": ACTIONS if actions is None else actions}
    if schema is not None:
        definition["schema"] = schema
    spec = ResourceSpec(kind="graph", name="social", env=env, product="shop", config=resolved,
                        definition=definition, base_dir=str(base_dir), secrets=secrets)
    conn = build_connector(spec)
    assert isinstance(conn, GraphConnector)
    return conn


def falkor_config(srv: FalkorServer, **extra: Any) -> tuple[dict[str, Any], dict[str, str]]:
    config = {"provider": "falkordb", "host": srv.host, "port": srv.port,
              "password": "${env.FALKOR_PASSWORD}", "graph": f"g{uuid.uuid4().hex[:10]}",
              **extra}
    return config, {"FALKOR_PASSWORD": srv.password}


@pytest.fixture(params=["ladybug", "falkordb"])
async def graph(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GraphConnector]:
    if request.param == "ladybug":
        conn = make({"provider": "ladybug", "path": "db/graph"}, base_dir=tmp_path)
    else:
        srv: FalkorServer = request.getfixturevalue("falkordb_server")
        config, environ = falkor_config(srv)
        conn = make(config, base_dir=tmp_path, environ=environ)
    yield conn
    await conn.aclose()


async def count_users(g: GraphConnector) -> int:
    return int((await g.query("count-users"))[0]["c"])


# -- shared behaviour ------------------------------------------------------------------------------

async def test_create_node_and_read_it_back(graph: GraphConnector) -> None:
    ada = await graph.create_node(["User"], {"name": "Ada", "age": 36, "tags": ["math", "é"]})
    assert set(ada) == {"id", "labels", "properties"}
    assert str(uuid.UUID(ada["id"])) == ada["id"]  # a generated string id
    assert ada["labels"] == ["User"]
    assert ada["properties"] == {"id": ada["id"], "name": "Ada", "age": 36,
                                 "tags": ["math", "é"]}
    rows = await graph.query("user", {"id": ada["id"]})
    assert rows == [{"u": ada}]
    one_label: Any = "User"  # accepted on purpose, though GraphConnector declares list[str]
    bob = await graph.create_node(one_label, {"id": "bob", "name": "Bob"})
    assert bob == {"id": "bob", "labels": ["User"], "properties": {"id": "bob", "name": "Bob"}}
    assert await count_users(graph) == 2


async def test_concurrent_calls(graph: GraphConnector) -> None:
    import asyncio

    nodes = await asyncio.gather(*(graph.create_node(["User"], {"name": f"u{i}"})
                                   for i in range(20)))
    assert len({n["id"] for n in nodes}) == 20
    rows = await asyncio.gather(*(graph.query("user", {"id": n["id"]}) for n in nodes))
    assert [r[0]["u"] for r in rows] == nodes
    assert await count_users(graph) == 20


async def test_ids_are_unique_across_labels(graph: GraphConnector) -> None:
    await graph.create_node(["User"], {"id": "x1", "name": "A"})
    for labels in (["User"], ["Post"]):
        with pytest.raises(ConnectorError, match="'x1' already exists"):
            await graph.create_node(labels, {"id": "x1"})
    assert await count_users(graph) == 1


async def test_update_node(graph: GraphConnector) -> None:
    await graph.create_node(["User"], {"id": "u1", "name": "Ada", "age": 36})
    updated = await graph.update_node("u1", {"name": "Ada L.", "age": None})
    assert updated["properties"] == {"id": "u1", "name": "Ada L."}
    assert (await graph.query("user", {"id": "u1"}))[0]["u"] == updated
    assert await graph.update_node("u1", {}) == updated
    with pytest.raises(ConnectorError) as info:
        await graph.update_node("nope", {"name": "x"})
    assert info.value.status == 404 and "graph/social/update_node" in str(info.value)
    with pytest.raises(ConnectorError, match="id cannot be changed"):
        await graph.update_node("u1", {"id": "u2"})
    with pytest.raises(ConnectorError, match="'title' is not declared for User"):
        await graph.update_node("u1", {"title": "x"})


async def test_relationships(graph: GraphConnector) -> None:
    a = await graph.create_node(["User"], {"id": "a", "name": "A"})
    await graph.create_node(["User"], {"id": "b", "name": "B"})
    await graph.create_node(["User"], {"id": "c", "name": "C"})
    post = await graph.create_node(["Post"], {"id": "p", "title": "Hello"})
    r1 = await graph.create_relationship("a", "b", "FOLLOWS", {"since": 2020})
    assert set(r1) == {"id", "type", "from", "to", "properties"}
    assert r1["type"] == "FOLLOWS" and r1["from"] == "a" and r1["to"] == "b"
    assert r1["properties"] == {"id": r1["id"], "since": 2020}
    await graph.create_relationship(a, {"id": "c"}, "FOLLOWS")  # node results as references
    await graph.create_relationship("b", "c", "FOLLOWS", {"id": "bc"})
    await graph.create_relationship("a", post, "WROTE")
    assert await graph.query("friends-of", {"id": "a"}) == [
        {"id": "b", "name": "B"}, {"id": "c", "name": "C"}]

    reach = await graph.query("reach", {"id": "a"})
    assert [r["id"] for r in reach] == ["b", "c", "c"]
    (two_hop,) = [r["p"] for r in reach if len(r["p"]["nodes"]) == 3]
    assert [n["id"] for n in two_hop["nodes"]] == ["a", "b", "c"]
    assert [r["type"] for r in two_hop["relationships"]] == ["FOLLOWS", "FOLLOWS"]
    assert two_hop["relationships"][1]["id"] == "bc"

    with pytest.raises(ConnectorError, match="node 'zz' not found"):
        await graph.create_relationship("a", "zz", "FOLLOWS")
    with pytest.raises(ConnectorError, match="'p' is a Post; FOLLOWS goes from User to User"):
        await graph.create_relationship("a", "p", "FOLLOWS")
    with pytest.raises(ConnectorError, match="'LIKES' is not declared"):
        await graph.create_relationship("a", "b", "LIKES")
    with pytest.raises(ConnectorError, match="'weight' is not declared for FOLLOWS"):
        await graph.create_relationship("a", "b", "FOLLOWS", {"weight": 1})

    assert await graph.delete_relationship(r1["id"]) is True
    assert await graph.delete_relationship(r1["id"]) is False
    assert await graph.query("friends-of", {"id": "a"}) == [{"id": "c", "name": "C"}]


async def test_delete_node_detaches(graph: GraphConnector) -> None:
    await graph.create_node(["User"], {"id": "a", "name": "A"})
    await graph.create_node(["User"], {"id": "b", "name": "B"})
    rel = await graph.create_relationship("a", "b", "FOLLOWS")
    assert await graph.delete_node("b") is True
    assert await graph.delete_node("b") is False
    assert await graph.query("friends-of", {"id": "a"}) == []
    assert await graph.delete_relationship(rel["id"]) is False
    assert await count_users(graph) == 1


async def test_named_actions_take_declared_params_only(graph: GraphConnector) -> None:
    await graph.create_node(["User"], {"id": "a", "name": "A"})
    with pytest.raises(ConnectorError, match=r"unknown action 'nope'.*known: by-name, "):
        await graph.query("nope")
    with pytest.raises(ConnectorError, match=r"unknown parameter.*limit"):
        await graph.query("friends-of", {"id": "a", "limit": 1})
    with pytest.raises(ConnectorError, match=r"missing parameter.*id"):
        await graph.query("friends-of", {})
    with pytest.raises(ConnectorError, match=r"this action writes; call graph.execute"):
        await graph.query("rename", {"id": "a", "name": "Z"})
    assert await graph.execute("rename", {"id": "a", "name": "Z"}) == [{"name": "Z"}]
    assert await graph.execute("count-users") == [{"c": 1}]
    # Declared as a read, but it writes: the database itself refuses it.
    with pytest.raises(ConnectorError) as info:
        await graph.query("sneaky")
    assert "graph/social/sneaky (env dev)" in str(info.value)
    assert await graph.query("by-name", {"name": "Z"}) == [{"id": "a"}]
    assert await graph.query("by-name", {"name": "pwned"}) == []


PAYLOADS = [
    "x' }) MATCH (n) DETACH DELETE n //",
    'x" }) MATCH (n) DETACH DELETE n //',
    "a\\' RETURN 1 //", "\\", "\\\"", "$id", "line\nbreak\r\n\ttab", "back`tick`",
    "é中😀", "}) RETURN 1 UNION MATCH (n) DETACH DELETE n //", "' OR 1=1 --",
]


async def test_injection_in_values_is_just_data(graph: GraphConnector) -> None:
    await graph.create_node(["User"], {"id": "keep", "name": "Keep"})
    for i, payload in enumerate(PAYLOADS):
        node = await graph.create_node(["User"], {"id": f"n{i}", "name": payload})
        assert node["properties"]["name"] == payload
        assert await graph.query("by-name", {"name": payload}) == [{"id": f"n{i}"}]
        assert await graph.query("echo", {"v": payload}) == [{"v": payload}]
        updated = await graph.update_node(f"n{i}", {"name": payload + "!"})
        assert updated["properties"]["name"] == payload + "!"
    # An id is a value too.
    evil = await graph.create_node(["User"], {"id": PAYLOADS[0]})
    assert evil["id"] == PAYLOADS[0]
    assert await graph.delete_node(PAYLOADS[1]) is False
    assert await count_users(graph) == len(PAYLOADS) + 2


BAD_IDENTIFIERS = [
    "User) DETACH DELETE (n", "User`", "`User`", "User {id: 1}", "a b", "User:Post", "", "1abc",
    "User\x00", "Üser", "User-x", "n) RETURN n //",
]


@pytest.mark.parametrize("bad", BAD_IDENTIFIERS)
async def test_injection_in_identifiers_is_refused(graph: GraphConnector, bad: str) -> None:
    await graph.create_node(["User"], {"id": "keep", "name": "Keep"})
    await graph.create_node(["User"], {"id": "keep2"})
    with pytest.raises(ConnectorError, match=r"not an identifier|not declared"):
        await graph.create_node([bad], {"name": "x"})
    with pytest.raises(ConnectorError, match=r"not an identifier|not declared"):
        await graph.create_node(["User"], {bad: "x"})
    with pytest.raises(ConnectorError, match=r"not an identifier|not declared"):
        await graph.update_node("keep", {bad: "x"})
    with pytest.raises(ConnectorError, match=r"not an identifier|not declared"):
        await graph.create_relationship("keep", "keep2", bad)
    with pytest.raises(ConnectorError, match=r"not an identifier|not declared"):
        await graph.create_relationship("keep", "keep2", "FOLLOWS", {bad: 1})
    assert await count_users(graph) == 2


async def test_input_shapes(graph: GraphConnector) -> None:
    with pytest.raises(ConnectorError, match="labels is a label or a non-empty list"):
        await graph.create_node([], {})
    with pytest.raises(ConnectorError, match="properties must be a mapping"):
        not_a_mapping: Any = ["name", "x"]
        await graph.create_node(["User"], not_a_mapping)
    with pytest.raises(ConnectorError, match="must be a node id"):
        await graph.delete_node(None)
    with pytest.raises(ConnectorError, match="cannot be stored"):
        await graph.create_node(["User"], {"name": object()})


# -- ladybug only ----------------------------------------------------------------------------------

async def test_ladybug_persists_and_reuses_one_database_per_process(tmp_path: Path) -> None:
    one = make({"path": "g/graph"}, base_dir=tmp_path)  # provider omitted: ladybug by default
    two = make({"provider": "ladybug", "path": str(tmp_path / "g" / "graph")}, base_dir=Path("/"))
    await one.create_node(["User"], {"id": "a", "name": "A"})
    assert await two.query("user", {"id": "a"})  # same process, same database: no lock error
    await one.aclose()
    assert await count_users(two) == 1  # still open for the other connector
    await two.aclose()
    three = make({"path": "g/graph"}, base_dir=tmp_path)
    assert await count_users(three) == 1  # reopened from disk
    await three.aclose()
    assert (tmp_path / "g" / "graph").is_file()


async def test_ladybug_in_memory_databases_are_private(tmp_path: Path) -> None:
    one = make({"path": ":memory:"}, base_dir=tmp_path)
    two = make({"path": ":memory:"}, base_dir=tmp_path)
    await one.create_node(["User"], {"id": "a", "name": "A"})
    assert await count_users(one) == 1 and await count_users(two) == 0
    await one.aclose()
    await two.aclose()
    assert list(tmp_path.iterdir()) == []


async def test_ladybug_locked_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "graph"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, ladybug; db = ladybug.Database(sys.argv[1]); print('ready', flush=True); "
         "sys.stdin.read()", str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ready"
        conn = make({"path": str(path)}, base_dir=tmp_path)
        with pytest.raises(ConnectorError) as info:
            await conn.create_node(["User"], {"name": "A"})
        msg = str(info.value)
        assert "locked by another process" in msg and "falkordb" in msg
        assert msg.startswith("graph/social/create_node (env dev)")
        await conn.aclose()
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()


async def test_ladybug_adds_newly_declared_properties(tmp_path: Path) -> None:
    old = make({"path": "graph"}, base_dir=tmp_path)
    await old.create_node(["User"], {"id": "a", "name": "A"})
    await old.aclose()
    schema = {**SCHEMA, "nodes": {**SCHEMA["nodes"],
                                  "User": {**SCHEMA["nodes"]["User"], "email": "STRING"}}}
    new = make({"path": "graph"}, base_dir=tmp_path, schema=schema)
    node = await new.update_node("a", {"email": "a@example.com"})
    assert node["properties"] == {"id": "a", "name": "A", "email": "a@example.com"}
    await new.aclose()


async def test_ladybug_single_label_and_missing_schema(tmp_path: Path) -> None:
    conn = make({"path": "graph"}, base_dir=tmp_path)
    with pytest.raises(ConnectorError, match="exactly one label"):
        await conn.create_node(["User", "Post"], {})
    await conn.aclose()
    bare = make({"path": "bare"}, base_dir=tmp_path, schema=None)
    assert await bare.delete_node("x") is False
    assert await bare.delete_relationship("x") is False
    with pytest.raises(ConnectorError, match="ladybug refused the statement"):
        await bare.create_node(["User"], {"name": "A"})
    await bare.aclose()


def test_ladybug_bad_schema_fails_at_build(tmp_path: Path) -> None:
    bad = {"nodes": {"User": {"name": "TEXT); DROP TABLE x; --"}}}
    with pytest.raises(ConnectorError, match=r"schema.nodes.User.name: unknown type"):
        make({"path": "graph"}, base_dir=tmp_path, schema=bad)


# -- FalkorDB only ---------------------------------------------------------------------------------

async def test_falkordb_schemaless(falkordb_server: FalkorServer, tmp_path: Path) -> None:
    config, environ = falkor_config(falkordb_server)
    conn = make(config, base_dir=tmp_path, environ=environ, schema=None)
    try:
        node = await conn.create_node(["Person", "Admin"], {"nick": "root", "level": 3})
        assert node["labels"] == ["Person", "Admin"]
        one_label: Any = "Thing"
        other = await conn.create_node(one_label, {})
        rel = await conn.create_relationship(node["id"], other["id"], "OWNS", {"pct": 0.5})
        assert rel["properties"]["pct"] == 0.5
        when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
        updated = await conn.update_node(other["id"], {"seen": when, "ids": (1, 2)})
        assert updated["properties"]["seen"] == "2024-05-01T12:30:00+00:00"
        assert updated["properties"]["ids"] == [1, 2]
        with pytest.raises(ConnectorError, match="not a finite number"):
            await conn.update_node(other["id"], {"x": float("nan")})
        with pytest.raises(ConnectorError, match="NUL character"):
            await conn.execute("echo", {"v": 'a\x00" RETURN 1 //'})
        with pytest.raises(ConnectorError, match="map key"):
            await conn.execute("echo", {"v": {"a`b": 1}})
        assert await conn.execute("echo", {"v": {"a": [1, None, "x"]}}) == [
            {"v": {"a": [1, None, "x"]}}]
    finally:
        await conn.aclose()


async def test_falkordb_bad_password_never_leaks(falkordb_server: FalkorServer,
                                                 tmp_path: Path) -> None:
    config, _ = falkor_config(falkordb_server)
    conn = make(config, base_dir=tmp_path, environ={"FALKOR_PASSWORD": "wrong-password-42"},
                env="prd")
    try:
        with pytest.raises(ConnectorError) as info:
            await conn.query("count-users")
    finally:
        await conn.aclose()
    msg = str(info.value)
    assert msg.startswith("graph/social/count-users (env prd): ")
    assert "rejected the credentials" in msg and "wrong-password-42" not in msg


async def test_falkordb_unreachable(tmp_path: Path) -> None:
    from tests.support.ports import free_port

    port = free_port()
    conn = make({"provider": "falkordb", "port": port, "password": "${env.P}", "timeout": "2s"},
                base_dir=tmp_path, environ={"P": "secret-pass-77"})
    try:
        with pytest.raises(ConnectorError) as info:
            await conn.create_node(["User"], {"name": "A"})
    finally:
        await conn.aclose()
    msg = str(info.value)
    assert f"cannot reach FalkorDB at 127.0.0.1:{port}" in msg and info.value.retryable
    assert "secret-pass-77" not in msg


# -- validators ------------------------------------------------------------------------------------

def test_validators_point_at_the_problem() -> None:
    definition: dict[str, Any] = {
        "envs": {"dev": {"provider": "ladybug", "path": ".ductwork/graph", "host": "x"},
                 "prd": {"provider": "falkordb", "host": "db", "port": "six",
                         "password": "inline", "graph": "social"}},
        "schema": {"nodes": {"User": {"id": "INT64", "bad name": "STRING", "age": "NUMBER"}},
                   "relationships": {"FOLLOWS": {"from": "User", "to": "Ghost", "weight": 1}}},
        "actions": {
            "a": {"cypher": "MATCH (u {id: $id}) RETURN u", "params": ["id", "extra"]},
            "b": {"cypher": "MATCH (u {id: $id}) RETURN u", "params": []},
            "c": {"params": ["x"]},
            "d": {"cypher": "RETURN 1", "mode": "sometimes"},
        },
    }
    dev = dict(validate_resource("graph", definition, definition["envs"]["dev"]))
    assert ("envs", "dev", "host") in dev
    assert "must be STRING" in dev[("schema", "nodes", "User", "id")]
    assert ("schema", "nodes", "User", "bad name") in dev
    assert "unknown type 'NUMBER'" in dev[("schema", "nodes", "User", "age")]
    assert "'Ghost'" in dev[("schema", "relationships", "FOLLOWS", "to")]
    assert ("schema", "relationships", "FOLLOWS", "weight") in dev
    problems = validate_resource("graph", definition, definition["envs"]["dev"])
    msgs = [m for p, m in problems if p[:2] == ("actions", "a")]
    assert any("'extra' is declared but the cypher never uses it" in m for m in msgs)
    assert any("uses $id but params does not declare it" in m
               for p, m in problems if p[:2] == ("actions", "b"))
    assert ("actions", "c", "cypher") in dev and ("actions", "d", "mode") in dev
    prd = dict(validate_resource("graph", definition, definition["envs"]["prd"]))
    assert ("envs", "prd", "port") in prd and "never inline" in prd[("envs", "prd", "password")]
    assert not [p for p in prd if p[0] in ("schema", "actions")]  # reported once, for dev
    good = {"envs": {"dev": {"provider": "ladybug", "path": ".ductwork/graph"},
                     "prd": {"provider": "falkordb", "host": "db", "port": 6379,
                             "password": "${env.FALKOR_PASSWORD}", "graph": "social"}},
            "schema": SCHEMA, "actions": ACTIONS}
    assert validate_resource("graph", good, good["envs"]["dev"]) == []
    assert validate_resource("graph", good, good["envs"]["prd"]) == []


# -- end to end through dw.workflows.execute -------------------------------------------------------

PRODUCT = """
product: shop
envs: [dev, prd]
graphs:
  social:
    envs:
      dev: {provider: ladybug, path: .ductwork/graph}
      prd:
        provider: falkordb
        host: 127.0.0.1
        port: "${env.FALKOR_PORT}"
        password: "${env.FALKOR_PASSWORD}"
        graph: "${env.FALKOR_GRAPH}"
    schema:
      nodes: {User: {id: STRING, name: STRING}}
      relationships: {FOLLOWS: {from: User, to: User, properties: {since: INT64}}}
    actions:
      followers-of:
        cypher: "MATCH (f:User)-[:FOLLOWS]->(u:User {id: $id}) RETURN f.name AS name ORDER BY name"
        params: [id]
      names:
        cypher: "MATCH (u:User) RETURN u.name AS name ORDER BY name"
"""

FOLLOW_YAML = """
workflow: follow
steps:
  - tag: create-user
    graph.create_node: {graph: social, labels: [User], properties: {name: "${ctx.input.name}"}}
    rollback:
      graph.delete_node: {graph: social, id: "${result.id}"}
  - tag: follow
    graph.create_relationship:
      graph: social
      from: "${steps.create-user.id}"
      to: "${ctx.input.follows}"
      type: FOLLOWS
      properties: {since: 2024}
    rollback:
      graph.delete_relationship: {graph: social, id: "${result.id}"}
  - tag: followers
    graph.query: {graph: social, action: followers-of, params: {id: "${ctx.input.follows}"}}
output: {user: "${steps.create-user.id}", followers: "${steps.followers}"}
"""


@pytest.mark.parametrize("env", ["dev", "prd"])
async def test_yaml_follow_rolls_back_the_new_node(falkordb_server: FalkorServer,
                                                   tmp_path: Path, env: str) -> None:
    from ductwork import Ductwork

    folder = tmp_path / "specs" / "shop"
    (folder / "workflows").mkdir(parents=True)
    (folder / "product.yaml").write_text(PRODUCT)
    (folder / "workflows" / "follow.yaml").write_text(FOLLOW_YAML)
    environ = {"FALKOR_PORT": str(falkordb_server.port),
               "FALKOR_PASSWORD": falkordb_server.password,
               "FALKOR_GRAPH": f"g{uuid.uuid4().hex[:10]}"}
    store = tmp_path / "runs.db"
    async with Ductwork(specs=tmp_path / "specs", store=f"sqlite:///{store}",
                        environ=environ) as dw:
        conn = dw.connectors.get("graph", "social", "shop", env)
        assert isinstance(conn, GraphConnector)
        await conn.create_node(["User"], {"id": "star", "name": "Star"})
        ok = await dw.workflows.execute(product="shop", env=env, tag="follow",
                                        input={"name": "Ann", "follows": "star"})
        assert ok.status == "completed", ok.error
        assert ok.output["followers"] == [{"name": "Ann"}]

        bad = await dw.workflows.execute(product="shop", env=env, tag="follow",
                                         input={"name": "Bob", "follows": "nobody"})
        assert bad.status == "rolled_back", bad.error
        assert bad.failed_step == "follow"
        assert "node 'nobody' not found" in (bad.error or "")
        assert f"graph/social/create_relationship (env {env})" in (bad.error or "")
        assert await conn.query("followers-of", {"id": "star"}) == [{"name": "Ann"}]
        # Bob's node was deleted by the rollback.
        assert await conn.query("names") == [{"name": "Ann"}, {"name": "Star"}]
    if env == "dev":
        assert (folder / ".ductwork" / "graph").is_file()  # relative to the product file
    for path in tmp_path.iterdir():
        if path.is_file():
            assert falkordb_server.password.encode() not in path.read_bytes(), path


async def test_python_handler_on_embedded_ladybug(tmp_path: Path) -> None:
    from ductwork import Ductwork

    conn = make({"provider": "ladybug", "path": "graph"}, base_dir=tmp_path)
    async with Ductwork(store="sqlite://:memory:") as dw:
        dw.connectors.register("graph", "social", conn)

        @dw.workflows.workflow(product="shop", tag="signup")
        async def signup(ctx: Any) -> Any:
            async def create() -> Any:
                return await ctx.graph.create_node(graph="social", labels=["User"],
                                                   properties={"name": ctx.input["name"]})

            async def undo(node: Any) -> Any:
                return await ctx.graph.delete_node(graph="social", id=node["id"])

            user = await ctx.step("create-user", create, rollback=undo)
            await ctx.step("follow", lambda: ctx.graph.create_relationship(
                graph="social", from_=user["id"], to=ctx.input["follows"], type="FOLLOWS"))
            return await ctx.step("friends", lambda: ctx.graph.query(
                graph="social", action="friends-of", params={"id": user["id"]}))

        await conn.create_node(["User"], {"id": "star", "name": "Star"})
        ok = await dw.workflows.execute(product="shop", env="dev", tag="signup",
                                        input={"name": "Ann", "follows": "star"})
        assert ok.status == "completed", ok.error
        assert ok.output == [{"id": "star", "name": "Star"}]
        bad = await dw.workflows.execute(product="shop", env="dev", tag="signup",
                                         input={"name": "Bob", "follows": "ghost"})
        assert bad.status == "rolled_back" and bad.failed_step == "follow"
        assert await count_users(conn) == 2  # Star and Ann; Bob was deleted by the rollback
        assert await conn.query("by-name", {"name": "Bob"}) == []
