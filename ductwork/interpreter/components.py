"""ctx.action / database / notification / storage / graph / messaging / publish."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ductwork.connectors import idempotency
from ductwork.errors import ConfigurationError, ConnectorError, DuctworkError, not_retryable
from ductwork.interpreter.input_view import plain
from ductwork.util.durations import to_ms

if TYPE_CHECKING:
    from ductwork.connectors.base import Connector
    from ductwork.interpreter.health import HealthcheckComponent
    from ductwork.interpreter.journal import Journal
    from ductwork.interpreter.resilience import FallbackComponent, QuotaComponent

DEFAULT_RETRY_DELAY_MS = 1000.0  # as a step's retry_delay


class CallOptions:
    """`retries`, `retry_delay` and `timeout` of one component call, checked once."""

    __slots__ = ("delay_s", "given", "retries", "timeout_s")

    def __init__(self, where: str, retries: Any = None, retry_delay: Any = None,
                 timeout: Any = None) -> None:
        if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int)
                                    or retries < 0):
            raise ConfigurationError(f"{where}: retries must be a whole number >= 0, got "
                                     f"{retries!r}")
        self.retries = retries or 0
        self.delay_s = to_ms(DEFAULT_RETRY_DELAY_MS if retry_delay is None else retry_delay,
                             f"{where} retry_delay") / 1000
        self.timeout_s = None if timeout is None else to_ms(timeout, f"{where} timeout") / 1000
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigurationError(f"{where}: timeout must be more than 0")
        self.given = retries is not None or retry_delay is not None or timeout is not None


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

    def _error(self, message: str, name: str, event: str | None, **kw: Any) -> ConnectorError:
        return ConnectorError(message, kind=self.kind, resource=name, event=event,
                              env=self._journal.run.env, **kw)

    async def _call(self, name: str, event: str | None, op: str, *args: Any,
                    opts: CallOptions | None = None, **kw: Any) -> Any:
        """Call the connector; with `opts`, each attempt within its timeout and a failed one
        tried again after retry_delay, up to `retries` more times, unless no retry can help."""
        conn: Connector = self._get(name)
        method = getattr(conn, op, None)
        if method is None:
            raise self._error(f"this connector does not support '{op}'", name, event,
                              retryable=False)
        args, kw = plain(args), plain(kw)
        if opts is None or not opts.given:
            return await self._once(method, name, event, op, args, kw)
        # Every attempt is the same call: an HTTP action sends the same idempotency key.
        with idempotency.one_call():
            attempt = 0
            while True:
                attempt += 1
                try:
                    if opts.timeout_s is None:
                        return await self._once(method, name, event, op, args, kw)
                    try:
                        once = self._once(method, name, event, op, args, kw)
                        return await asyncio.wait_for(once, opts.timeout_s)
                    except TimeoutError:
                        raise self._error(f"'{op}' timed out after {opts.timeout_s:g}s", name,
                                          event, retryable=True) from None
                except DuctworkError as e:
                    if attempt > opts.retries or not_retryable(e) is not None:
                        raise
                    self._journal.log("warn", f"ctx.{self.kind} '{op}' attempt {attempt} "
                                      f"failed; retrying in {opts.delay_s:g}s",
                                      {"resource": name, "event": event, "error": str(e)})
                    await asyncio.sleep(opts.delay_s)

    async def _once(self, method: Any, name: str, event: str | None, op: str,
                    args: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        try:
            return await method(*args, **kw)
        except DuctworkError:
            raise
        except NotImplementedError:
            raise self._error(f"'{op}' is not implemented by this provider", name, event,
                              retryable=False) from None
        except Exception as e:  # a provider bug or an unexpected client error
            msg = self._journal.engine.runtime.redact(f"{type(e).__name__}: {e}")
            raise self._error(msg, name, event) from None


_ARG = {"action": "app", "database": "database", "notification": "notification",
        "storage": "storage", "graph": "graph", "broker": "broker"}


class ActionComponent(_Component):
    kind = "action"

    async def run(self, app: str, event: str, input: Any = None, *, retries: int | None = None,
                  retry_delay: Any = None, timeout: Any = None) -> Any:
        if retry_delay is None:
            # The HTTP connector retries by itself (backoff, Retry-After): hand it both.
            kw: dict[str, Any] = {}
            if retries is not None:
                kw["retries"] = retries
            if timeout is not None:
                kw["timeout"] = to_ms(timeout, "action timeout") / 1000
            return await self._call(app, event, "run", event, input, **kw)
        opts = CallOptions(f"ctx.action.run({app}/{event})", retries, retry_delay, timeout)
        return await self._call(app, event, "run", event, input, opts=opts, retries=0)


class DatabaseComponent(_Component):
    kind = "database"

    def _opts(self, op: str, database: str, event: str, retries: Any, retry_delay: Any,
              timeout: Any) -> CallOptions:
        return CallOptions(f"ctx.database.{op}({database}/{event})", retries, retry_delay,
                           timeout)

    async def insert(self, database: str, event: str, data: Any, *, retries: int | None = None,
                     retry_delay: Any = None, timeout: Any = None) -> Any:
        opts = self._opts("insert", database, event, retries, retry_delay, timeout)
        return await self._call(database, event, "insert", event, data, opts=opts)

    async def query(self, database: str, event: str, params: Mapping[str, Any] | None = None,
                    *, retries: int | None = None, retry_delay: Any = None, timeout: Any = None
                    ) -> Any:
        opts = self._opts("query", database, event, retries, retry_delay, timeout)
        return await self._call(database, event, "query", event, params, opts=opts)

    async def update(self, database: str, event: str, where: Mapping[str, Any] | None = None,
                     data: Any = None, *, retries: int | None = None, retry_delay: Any = None,
                     timeout: Any = None) -> Any:
        opts = self._opts("update", database, event, retries, retry_delay, timeout)
        return await self._call(database, event, "update", event, where, data, opts=opts)

    async def delete(self, database: str, event: str, where: Mapping[str, Any] | None = None,
                     *, retries: int | None = None, retry_delay: Any = None, timeout: Any = None
                     ) -> Any:
        opts = self._opts("delete", database, event, retries, retry_delay, timeout)
        return await self._call(database, event, "delete", event, where, opts=opts)

    async def upsert(self, database: str, event: str, data: Any, *, retries: int | None = None,
                     retry_delay: Any = None, timeout: Any = None) -> Any:
        opts = self._opts("upsert", database, event, retries, retry_delay, timeout)
        return await self._call(database, event, "upsert", event, data, opts=opts)

    async def execute(self, database: str, event: str, input: Mapping[str, Any] | None = None,
                      *, retries: int | None = None, retry_delay: Any = None,
                      timeout: Any = None) -> Any:
        opts = self._opts("execute", database, event, retries, retry_delay, timeout)
        return await self._call(database, event, "execute", event, input, opts=opts)


# notification.send's multi-channel form: channel -> the key that holds its addresses.
CHANNELS = {"email": "recipients", "sms": "phones", "push": "tokens"}


class NotificationComponent(_Component):
    kind = "notification"

    def _opts(self, op: str, notification: str, event: str, retries: Any, retry_delay: Any,
              timeout: Any) -> CallOptions:
        return CallOptions(f"ctx.notification.{op}({notification}/{event})", retries,
                           retry_delay, timeout)

    async def email(self, notification: str, event: str, recipients: str | list[str],
                    subject: Mapping[str, Any] | None = None,
                    template: Mapping[str, Any] | None = None, *, retries: int | None = None,
                    retry_delay: Any = None, timeout: Any = None) -> Any:
        opts = self._opts("email", notification, event, retries, retry_delay, timeout)
        return await self._call(notification, event, "email", event, recipients,
                                subject, template, opts=opts)

    async def sms(self, notification: str, event: str, phones: str | list[str],
                  message: Mapping[str, Any] | None = None, *, retries: int | None = None,
                  retry_delay: Any = None, timeout: Any = None) -> Any:
        opts = self._opts("sms", notification, event, retries, retry_delay, timeout)
        return await self._call(notification, event, "sms", event, phones, message, opts=opts)

    async def push(self, notification: str, event: str, tokens: Any,
                   title: Mapping[str, Any] | None = None, body: Mapping[str, Any] | None = None,
                   data: Mapping[str, Any] | None = None, *, retries: int | None = None,
                   retry_delay: Any = None, timeout: Any = None) -> Any:
        opts = self._opts("push", notification, event, retries, retry_delay, timeout)
        return await self._call(notification, event, "push", event, tokens, title, body,
                                data, opts=opts)

    async def send(self, notification: str, event: str, input: Mapping[str, Any], *,
                   retries: int | None = None, retry_delay: Any = None, timeout: Any = None
                   ) -> Any:
        """One channel (`input` holds recipients, phones or tokens), or several at once:
        {"email": {...}, "sms": {...}, "push": {...}} -> {channel: result}. Each channel is
        sent and retried on its own; when one still fails, the call fails naming it and the
        channels that were delivered (so a retry of the step sends those again)."""
        opts = self._opts("send", notification, event, retries, retry_delay, timeout)
        channels = _channels(input)
        if channels is None:
            return await self._call(notification, event, "send", event, input, opts=opts)
        results: dict[str, Any] = {}
        failed: dict[str, DuctworkError] = {}
        for channel, body in channels.items():
            need = CHANNELS[channel]
            others = [k for k in CHANNELS.values() if k != need and k in body]
            if need not in body or others:
                raise self._error(
                    f"input.{channel} must hold '{need}' (and not {', '.join(others)})"
                    if others else f"input.{channel} needs '{need}', the {channel} addresses",
                    notification, event, retryable=False)
            try:
                results[channel] = await self._call(notification, event, "send", event, body,
                                                     opts=opts)
            except DuctworkError as e:
                failed[channel] = e
        if failed:
            detail = "; ".join(f"{c}: {e}" for c, e in failed.items())
            sent = ", ".join(results) or "none"
            err = self._error(f"{len(failed)} of {len(channels)} channel(s) failed ({detail}); "
                              f"delivered: {sent}", notification, event,
                              retryable=all(not_retryable(e) is None for e in failed.values()))
            err.results = results  # type: ignore[attr-defined]
            err.errors = {c: str(e) for c, e in failed.items()}  # type: ignore[attr-defined]
            raise err
        return results


def _channels(input: Any) -> dict[str, Mapping[str, Any]] | None:
    """The channels of send()'s multi-channel form, or None for the one-channel form."""
    if not isinstance(input, Mapping) or not input or not set(input) <= set(CHANNELS):
        return None
    if not all(isinstance(v, Mapping) for v in input.values()):
        return None
    return {str(k): v for k, v in input.items()}


