"""Broker checks that need no server: topic, message and option rules, config and validate()."""

from __future__ import annotations

from typing import Any

import pytest

from ductwork.connectors.base import build_connector, validate_resource
from ductwork.connectors.messaging.common import BrokerBase, safe_url
from ductwork.errors import ConnectorError
from tests.support.brokers import assert_names_everything, make_spec
from tests.support.brokers import connect as connect  # fixture

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



# -- validate() ----------------------------------------------------------------------------------


def test_validators_accept_the_documented_configs() -> None:
    topics = {"user-created": {"key": "user_id", "schema": {"type": "object"}}}
    for config in (
        {"provider": "redis", "url": "redis://:${secrets.REDIS_PASSWORD}@cache:6379/0",
         "maxlen": 100000, "prefix": "shop:", "timeout": "5s"},
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
        ("timeout", "timeout: 'soon' is not a durat"),
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
