"""What the three broker providers share: topics, message encoding, options, errors, validation."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
import os
import re
import ssl
import uuid
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import urlsplit

from ductwork.connectors.base import BrokerConnector, Problem, ResourceSpec
from ductwork.connectors.util import duration_problem, duration_s, env_path, is_ref
from ductwork.errors import ConnectorError
from ductwork.util.suggest import suggest

DEFAULT_TIMEOUT = 10.0
COMMON_KEYS = ("provider", "prefix", "timeout", "tls")
TLS_KEYS = ("ca_file", "cert_file", "key_file")
TOPIC_KEYS = ("description", "key", "schema")
OPTIONS = ("key", "headers", "timeout")

# Physical topic names per provider. Redis keys could be anything, but a name a person can type
# and grep is worth the restriction; NATS tokens follow the naming guidance (no wildcards, no
# `$` system prefix); Kafka's own rule is [a-zA-Z0-9._-]{1,249}.
_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "redis": (
        re.compile(r"[A-Za-z0-9_.:/{}-]{1,256}"),
        "1-256 characters from letters, digits and _ - . : / { }",
    ),
    "nats": (
        re.compile(r"(?=.{1,255}$)[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*"),
        "dot-separated tokens of letters, digits, _ and - (no wildcards * >, no empty tokens)",
    ),
    "kafka": (
        re.compile(r"(?!\.{1,2}$)[A-Za-z0-9._-]{1,249}"),
        "1-249 characters from letters, digits and . _ - (not '.' or '..')",
    ),
}
_HEADER = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def topic_problem(provider: str, name: str) -> str | None:
    """Why `name` is not a valid topic for `provider`, or None."""
    rule, human = _RULES[provider]
    if not isinstance(name, str) or not rule.fullmatch(name):
        return f"invalid {provider} topic name {name!r}: use {human}"
    return None


def safe_url(url: str) -> str:
    """scheme://host:port of a URL: never user, password, path or query (they may hold secrets)."""
    try:
        parts = urlsplit(url if "://" in url else f"//{url}")
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable url>"
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    scheme = f"{parts.scheme}://" if parts.scheme else ""
    return f"{scheme}{host}{port}"


def describe(exc: BaseException) -> str:
    """`Type: message` of an exception, for the cause part of an error."""
    text = str(exc).strip()
    name = type(exc).__name__
    if not text or text == name:
        return name
    return text if text.startswith(f"{name}:") else f"{name}: {text}"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    dump = getattr(value, "model_dump", None)
    if callable(dump):  # pydantic v2 models
        return dump(mode="json")
    raise TypeError(f"object of type {type(value).__name__} is not JSON serializable")


def encode_message(message: Any) -> bytes:
    """The wire form of a message: compact UTF-8 JSON (datetimes ISO 8601, UUID/Decimal as text)."""
    return json.dumps(
        message, ensure_ascii=False, separators=(",", ":"), default=_json_default, allow_nan=False
    ).encode()


def server_list(value: Any) -> list[str]:
    """Servers given as "host:port,host:port" or as a list; [] when missing or not strings."""
    if isinstance(value, str):
        value = [s.strip() for s in value.split(",") if s.strip()]
    if not value or not isinstance(value, list | tuple) or not all(
            isinstance(s, str) and s for s in value):
        return []
    return list(value)


def _seconds(value: Any, default: float, key: str = "timeout") -> float:
    return default if value is None else duration_s(value, key)


def as_int(value: Any) -> int | None:
    return None if value is None else int(value)


