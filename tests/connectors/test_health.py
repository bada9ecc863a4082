"""Connector.ping through probe(): PostgreSQL, S3, Redis, NATS and FalkorDB, up and down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ductwork.connectors.base import ResourceSpec, SecretSet, build_connector, resolve_refs
from ductwork.connectors.health import DOWN, UNCHECKED, UP, Health, probe
from tests.support.brokers import start_nats, start_redis
from tests.support.falkordb import FalkorServer
from tests.support.falkordb import falkordb_server as falkordb_server  # session fixture
from tests.support.moto import MotoServer
from tests.support.moto import moto_server as moto_server  # session fixture
from tests.support.ports import free_port
from tests.support.postgres import PgServer
from tests.support.postgres import postgres_server as postgres_server  # session fixture
from tests.support.process import Server

SECRET = "Health-Secret-Pa55-0192"


async def check(kind: str, config: dict[str, Any], environ: dict[str, str] | None = None,
                definition: dict[str, Any] | None = None, base_dir: Path | None = None
                ) -> Health:
    found = SecretSet()
    resolved = resolve_refs(config, environ=environ or {}, collect=found)
    spec = ResourceSpec(kind=kind, name="res", env="prd", product="shop", config=resolved,
                        definition={"envs": {"prd": config}, **(definition or {})},
                        base_dir=str(base_dir or "."), secrets=found)
    conn = build_connector(spec)
    try:
        return await probe(conn, kind=kind, resource="res", member=spec.provider,
                           provider=spec.provider, timeout_s=10)
    finally:
        await conn.aclose()


@pytest.fixture(scope="module")
def redis_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_redis(tmp_path_factory.mktemp("redis-health"), password=SECRET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def nats_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_nats(tmp_path_factory.mktemp("nats-health"), jetstream=False, user="app",
                        password=SECRET)
    yield server
    server.stop()


async def test_postgres_select_1_and_a_refused_password(postgres_server: PgServer) -> None:
    dsn = postgres_server.create_database("health_up")
    ok = await check("database", {"provider": "postgresql", "url": "${env.DB_URL}"},
                     {"DB_URL": dsn})
    assert (ok.status, ok.detail) == (UP, "SELECT 1")
    bad = dsn.replace(f":{postgres_server.password}@", f":{SECRET}@")
    down = await check("database", {"provider": "postgresql", "url": "${env.DB_URL}"},
                       {"DB_URL": bad})
    assert down.status == DOWN and "password authentication failed" in down.detail
    assert SECRET not in down.detail


async def test_s3_lists_one_object_and_a_missing_bucket_is_down(moto_server: MotoServer
                                                                ) -> None:
    bucket = moto_server.create_bucket("health-bucket")
    config = {"provider": "s3", "bucket": bucket, "region": moto_server.region,
              "endpoint_url": moto_server.endpoint_url, "access_key_id": "${env.KEY}",
              "secret_access_key": "${env.SECRET}"}
    environ = {"KEY": moto_server.access_key_id, "SECRET": moto_server.secret_access_key}
    events = {"events": {"doc": {"prefix": "docs/"}}}
    ok = await check("storage", config, environ, events)
    assert ok.status == UP, ok.detail
    missing = await check("storage", {**config, "bucket": "no-such-bucket"}, environ, events)
    assert missing.status == DOWN
    assert "bucket 'no-such-bucket' at http://127.0.0.1:" in missing.detail
    assert "does not exist" in missing.detail
    wrong = await check("storage", config, {**environ, "SECRET": SECRET}, events)
    assert wrong.status == DOWN and SECRET not in wrong.detail


async def test_redis_ping_with_and_without_the_password(redis_auth: Server) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{redis_auth.port}/0"
    ok = await check("broker", {"provider": "redis", "url": "${env.URL}"}, {"URL": url})
    assert ok.status == UP and ok.detail.startswith("PING at redis://")
    assert SECRET not in ok.detail
    no_auth = await check("broker", {"provider": "redis",
                                     "url": f"redis://127.0.0.1:{redis_auth.port}/0"})
    assert no_auth.status == DOWN and "AuthenticationError" in no_auth.detail
    gone = await check("broker", {"provider": "redis",
                                  "url": f"redis://127.0.0.1:{free_port()}/0"})
    assert gone.status == DOWN and "connecting" in gone.detail.lower()


async def test_nats_connect_and_refused_credentials(nats_auth: Server) -> None:
    base = {"provider": "nats", "servers": [f"nats://127.0.0.1:{nats_auth.port}"],
            "timeout": "3s"}
    ok = await check("broker", {**base, "auth": {"user": "app", "password": "${env.PW}"}},
                     {"PW": SECRET})
    assert ok.status == UP and ok.detail.startswith("CONNECT, PING at nats://")
    refused = await check("broker", {**base, "auth": {"user": "app", "password": "${env.PW}"}},
                          {"PW": "not-" + SECRET})
    assert refused.status == DOWN and "rejected the credentials" in refused.detail
    assert SECRET not in refused.detail
    gone = await check("broker", {**base, "servers": [f"nats://127.0.0.1:{free_port()}"]})
    assert gone.status == DOWN and "cannot be reached" in gone.detail


async def test_falkordb_return_1_and_a_wrong_password(falkordb_server: FalkorServer,
                                                      tmp_path: Path) -> None:
    config = {"provider": "falkordb", "host": falkordb_server.host,
              "port": falkordb_server.port, "password": "${env.PW}", "graph": "health"}
    ok = await check("graph", config, {"PW": falkordb_server.password}, base_dir=tmp_path)
    assert (ok.status, ok.detail) == (UP, f"PING at 127.0.0.1:{falkordb_server.port}")
    wrong = await check("graph", config, {"PW": SECRET}, base_dir=tmp_path)
    assert wrong.status == DOWN and SECRET not in wrong.detail


async def test_a_provider_without_a_check_is_unchecked() -> None:
    config = {"provider": "twilio", "account_sid": "AC1", "auth_token": "${env.T}",
              "from": "+15550001"}
    row = await check("notification", config, {"T": SECRET},
                      {"events": {"code": {"message": "hi"}}})
    assert row.status == UNCHECKED and row.latency_ms is None
