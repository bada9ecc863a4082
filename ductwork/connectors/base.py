"""The connector seam: one small base class per resource kind, and the provider registry."""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ductwork.connectors.redaction import SecretSet as SecretSet  # its home before
from ductwork.errors import ConfigurationError, ConnectorError

# The resource kinds, keyed by the name used on ctx; the value is the product-file section.
KINDS: dict[str, str] = {
    "action": "apps",
    "database": "databases",
    "notification": "notifications",
    "storage": "storage",
    "graph": "graphs",
    "broker": "brokers",
}


@dataclass
class ResourceSpec:
    """Everything a provider needs to build one connector for one resource in one environment.

    `config` is the resource's config for `env` with `${env.X}`/`${secrets.X}` references
    already resolved (in memory only); `definition` is the whole resource block of the
    product file (events, tables, actions, ... whatever the kind declares).
    """

    kind: str
    name: str
    env: str
    product: str
    config: dict[str, Any]
    definition: dict[str, Any] = field(default_factory=dict)
    base_dir: str = "."
    secrets: SecretSet | None = None

    @property
    def events(self) -> dict[str, Any]:
        return dict(self.definition.get("events") or {})

    @property
    def provider(self) -> str:
        return str(self.config.get("provider", DEFAULT_PROVIDER.get(self.kind, "")))

    def error(self, message: str, *, event: str | None = None, **kw: Any) -> ConnectorError:
        return ConnectorError(
            self.redact(message), kind=self.kind, resource=self.name, event=event, env=self.env,
            **kw)

    def event(self, event: str) -> dict[str, Any]:
        """The declared event, or an error listing the ones that exist."""
        events = self.events
        if event not in events:
            known = ", ".join(sorted(events)) or "none declared"
            raise self.error(f"unknown event '{event}' (known: {known})", event=event,
                             retryable=False)
        return dict(events[event] or {})

    def redact(self, text: str) -> str:
        return self.secrets.redact(text) if self.secrets else text


class Connector:
    """Base of every connector: one instance per (resource, environment), reused, closed once."""

    kind: ClassVar[str] = ""

    def __init__(self, spec: ResourceSpec | None = None) -> None:
        self.spec = spec

    async def aclose(self) -> None:
        """Release pools/clients. Called once when the Ductwork instance closes."""

    async def ping(self) -> str:
        """A harmless call proving the resource answers: connect, authenticate, ask for
        nothing that changes anything (`ductwork doctor`, ctx.healthcheck). Returns what was
        checked; raises ConnectorError when the resource is down, NotImplementedError when
        the provider has no such check."""
        raise NotImplementedError


class ActionConnector(Connector):
    kind = "action"

    async def run(
        self, event: str, input: Any = None, *, retries: int | None = None,
        timeout: float | None = None,
    ) -> Any:
        raise NotImplementedError


