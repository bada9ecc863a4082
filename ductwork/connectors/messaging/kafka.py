"""Broker provider `kafka`: an aiokafka producer with acks=all and idempotence."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from ductwork.connectors.base import Problem, ResourceSpec
from ductwork.connectors.messaging.common import (
    BrokerBase,
    as_bool,
    describe,
    server_list,
    validate_common,
)
from ductwork.connectors.util import is_ref

KEYS = ("bootstrap_servers", "client_id", "idempotent", "security")
SECURITY_KEYS = ("protocol", "mechanism", "username", "password")
PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaConnector(BrokerBase):
    """One AIOKafkaProducer per connector, started on first use."""

    provider = "kafka"

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        self.servers = server_list(self.config.get("bootstrap_servers"))
        if not self.servers:
            raise spec.error(
                "'bootstrap_servers' is required by kafka (e.g. \"kafka1:9092,kafka2:9092\")"
            )
        self.client_id = str(self.config.get("client_id") or "ductwork")
        self.idempotent = as_bool(self.config.get("idempotent"), True)
        security = self.config.get("security") or {}
        if not isinstance(security, Mapping):
            raise spec.error("'security' must be a mapping {protocol, mechanism, username, ...}")
        self.security = dict(security)
        protocol = str(self.security.get("protocol") or "PLAINTEXT").upper()
        if protocol not in PROTOCOLS:
            raise spec.error(f"security.protocol must be one of {', '.join(PROTOCOLS)}")
        self.protocol = protocol
        self._producer: Any = None
        self._lock = asyncio.Lock()

    def where(self) -> str:
        return ",".join(self.servers)

    def _security_kwargs(self) -> dict[str, Any]:
        s = self.security
        kw: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol.startswith("SASL"):
            kw["sasl_mechanism"] = str(s.get("mechanism") or "PLAIN").upper()
            kw["sasl_plain_username"] = str(s.get("username") or "")
            kw["sasl_plain_password"] = str(s.get("password") or "")
        if self.protocol.endswith("SSL"):
            kw["ssl_context"] = self.ssl_context()
        return kw

    async def _start(self, topic: str) -> Any:
        async with self._lock:
            if self._producer is not None:
                return self._producer
            from aiokafka import AIOKafkaProducer
            from aiokafka import errors as ke

            producer = AIOKafkaProducer(
                bootstrap_servers=self.servers, client_id=self.client_id, acks="all",
                enable_idempotence=self.idempotent,
                request_timeout_ms=max(1000, int(self.timeout * 1000)),
                **self._security_kwargs(),
            )
            try:
                await producer.start()
            except BaseException as e:
                await producer.stop()  # an unstopped producer warns "Unclosed AIOKafkaProducer"
                if not isinstance(e, ke.KafkaError | OSError):
                    raise
                auth = isinstance(e, ke.AuthenticationFailedError | ke.SaslAuthenticationFailed |
                                  ke.IllegalSaslStateError | ke.UnsupportedSaslMechanismError)
                what = ("rejected the credentials" if auth else "cannot be reached")
                raise self.spec.error(
                    f"kafka at {self.where()} {what}: {describe(e)}"
                    + ("; check security: {protocol, mechanism, username, password}"
                       if self.protocol != "PLAINTEXT" else ""),
                    event=topic, retryable=not auth,
                ) from None
            self._producer = producer
            return producer

    async def _send(
        self, name: str, payload: bytes, key: str | None, headers: dict[str, str], topic: str
    ) -> dict[str, Any]:
        from aiokafka import errors as ke

        producer = await self._start(topic)
        try:
            meta = await producer.send_and_wait(
                name, payload, key=None if key is None else key.encode(),
                headers=[(k, v.encode()) for k, v in headers.items()] or None,
            )
        except ke.TopicAuthorizationFailedError:
            raise self.spec.error(
                f"kafka denied write access to topic '{name}' (check the ACLs of the user)",
                event=topic,
            ) from None
        except (ke.MessageSizeTooLargeError, ke.RecordTooLargeError) as e:
            raise self.spec.error(
                f"message too large for topic '{name}': {describe(e)}", event=topic
            ) from None
        except ke.KafkaTimeoutError:
            raise TimeoutError from None
        return {"topic": meta.topic, "partition": meta.partition, "offset": meta.offset}

    def timeout_hint(self, name: str) -> str:
        return (f"; if topic '{name}' does not exist and the cluster does not auto-create "
                "topics, create it")

    async def aclose(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
            if producer is not None:
                await producer.stop()


def create(spec: ResourceSpec) -> KafkaConnector:
    return KafkaConnector(spec)


def validate(definition: dict[str, Any], config: dict[str, Any]) -> list[Problem]:
    problems, at = validate_common("kafka", definition, config, KEYS, ["bootstrap_servers"])
    if not isinstance(config, Mapping):
        return problems
    servers = config.get("bootstrap_servers")
    if servers is not None and not is_ref(servers):
        items = servers.split(",") if isinstance(servers, str) else servers
        if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
            problems.append(((*at, "bootstrap_servers"),
                             "'bootstrap_servers' is \"host:port,host:port\" or a list"))
        else:
            for s in items:
                host, _, port = s.strip().rpartition(":")
                if not is_ref(s) and (not host or not port.isdigit()):
                    problems.append(((*at, "bootstrap_servers"),
                                     f"'{s.strip()}' is not host:port"))
    idem = config.get("idempotent")
    if idem is not None and not isinstance(idem, bool) and not is_ref(idem):
        problems.append(((*at, "idempotent"), "'idempotent' is true or false"))
    sec = config.get("security")
    protocol = str(sec.get("protocol") or "PLAINTEXT") if isinstance(sec, Mapping) else ""
    if config.get("tls") and not is_ref(protocol) and not protocol.upper().endswith("SSL"):
        problems.append(((*at, "tls"), "'tls' needs security.protocol SSL or SASL_SSL"))
    if sec is None:
        return problems
    if not isinstance(sec, Mapping):
        return [*problems, ((*at, "security"), "'security' must be a mapping")]
    for k in sec:
        if k not in SECURITY_KEYS:
            problems.append(((*at, "security", k),
                             f"unknown security key '{k}' (known: {', '.join(SECURITY_KEYS)})"))
    protocol = str(sec.get("protocol") or "PLAINTEXT")
    if not is_ref(protocol) and protocol.upper() not in PROTOCOLS:
        problems.append(((*at, "security", "protocol"),
                         f"'protocol' must be one of {', '.join(PROTOCOLS)}"))
    mech = sec.get("mechanism")
    if mech is not None and not is_ref(mech) and str(mech).upper() not in MECHANISMS:
        problems.append(((*at, "security", "mechanism"),
                         f"'mechanism' must be one of {', '.join(MECHANISMS)}"))
    if protocol.upper().startswith("SASL"):
        for k in ("username", "password"):
            if not sec.get(k):
                problems.append(((*at, "security", k), f"'{k}' is required with {protocol}"))
    pw = sec.get("password")
    if isinstance(pw, str) and pw and not is_ref(pw):
        problems.append(((*at, "security", "password"),
                         "the password is written inline; use ${secrets.NAME}"))
    return problems