def as_bool(value: Any, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


class BrokerBase(BrokerConnector):
    """produce() for every provider: check topic, options and message, then `_send` in a timeout."""

    provider: ClassVar[str] = ""

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        self.spec: ResourceSpec = spec
        cfg = spec.config
        self.config = cfg
        self.prefix = str(cfg.get("prefix") or "")
        try:
            # Seconds for the clients; written as a duration (bare number = milliseconds).
            self.timeout = _seconds(cfg.get("timeout"), DEFAULT_TIMEOUT)
        except ValueError as e:
            raise spec.error(str(e)) from None
        self.topics = topics_of(spec.definition)
        tls = cfg.get("tls") or {}
        if not isinstance(tls, Mapping) or set(tls) - set(TLS_KEYS):
            raise spec.error(f"'tls' must be a mapping with {', '.join(TLS_KEYS)}")
        self.tls_files: dict[str, str] = {
            k: os.path.join(spec.base_dir, str(v)) for k, v in tls.items() if v
        }
        self._schemas: dict[str, Callable[[Any], Iterable[Any]]] = {}

    # -- provider hooks ------------------------------------------------------------------------
    async def _send(
        self, name: str, payload: bytes, key: str | None, headers: dict[str, str], topic: str
    ) -> dict[str, Any]:
        raise NotImplementedError

    def timeout_hint(self, name: str) -> str:
        """Extra advice appended to a timeout error (e.g. a topic that is never created)."""
        return ""

    # -- the operation -------------------------------------------------------------------------
    async def produce(self, topic: str, message: Any, **options: Any) -> dict[str, Any]:
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise self.spec.error(
                f"unknown produce option(s) {', '.join(unknown)} (allowed: {', '.join(OPTIONS)})",
                event=topic,
            )
        tdef = self._topic(topic)
        name = self.prefix + topic
        problem = topic_problem(self.provider, name)
        if problem:
            raise self.spec.error(problem, event=topic)
        try:
            payload = encode_message(message)
        except (TypeError, ValueError) as e:
            raise self.spec.error(f"message cannot be encoded as JSON: {e}", event=topic) from None
        if tdef.get("schema") is not None:
            self._check_schema(topic, tdef["schema"], json.loads(payload))
        key = self._key(topic, tdef, message, options.get("key"))
        headers = self._headers(topic, options.get("headers"))
        try:
            timeout = _seconds(options.get("timeout"), self.timeout, "option timeout")
        except ValueError as e:
            raise self.spec.error(str(e), event=topic) from None
        try:
            async with asyncio.timeout(timeout):
                return await self._send(name, payload, key, headers, topic)
        except ConnectorError:
            raise
        except TimeoutError:
            raise self.spec.error(
                f"no answer from {self.provider} at {self.where()} within {timeout:g}s"
                + self.timeout_hint(name), event=topic, retryable=True,
            ) from None
        except Exception as e:
            raise self.spec.error(
                f"{self.provider} produce to '{name}' failed: {describe(e)}", event=topic,
                retryable=True,
            ) from e

    def where(self) -> str:
        """Where the broker is, without credentials (for error messages)."""
        return self.provider

    def ssl_context(self) -> ssl.SSLContext:
        """Verify the server against `tls.ca_file` (else the system CAs); present a client cert."""
        files = self.tls_files
        try:
            ctx = ssl.create_default_context(cafile=files.get("ca_file"))
            if files.get("cert_file"):
                ctx.load_cert_chain(files["cert_file"], files.get("key_file"))
        except (OSError, ssl.SSLError) as e:
            raise self.spec.error(f"cannot load the tls files: {describe(e)}") from None
        return ctx

    def _topic(self, topic: str) -> dict[str, Any]:
        if not isinstance(topic, str) or not topic:
            raise self.spec.error(f"topic must be a non-empty string, got {topic!r}")
        if self.topics is None:
            return {}
        if topic not in self.topics:
            known = ", ".join(sorted(self.topics)) or "none"
            raise self.spec.error(
                f"unknown topic '{topic}' (declared under topics: {known})", event=topic
            )
        return dict(self.topics[topic] or {})

    def _check_schema(self, topic: str, schema: Any, value: Any) -> None:
        check = self._schemas.get(topic)
        if check is None:
            import jsonschema

            cls = jsonschema.validators.validator_for(schema)
            check = cls(schema).iter_errors
            self._schemas[topic] = check
        errors = sorted(check(value), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            at = "/" + "/".join(str(p) for p in first.absolute_path)
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise self.spec.error(
                f"message does not match topics.{topic}.schema at {at}: {first.message}{more}",
                event=topic,
            )

    def _key(self, topic: str, tdef: dict[str, Any], message: Any, key: Any) -> str | None:
        field = tdef.get("key")
        if key is None and field:
            if not isinstance(message, Mapping) or field not in message:
                raise self.spec.error(
                    f"topics.{topic}.key names field '{field}', but the message has no such "
                    "field; add it to the message or pass key=", event=topic,
                )
            key = message[field]
        if key is None:
            return None
        if isinstance(key, bytes):
            try:
                return key.decode()
            except UnicodeDecodeError:
                raise self.spec.error("key bytes must be UTF-8", event=topic) from None
        if isinstance(key, str | int | float | uuid.UUID) and not isinstance(key, bool):
            return str(key)
        raise self.spec.error(
            f"key must be a string or number, got {type(key).__name__}", event=topic
        )

    def _headers(self, topic: str, headers: Any) -> dict[str, str]:
        if headers is None:
            return {}
        if not isinstance(headers, Mapping):
            raise self.spec.error("headers must be a mapping of name -> value", event=topic)
        out: dict[str, str] = {}
        for k, v in headers.items():
            if not isinstance(k, str) or not _HEADER.fullmatch(k):
                raise self.spec.error(
                    f"invalid header name {k!r}: letters, digits and !#$%&'*+.^_`|~- only",
                    event=topic,
                )
            if isinstance(v, bytes):
                v = v.decode("utf-8", "strict")
            if not isinstance(v, str | int | float | bool) or "\r" in str(v) or "\n" in str(v):
                raise self.spec.error(
                    f"header '{k}' must be a single-line string or number", event=topic
                )
            out[k] = str(v).lower() if isinstance(v, bool) else str(v)
        return out


def topics_of(definition: Mapping[str, Any]) -> dict[str, Any] | None:
    """The declared topics (`topics:`, or `events:` as an alias), or None when none are declared."""
    for section in ("topics", "events"):
        value = definition.get(section)
        if value is not None:
            return dict(value) if isinstance(value, Mapping) else {}
    return None


# -- validation (`ductwork validate`) ------------------------------------------------------------


def validate_common(
    provider: str,
    definition: Mapping[str, Any],
    config: Mapping[str, Any],
    keys: Iterable[str],
    required: Iterable[str],
) -> tuple[list[Problem], tuple[str | int, ...]]:
    """Problems every provider shares; returns them and the env path for provider checks."""
    at = env_path(definition, config)
    problems: list[Problem] = []
    if not isinstance(config, Mapping):
        return [(at, "environment config must be a mapping")], at
    known = (*COMMON_KEYS, *keys)
    for k in config:
        if k not in known:
            hint = _close(str(k), known)
            problems.append(((*at, k), f"unknown {provider} broker key '{k}'{hint} "
                                       f"(known: {', '.join(sorted(known))})"))
    for k in required:
        if config.get(k) in (None, "", []):
            problems.append(((*at, k), f"'{k}' is required for provider {provider}"))
    problem = duration_problem("timeout", config.get("timeout"))
    if problem:
        problems.append(((*at, "timeout"), problem))
    tls = config.get("tls")
    if tls is not None:
        if not isinstance(tls, Mapping):
            problems.append(((*at, "tls"), f"'tls' is a mapping with {', '.join(TLS_KEYS)}"))
        else:
            for k in tls:
                if k not in TLS_KEYS:
                    problems.append(((*at, "tls", k), f"unknown tls key '{k}'"
                                     f"{_close(str(k), TLS_KEYS)} (known: {', '.join(TLS_KEYS)})"))
            if tls.get("key_file") and not tls.get("cert_file"):
                problems.append(((*at, "tls", "key_file"), "'key_file' goes with 'cert_file'"))
    prefix = config.get("prefix")
    if prefix is not None and not isinstance(prefix, str):
        problems.append(((*at, "prefix"), "'prefix' must be a string"))
        prefix = ""
    problems += validate_topics(provider, definition, "" if is_ref(prefix) else prefix or "")
    return problems, at


def validate_topics(provider: str, definition: Mapping[str, Any], prefix: str) -> list[Problem]:
    problems: list[Problem] = []
    if definition.get("topics") is not None and definition.get("events") is not None:
        problems.append((("events",), "declare topics under 'topics' only ('events' is an alias)"))
    section = "topics" if definition.get("topics") is not None else "events"
    topics = definition.get(section)
    if topics is None:
        return problems
    if not isinstance(topics, Mapping):
        return [*problems, ((section,), f"'{section}' must map topic names to definitions")]
    for name, tdef in topics.items():
        at: tuple[str | int, ...] = (section, str(name))
        why = topic_problem(provider, prefix + str(name))
        if why:
            problems.append((at, why))
        if tdef is None:
            continue
        if not isinstance(tdef, Mapping):
            problems.append((at, "a topic definition must be a mapping (or empty)"))
            continue
        for k in tdef:
            if k not in TOPIC_KEYS:
                problems.append(((*at, k), f"unknown topic key '{k}'{_close(str(k), TOPIC_KEYS)} "
                                           f"(known: {', '.join(TOPIC_KEYS)})"))
        if "key" in tdef and not (isinstance(tdef["key"], str) and tdef["key"]):
            problems.append(((*at, "key"), "'key' names a message field (a string)"))
        if tdef.get("schema") is not None:
            import jsonschema

            try:
                jsonschema.validators.validator_for(tdef["schema"]).check_schema(tdef["schema"])
            except jsonschema.SchemaError as e:
                problems.append(((*at, "schema"), f"invalid JSON Schema: {e.message}"))
    return problems


def _close(word: str, options: Iterable[str]) -> str:
    match = suggest(word, options)
    return f" (did you mean '{match}'?)" if match else ""