class DatabaseConnector(Connector):
    kind = "database"

    async def insert(self, event: str, data: Any) -> Any:
        raise NotImplementedError

    async def query(self, event: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        raise NotImplementedError

    async def update(self, event: str, where: Mapping[str, Any] | None, data: Any) -> Any:
        raise NotImplementedError

    async def delete(self, event: str, where: Mapping[str, Any] | None) -> bool:
        raise NotImplementedError

    async def upsert(self, event: str, data: Any) -> Any:
        raise NotImplementedError

    async def execute(self, event: str, input: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError


class NotificationConnector(Connector):
    kind = "notification"

    async def email(
        self, event: str, recipients: list[str], subject: Mapping[str, Any] | None = None,
        template: Mapping[str, Any] | None = None,
    ) -> Any:
        raise NotImplementedError

    async def sms(
        self, event: str, phones: list[str], message: Mapping[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    async def push(
        self, event: str, tokens: list[Any], title: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None,
    ) -> Any:
        raise NotImplementedError

    async def send(self, event: str, input: Mapping[str, Any]) -> Any:
        raise NotImplementedError


class StorageConnector(Connector):
    kind = "storage"

    async def upload(self, event: str, input: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def download(self, event: str, input: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    async def delete(self, event: str, input: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    async def list(self, event: str, input: Mapping[str, Any] | None = None) -> list[Any]:
        raise NotImplementedError

    async def signed_url(self, event: str, input: Mapping[str, Any]) -> str:
        raise NotImplementedError


class GraphConnector(Connector):
    kind = "graph"

    async def create_node(self, labels: list[str], properties: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    async def update_node(self, id: Any, properties: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    async def delete_node(self, id: Any) -> bool:
        raise NotImplementedError

    async def create_relationship(
        self, from_: Any, to: Any, type: str, properties: Mapping[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    async def delete_relationship(self, id: Any) -> bool:
        raise NotImplementedError

    async def query(self, action: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        raise NotImplementedError

    async def execute(self, action: str, input: Mapping[str, Any] | None = None) -> Any:
        raise NotImplementedError


class BrokerConnector(Connector):
    kind = "broker"

    async def produce(self, topic: str, message: Any, **options: Any) -> dict[str, Any]:
        raise NotImplementedError


BASES: dict[str, type[Connector]] = {
    c.kind: c
    for c in (ActionConnector, DatabaseConnector, NotificationConnector, StorageConnector,
              GraphConnector, BrokerConnector)
}

# Provider registry: (kind, provider) -> "module:factory". Imported lazily so that a user
# who never touches S3 never imports boto3. A factory takes a ResourceSpec and returns a
# Connector. Connector modules add themselves here; users may call register_provider().
PROVIDERS: dict[tuple[str, str], str | Callable[[ResourceSpec], Connector]] = {}


def register_provider(
    kind: str, provider: str, factory: str | Callable[[ResourceSpec], Connector]
) -> None:
    if kind not in KINDS:
        raise ConfigurationError(f"unknown connector kind '{kind}' (known: {', '.join(KINDS)})")
    PROVIDERS[(kind, provider)] = factory


# The pip extra that brings a provider's client library (pyproject's optional-dependencies);
# any provider not named here is in `connectors`, which holds every client library.
PROVIDER_EXTRA: dict[str, str] = {"postgres": "postgres", "postgresql": "postgres"}


def pip_install(provider: str) -> str:
    """The command that installs what `provider` needs, e.g. pip install 'ductwork[connectors]'."""
    return f"pip install 'ductwork[{PROVIDER_EXTRA.get(provider, 'connectors')}]'"


# The modules each provider's client library brings ("a|b": either will do); the embedded
# providers (http, sqlite, outbox, local, twilio) need none beyond the base install.
PROVIDER_MODULES: dict[str, tuple[str, ...]] = {
    "postgres": ("psycopg", "psycopg_pool"), "postgresql": ("psycopg", "psycopg_pool"),
    "smtp": ("aiosmtplib",), "fcm": ("google.auth",), "webpush": ("pywebpush",),
    "s3": ("boto3",), "ladybug": ("ladybug|kuzu",), "falkordb": ("falkordb",),
    "redis": ("redis",), "nats": ("nats",), "kafka": ("aiokafka",),
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a None in sys.modules
        return False


def uninstalled_module(provider: str) -> str | None:
    """The first module `provider` needs that cannot be imported here, else None."""
    for need in PROVIDER_MODULES.get(provider, ()):
        choices = need.split("|")
        if not any(_importable(m) for m in choices):
            return choices[0]
    return None


def missing_package(provider: str, e: ImportError) -> str:
    return (f"provider '{provider}' needs a package that is not installed "
            f"({e.name or e}): {pip_install(provider)}")


def build_connector(spec: ResourceSpec) -> Connector:
    key = (spec.kind, spec.provider)
    factory = PROVIDERS.get(key)
    if factory is None:
        known = sorted(p for k, p in PROVIDERS if k == spec.kind)
        raise spec.error(
            f"unknown provider '{spec.provider}' (known for {spec.kind}: {', '.join(known)})",
            retryable=False)
    if isinstance(factory, str):
        mod, _, fn = factory.partition(":")
        try:
            factory = getattr(importlib.import_module(mod), fn)
        except ImportError as e:
            raise spec.error(missing_package(spec.provider, e), retryable=False) from None
    assert callable(factory)
    try:
        return factory(spec)
    except ConnectorError as e:
        # A connector is built from its config alone (connections open on the first call), so
        # what fails here is the config, and a retry would build from the same config.
        if e.retryable is None:
            e.retryable = False
        raise


_REF = re.compile(r"\$\{\s*(env|secrets)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")


def resolve_refs(
    value: Any,
    *,
    environ: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    collect: SecretSet | None = None,
    where: str = "",
) -> Any:
    """Replace `${env.NAME}` / `${secrets.NAME}` in a config tree; record the values as secrets."""
    environ = os.environ if environ is None else environ
    secrets = secrets or {}

    def one(text: str) -> str:
        def sub(m: re.Match[str]) -> str:
            src, name = m.group(1), m.group(2)
            table = environ if src == "env" else secrets
            if name not in table:
                raise ConfigurationError(
                    f"{where or 'config'}: {src}.{name} is not set; "
                    + ("export it in the environment" if src == "env"
                       else f"pass it in Ductwork(secrets={{...}}), or to the ductwork "
                       f"command with --secrets-file or DUCTWORK_SECRET_{name}")
                )
            val = str(table[name])
            if collect is not None:
                collect.add(val)
            return val

        return _REF.sub(sub, text)

    if isinstance(value, str):
        return one(value)
    if isinstance(value, dict):
        return {k: resolve_refs(v, environ=environ, secrets=secrets, collect=collect,
                                where=where) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_refs(v, environ=environ, secrets=secrets, collect=collect, where=where)
                for v in value]
    return value


# Config validators: (kind, provider) -> "module:function". The function takes the resource
# definition (the whole block from the product file) and one environment's config (refs
# unresolved) and returns problems as (path inside the resource block, message) pairs, so
# `ductwork validate` can point at the line. Optional per provider.
Problem = tuple[tuple[str | int, ...], str]
Validator = Callable[[dict[str, Any], dict[str, Any]], list[Problem]]
VALIDATORS: dict[tuple[str, str], str | Validator] = {}


def register_validator(
    kind: str, provider: str,
    fn: str | Callable[[dict[str, Any], dict[str, Any]], list[Problem]],
) -> None:
    VALIDATORS[(kind, provider)] = fn


def validate_resource(
    kind: str, definition: dict[str, Any], config: dict[str, Any]
) -> list[Problem]:
    provider = str(config.get("provider", DEFAULT_PROVIDER.get(kind, "")))
    fn = VALIDATORS.get((kind, provider))
    if fn is None:
        return []
    if isinstance(fn, str):
        mod, _, name = fn.partition(":")
        try:
            fn = getattr(importlib.import_module(mod), name)
        except ImportError:
            return []
    assert callable(fn)
    return list(fn(definition, config))


# The provider used when an environment's config names none.
DEFAULT_PROVIDER: dict[str, str] = {
    "action": "http",
    "database": "sqlite",
    "notification": "outbox",
    "storage": "local",
    "graph": "ladybug",
    "broker": "redis",
}
