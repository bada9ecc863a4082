"""Config durations of every connector: "10s"-style strings, bare numbers in milliseconds."""

from __future__ import annotations

import datetime as dt
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
from ductwork.connectors.notification.common import TTL_HELP, webpush_ttl
from ductwork.errors import ConnectorError

TOPICS = {"user-created": None}
NOTIFY_EVENTS = {"welcome": {"subject": "Hi", "text": "Hi", "message": "Hi", "title": "Hi",
                             "body": "Hi"}}
TABLES = {"users": {"columns": {"id": {"type": "integer", "primary_key": True}}}}
STORAGE_EVENTS: dict[str, Any] = {"doc": {}}

# kind -> (provider config without the duration, extra blocks of the resource definition)
RESOURCES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "redis": ("broker", {"provider": "redis", "url": "redis://127.0.0.1:1/0"},
              {"topics": TOPICS}),
    "nats": ("broker", {"provider": "nats", "servers": ["nats://127.0.0.1:1"]},
             {"topics": TOPICS}),
    "kafka": ("broker", {"provider": "kafka", "bootstrap_servers": "127.0.0.1:1"},
              {"topics": TOPICS}),
    "smtp": ("notification", {"provider": "smtp", "host": "127.0.0.1", "from": "a@acme.test"},
             {"events": NOTIFY_EVENTS}),
    "twilio": ("notification", {"provider": "twilio", "account_sid": "AC1",
                                "auth_token": "${env.T}", "from": "+15005550006"},
               {"events": NOTIFY_EVENTS}),
    "fcm": ("notification", {"provider": "fcm", "service_account": "keys/fcm.json"},
            {"events": NOTIFY_EVENTS}),
    "webpush": ("notification", {"provider": "webpush", "vapid_private_key": "${env.V}",
                                 "vapid_claims": {"sub": "mailto:ops@acme.test"}},
                {"events": NOTIFY_EVENTS}),
    "falkordb": ("graph", {"provider": "falkordb", "port": 6379}, {}),
    "s3": ("storage", {"provider": "s3", "bucket": "bkt"}, {"events": STORAGE_EVENTS}),
    "postgres": ("database", {"provider": "postgres", "url": "postgresql://app@db/app"},
                 {"tables": TABLES}),
    "sqlite": ("database", {"provider": "sqlite", "url": "sqlite:///users.db"},
               {"tables": TABLES}),
}
# provider -> the duration keys of its env config (a dotted key sits in a sub-mapping)
DURATION_KEYS: dict[str, tuple[str, ...]] = {
    "redis": ("timeout",), "nats": ("timeout",), "kafka": ("timeout",),
    "smtp": ("timeout",), "twilio": ("timeout",), "fcm": ("timeout",), "webpush": ("timeout",),
    "falkordb": ("timeout",), "s3": ("timeout",),
    "postgres": ("connect_timeout", "pool.timeout"), "sqlite": ("busy_timeout",),
}
CASES = [(p, k) for p, keys in DURATION_KEYS.items() for k in keys]