class StorageComponent(_Component):
    kind = "storage"

    def _opts(self, op: str, storage: str, event: str, retries: Any, retry_delay: Any,
              timeout: Any) -> CallOptions:
        return CallOptions(f"ctx.storage.{op}({storage}/{event})", retries, retry_delay,
                           timeout)

    async def upload(self, storage: str, event: str, input: Mapping[str, Any], *,
                     retries: int | None = None, retry_delay: Any = None, timeout: Any = None
                     ) -> Any:
        opts = self._opts("upload", storage, event, retries, retry_delay, timeout)
        return await self._call(storage, event, "upload", event, input, opts=opts)

    async def download(self, storage: str, event: str, input: Mapping[str, Any], *,
                       retries: int | None = None, retry_delay: Any = None, timeout: Any = None
                       ) -> Any:
        opts = self._opts("download", storage, event, retries, retry_delay, timeout)
        return await self._call(storage, event, "download", event, input, opts=opts)

    async def delete(self, storage: str, event: str, input: Mapping[str, Any], *,
                     retries: int | None = None, retry_delay: Any = None, timeout: Any = None
                     ) -> Any:
        opts = self._opts("delete", storage, event, retries, retry_delay, timeout)
        return await self._call(storage, event, "delete", event, input, opts=opts)

    async def list(self, storage: str, event: str, input: Mapping[str, Any] | None = None, *,
                   retries: int | None = None, retry_delay: Any = None, timeout: Any = None
                   ) -> Any:
        opts = self._opts("list", storage, event, retries, retry_delay, timeout)
        return await self._call(storage, event, "list", event, input, opts=opts)

    async def signed_url(self, storage: str, event: str, input: Mapping[str, Any], *,
                         retries: int | None = None, retry_delay: Any = None,
                         timeout: Any = None) -> Any:
        opts = self._opts("signed_url", storage, event, retries, retry_delay, timeout)
        return await self._call(storage, event, "signed_url", event, input, opts=opts)


