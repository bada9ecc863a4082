"""ctx.action / database / notification / storage / graph / messaging / publish."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ductwork.errors import ConfigurationError, ConnectorError, DuctworkError
from ductwork.util.durations import to_ms

if TYPE_CHECKING:
    from ductwork.connectors.base import Connector
    from ductwork.interpreter.health import HealthcheckComponent
    from ductwork.interpreter.journal import Journal
    from ductwork.interpreter.resilience import FallbackComponent, QuotaComponent


class _Component:
    kind = ""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    def _get(self, name: str) -> Any:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"ctx.{self.kind}: name the resource, e.g. "
                                     f"{_ARG[self.kind]}='my-resource'")
        run = self._journal.run
        return self._journal.engine.runtime.connectors.get(self.kind, name, run.product, run.env)

    async def _call(self, name: str, event: str | None, op: str, *args: Any, **kw: Any) -> Any:
        conn: Connector = self._get(name)
        method = getattr(conn, op, None)
        if method is None:
            raise ConnectorError(f"this connector does not support '{op}'", kind=self.kind,
                                 resource=name, event=event, env=self._journal.run.env,
                                 retryable=False)
        try:
            return await method(*args, **kw)
        except DuctworkError:
            raise
        except NotImplementedError:
            raise ConnectorError(f"'{op}' is not implemented by this provider", kind=self.kind,
                                 resource=name, event=event, env=self._journal.run.env,
                                 retryable=False) from None
        except Exception as e:  # a provider bug or an unexpected client error
            msg = self._journal.engine.runtime.redact(f"{type(e).__name__}: {e}")
            raise ConnectorError(msg, kind=self.kind, resource=name, event=event,
                                 env=self._journal.run.env) from None


_ARG = {"action": "app", "database": "database", "notification": "notification",
        "storage": "storage", "graph": "graph", "broker": "broker"}


class ActionComponent(_Component):
    kind = "action"

    async def run(self, app: str, event: str, input: Any = None, *, retries: int | None = None,
                  timeout: Any = None) -> Any:
        kw: dict[str, Any] = {}
        if retries is not None:
            kw["retries"] = retries
        if timeout is not None:
            kw["timeout"] = to_ms(timeout, "action timeout") / 1000
        return await self._call(app, event, "run", event, input, **kw)


class DatabaseComponent(_Component):
    kind = "database"

    async def insert(self, database: str, event: str, data: Any) -> Any:
        return await self._call(database, event, "insert", event, data)

    async def query(self, database: str, event: str, params: Mapping[str, Any] | None = None
                    ) -> Any:
        return await self._call(database, event, "query", event, params)

    async def update(self, database: str, event: str, where: Mapping[str, Any] | None = None,
                     data: Any = None) -> Any:
        return await self._call(database, event, "update", event, where, data)

    async def delete(self, database: str, event: str, where: Mapping[str, Any] | None = None
                     ) -> Any:
        return await self._call(database, event, "delete", event, where)

    async def upsert(self, database: str, event: str, data: Any) -> Any:
        return await self._call(database, event, "upsert", event, data)

    async def execute(self, database: str, event: str, input: Mapping[str, Any] | None = None
                      ) -> Any:
        return await self._call(database, event, "execute", event, input)


class NotificationComponent(_Component):
    kind = "notification"

    async def email(self, notification: str, event: str, recipients: str | list[str],
                    subject: Mapping[str, Any] | None = None,
                    template: Mapping[str, Any] | None = None) -> Any:
        return await self._call(notification, event, "email", event, recipients,
                                subject, template)

    async def sms(self, notification: str, event: str, phones: str | list[str],
                  message: Mapping[str, Any] | None = None) -> Any:
        return await self._call(notification, event, "sms", event, phones, message)

    async def push(self, notification: str, event: str, tokens: Any,
                   title: Mapping[str, Any] | None = None, body: Mapping[str, Any] | None = None,
                   data: Mapping[str, Any] | None = None) -> Any:
        return await self._call(notification, event, "push", event, tokens, title, body,
                                data)

    async def send(self, notification: str, event: str, input: Mapping[str, Any]) -> Any:
        return await self._call(notification, event, "send", event, input)


class StorageComponent(_Component):
    kind = "storage"

    async def upload(self, storage: str, event: str, input: Mapping[str, Any]) -> Any:
        return await self._call(storage, event, "upload", event, input)

    async def download(self, storage: str, event: str, input: Mapping[str, Any]) -> Any:
        return await self._call(storage, event, "download", event, input)

    async def delete(self, storage: str, event: str, input: Mapping[str, Any]) -> Any:
        return await self._call(storage, event, "delete", event, input)

    async def list(self, storage: str, event: str, input: Mapping[str, Any] | None = None
                   ) -> Any:
        return await self._call(storage, event, "list", event, input)

    async def signed_url(self, storage: str, event: str, input: Mapping[str, Any]) -> Any:
        return await self._call(storage, event, "signed_url", event, input)


class GraphComponent(_Component):
    kind = "graph"

    async def create_node(self, graph: str, labels: str | list[str],
                          properties: Mapping[str, Any] | None = None) -> Any:
        return await self._call(graph, None, "create_node",
                                [labels] if isinstance(labels, str) else list(labels),
                                properties or {})

    async def update_node(self, graph: str, id: Any, properties: Mapping[str, Any]) -> Any:
        return await self._call(graph, None, "update_node", id, properties)

    async def delete_node(self, graph: str, id: Any) -> Any:
        return await self._call(graph, None, "delete_node", id)

    async def create_relationship(self, graph: str, from_: Any, to: Any, type: str,
                                  properties: Mapping[str, Any] | None = None) -> Any:
        return await self._call(graph, None, "create_relationship", from_, to, type,
                                properties or {})

    async def delete_relationship(self, graph: str, id: Any) -> Any:
        return await self._call(graph, None, "delete_relationship", id)

    async def query(self, graph: str, action: str, params: Mapping[str, Any] | None = None
                    ) -> Any:
        return await self._call(graph, action, "query", action, params)

    async def execute(self, graph: str, action: str, input: Mapping[str, Any] | None = None
                      ) -> Any:
        return await self._call(graph, action, "execute", action, input)


class MessagingComponent(_Component):
    kind = "broker"

    async def produce(self, event: str, message: Any, **options: Any) -> Any:
        broker, sep, topic = str(event).partition(":")
        if not sep or not broker or not topic:
            raise ConfigurationError(
                f"ctx.messaging.produce: event must be 'broker:topic', got {event!r}")
        return await self._call(broker, topic, "produce", topic, message, **options)


class PublishComponent(_Component):
    kind = "broker"

    async def send(self, broker: str, event: str, input: Mapping[str, Any] | None = None) -> Any:
        data = dict(input or {})
        if "message" not in data:
            raise ConfigurationError("ctx.publish.send: input must be {'message': ...}")
        message = data.pop("message")
        return await self._call(broker, event, "produce", event, message, **data)


class Components:
    """Mixed into ctx: the component accessors are created on first use."""

    _journal: Journal

    @cached_property
    def action(self) -> ActionComponent:
        return ActionComponent(self._journal)

    @cached_property
    def database(self) -> DatabaseComponent:
        return DatabaseComponent(self._journal)

    @cached_property
    def notification(self) -> NotificationComponent:
        return NotificationComponent(self._journal)

    @cached_property
    def storage(self) -> StorageComponent:
        return StorageComponent(self._journal)

    @cached_property
    def graph(self) -> GraphComponent:
        return GraphComponent(self._journal)

    @cached_property
    def messaging(self) -> MessagingComponent:
        return MessagingComponent(self._journal)

    @cached_property
    def publish(self) -> PublishComponent:
        return PublishComponent(self._journal)

    # Several providers (docs/fallback.md); their modules import only on first use.
    @cached_property
    def fallback(self) -> FallbackComponent:
        from ductwork.interpreter.resilience import FallbackComponent

        return FallbackComponent(self._journal)

    @cached_property
    def quota(self) -> QuotaComponent:
        from ductwork.interpreter.resilience import QuotaComponent

        return QuotaComponent(self._journal)

    @cached_property
    def healthcheck(self) -> HealthcheckComponent:
        from ductwork.interpreter.health import HealthcheckComponent

        return HealthcheckComponent(self._journal)
