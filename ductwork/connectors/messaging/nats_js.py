"""Broker provider `nats`: publish to a JetStream subject and wait for the stream's ack."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

from ductwork.connectors.base import Problem, ResourceSpec
from ductwork.connectors.messaging.common import (
    BrokerBase,
    as_bool,
    describe,
    safe_url,
    server_list,
    topic_problem,
    topics_of,
    validate_common,
)
from ductwork.connectors.util import is_ref

KEYS = ("servers", "stream", "create_stream", "subjects", "auth")
AUTH_KEYS = ("user", "password", "token", "creds")
KEY_HEADER = "Ductwork-Key"
log = logging.getLogger("ductwork.connectors.messaging")


class NatsJetStreamConnector(BrokerBase):
    """One NATS connection per connector; the stream is checked (or created) once per connection."""

    provider = "nats"

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        self.servers = server_list(self.config.get("servers"))
        if not self.servers:
            raise spec.error(
                "'servers' is required for provider nats (e.g. [nats://127.0.0.1:4222])"
            )
        self.stream: str | None = self.config.get("stream") or None
        self.create_stream = as_bool(self.config.get("create_stream"), False)
        subjects = self.config.get("subjects")
        self.subjects: list[str] | None = (
            [subjects] if isinstance(subjects, str) else list(subjects) if subjects else None
        )
        if self.create_stream and not self.stream:
            raise spec.error("'create_stream: true' needs 'stream' (the stream's name)")
        auth = self.config.get("auth") or {}
        if not isinstance(auth, Mapping):
            raise spec.error("'auth' must be a mapping: {user, password} | {token} | {creds}")
        self.auth = dict(auth)
        self._nc: Any = None
        self._js: Any = None
        self._lock = asyncio.Lock()
        self._last_error: BaseException | None = None

    def where(self) -> str:
        return ", ".join(safe_url(s) for s in self.servers)

    async def _error_cb(self, exc: Exception) -> None:
        # nats-py's default callback logs a full traceback for every failed attempt.
        self._last_error = exc
        log.debug("nats %s: %s", self.where(), describe(exc))

    def _auth_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.auth.get("user") is not None:
            kw["user"] = str(self.auth["user"])
            kw["password"] = str(self.auth.get("password") or "")
        if self.auth.get("token") is not None:
            kw["token"] = str(self.auth["token"])
        if self.tls_files:
            kw["tls"] = self.ssl_context()
        if self.auth.get("creds"):
            path = str(self.auth["creds"])
            kw["user_credentials"] = os.path.join(self.spec.base_dir, path)
        return kw

    async def _connect(self, topic: str) -> Any:
        async with self._lock:
            if self._nc is not None and not self._nc.is_closed:
                return self._js
            import nats
            from nats import errors as ne

            nc = nats.NATS()
            self._last_error = None
            try:
                # allow_reconnect=False: fail now instead of retrying (and logging) for minutes;
                # a closed client is rebuilt on the next produce. max_reconnect_attempts must be
                # >= 1 or nats-py's server selection never gives up.
                await asyncio.wait_for(
                    nc.connect(
                        servers=self.servers, name="ductwork", error_cb=self._error_cb,
                        allow_reconnect=False, max_reconnect_attempts=1,
                        reconnect_time_wait=0, connect_timeout=max(1, round(self.timeout)),
                        **self._auth_kwargs(),
                    ),
                    self.timeout,
                )
            except BaseException as e:
                await _quiet_close(nc)
                if not isinstance(e, Exception):
                    raise
                cause = self._last_error if isinstance(e, ne.NoServersError | TimeoutError) else e
                if cause is not None and (isinstance(cause, ne.AuthorizationError)
                                          or "authoriz" in str(cause).lower()):
                    raise self.spec.error(
                        f"nats at {self.where()} rejected the credentials ({describe(cause)}); "
                        "check auth: {user, password} | {token} | {creds}", event=topic,
                    ) from None
                why = describe(cause) if cause else f"no answer within {self.timeout:g}s"
                raise self.spec.error(
                    f"cannot connect to nats at {self.where()}: {why}",
                    event=topic, retryable=True,
                ) from None
            js = nc.jetstream(timeout=self.timeout)
            try:
                await self._ensure_stream(js, topic)
            except BaseException:
                await _quiet_close(nc)
                raise
            self._nc, self._js = nc, js
            return js

    async def ping(self) -> str:
        """Connect with the configured credentials and TLS, PING, close (no stream made)."""
        import nats

        nc = nats.NATS()
        self._last_error = None
        try:
            await asyncio.wait_for(
                nc.connect(servers=self.servers, name="ductwork-health",
                           error_cb=self._error_cb, allow_reconnect=False,
                           max_reconnect_attempts=1, reconnect_time_wait=0,
                           connect_timeout=max(1, round(self.timeout)), **self._auth_kwargs()),
                self.timeout)
            await nc.flush(timeout=max(1, round(self.timeout)))
        except Exception as e:
            cause = self._last_error or e
            auth = "authoriz" in str(cause).lower()
            raise self.spec.error(
                f"nats at {self.where()} "
                + (f"rejected the credentials ({describe(cause)})" if auth
                   else f"cannot be reached: {describe(cause)}"),
                retryable=not auth) from None
        finally:
            await _quiet_close(nc)
        return f"CONNECT, PING at {self.where()}"

    async def _ensure_stream(self, js: Any, topic: str) -> None:
        if not self.stream:
            return
        from nats.js import errors as jse

        try:
            await js.stream_info(self.stream)
            return
        except jse.NotFoundError:
            if not self.create_stream:
                raise self.spec.error(
                    f"JetStream stream '{self.stream}' does not exist on {self.where()}; create "
                    "it or set create_stream: true (with subjects:)", event=topic,
                ) from None
        except jse.ServiceUnavailableError:
            raise self.spec.error(
                f"JetStream is not enabled on {self.where()} (start nats-server with -js)",
                event=topic,
            ) from None
        subjects = self.subjects or default_subjects(self.prefix, self.spec.definition)
        if not subjects:
            raise self.spec.error(
                f"cannot create stream '{self.stream}': give 'subjects:' (e.g. [\"events.>\"]), "
                "a prefix ending in '.', or declare topics", event=topic,
            )
        try:
            await js.add_stream(name=self.stream, subjects=subjects)
        except jse.BadRequestError as e:
            raise self.spec.error(
                f"cannot create stream '{self.stream}' with subjects {subjects}: {describe(e)}",
                event=topic,
            ) from None

    async def _send(
        self, name: str, payload: bytes, key: str | None, headers: dict[str, str], topic: str
    ) -> dict[str, Any]:
        from nats import errors as ne
        from nats.js import errors as jse

        js = await self._connect(topic)
        if key is not None:
            headers = {**headers, KEY_HEADER: key}
        try:
            ack = await js.publish(
                name, payload, timeout=self.timeout, stream=self.stream, headers=headers or None
            )
        except (ne.NoRespondersError, jse.NoStreamResponseError):
            raise self.spec.error(
                f"no JetStream stream captures subject '{name}' on {self.where()}; add it to "
                "the stream's subjects (or set stream/create_stream)", event=topic,
            ) from None
        except jse.APIError as e:
            raise self.spec.error(
                f"JetStream refused the message on subject '{name}': {describe(e)}", event=topic
            ) from None
        except (ne.ConnectionClosedError, ne.StaleConnectionError, ne.ConnectionReconnectingError,
                ne.OutboundBufferLimitError) as e:
            await self._drop()
            raise self.spec.error(
                f"lost the connection to nats at {self.where()}: {describe(e)}", event=topic,
                retryable=True,
            ) from None
        return {"stream": ack.stream, "seq": ack.seq, "topic": name}

    async def _drop(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        await _quiet_close(nc, self.timeout)

    async def aclose(self) -> None:
        async with self._lock:
            await self._drop()


async def _quiet_close(nc: Any, bound: float = 0.5) -> None:
    if nc is None or nc.is_closed:
        return
    try:
        # After a failed TLS upgrade nats-py's close() waits forever for a stream that was
        # handed to the SSL protocol (the socket itself is already closed), hence the bound.
        await asyncio.wait_for(nc.close(), bound)
    except Exception as e:  # closing a half-open client must not mask the real error
        log.debug("nats close: %s", describe(e))


def default_subjects(prefix: str, definition: Mapping[str, Any]) -> list[str]:
    """Subjects of a stream we create: `<prefix>>` for a dotted prefix, else the declared topics."""
    if prefix.endswith("."):
        return [prefix + ">"]
    topics = topics_of(definition)
    return [prefix + t for t in topics] if topics else []


def _subject_ok(subject: str) -> bool:
    tokens = subject.split(".")
    return all(
        t == "*" or (t == ">" and i == len(tokens) - 1) or topic_problem("nats", t) is None
        for i, t in enumerate(tokens)
    )


def create(spec: ResourceSpec) -> NatsJetStreamConnector:
    return NatsJetStreamConnector(spec)


def validate(definition: dict[str, Any], config: dict[str, Any]) -> list[Problem]:
    problems, at = validate_common("nats", definition, config, KEYS, ["servers"])
    if not isinstance(config, Mapping):
        return problems
    servers = config.get("servers")
    if servers is not None and not is_ref(servers):
        items = [servers] if isinstance(servers, str) else servers
        if not isinstance(items, list) or not all(isinstance(s, str) and s for s in items):
            problems.append(((*at, "servers"), "'servers' is a URL or a list of URLs"))
        else:
            for i, s in enumerate(items):
                if not is_ref(s) and s.split("://", 1)[0] not in ("nats", "tls", "ws", "wss"):
                    problems.append(((*at, "servers", i),
                                     f"server {safe_url(s)!r} must start with nats:// or tls://"))
    stream = config.get("stream")
    if stream is not None and not is_ref(stream) and (
            not isinstance(stream, str) or not stream or any(c in stream for c in " .*>/\\\t")):
            problems.append(((*at, "stream"), "'stream' is a name without spaces, . * > / \\"))
    create_stream = config.get("create_stream")
    if create_stream is not None and not isinstance(create_stream, bool) and not is_ref(
            create_stream):
        problems.append(((*at, "create_stream"), "'create_stream' is true or false"))
    if create_stream is True and not stream:
        problems.append(((*at, "create_stream"), "'create_stream: true' needs 'stream'"))
    subjects = config.get("subjects")
    if subjects is not None:
        if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
            problems.append(((*at, "subjects"), "'subjects' is a list of subjects"))
        elif not create_stream:
            problems.append(((*at, "subjects"), "'subjects' is only used with create_stream: true"))
        else:
            for i, s in enumerate(subjects):
                if not is_ref(s) and not _subject_ok(s):
                    problems.append(((*at, "subjects", i), f"invalid NATS subject {s!r} (tokens "
                                     "of letters, digits, _ -, or * ; > only as the last token)"))
    elif create_stream is True:
        prefix = config.get("prefix") or ""
        if not default_subjects(prefix if isinstance(prefix, str) else "", definition):
            problems.append(((*at, "create_stream"), "creating the stream needs 'subjects', a "
                                                     "prefix ending in '.', or declared topics"))
    auth = config.get("auth")
    if auth is not None:
        if not isinstance(auth, Mapping):
            problems.append(((*at, "auth"), "'auth' is {user, password} | {token} | {creds}"))
        else:
            for k in auth:
                if k not in AUTH_KEYS:
                    problems.append(((*at, "auth", k), f"unknown auth key '{k}' "
                                                       f"(known: {', '.join(AUTH_KEYS)})"))
            chosen = [k for k in ("user", "token", "creds") if auth.get(k) is not None]
            if len(chosen) > 1:
                problems.append(((*at, "auth"), f"choose one of user/token/creds, not {chosen}"))
            if "password" in auth and "user" not in auth:
                problems.append(((*at, "auth", "password"), "'password' goes with 'user'"))
            for k in ("password", "token"):
                v = auth.get(k)
                if isinstance(v, str) and v and not is_ref(v):
                    problems.append(((*at, "auth", k), f"'{k}' is written inline; use "
                                                       "${secrets.NAME}"))
    return problems
