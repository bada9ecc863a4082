"""The PostgreSQL store's base: URL handling, the connection pool, migrations, retries."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from ductwork.errors import StoreError
from ductwork.store.postgres import lean
from ductwork.store.postgres.notify import Listener
from ductwork.store.postgres.sql import MIGRATE_LOCK
from ductwork.store.protocol import LeaseLostError, RunStore, StepRow
from ductwork.store.schema import MIGRATIONS, SCHEMA_VERSION

T = TypeVar("T")
Conn = AsyncConnection[Any]
_IDLE = psycopg.pq.TransactionStatus.IDLE
HOT_S = 60.0  # how long the hot-path connection stays out of the pool at a time

def safe_url(url: str) -> str:
    """The URL with its password masked, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """Separate ductwork's own query parameters (pool_min_size, pool_max_size) from libpq's."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    rest = []
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k in ("pool_min_size", "pool_max_size"):
            ours[k] = v
        else:
            rest.append((k, v))
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    # Percent-encoding only: libpq reads "+" as a plus sign, never as a space, so urlencode's
    # default would turn `options=-c%20lock_timeout%3D5s` into a setting libpq rejects.
    query = urlencode(rest, quote_via=quote)
    return urlunsplit(parts._replace(scheme=scheme, query=query)), ours


class _Fail(Exception):
    """A fence inside a pipelined transaction failed (raised by SQL function dw_fail)."""


class PgBase(RunStore):
    """What every part of PostgresStore shares: the URL, the connection pool, migrations and
    _with(), which retries connection failures."""

    def __init__(self, url: str, *, min_size: int | None = None, max_size: int | None = None,
                 migrate: bool = True, retry_s: float = 15.0) -> None:
        self.url = url
        self.conninfo, ours = _split_url(url)
        try:
            self.min_size = int(min_size if min_size is not None else
                                ours.get("pool_min_size", 1))
            self.max_size = int(max_size if max_size is not None else
                                ours.get("pool_max_size", 10))
        except ValueError:
            raise StoreError(f"{safe_url(url)}: pool_min_size/pool_max_size must be integers"
                             ) from None
        if self.min_size < 0 or self.max_size < max(1, self.min_size):
            raise StoreError(f"{safe_url(url)}: need 0 <= pool_min_size <= pool_max_size, "
                             "pool_max_size >= 1")
        self.migrate = migrate
        self.retry_s = retry_s
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listener = Listener(self.conninfo)
        self._open_lock = asyncio.Lock()
        # workflow id -> (monotonic time, steps) read by claim_due(), for the load_steps()
        # that drives the run next (claims.py)
        self._claimed_steps: dict[str, tuple[float, list[StepRow]]] = {}
        self._owners: tuple[float, list[str]] | None = None  # live_owners(), when read
        # One pooled connection kept checked out for the hot path (_on_hot); not with a pool
        # of one, which it would take from everyone else.
        self._keep_hot = self.max_size >= 2
        self._hot: Conn | None = None
        self._hot_free = False  # _hot may be used (or taken from the pool) now
        self._hot_since = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    async def _connect(self) -> Conn:
        try:
            return await AsyncConnection.connect(self.conninfo, autocommit=True,
                                                 connect_timeout=10)
        except psycopg.Error as e:
            raise StoreError(f"cannot connect to the PostgreSQL store {safe_url(self.url)}: "
                             f"{_first_line(e)}") from None

    async def open(self) -> None:
        async with self._open_lock:
            if self._pool is not None:
                return
            conn = await self._connect()
            try:
                await self._migrate(conn, apply=self.migrate)
            finally:
                await conn.close()
            await self._open_pool()
            self._hot_free = self._keep_hot

    async def _open_pool(self) -> None:
        if self._pool is None:
            pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
                self.conninfo, min_size=self.min_size, max_size=self.max_size, open=False,
                kwargs={"autocommit": True}, name="ductwork-store", timeout=30.0)
            try:
                await pool.open(wait=self.min_size > 0, timeout=30.0)
            except psycopg.Error as e:
                await pool.close()
                raise StoreError(f"cannot open a connection pool to {safe_url(self.url)}: "
                                 f"{_first_line(e)}") from None
            self._pool = pool

    async def close(self) -> None:
        await self._listener.close()
        if self._pool is not None:
            hot, self._hot = self._hot, None
            if hot is not None and self._hot_free:  # else its user gives it back
                await self._pool.putconn(hot)
            self._hot_free = False
            pool, self._pool = self._pool, None
            await pool.close()

    async def _migrate(self, conn: Conn, *, apply: bool) -> int:
        # Workers starting together all try to migrate: the advisory lock serializes them and
        # the second finds the work done. DDL is transactional in PostgreSQL.
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (MIGRATE_LOCK,))
            await conn.execute("CREATE TABLE IF NOT EXISTS dw_meta (key TEXT PRIMARY KEY, "
                               "value TEXT)")
            version = await _version(conn)
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"the store {safe_url(self.url)} has schema version {version}, newer than "
                    f"this ductwork ({SCHEMA_VERSION}); upgrade ductwork")
            if version < SCHEMA_VERSION and not apply:
                raise StoreError(
                    f"the store {safe_url(self.url)} has schema version {version}; this "
                    f"ductwork needs {SCHEMA_VERSION}: run `ductwork db upgrade --store URL`")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for stmt in MIGRATIONS[v]("postgres"):
                    await conn.execute(stmt)
            if version != SCHEMA_VERSION:
                await conn.execute(
                    "INSERT INTO dw_meta VALUES ('schema_version', %s) ON CONFLICT (key) "
                    "DO UPDATE SET value=EXCLUDED.value", (str(SCHEMA_VERSION),))
        return version

    async def upgrade(self) -> tuple[int, int]:
        """Apply pending migrations; returns (version before, version after)."""
        conn = await self._connect()
        try:
            before = await self._migrate(conn, apply=True)
        finally:
            await conn.close()
        return before, SCHEMA_VERSION

    async def schema_version(self) -> int:
        """The version recorded in dw_meta (0 for an empty database); never migrates."""
        conn = await self._connect()
        try:
            return await _version(conn)
        finally:
            await conn.close()

    @property
    def pool(self) -> AsyncConnectionPool[Conn]:
        if self._pool is None:
            raise StoreError("the run store is closed (call open() first)")
        return self._pool

    async def _with(self, fn: Callable[[Conn, int], Awaitable[T]]) -> T:
        """Run fn(conn, attempt) on a pooled connection, retrying connection failures (a restart
        or fail-over of the database) for up to retry_s seconds."""
        deadline = time.monotonic() + self.retry_s
        delay = 0.05
        attempt = 0
        while True:
            try:
                wait = max(1.0, deadline - time.monotonic())
                if self._hot_free:
                    return await self._on_hot(fn, attempt, wait)
                async with self.pool.connection(timeout=wait) as conn:
                    return await fn(conn, attempt)
            except psycopg.OperationalError as e:
                if time.monotonic() >= deadline or self._pool is None:
                    raise StoreError(_gave_up(self.url, e, self.retry_s)) from None
            except psycopg.Error as e:
                raise StoreError(f"PostgreSQL store error: {_first_line(e)}") from None
            attempt += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _on_hot(self, fn: Callable[[Conn, int], Awaitable[T]], attempt: int,
                      wait: float) -> T:
        """fn on the connection kept out of the pool between statements: a lone run's
        statements follow one another on it without the pool's checkout and return (about a
        third of the client's CPU per statement). Whoever finds it in use takes a pooled
        connection as before. It goes back to the pool after HOT_S seconds (the pool's
        lifetime and health rules apply to it again), when it is not idle after a statement
        (a broken or interrupted connection, which the pool discards), and on close()."""
        self._hot_free = False
        pool = self.pool
        try:
            hot = self._hot
            if hot is None:
                hot = await pool.getconn(timeout=wait)
                self._hot, self._hot_since = hot, time.monotonic()
            try:
                return await fn(hot, attempt)
            finally:
                if (self._hot is not hot  # close() let it go meanwhile
                        or hot.pgconn.transaction_status != _IDLE
                        or time.monotonic() - self._hot_since > HOT_S):
                    if self._hot is hot:
                        self._hot = None
                    await pool.putconn(hot)  # a closed pool closes it
        finally:
            self._hot_free = self._keep_hot and self._pool is not None

    async def _fetch(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
                     ) -> list[tuple[Any, ...]]:
        async def go(conn: Conn, _: int) -> list[tuple[Any, ...]]:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

        return await self._with(go)


async def _version(conn: Conn) -> int:
    cur = await conn.execute("SELECT to_regclass('dw_meta') IS NOT NULL")
    row = await cur.fetchone()
    if not row or not row[0]:
        return 0
    cur = await conn.execute("SELECT value FROM dw_meta WHERE key='schema_version'")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def _transaction(conn: Conn, stmts: list[tuple[str, Sequence[Any]]]
                       ) -> list[psycopg.pq.abc.PGresult] | None:
    """The statements in one transaction and one round trip (lean.transaction: prepared
    statements in one pipeline); the results, or None from psycopg's own pipeline where the
    lean path does not apply. A fence that fails raises inside the transaction (dw_fail),
    which rolls it back: _Fail here."""
    try:
        try:
            return await lean.transaction(conn, stmts)
        except lean.Unsupported:
            pass
        # Unprepared: with psycopg 3.3, a failure in a pipeline before the execution that
        # crosses the prepare threshold leaves a statement known as prepared that the server
        # skipped ("prepared statement does not exist" on its next use).
        async with conn.pipeline():
            await conn.execute("BEGIN")
            for sql, params in stmts:
                await conn.execute(sql, params, prepare=False)
            await conn.execute("COMMIT")
        return None
    except psycopg.errors.RaiseException as e:
        await _rollback(conn)
        msg = e.diag.message_primary or ""
        if msg.startswith("dw_fail:"):
            raise _Fail(msg.removeprefix("dw_fail:")) from None
        raise
    except BaseException:
        await _rollback(conn)
        raise


async def _rollback(conn: Conn) -> None:
    if conn.info.transaction_status in (psycopg.pq.TransactionStatus.INTRANS,
                                        psycopg.pq.TransactionStatus.INERROR):
        with contextlib.suppress(psycopg.Error):
            await conn.execute("ROLLBACK")








def _lost(workflow_id: str) -> LeaseLostError:
    return LeaseLostError(f"run {workflow_id} is no longer owned by this process (its lease "
                          "expired and another worker took it over)")


def _gave_up(url: str, e: psycopg.OperationalError, retry_s: float) -> str:
    """Why _with() stopped retrying: a lock or statement timeout is not an unreachable server."""
    if isinstance(e, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled):
        return (f"the PostgreSQL store {safe_url(url)} kept timing out for {retry_s:g}s: "
                f"{_first_line(e)} (another session holds a lock on ductwork's dw_* tables, "
                "or a statement_timeout/lock_timeout is too short; find it in pg_locks and "
                "pg_stat_activity)")
    return f"the PostgreSQL store {safe_url(url)} is unreachable: {_first_line(e)}"


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]

