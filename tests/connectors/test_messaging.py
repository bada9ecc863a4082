"""Broker connectors against real servers: redis-server, nats-server (JetStream), mock Kafka."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from ductwork.connectors.base import build_connector
from ductwork.errors import ConnectorError
from tests.support.brokers import (
    PASSWORD,
    KafkaMock,
    Server,
    assert_names_everything,
    make_spec,
    make_tls,
    redis_client,
    start_nats,
    start_redis,
    take_stream,
    topic_name,
)
from tests.support.brokers import connect as connect  # fixture
from tests.support.ports import free_port

# -- servers -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_redis(tmp_path_factory.mktemp("redis-auth"), password=PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_nats(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # No JetStream on this one: it also serves the "JetStream not enabled" case.
    server = start_nats(tmp_path_factory.mktemp("nats-auth"), jetstream=False, user="app",
                        password=PASSWORD)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def redis_tls_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: dict[str, str]
) -> Iterator[Server]:
    server = start_redis(tmp_path_factory.mktemp("redis-tls"), tls=tls_files)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def nats_tls_server(
    tmp_path_factory: pytest.TempPathFactory, tls_files: dict[str, str]
) -> Iterator[Server]:
    server = start_nats(tmp_path_factory.mktemp("nats-tls"), tls=tls_files)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaMock]:
    mock = KafkaMock()
    yield mock
    mock.close()


# -- Redis Streams -------------------------------------------------------------------------------


async def read_stream(url: str, key: str) -> list[tuple[str, dict[str, str]]]:
    async with redis_client(url) as client:
        return [(i, f) for i, f in await client.xrange(key)]


async def test_redis_produce_appends_a_json_entry(connect: Any, redis_server: Server) -> None:
    url = redis_server.extra["url"]
    conn = connect({"url": url})  # no provider: redis is the default
    assert type(conn).__name__ == "RedisStreamsConnector"
    topic = topic_name()
    receipt = await conn.produce(topic, {"user_id": 7, "email": "a@example.com"},
                                 key="user-7", headers={"trace-id": "abc", "attempt": 2})
    assert receipt["topic"] == topic and receipt["id"].count("-") == 1
    json.dumps(receipt)  # a step result must be JSON-able
    entries = await read_stream(url, topic)
    assert [i for i, _ in entries] == [receipt["id"]]
    fields = entries[0][1]
    assert json.loads(fields["data"]) == {"user_id": 7, "email": "a@example.com"}
    assert fields["key"] == "user-7"
    assert json.loads(fields["headers"]) == {"trace-id": "abc", "attempt": "2"}


async def test_redis_messages_are_json_of_any_shape(connect: Any, redis_server: Server) -> None:
    url = redis_server.extra["url"]
    conn = connect({"url": url})
    topic = topic_name()
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    uid = uuid.UUID(int=5)
    for message in ("plain text", ["a", 1, None], 42,
                    {"at": when, "amount": Decimal("12.30"), "id": uid, "ü": "ß"}):
        await conn.produce(topic, message)
    got = [json.loads(f["data"]) for _, f in await read_stream(url, topic)]
    assert got == ["plain text", ["a", 1, None], 42,
                   {"at": "2026-01-02T03:04:05+00:00", "amount": "12.30", "id": str(uid),
                    "ü": "ß"}]
    # The entry holds only `data` when there is no key and no headers.
    assert set((await read_stream(url, topic))[0][1]) == {"data"}


async def test_redis_consumer_group_reads_what_was_produced(
    connect: Any, redis_server: Server
) -> None:
    url = redis_server.extra["url"]
    conn = connect({"url": url, "prefix": "shop:"}, {"user-created": {"key": "user_id"}})
    stream = "shop:user-created"
    async with redis_client(url) as reader:
        try:
            await reader.xgroup_create(stream, "workers", id="0", mkstream=True)
            receipts = [await conn.produce("user-created", {"user_id": n}) for n in (1, 2, 3)]
            assert [r["topic"] for r in receipts] == [stream] * 3
            batches = await reader.xreadgroup("workers", "w1", {stream: ">"}, count=10)
            entries = batches[0][1]
            assert [e[0] for e in entries] == [r["id"] for r in receipts]
            assert [e[1]["key"] for e in entries] == ["1", "2", "3"]  # topics.user-created.key
            assert await reader.xack(stream, "workers", *[e[0] for e in entries]) == 3
        finally:
            await reader.delete(stream)


async def test_redis_maxlen_trims_the_stream(connect: Any, redis_server: Server) -> None:
    url = redis_server.extra["url"]
    conn = connect({"url": url, "maxlen": 10})
    topic = topic_name()
    await asyncio.gather(*(conn.produce(topic, {"n": n}) for n in range(400)))
    async with redis_client(url) as reader:
        length = await reader.xlen(topic)
    # MAXLEN ~ trims whole radix-tree nodes (100 entries each by default), so "about 10".
    assert 10 <= length <= 200


async def test_redis_concurrent_produce_uses_one_client(
    connect: Any, redis_server: Server
) -> None:
    conn = connect({"url": redis_server.extra["url"]})
    topic = topic_name()
    receipts = await asyncio.gather(*(conn.produce(topic, {"n": n}) for n in range(50)))
    assert len({r["id"] for r in receipts}) == 50
    client = conn._client
    await conn.produce(topic, {"n": 50})
    assert conn._client is client
    await conn.aclose()
    assert conn._client is None
    # After aclose a new call builds a fresh client rather than failing.
    assert (await conn.produce(topic, "again"))["topic"] == topic
    assert len(await read_stream(redis_server.extra["url"], topic)) == 52


async def test_redis_unreachable_is_a_clear_error(connect: Any) -> None:
    port = free_port()
    conn = connect({"url": f"redis://127.0.0.1:{port}/0", "timeout": "2s"})
    with pytest.raises(ConnectorError) as info:
        await conn.produce("user-created", {"a": 1})
    assert_names_everything(info.value, "user-created")
    assert f"cannot reach redis at redis://127.0.0.1:{port}" in str(info.value)
    assert "Connect call failed" in str(info.value)
    assert info.value.retryable


async def test_redis_wrong_password_is_an_auth_error_without_the_secret(
    connect: Any, redis_auth_server: Server
) -> None:
    port = redis_auth_server.port
    url = "redis://:${secrets.REDIS_PASSWORD}@127.0.0.1:" + f"{port}/0"
    bad = connect({"url": url}, secrets={"REDIS_PASSWORD": "wrong-password-123"}, env="prd")
    with pytest.raises(ConnectorError) as info:
        await bad.produce("orders", {"a": 1})
    assert_names_everything(info.value, "orders", env="prd")
    assert "rejected the credentials" in str(info.value)
    assert "wrong-password-123" not in str(info.value)
    anonymous = connect({"url": f"redis://127.0.0.1:{port}/0"})
    with pytest.raises(ConnectorError, match="rejected the credentials"):
        await anonymous.produce("orders", {"a": 1})
    good = connect({"url": url}, secrets={"REDIS_PASSWORD": PASSWORD})
    assert (await good.produce("orders", {"a": 1}))["topic"] == "orders"


async def test_redis_key_of_another_type_is_named(connect: Any, redis_server: Server) -> None:
    url = redis_server.extra["url"]
    topic = topic_name()
    async with redis_client(url) as client:
        await client.set(topic, "a string")
    with pytest.raises(ConnectorError, match=f"redis key '{topic}' exists and is not a stream"):
        await connect({"url": url}).produce(topic, {})


async def test_redis_over_tls_with_a_private_ca(
    connect: Any, redis_tls_server: Server, tls_files: dict[str, str]
) -> None:
    url = redis_tls_server.extra["url"]
    assert url.startswith("rediss://")
    conn = connect({"url": url, "tls": {"ca_file": tls_files["ca_file"]}})
    topic = topic_name()
    receipt = await conn.produce(topic, {"secure": True})
    async with redis_client(url, ssl_ca_certs=tls_files["ca_file"]) as reader:
        entries = await reader.xrange(topic)
    assert [(i, json.loads(f["data"])) for i, f in entries] == [(receipt["id"], {"secure": True})]
    untrusted = connect({"url": url})  # system CAs do not know our private CA
    with pytest.raises(ConnectorError, match=r"cannot reach redis at rediss://127\.0\.0\.1.*certif"):
        await untrusted.produce(topic, {})


# -- NATS JetStream ------------------------------------------------------------------------------


async def nats_read(url: str, stream: str, subject: str, n: int) -> list[Any]:
    import nats

    nc = await nats.connect(url, allow_reconnect=False)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, durable=f"d{uuid.uuid4().hex[:8]}", stream=stream)
        msgs = await sub.fetch(n, timeout=5)
        for m in msgs:
            await m.ack()
        return msgs
    finally:
        await nc.close()


async def test_nats_creates_the_stream_and_publishes_with_ack(
    connect: Any, nats_server: Server
) -> None:
    url = nats_server.extra["url"]
    stream = f"S{uuid.uuid4().hex[:8]}"
    conn = connect({"provider": "nats", "servers": [url], "stream": stream,
                    "create_stream": True, "prefix": f"{stream.lower()}."},
                   {"user-created": {"key": "user_id"}})
    subject = f"{stream.lower()}.user-created"
    first = await conn.produce("user-created", {"user_id": 1, "name": "Ada"},
                               headers={"trace-id": "t1"})
    second = await conn.produce("user-created", {"user_id": 2})
    assert first == {"stream": stream, "seq": 1, "topic": subject}
    assert second["seq"] == 2
    msgs = await nats_read(url, stream, subject, 2)
    assert [json.loads(m.data) for m in msgs] == [{"user_id": 1, "name": "Ada"}, {"user_id": 2}]
    assert msgs[0].headers == {"trace-id": "t1", "Ductwork-Key": "1",
                               "Nats-Expected-Stream": stream}
    assert msgs[0].metadata.sequence.stream == 1


async def test_nats_existing_stream_and_msg_id_dedupe(connect: Any, nats_server: Server) -> None:
    import nats

    url = nats_server.extra["url"]
    stream = f"S{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(url, allow_reconnect=False)
    await nc.jetstream().add_stream(name=stream, subjects=[f"{stream}.>"])
    await nc.close()
    conn = connect({"provider": "nats", "servers": url, "stream": stream})
    subject = f"{stream}.paid"
    once = await conn.produce(subject, {"order": 9}, headers={"Nats-Msg-Id": "order-9"})
    # A step that runs again after a crash re-sends the same id: JetStream keeps one copy.
    again = await conn.produce(subject, {"order": 9}, headers={"Nats-Msg-Id": "order-9"})
    assert once["seq"] == again["seq"] == 1
    msgs = await nats_read(url, stream, subject, 1)
    assert json.loads(msgs[0].data) == {"order": 9}


async def test_nats_missing_stream_and_uncaptured_subject(
    connect: Any, nats_server: Server
) -> None:
    url = nats_server.extra["url"]
    missing = connect({"provider": "nats", "servers": [url], "stream": "NOPE"})
    with pytest.raises(ConnectorError) as info:
        await missing.produce("orders", {})
    assert_names_everything(info.value, "orders")
    assert "stream 'NOPE' does not exist" in str(info.value)
    loose = connect({"provider": "nats", "servers": [url]})
    with pytest.raises(ConnectorError, match=r"no JetStream stream captures subject 'nowhere\.x'"):
        await loose.produce("nowhere.x", {})


async def test_nats_unreachable_is_quick_and_quiet(
    connect: Any, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    conn = connect({"provider": "nats", "servers": [f"nats://127.0.0.1:{port}"],
                    "stream": "EVENTS", "timeout": "3s"}, env="staging")
    with caplog.at_level(logging.INFO), pytest.raises(ConnectorError) as info:
        await conn.produce("orders", {"a": 1})
    assert_names_everything(info.value, "orders", env="staging")
    assert f"cannot connect to nats at nats://127.0.0.1:{port}" in str(info.value)
    assert "refused" in str(info.value).lower()
    # nats-py's default error callback logs a traceback per attempt; ours does not.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_nats_bad_credentials_and_no_jetstream(
    connect: Any, nats_auth_server: Server
) -> None:
    url = nats_auth_server.extra["url"]
    auth = {"user": "app", "password": "${secrets.NATS_PASSWORD}"}
    bad = connect({"provider": "nats", "servers": [url], "auth": auth},
                  secrets={"NATS_PASSWORD": "not-the-password"})
    with pytest.raises(ConnectorError) as info:
        await bad.produce("orders", {})
    assert_names_everything(info.value, "orders")
    assert "rejected the credentials" in str(info.value)
    assert "not-the-password" not in str(info.value)
    good = connect({"provider": "nats", "servers": [url], "auth": auth, "stream": "EVENTS"},
                   secrets={"NATS_PASSWORD": PASSWORD})
    with pytest.raises(ConnectorError, match="JetStream is not enabled"):
        await good.produce("orders", {})


async def test_nats_reconnects_after_the_client_was_closed(
    connect: Any, nats_server: Server
) -> None:
    url = nats_server.extra["url"]
    stream = f"S{uuid.uuid4().hex[:8]}"
    conn = connect({"provider": "nats", "servers": [url], "stream": stream,
                    "create_stream": True}, {"a": None})
    assert (await conn.produce("a", 1))["seq"] == 1
    await conn._nc.close()  # what allow_reconnect=False leaves after a lost connection
    assert (await conn.produce("a", 2))["seq"] == 2


async def test_nats_over_tls_with_a_private_ca(
    connect: Any, nats_tls_server: Server, tls_files: dict[str, str]
) -> None:
    url = nats_tls_server.extra["url"]
    stream = f"S{uuid.uuid4().hex[:8]}"
    conn = connect({"provider": "nats", "servers": [url], "stream": stream, "create_stream": True,
                    "tls": {"ca_file": tls_files["ca_file"]}}, {"secure": None})
    assert await conn.produce("secure", {"ok": 1}) == {"stream": stream, "seq": 1,
                                                       "topic": "secure"}
    untrusted = connect({"provider": "nats", "servers": [url], "timeout": "3s"})
    with pytest.raises(ConnectorError, match=r"cannot connect to nats at tls://127\.0\.0\.1.*certif"):
        await untrusted.produce("secure", {})


# -- Kafka (librdkafka mock cluster) -------------------------------------------------------------


async def kafka_read(bootstrap: str, topic: str, n: int) -> list[Any]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        records: list[Any] = []
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=500)
            records += [r for part in batch.values() for r in part]
            if len(records) >= n:
                break
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def test_kafka_produce_and_consume_back(connect: Any, kafka: KafkaMock) -> None:
    topic = topic_name()
    conn = connect({"provider": "kafka", "bootstrap_servers": kafka.bootstrap},
                   {topic: {"key": "user_id"}})
    receipt = await conn.produce(topic, {"user_id": "u1", "plan": "pro"},
                                 headers={"trace-id": "k1"})
    assert set(receipt) == {"topic", "partition", "offset"}
    assert receipt["topic"] == topic and receipt["offset"] == 0
    json.dumps(receipt)
    records = await kafka_read(kafka.bootstrap, topic, 1)
    assert len(records) == 1
    r = records[0]
    assert (r.partition, r.offset) == (receipt["partition"], receipt["offset"])
    assert json.loads(r.value) == {"user_id": "u1", "plan": "pro"}
    assert r.key == b"u1"
    assert list(r.headers) == [("trace-id", b"k1")]


async def test_kafka_same_key_same_partition(connect: Any, kafka: KafkaMock) -> None:
    topic = topic_name()
    conn = connect({"provider": "kafka", "bootstrap_servers": [kafka.bootstrap],
                    "prefix": "prd.", "client_id": "shop"})
    receipts = [await conn.produce(topic, {"n": n}, key="customer-42") for n in range(5)]
    assert {r["partition"] for r in receipts} == {receipts[0]["partition"]}
    assert [r["offset"] for r in receipts] == [0, 1, 2, 3, 4]
    assert receipts[0]["topic"] == f"prd.{topic}"
    records = await kafka_read(kafka.bootstrap, f"prd.{topic}", 5)
    assert [json.loads(r.value)["n"] for r in records] == [0, 1, 2, 3, 4]


async def test_kafka_unreachable_is_a_clear_error(connect: Any) -> None:
    port = free_port()
    conn = connect({"provider": "kafka", "bootstrap_servers": f"127.0.0.1:{port}",
                    "timeout": "3s"}, env="prd")
    with pytest.raises(ConnectorError) as info:
        await conn.produce("orders", {"a": 1})
    assert_names_everything(info.value, "orders", env="prd")
    assert f"kafka at 127.0.0.1:{port} cannot be reached" in str(info.value)
    assert info.value.retryable
    assert conn._producer is None


async def test_kafka_sasl_failure_hides_the_password(connect: Any, kafka: KafkaMock) -> None:
    # The mock cluster speaks no SASL, so the handshake fails the way a refused login does.
    conn = connect({"provider": "kafka", "bootstrap_servers": kafka.bootstrap,
                    "security": {"protocol": "SASL_PLAINTEXT", "mechanism": "SCRAM-SHA-512",
                                 "username": "app", "password": "${secrets.KAFKA_PASSWORD}"}},
                   secrets={"KAFKA_PASSWORD": "kafka-pw-value"})
    with pytest.raises(ConnectorError) as info:
        await conn.produce("orders", {"a": 1})
    assert_names_everything(info.value, "orders")
    assert "check security: {protocol, mechanism, username, password}" in str(info.value)
    assert "kafka-pw-value" not in str(info.value)


# -- end to end through the engine ---------------------------------------------------------------


def events_broker(port: int, secrets: dict[str, str]) -> Any:
    """The `events` broker of product `shop`, on the password-protected Redis."""
    url = "redis://:${secrets.REDIS_PASSWORD}@127.0.0.1:" + f"{port}/0"
    spec = make_spec({"url": url, "prefix": "shop:"}, {"user-created": {"key": "user_id"}},
                     secrets=secrets)
    return build_connector(spec)


def define_signup(dw: Any) -> None:
    @dw.workflows.workflow(product="shop", tag="signup")
    async def signup(ctx: Any) -> Any:
        user_id = ctx.input["user_id"]
        produced = await ctx.step("produce", lambda: ctx.messaging.produce(
            event="events:user-created", message={"user_id": user_id, "source": "python"}))
        sent = await ctx.step("send", lambda: ctx.publish.send(
            broker="events", event="user-created",
            input={"message": {"user_id": user_id, "source": "publish.send"},
                   "headers": {"via": "publish.send"}}))
        return {"produced": produced, "sent": sent}


async def test_engine_python_steps_produce_to_redis(
    redis_auth_server: Server, tmp_path: Any
) -> None:
    from ductwork import Ductwork

    secrets = {"REDIS_PASSWORD": PASSWORD}
    conn = events_broker(redis_auth_server.port, secrets)
    async with Ductwork(store=f"sqlite:///{tmp_path / 'runs.db'}", secrets=secrets) as dw:
        dw.connectors.register("broker", "events", conn)
        define_signup(dw)
        result = await dw.workflows.execute(product="shop", env="dev", tag="signup",
                                            input={"user_id": 7})
        await conn.aclose()
    assert result.status == "completed", result.error
    receipts = [result.output["produced"], result.output["sent"]]
    assert {r["topic"] for r in receipts} == {"shop:user-created"}

    entries = await take_stream(f"redis://127.0.0.1:{redis_auth_server.port}/0",
                                "shop:user-created", password=PASSWORD)
    assert [i for i, _ in entries] == [r["id"] for r in receipts]
    assert [json.loads(f["data"]) for _, f in entries] == [
        {"user_id": 7, "source": "python"}, {"user_id": 7, "source": "publish.send"}]
    assert [f["key"] for _, f in entries] == ["7", "7"]  # from topics.user-created.key
    assert json.loads(entries[1][1]["headers"]) == {"via": "publish.send"}


async def test_engine_bad_broker_password_fails_the_run_without_leaking_it(
    redis_auth_server: Server, tmp_path: Any
) -> None:
    from ductwork import Ductwork

    leaked = "broker-pw-never-stored"
    secrets = {"REDIS_PASSWORD": leaked}
    conn = events_broker(redis_auth_server.port, secrets)
    async with Ductwork(store=f"sqlite:///{tmp_path / 'runs.db'}", secrets=secrets) as dw:
        dw.connectors.register("broker", "events", conn)
        define_signup(dw)
        result = await dw.workflows.execute(product="shop", env="dev", tag="signup",
                                            input={"user_id": 9})
        await conn.aclose()
    assert result.status == "failed" and result.failed_step == "produce"
    error = result.error or ""
    assert "broker/events/user-created (env dev)" in error
    assert "rejected the credentials" in error and leaked not in error
    for path in tmp_path.iterdir():  # the run store and its WAL/SHM files
        assert leaked.encode() not in path.read_bytes(), path


def write_product(root: Any, port: int) -> Any:
    """specs/shop: the `events` broker declared in product.yaml, and a YAML workflow using it."""
    product = root / "specs" / "shop"
    (product / "workflows").mkdir(parents=True)
    url = "redis://:${secrets.REDIS_PASSWORD}@127.0.0.1:" + str(port) + "/0"
    (product / "product.yaml").write_text(
        "product: shop\n"
        "envs: [dev]\n"
        "brokers:\n"
        "  events:\n"
        "    envs:\n"
        f"      dev: {{url: \"{url}\", prefix: \"yaml:\"}}\n"
        "    topics:\n"
        "      user-created: {key: user_id}\n"
    )
    (product / "workflows" / "announce.yaml").write_text(
        "workflow: announce\n"
        "input: {type: object, required: [user_id]}\n"
        "steps:\n"
        "  - tag: announce\n"
        "    publish.send:\n"
        "      broker: events\n"
        "      event: user-created\n"
        "      input: {message: {user_id: \"${ctx.input.user_id}\", source: yaml}}\n"
        "  - tag: announce-again\n"
        "    publish.send:\n"
        "      broker: events\n"
        "      event: user-created\n"
        "      input: {message: {user_id: \"${ctx.input.user_id}\"}, headers: {via: yaml},\n"
        "              key: \"u-${ctx.input.user_id}\"}\n"
        "output:\n"
        "  first: \"${steps.announce}\"\n"
        "  second: \"${steps.announce-again}\"\n"
    )
    return root / "specs"


async def test_engine_yaml_workflow_and_product_file_produce_to_redis(
    redis_auth_server: Server, tmp_path: Any
) -> None:
    from ductwork import Ductwork

    specs = write_product(tmp_path, redis_auth_server.port)
    async with Ductwork(specs=specs, store=f"sqlite:///{tmp_path / 'runs.db'}",
                        secrets={"REDIS_PASSWORD": PASSWORD}) as dw:
        result = await dw.workflows.execute(product="shop", env="dev", tag="announce",
                                            input={"user_id": 8})
    assert result.status == "completed", result.error
    receipts = [result.output["first"], result.output["second"]]
    entries = await take_stream(f"redis://127.0.0.1:{redis_auth_server.port}/0",
                                "yaml:user-created", password=PASSWORD)
    assert [i for i, _ in entries] == [r["id"] for r in receipts]
    assert [json.loads(f["data"]) for _, f in entries] == [{"user_id": 8, "source": "yaml"},
                                                           {"user_id": 8}]
    assert [f["key"] for _, f in entries] == ["8", "u-8"]  # topic key field, then key=
    assert json.loads(entries[1][1]["headers"]) == {"via": "yaml"}


async def test_engine_yaml_run_with_a_wrong_password_keeps_it_out_of_the_store(
    redis_auth_server: Server, tmp_path: Any
) -> None:
    from ductwork import Ductwork

    leaked = "yaml-broker-pw-never-stored"
    specs = write_product(tmp_path, redis_auth_server.port)
    async with Ductwork(specs=specs, store=f"sqlite:///{tmp_path / 'runs.db'}",
                        secrets={"REDIS_PASSWORD": leaked}) as dw:
        result = await dw.workflows.execute(product="shop", env="dev", tag="announce",
                                            input={"user_id": 9})
    assert result.status == "failed" and result.failed_step == "announce"
    assert "broker/events/user-created (env dev)" in (result.error or "")
    assert "rejected the credentials" in (result.error or "")
    for path in tmp_path.iterdir():
        if path.is_file():
            assert leaked.encode() not in path.read_bytes(), path