def with_value(config: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    head, _, tail = key.partition(".")
    return {**config, head: {tail: value}} if tail else {**config, head: value}


def problems_at(provider: str, key: str, value: Any) -> list[str]:
    kind, config, extra = RESOURCES[provider]
    env_config = with_value(config, key, value)
    definition = {"envs": {"prd": env_config}, **extra}
    path = ("envs", "prd", *key.split("."))
    found = validate_resource(kind, definition, env_config)
    at_key = [msg for where, msg in found if tuple(where) == path]
    # A good value leaves no other problem either: the fixtures are valid configs.
    assert at_key or not found, found
    return at_key


@pytest.mark.parametrize(("provider", "key"), CASES)
@pytest.mark.parametrize("value", ["10s", "250ms", "2m", 1500, 2500.0, dt.timedelta(seconds=3),
                                   "${env.TIMEOUT}"])
def test_validate_accepts_durations(provider: str, key: str, value: Any) -> None:
    assert problems_at(provider, key, value) == []


@pytest.mark.parametrize(("provider", "key"), CASES)
def test_validate_rejects_nonsense_at_the_key(provider: str, key: str) -> None:
    for value in ("soon", "10 sec", -5, True, [1]):
        (msg,) = problems_at(provider, key, value)
        assert key in msg, msg
        if isinstance(value, str):
            assert "is not a duration" in msg and "bare number is milliseconds" in msg, msg


@pytest.mark.parametrize(("provider", "key"), CASES)
def test_validate_warns_when_a_bare_number_looks_like_seconds(provider: str, key: str) -> None:
    (msg,) = problems_at(provider, key, 30)
    assert key in msg and msg.endswith(
        " 30 means 30 milliseconds (bare numbers are ms); write \"30s\" if you meant seconds"), msg
    assert problems_at(provider, key, 100) == []


def test_zero_is_refused_except_for_sqlite_busy_timeout() -> None:
    (msg,) = problems_at("redis", "timeout", "0s")
    assert msg == "timeout must be more than 0, got '0s'"
    assert problems_at("sqlite", "busy_timeout", 0) == []


def test_webpush_ttl_is_seconds_when_bare_and_says_so() -> None:
    assert webpush_ttl(600) == 600
    assert webpush_ttl("600") == 600  # from ${env.X}: still seconds
    assert webpush_ttl("1d") == 86_400 and webpush_ttl("90s") == 90
    assert webpush_ttl(dt.timedelta(minutes=5)) == 300
    for bad in ("soon", -1, 1.5, True):
        with pytest.raises(ValueError) as info:
            webpush_ttl(bad)
        assert str(info.value) == TTL_HELP
    assert "in SECONDS when a bare number" in TTL_HELP
    assert problems_at("webpush", "ttl", 600) == []
    assert problems_at("webpush", "ttl", "1d") == []
    assert problems_at("webpush", "ttl", "soon") == [TTL_HELP]


# -- at build: the client gets seconds (or what it wants) -----------------------------------------


def build(provider: str, key: str, value: Any, tmp_path: Path) -> Any:
    kind, config, extra = RESOURCES[provider]
    env_config = with_value(config, key, value)
    secrets = SecretSet()
    resolved = resolve_refs(env_config, environ={"T": "tok-1"}, collect=secrets)
    spec = ResourceSpec(kind=kind, name="res", env="prd", product="shop", config=resolved,
                        definition={"envs": {"prd": env_config}, **extra},
                        base_dir=str(tmp_path), secrets=secrets)
    return build_connector(spec)


@pytest.mark.parametrize(("value", "secs"), [("1500ms", 1.5), (2500, 2.5), ("2m", 120.0),
                                             (dt.timedelta(seconds=4), 4.0)])
async def test_clients_get_seconds(tmp_path: Path, value: Any, secs: float) -> None:
    made = [build(p, "timeout", value, tmp_path) for p in ("redis", "nats", "kafka", "falkordb")]
    smtp = build("smtp", "timeout", value, tmp_path)
    twilio = build("twilio", "timeout", value, tmp_path)
    s3 = build("s3", "timeout", value, tmp_path)
    pg = build("postgres", "connect_timeout", value, tmp_path)
    pool = build("postgres", "pool.timeout", value, tmp_path)
    sqlite = build("sqlite", "busy_timeout", value, tmp_path)
    try:
        assert [c.timeout for c in made] == [secs] * 4
        assert smtp._smtp.timeout == secs
        assert twilio._client.timeout.read == secs
        assert s3._config.read_timeout == secs
        assert pg.connect_timeout == secs and pool.pool_timeout == secs
        assert sqlite.busy_timeout_ms == round(secs * 1000)
    finally:
        for conn in (*made, smtp, twilio, s3, pg, pool, sqlite):
            await conn.aclose()


# fcm and webpush read the same `timeout` (conf_seconds) but need credentials files to build.
@pytest.mark.parametrize(("provider", "key"),
                         [(p, k) for p, k in CASES if p not in ("fcm", "webpush")])
def test_a_bad_duration_fails_at_build_naming_the_key(provider: str, key: str,
                                                      tmp_path: Path) -> None:
    with pytest.raises(ConnectorError) as info:
        build(provider, key, "soon", tmp_path)
    assert key in str(info.value) and "is not a duration" in str(info.value)
    assert "(env prd)" in str(info.value)


async def test_produce_option_timeout_is_a_duration(tmp_path: Path) -> None:
    conn = build("redis", "timeout", "2s", tmp_path)
    try:
        with pytest.raises(ConnectorError) as info:
            await conn.produce("user-created", {"a": 1}, timeout="soon")
        assert "option timeout: 'soon' is not a duration" in str(info.value)
    finally:
        await conn.aclose()
