"""Server graph provider: FalkorDB (Cypher over the Redis protocol); safe for many processes."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import threading
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from falkordb import Edge, FalkorDB, Node, Path
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ductwork.connectors.base import ResourceSpec
from ductwork.connectors.graph.cypher import (
    BaseGraph,
    node_result,
    quote_ident,
    rel_result,
)
from ductwork.connectors.util import (
    duration_s,
    is_identifier,
)


def _value(v: Any) -> Any:
    if isinstance(v, Node):
        return node_result(list(v.labels or []), {k: _value(x) for k, x in v.properties.items()})
    if isinstance(v, Edge):
        return rel_result(str(v.relation), {k: _value(x) for k, x in v.properties.items()})
    if isinstance(v, Path):
        return {"nodes": [_value(n) for n in v.nodes()],
                "relationships": [_value(e) for e in v.edges()]}
    if isinstance(v, dict):
        return {str(k): _value(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_value(x) for x in v]
    return v


class FalkorGraph(BaseGraph):
    """A sync FalkorDB client (redis connection pool, thread-safe); calls run in a thread.

    The client library sends parameters as a quoted `CYPHER k=v` header, so every value is
    reduced here to the types it quotes correctly (str, int, finite float, bool, None, lists,
    maps with identifier keys); datetimes and UUIDs become ISO / canonical strings.
    """

    provider = "falkordb"

    def __init__(self, spec: ResourceSpec) -> None:
        super().__init__(spec)
        cfg = spec.config
        self.host = str(cfg.get("host") or "127.0.0.1")
        try:
            self.port = int(cfg.get("port") or 6379)
        except (TypeError, ValueError):
            raise spec.error("config port must be a TCP port number") from None
        try:
            # Seconds for the redis socket; written as a duration (bare number = milliseconds).
            self.timeout = duration_s(cfg.get("timeout", "30s"), "config timeout")
        except ValueError as e:
            raise spec.error(str(e)) from None
        self.graph_name = str(cfg.get("graph") or spec.name)
        self._username = cfg.get("username") or None
        self._password = cfg.get("password") or None
        self._db: Any = None
        self._graph: Any = None
        self._lock = threading.Lock()
        self._indexed = False

    def bind(self, op: str, value: Any, path: str = "value") -> Any:
        if isinstance(value, str) and "\x00" in value:
            # The server reads the query as a C string: a NUL would cut the statement short.
            raise self._err(op, f"{path}: text with a NUL character cannot be stored in FalkorDB")
        if value is None or isinstance(value, bool | int | str):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise self._err(op, f"{path}: {value} cannot be stored (not a finite number)")
            return value
        if isinstance(value, Decimal):
            return self.bind(op, float(value), path)
        if isinstance(value, dt.datetime | dt.date | dt.time):
            return value.isoformat()
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, list | tuple):
            return [self.bind(op, v, path) for v in value]
        if isinstance(value, Mapping):
            out = {}
            for k, v in value.items():
                if not is_identifier(k):
                    raise self._err(op, f"{path}: map key {k!r} is not an identifier")
                out[k] = self.bind(op, v, f"{path}.{k}")
            return out
        raise self._err(op, f"{path}: a {type(value).__name__} cannot be stored in the graph")

    # -- in a worker thread -------------------------------------------------------------------
    def _connect(self) -> Any:
        with self._lock:
            if self._graph is None:
                # FalkorDB() talks to the server at once (INFO), hence here and not in __init__.
                self._db = FalkorDB(host=self.host, port=self.port, username=self._username,
                                    password=self._password, socket_timeout=self.timeout,
                                    socket_connect_timeout=min(self.timeout, 10.0))
                self._graph = self._db.select_graph(self.graph_name)
            return self._graph

    def _ensure_indexes(self, graph: Any) -> None:
        # An index on `id` per declared label: find/update/delete by id without a scan.
        if self._indexed:
            return
        for label in self.schema.nodes:
            try:
                graph.query(f"CREATE INDEX FOR (n:{quote_ident(label)}) ON (n.id)")
            except ResponseError as e:
                if "already indexed" not in str(e):
                    raise
        self._indexed = True

    def _run_sync(self, op: str, cypher: str, params: Mapping[str, Any],
                  write: bool) -> list[dict[str, Any]]:
        where = f"FalkorDB at {self.host}:{self.port} (graph '{self.graph_name}')"
        try:
            graph = self._connect()
            self._ensure_indexes(graph)
            res = (graph.query if write else graph.ro_query)(cypher, dict(params))
        except AuthenticationError as e:
            raise self._err(op, f"{where} rejected the credentials ({e}); check username / "
                            "password for this environment") from None
        except (RedisConnectionError, RedisTimeoutError) as e:
            self._reset()
            raise self._err(op, f"cannot reach {where}: {e}", retryable=True) from None
        except ResponseError as e:
            text = str(e)
            if "NOAUTH" in text or "WRONGPASS" in text:
                raise self._err(op, f"{where} needs credentials ({text}); set password") from None
            if "read-only" in text:
                raise self._err(op, "this statement writes; call graph.execute for it") from None
            raise self._err(op, f"FalkorDB refused the statement: {text}") from None
        except (RedisError, ValueError) as e:
            raise self._err(op, f"{where} failed: {e}") from None
        names = [str(h[1]) for h in (res.header or [])]
        return [{n: _value(v) for n, v in zip(names, row, strict=True)}
                for row in res.result_set or []]

    async def ping(self) -> str:
        """Connect (with the password) and PING (no graph or index made)."""
        where = f"FalkorDB at {self.host}:{self.port}"

        def check() -> None:
            try:
                self._connect()
                assert self._db is not None
                self._db.connection.ping()
            except AuthenticationError as e:
                raise self._err("health", f"{where} rejected the credentials ({e})") from None
            except (RedisConnectionError, RedisTimeoutError) as e:
                self._reset()
                raise self._err("health", f"cannot reach {where}: {e}",
                                retryable=True) from None
            except (RedisError, ValueError) as e:
                raise self._err("health", f"{where} failed: {e}") from None

        await asyncio.to_thread(check)
        return f"PING at {self.host}:{self.port}"

    def _reset(self) -> None:
        with self._lock:
            db, self._db, self._graph = self._db, None, None
        if db is not None:
            db.connection.close()

    async def _run(self, op: str, cypher: str, params: Mapping[str, Any], *,
                   write: bool) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._run_sync, op, cypher, params, write)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._reset)


def create(spec: ResourceSpec) -> FalkorGraph:
    return FalkorGraph(spec)
