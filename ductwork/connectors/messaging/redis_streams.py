"""Broker provider `redis`: each topic is a Redis Stream, each message one XADD entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ductwork.connectors.base import Problem, ResourceSpec
from ductwork.connectors.messaging.common import (
    BrokerBase,
    describe,
    safe_url,
    validate_common,
)
from ductwork.connectors.util import is_ref

KEYS = ("url", "maxlen")
SCHEMES = ("redis", "rediss", "unix")
POOL_SIZE = 32


class RedisStreamsConnector(BrokerBase):
    """XADD <prefix><topic> * data <json> [key <key>] [headers <json>], MAXLEN ~ n if set."""

    provider = "redis"

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        url = self.config.get("url")
        if not url or not isinstance(url, str):
            raise spec.error("'url' is required for provider redis (e.g. redis://127.0.0.1:6379/0)")
        if url.split("://", 1)[0] not in SCHEMES:
            schemes = ", ".join(s + "://" for s in SCHEMES)
            raise spec.error(f"'url' must start with one of {schemes}")
        self.url = url
        if self.tls_files and not url.startswith("rediss://"):
            raise spec.error("'tls' files are used with a rediss:// url")
        try:
            maxlen = self.config.get("maxlen")
            self.maxlen = None if maxlen is None else int(maxlen)
        except (TypeError, ValueError):
            raise spec.error("'maxlen' must be a whole number of entries") from None
        self._client: Any = None

    def where(self) -> str:
        return safe_url(self.url)

    def client(self) -> Any:
        if self._client is None:
            from redis.asyncio import BlockingConnectionPool, Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import ExponentialBackoff

            # One quick retry covers a pooled connection the server closed; the library's
            # default (3 retries, seconds of backoff) would hide an unreachable server. The
            # blocking pool makes a burst of produce() calls wait for a connection instead
            # of failing with "Too many connections".
            pool = BlockingConnectionPool.from_url(
                self.url,
                max_connections=POOL_SIZE,
                timeout=self.timeout,
                socket_connect_timeout=self.timeout,
                socket_timeout=self.timeout,
                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=1),
                client_name="ductwork",
                **self._tls_kwargs(),
            )
            self._client = Redis.from_pool(pool)
        return self._client

    def _tls_kwargs(self) -> dict[str, Any]:
        names = {"ca_file": "ssl_ca_certs", "cert_file": "ssl_certfile", "key_file": "ssl_keyfile"}
        return {names[k]: v for k, v in self.tls_files.items()}

    async def _send(
        self, name: str, payload: bytes, key: str | None, headers: dict[str, str], topic: str
    ) -> dict[str, Any]:
        import json

        from redis import exceptions as rx

        fields: dict[str, Any] = {"data": payload}
        if key is not None:
            fields["key"] = key
        if headers:
            fields["headers"] = json.dumps(headers, separators=(",", ":"))
        try:
            entry = await self.client().xadd(
                name, fields, maxlen=self.maxlen, approximate=self.maxlen is not None
            )
        except rx.AuthenticationError as e:
            raise self._auth_error(e, topic) from None
        except rx.ResponseError as e:
            text = str(e)
            if text.startswith(("NOAUTH", "WRONGPASS", "NOPERM")):
                raise self._auth_error(e, topic) from None
            if text.startswith("WRONGTYPE"):
                raise self.spec.error(
                    f"redis key '{name}' exists and is not a stream", event=topic
                ) from None
            raise self.spec.error(f"redis refused XADD to '{name}': {text}", event=topic) from None
        except rx.InvalidResponse as e:
            raise self.spec.error(
                f"the server at {self.where()} does not speak the Redis protocol ({describe(e)})",
                event=topic,
            ) from None
        except (rx.ConnectionError, rx.TimeoutError, OSError) as e:
            raise self.spec.error(
                f"cannot reach redis at {self.where()}: {describe(e)}", event=topic,
                retryable=True,
            ) from None
        entry_id = entry.decode() if isinstance(entry, bytes) else str(entry)
        return {"id": entry_id, "topic": name}

    def _auth_error(self, e: Exception, topic: str) -> Exception:
        return self.spec.error(
            f"redis at {self.where()} rejected the credentials ({describe(e)}); check the "
            "user/password in 'url' (use ${secrets.NAME} for the password)", event=topic,
        )

    async def ping(self) -> str:
        """PING (with the configured password and TLS)."""
        try:
            await self.client().ping()
        except Exception as e:
            raise self.spec.error(f"redis at {self.where()}: {describe(e)}",
                                  retryable=True) from None
        return f"PING at {self.where()}"

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def create(spec: ResourceSpec) -> RedisStreamsConnector:
    return RedisStreamsConnector(spec)


def validate(definition: dict[str, Any], config: dict[str, Any]) -> list[Problem]:
    problems, at = validate_common("redis", definition, config, KEYS, ["url"])
    if not isinstance(config, Mapping):
        return problems
    url = config.get("url")
    if isinstance(url, str) and url and not url.startswith("${"):
        if url.split("://", 1)[0] not in SCHEMES:
            problems.append(((*at, "url"), "'url' must be redis://, rediss:// or unix://"))
        elif config.get("tls") and not url.startswith("rediss://"):
            problems.append(((*at, "tls"), "'tls' files are used with a rediss:// url"))
        elif _inline_password(url):
            problems.append(((*at, "url"), "the password is written inline; use ${secrets.NAME}"))
    maxlen = config.get("maxlen")
    if maxlen is not None and not is_ref(maxlen) and (
            isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 1):
            problems.append(((*at, "maxlen"), "'maxlen' must be a positive whole number"))
    return problems


def _inline_password(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return False
    return bool(password) and not is_ref(password)
