"""In-memory test doubles, one per connector kind, for unit tests of workflows and the engine."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from ductwork.connectors.base import (
    ActionConnector,
    BrokerConnector,
    DatabaseConnector,
    GraphConnector,
    NotificationConnector,
    StorageConnector,
)
from ductwork.errors import ConnectorError


class MemoryAction(ActionConnector):
    """events: name -> a callable(input) or a canned response. `calls` records every call."""

    def __init__(self, events: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.events = dict(events or {})
        self.calls: list[tuple[str, Any]] = []

    async def run(self, event: str, input: Any = None, *, retries: int | None = None,
                  timeout: float | None = None) -> Any:
        self.calls.append((event, input))
        if event not in self.events:
            raise ConnectorError(f"unknown event '{event}'", kind="action", event=event,
                                 retryable=False)
        handler = self.events[event]
        return handler(input) if callable(handler) else handler


class MemoryDatabase(DatabaseConnector):
    """events: name -> table; rows get an integer `id`."""

    def __init__(self, events: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.events = dict(events or {})
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    def _table(self, event: str) -> list[dict[str, Any]]:
        if event not in self.events:
            raise ConnectorError(f"unknown event '{event}'", kind="database", event=event,
                                 retryable=False)
        return self.tables.setdefault(self.events[event], [])

    async def insert(self, event: str, data: Any) -> Any:
        row = {"id": next(self._ids), **dict(data)}
        self._table(event).append(row)
        return row

    async def query(self, event: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        return [r for r in self._table(event) if _match(r, params)]

    async def update(self, event: str, where: Mapping[str, Any] | None, data: Any) -> Any:
        rows = [r for r in self._table(event) if _match(r, where)]
        for r in rows:
            r.update(data)
        return rows

    async def delete(self, event: str, where: Mapping[str, Any] | None) -> bool:
        table = self._table(event)
        keep = [r for r in table if not _match(r, where)]
        gone = len(table) - len(keep)
        table[:] = keep
        return gone > 0


def _match(row: Mapping[str, Any], where: Mapping[str, Any] | None) -> bool:
    return all(row.get(k) == v for k, v in (where or {}).items())


class MemoryNotification(NotificationConnector):
    def __init__(self, fail: bool | Callable[[str], bool] = False) -> None:
        super().__init__()
        self.sent: list[dict[str, Any]] = []
        self.fail = fail

    def _send(self, channel: str, event: str, **fields: Any) -> dict[str, Any]:
        failing = self.fail(event) if callable(self.fail) else self.fail
        if failing:
            raise ConnectorError("delivery refused", kind="notification", event=event)
        msg = {"channel": channel, "event": event, **fields}
        self.sent.append(msg)
        return {"id": len(self.sent), "channel": channel}

    async def email(self, event: str, recipients: list[str], subject: Any = None,
                    template: Any = None) -> Any:
        return self._send("email", event, recipients=recipients, subject=subject,
                          template=template)

    async def sms(self, event: str, phones: list[str], message: Any = None) -> Any:
        return self._send("sms", event, phones=phones, message=message)

    async def push(self, event: str, tokens: list[Any], title: Any = None, body: Any = None,
                   data: Any = None) -> Any:
        return self._send("push", event, tokens=tokens, title=title, body=body, data=data)

    async def send(self, event: str, input: Mapping[str, Any]) -> Any:
        return self._send("send", event, input=dict(input))


class MemoryStorage(StorageConnector):
    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, tuple[bytes, str]] = {}

    async def upload(self, event: str, input: Mapping[str, Any]) -> dict[str, Any]:
        data = input.get("buffer", b"")
        raw = data.encode() if isinstance(data, str) else bytes(data)
        key = f"{event}/{input.get('file_name', 'file')}"
        ctype = str(input.get("mime_type", "application/octet-stream"))
        self.files[key] = (raw, ctype)
        return {"file_key": key, "url": f"memory://{key}", "size": len(raw),
                "content_type": ctype}

    async def download(self, event: str, input: Mapping[str, Any]) -> dict[str, Any]:
        raw, ctype = self.files[str(input["file_key"])]
        return {"content": raw, "content_type": ctype, "size": len(raw)}

    async def delete(self, event: str, input: Mapping[str, Any]) -> bool:
        return self.files.pop(str(input["file_key"]), None) is not None


class MemoryGraph(GraphConnector):
    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, dict[str, Any]] = {}
        self.rels: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    async def create_node(self, labels: list[str], properties: Mapping[str, Any]) -> Any:
        nid = str(properties.get("id") or f"n{next(self._ids)}")
        self.nodes[nid] = {"id": nid, "labels": list(labels), "properties": dict(properties)}
        return self.nodes[nid]

    async def update_node(self, id: Any, properties: Mapping[str, Any]) -> Any:
        self.nodes[str(id)]["properties"].update(properties)
        return self.nodes[str(id)]

    async def delete_node(self, id: Any) -> bool:
        return self.nodes.pop(str(id), None) is not None

    async def create_relationship(self, from_: Any, to: Any, type: str,
                                  properties: Mapping[str, Any] | None = None) -> Any:
        rid = f"r{next(self._ids)}"
        self.rels[rid] = {"id": rid, "type": type, "from": from_, "to": to,
                          "properties": dict(properties or {})}
        return self.rels[rid]

    async def delete_relationship(self, id: Any) -> bool:
        return self.rels.pop(str(id), None) is not None


class MemoryBroker(BrokerConnector):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[tuple[str, Any]] = []

    async def produce(self, topic: str, message: Any, **options: Any) -> dict[str, Any]:
        self.messages.append((topic, message))
        return {"topic": topic, "offset": len(self.messages) - 1}
