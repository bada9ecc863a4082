"""Broker connectors against real servers: redis-server, nats-server (JetStream), mock Kafka."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest

from ductwork.connectors.base import (
    ResourceSpec,
    SecretSet,
    build_connector,
    resolve_refs,
    validate_resource,
)
from ductwork.connectors.messaging.common import BrokerBase, safe_url
from ductwork.errors import ConnectorError
from tests.support.brokers import KafkaMock, Server, make_tls, start_nats, start_redis
from tests.support.ports import free_port

PASSWORD = "s3cr3t-Broker-pw"


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


# -- helpers -------------------------------------------------------------------------------------


def make_spec(
    config: dict[str, Any], topics: dict[str, Any] | None = None, *,
    secrets: dict[str, str] | None = None, env: str = "dev", name: str = "events",
) -> ResourceSpec:
    """Build a spec the way the engine does: resolve refs in memory, collect them as secrets."""
    definition: dict[str, Any] = {"envs": {env: config}}
    if topics is not None:
        definition["topics"] = topics
    found = SecretSet()
    resolved = resolve_refs(config, environ={}, secrets=secrets or {}, collect=found)
    return ResourceSpec(kind="broker", name=name, env=env, product="shop", config=resolved,
                        definition=definition, secrets=found)


@pytest.fixture
async def connect() -> AsyncIterator[Any]:
    made: list[Any] = []

    def factory(*args: Any, **kw: Any) -> Any:
        conn = build_connector(make_spec(*args, **kw))
        made.append(conn)
        return conn

    yield factory
    for conn in made:
        await conn.aclose()


def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def assert_names_everything(err: ConnectorError, topic: str, env: str = "dev") -> None:
    assert (err.kind, err.resource, err.event, err.env) == ("broker", "events", topic, env)
    assert f"broker/events/{topic} (env {env})" in str(err)


# -- Redis Streams -------------------------------------------------------------------------------


async def read_stream(url: str, key: str) -> list[tuple[str, dict[str, str]]]:
    from redis.asyncio import Redis

    client = Redis.from_url(url, decode_responses=True)
    try:
        return [(i, f) for i, f in await client.xrange(key)]
    finally:
        await client.aclose()


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
    from redis.asyncio import Redis

    url = redis_server.extra["url"]
    conn = connect({"url": url, "prefix": "shop:"}, {"user-created": {"key": "user_id"}})
    reader = Redis.from_url(url, decode_responses=True)
    try:
        await reader.xgroup_create("shop:user-created", "workers", id="0", mkstream=True)
        receipts = [await conn.produce("user-created", {"user_id": n}) for n in (1, 2, 3)]
        assert [r["topic"] for r in receipts] == ["shop:user-created"] * 3
        batches = await reader.xreadgroup("workers", "w1", {"shop:user-created": ">"}, count=10)
        entries = batches[0][1]
        assert [e[0] for e in entries] == [r["id"] for r in receipts]
        assert [e[1]["key"] for e in entries] == ["1", "2", "3"]  # from topics.user-created.key
        assert await reader.xack("shop:user-created", "workers", *[e[0] for e in entries]) == 3
    finally:
        await reader.delete("shop:user-created")
        await reader.aclose()


async def test_redis_maxlen_trims_the_stream(connect: Any, redis_server: Server) -> None:
    from redis.asyncio import Redis

    url = redis_server.extra["url"]
    conn = connect({"url": url, "maxlen": 10})
    topic = topic_name()
    await asyncio.gather(*(conn.produce(topic, {"n": n}) for n in range(400)))
    reader = Redis.from_url(url)
    try:
        length = await reader.xlen(topic)
    finally:
        await reader.aclose()
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
    conn = connect({"url": f"redis://127.0.0.1:{port}/0", "timeout": 2})
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
    from redis.asyncio import Redis

    url = redis_server.extra["url"]
    topic = topic_name()
    client = Redis.from_url(url)
    await client.set(topic, "a string")
    await client.aclose()
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
    from redis.asyncio import Redis

    reader = Redis.from_url(url, ssl_ca_certs=tls_files["ca_file"], decode_responses=True)
    try:
        entries = await reader.xrange(topic)
    finally:
        await reader.aclose()
    assert [(i, json.loads(f["data"])) for i, f in entries] == [(receipt["id"], {"secure": True})]
    untrusted = connect({"url": url})  # system CAs do not know our private CA
    with pytest.raises(ConnectorError, match=r"cannot reach redis at rediss://127\.0\.0\.1.*certif"):
        await untrusted.produce(topic, {})


# -- checks shared by every provider (run on Redis: no server is reached) ------------------------


async def test_undeclared_topic_is_refused_when_topics_are_declared(connect: Any) -> None:
    conn = connect({"url": "redis://127.0.0.1:1/0"}, {"user-created": None, "order-paid": {}})
    with pytest.raises(ConnectorError) as info:
        await conn.produce("user-deleted", {"a": 1})
    assert_names_everything(info.value, "user-deleted")
    assert "unknown topic 'user-deleted' (declared under topics: order-paid, user-created)" in str(
        info.value)


@pytest.mark.parametrize(
    ("provider", "config", "bad"),
    [
        ("redis", {"url": "redis://127.0.0.1:1/0"}, "user created"),
        ("nats", {"servers": ["nats://127.0.0.1:1"]}, "events.*"),
        ("nats", {"servers": ["nats://127.0.0.1:1"]}, "events..created"),
        ("kafka", {"bootstrap_servers": "127.0.0.1:1"}, "users:created"),
        ("kafka", {"bootstrap_servers": "127.0.0.1:1"}, ".."),
    ],
)
async def test_topic_names_follow_the_provider_rules(
    connect: Any, provider: str, config: dict[str, Any], bad: str
) -> None:
    conn = connect({"provider": provider, **config})
    with pytest.raises(ConnectorError, match=f"invalid {provider} topic name"):
        await conn.produce(bad, {"a": 1})


async def test_message_checks_happen_before_any_network_call(connect: Any) -> None:
    schema = {"type": "object", "required": ["email"],
              "properties": {"email": {"type": "string"}}}
    conn = connect({"url": "redis://127.0.0.1:1/0"},
                   {"user-created": {"key": "user_id", "schema": schema}, "raw": None})
    with pytest.raises(ConnectorError, match=r"does not match topics.user-created.schema at /: "
                                             r"'email' is a required property"):
        await conn.produce("user-created", {"user_id": 1})
    with pytest.raises(ConnectorError, match=r"at /email: 5 is not of type 'string'"):
        await conn.produce("user-created", {"user_id": 1, "email": 5})
    with pytest.raises(ConnectorError, match="names field 'user_id', but the message has no"):
        await conn.produce("user-created", {"email": "a@b.c"})
    with pytest.raises(ConnectorError, match="cannot be encoded as JSON: object of type object"):
        await conn.produce("raw", {"x": object()})
    with pytest.raises(ConnectorError, match="cannot be encoded as JSON"):
        await conn.produce("raw", float("nan"))
    with pytest.raises(ConnectorError, match=r"unknown produce option\(s\) partition"):
        await conn.produce("raw", {}, partition=3)
    with pytest.raises(ConnectorError, match="invalid header name 'a b'"):
        await conn.produce("raw", {}, headers={"a b": "x"})
    with pytest.raises(ConnectorError, match="key must be a string or number"):
        await conn.produce("raw", {}, key=["x"])


def test_missing_connection_settings_fail_at_build_time() -> None:
    for config, words in (
        ({"provider": "redis"}, "'url' is required"),
        ({"provider": "redis", "url": "http://x"}, "'url' must start with one of"),
        ({"provider": "nats"}, "'servers' is required"),
        ({"provider": "nats", "servers": "nats://x:1", "create_stream": True}, "needs 'stream'"),
        ({"provider": "kafka"}, "'bootstrap_servers' is required"),
        ({"provider": "kafka", "bootstrap_servers": "x:1", "security": {"protocol": "TLS"}},
         "security.protocol must be one of"),
        ({"provider": "mqtt"}, "unknown provider 'mqtt'"),
    ):
        with pytest.raises(ConnectorError, match=words):
            build_connector(make_spec(config))


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
                    "stream": "EVENTS", "timeout": 3}, env="staging")
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
    untrusted = connect({"provider": "nats", "servers": [url], "timeout": 3})
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
                    "timeout": 3}, env="prd")
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


# -- validate() ----------------------------------------------------------------------------------


def test_validators_accept_the_documented_configs() -> None:
    topics = {"user-created": {"key": "user_id", "schema": {"type": "object"}}}
    for config in (
        {"provider": "redis", "url": "redis://:${secrets.REDIS_PASSWORD}@cache:6379/0",
         "maxlen": 100000, "prefix": "shop:", "timeout": 5},
        {"url": "redis://127.0.0.1:6379/0"},
        {"provider": "nats", "servers": ["nats://n1:4222", "nats://n2:4222"], "stream": "EVENTS",
         "create_stream": True, "subjects": ["events.>"], "prefix": "events.",
         "auth": {"user": "app", "password": "${secrets.NATS_PASSWORD}"}},
        {"provider": "kafka", "bootstrap_servers": "k1:9092,k2:9092", "client_id": "shop",
         "security": {"protocol": "SASL_SSL", "mechanism": "SCRAM-SHA-512", "username": "app",
                      "password": "${secrets.KAFKA_PASSWORD}"}, "tls": {"ca_file": "ca.pem"}},
        {"url": "rediss://cache:6380/0", "tls": {"ca_file": "ca.pem", "cert_file": "c.pem",
                                                 "key_file": "c.key"}},
    ):
        definition = {"envs": {"prd": config}, "topics": topics}
        assert validate_resource("broker", definition, config) == [], config


def test_validators_point_at_the_mistake() -> None:

    def problems(config: dict[str, Any], topics: Any = None) -> list[Any]:
        definition: dict[str, Any] = {"envs": {"staging": config}}
        if topics is not None:
            definition["topics"] = topics
        return validate_resource("broker", definition, config)

    assert problems({"urll": "redis://x"}) == [
        (("envs", "staging", "urll"),
         "unknown redis broker key 'urll' (did you mean 'url'?) "
         "(known: maxlen, prefix, provider, timeout, tls, url)"),
        (("envs", "staging", "url"), "'url' is required for provider redis"),
    ]
    assert problems({"url": "redis://:hunter22@x:1/0", "maxlen": -1}) == [
        (("envs", "staging", "url"), "the password is written inline; use ${secrets.NAME}"),
        (("envs", "staging", "maxlen"), "'maxlen' must be a positive whole number"),
    ]
    assert problems({"url": "redis://x"}, {"user created": {"kye": "id", "schema": {
        "type": "objekt"}}}) == [
        (("topics", "user created"), "invalid redis topic name 'user created': use 1-256 "
                                     "characters from letters, digits and _ - . : / { }"),
        (("topics", "user created", "kye"),
         "unknown topic key 'kye' (did you mean 'key'?) (known: description, key, schema)"),
        (("topics", "user created", "schema"), "invalid JSON Schema: 'objekt' is not valid "
                                               "under any of the given schemas"),
    ]
    assert problems({"url": "redis://x:1", "tls": {"ca": "ca.pem", "key_file": "k.pem"}}) == [
        (("envs", "staging", "tls", "ca"),
         "unknown tls key 'ca' (known: ca_file, cert_file, key_file)"),
        (("envs", "staging", "tls", "key_file"), "'key_file' goes with 'cert_file'"),
        (("envs", "staging", "tls"), "'tls' files are used with a rediss:// url"),
    ]
    nats = problems({"provider": "nats", "servers": "http://n:1", "create_stream": True,
                     "subjects": ["a.>.b"], "auth": {"user": "u", "token": "tok-inline"}})
    assert [p[0] for p in nats] == [
        ("envs", "staging", "servers", 0), ("envs", "staging", "create_stream"),
        ("envs", "staging", "subjects", 0), ("envs", "staging", "auth"),
        ("envs", "staging", "auth", "token"),
    ]
    kafka = problems({"provider": "kafka", "bootstrap_servers": "k1", "timeout": "soon",
                      "security": {"protocol": "SASL_SSL", "mechanism": "GSSAPI"}},
                     {"users:created": None})
    assert [(p[0][-1], p[1][:30]) for p in kafka] == [
        ("timeout", "'timeout' must be a positive n"),
        ("users:created", "invalid kafka topic name 'user"),
        ("bootstrap_servers", "'k1' is not host:port"),
        ("mechanism", "'mechanism' must be one of PLA"),
        ("username", "'username' is required with SA"),
        ("password", "'password' is required with SA"),
    ]


def test_kafka_tls_needs_an_ssl_protocol() -> None:
    config = {"provider": "kafka", "bootstrap_servers": "k:9092", "tls": {"ca_file": "ca.pem"}}
    assert validate_resource("broker", {"envs": {"prd": config}}, config) == [
        (("envs", "prd", "tls"), "'tls' needs security.protocol SSL or SASL_SSL")]


def test_every_connector_is_a_broker_base() -> None:
    for config in ({"url": "redis://x:1"}, {"provider": "nats", "servers": "nats://x:1"},
                   {"provider": "kafka", "bootstrap_servers": "x:1"}):
        assert isinstance(build_connector(make_spec(config)), BrokerBase)


def test_safe_url_keeps_only_where_the_server_is() -> None:
    assert safe_url("redis://user:pw-1234@cache.internal:6380/2?x=y") == "redis://cache.internal:6380"
    assert safe_url("rediss://:pw-1234@cache") == "rediss://cache"
    assert safe_url("nats://tok-1234@n1:4222") == "nats://n1:4222"
    assert safe_url("127.0.0.1:4222") == "127.0.0.1:4222"
    assert safe_url("unix:///run/redis.sock?password=pw-1234") == "unix:///run/redis.sock"


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
    from redis.asyncio import Redis

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

    reader = Redis.from_url(f"redis://127.0.0.1:{redis_auth_server.port}/0", password=PASSWORD,
                            decode_responses=True)
    try:
        entries = await reader.xrange("shop:user-created")
        await reader.delete("shop:user-created")
    finally:
        await reader.aclose()
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
    from redis.asyncio import Redis

    from ductwork import Ductwork

    specs = write_product(tmp_path, redis_auth_server.port)
    async with Ductwork(specs=specs, store=f"sqlite:///{tmp_path / 'runs.db'}",
                        secrets={"REDIS_PASSWORD": PASSWORD}) as dw:
        result = await dw.workflows.execute(product="shop", env="dev", tag="announce",
                                            input={"user_id": 8})
    assert result.status == "completed", result.error
    receipts = [result.output["first"], result.output["second"]]
    reader = Redis.from_url(f"redis://127.0.0.1:{redis_auth_server.port}/0", password=PASSWORD,
                            decode_responses=True)
    try:
        entries = await reader.xrange("yaml:user-created")
        await reader.delete("yaml:user-created")
    finally:
        await reader.aclose()
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