class GraphComponent(_Component):
    kind = "graph"

    def _opts(self, op: str, graph: str, retries: Any, retry_delay: Any, timeout: Any
              ) -> CallOptions:
        return CallOptions(f"ctx.graph.{op}({graph})", retries, retry_delay, timeout)

    async def create_node(self, graph: str, labels: str | list[str],
                          properties: Mapping[str, Any] | None = None, *,
                          retries: int | None = None, retry_delay: Any = None,
                          timeout: Any = None) -> Any:
        opts = self._opts("create_node", graph, retries, retry_delay, timeout)
        return await self._call(graph, None, "create_node",
                                [labels] if isinstance(labels, str) else list(labels),
                                properties or {}, opts=opts)

    async def update_node(self, graph: str, id: Any, properties: Mapping[str, Any], *,
                          retries: int | None = None, retry_delay: Any = None,
                          timeout: Any = None) -> Any:
        opts = self._opts("update_node", graph, retries, retry_delay, timeout)
        return await self._call(graph, None, "update_node", id, properties, opts=opts)

    async def delete_node(self, graph: str, id: Any, *, retries: int | None = None,
                          retry_delay: Any = None, timeout: Any = None) -> Any:
        opts = self._opts("delete_node", graph, retries, retry_delay, timeout)
        return await self._call(graph, None, "delete_node", id, opts=opts)

    async def create_relationship(self, graph: str, from_: Any, to: Any, type: str,
                                  properties: Mapping[str, Any] | None = None, *,
                                  retries: int | None = None, retry_delay: Any = None,
                                  timeout: Any = None) -> Any:
        opts = self._opts("create_relationship", graph, retries, retry_delay, timeout)
        return await self._call(graph, None, "create_relationship", from_, to, type,
                                properties or {}, opts=opts)

    async def delete_relationship(self, graph: str, id: Any, *, retries: int | None = None,
                                  retry_delay: Any = None, timeout: Any = None) -> Any:
        opts = self._opts("delete_relationship", graph, retries, retry_delay, timeout)
        return await self._call(graph, None, "delete_relationship", id, opts=opts)

    async def query(self, graph: str, action: str, params: Mapping[str, Any] | None = None,
                    *, retries: int | None = None, retry_delay: Any = None, timeout: Any = None
                    ) -> Any:
        opts = self._opts("query", graph, retries, retry_delay, timeout)
        return await self._call(graph, action, "query", action, params, opts=opts)

    async def execute(self, graph: str, action: str, input: Mapping[str, Any] | None = None,
                      *, retries: int | None = None, retry_delay: Any = None,
                      timeout: Any = None) -> Any:
        opts = self._opts("execute", graph, retries, retry_delay, timeout)
        return await self._call(graph, action, "execute", action, input, opts=opts)


class MessagingComponent(_Component):
    kind = "broker"

    async def produce(self, event: str, message: Any, *, retries: int | None = None,
                      retry_delay: Any = None, timeout: Any = None, **options: Any) -> Any:
        broker, sep, topic = str(event).partition(":")
        if not sep or not broker or not topic:
            raise ConfigurationError(
                f"ctx.messaging.produce: event must be 'broker:topic', got {event!r}")
        opts = CallOptions(f"ctx.messaging.produce({event})", retries, retry_delay, timeout)
        return await self._call(broker, topic, "produce", topic, message, opts=opts, **options)


class PublishComponent(_Component):
    kind = "broker"

    async def send(self, broker: str, event: str, input: Mapping[str, Any] | None = None, *,
                   retries: int | None = None, retry_delay: Any = None, timeout: Any = None
                   ) -> Any:
        data = dict(input or {})
        if "message" not in data:
            raise ConfigurationError("ctx.publish.send: input must be {'message': ...}")
        message = data.pop("message")
        opts = CallOptions(f"ctx.publish.send({broker}/{event})", retries, retry_delay, timeout)
        return await self._call(broker, event, "produce", event, message, opts=opts, **data)


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
