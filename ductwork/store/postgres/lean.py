"""The hot path's single statements, sent through libpq directly: one write, one wait."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import weakref
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection, errors, pq

Conn = AsyncConnection[Any]
Param = bytes | None

_IDLE = pq.TransactionStatus.IDLE
_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)
_SQLSTATE = pq.DiagnosticField.SQLSTATE
_DRAIN_S = 5.0


class Statement:
    """One SQL text of the hot path, prepared by name once per connection. The SQL uses %s
    placeholders (as psycopg's); every parameter is sent as text and typed by the server from
    the statement's casts and columns, so no type travels with a value."""

    __slots__ = ("name", "sql", "text")

    def __init__(self, sql: str) -> None:
        if "%%" in sql or "%(" in sql:
            raise ValueError("only positional %s placeholders are supported")
        self.text = sql  # for psycopg, where the lean path does not apply
        n = 0

        def number(_: re.Match[str]) -> str:
            nonlocal n
            n += 1
            return f"${n}"

        self.sql = re.sub(r"%s", number, sql).encode()
        # The name is the text's hash: equal texts share one prepared statement.
        self.name = b"dw_" + hashlib.sha1(self.sql).hexdigest()[:20].encode()


_statements: dict[str, Statement] = {}


def statement(sql: str) -> Statement:
    """The Statement of this text (made once: the hot path's texts are a handful)."""
    stmt = _statements.get(sql)
    if stmt is None:
        stmt = _statements[sql] = Statement(sql)
    return stmt


class Unsupported(Exception):
    """A value the text encoder does not know, or a connection not in a state for the lean
    path: the caller runs the statement through psycopg instead."""


def encode(v: Any) -> Param:
    """A parameter in PostgreSQL's text input format."""
    if v is None:
        return None
    t = type(v)
    if t is str:
        return v.encode()
    if t is bool:
        return b"t" if v else b"f"
    if t is int:
        return str(v).encode()
    if t is float:
        return repr(v).encode()  # 'inf', '-inf' and 'nan' are float8 input too
    if t is list:
        return b"{" + b",".join(_element(x) for x in v) + b"}"
    raise Unsupported(f"cannot send a {t.__name__} as text")


def _element(v: Any) -> bytes:
    if v is None:
        return b"NULL"
    t = type(v)
    if t is str:
        return b'"' + v.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'
    if t is float or t is int:
        return repr(v).encode()
    raise Unsupported(f"cannot send a {t.__name__} in an array as text")


# The statements each connection has prepared (a connection that is closed and replaced is a
# new object, with nothing prepared).
_prepared: weakref.WeakKeyDictionary[Conn, set[bytes]] = weakref.WeakKeyDictionary()


async def execute(conn: Conn, stmt: Statement, params: Sequence[Any]) -> pq.abc.PGresult:
    """Run the statement on an idle autocommit connection and return its result: psycopg's
    cursor machinery costs several times the libpq calls for a one-row statement. Raises
    Unsupported (nothing sent) when the lean path does not apply, psycopg's errors otherwise."""
    pg = conn.pgconn
    if pg.transaction_status != _IDLE or pg.pipeline_status or conn.info.encoding != "utf-8":
        raise Unsupported("the connection is not idle")
    values = [encode(p) for p in params]
    done = _prepared.get(conn)
    if done is None:
        done = _prepared[conn] = set()
    if stmt.name not in done:
        await _prepare(conn, stmt)
        done.add(stmt.name)
    try:
        return _check(conn, await _run(conn, stmt.name, values))
    except errors.InvalidSqlStatementName:
        # DEALLOCATE ALL or DISCARD ALL ran on this connection: prepare once more.
        done.discard(stmt.name)
        await _prepare(conn, stmt)
        done.add(stmt.name)
        return _check(conn, await _run(conn, stmt.name, values))


async def _prepare(conn: Conn, stmt: Statement) -> None:
    conn.pgconn.send_prepare(stmt.name, stmt.sql)
    # Already there: an earlier prepare was interrupted after the server had done it.
    with contextlib.suppress(errors.DuplicatePreparedStatement):
        _check(conn, await _results(conn))


async def _run(conn: Conn, name: bytes, values: list[Param]) -> pq.abc.PGresult:
    conn.pgconn.send_query_prepared(name, values)
    return await _results(conn)


def _check(conn: Conn, res: pq.abc.PGresult) -> pq.abc.PGresult:
    if res.status in _OK:
        return res
    state = (res.error_field(_SQLSTATE) or b"").decode()
    msg = res.get_error_message(conn.info.encoding)
    try:
        cls = errors.lookup(state)
    except KeyError:
        cls = psycopg.DatabaseError
    raise cls(msg)


async def _results(conn: Conn) -> pq.abc.PGresult:
    """Flush what was sent, then the statement's last result once the server has answered.
    Cancelled while waiting, the connection still reads the answer (within a few seconds) so
    that it goes back to its pool idle, as psycopg does; failing that it is closed."""
    try:
        await _flush(conn)
        return await _collect(conn)
    except psycopg.Error:
        raise
    except BaseException:
        try:
            await asyncio.wait_for(asyncio.shield(_collect(conn)), _DRAIN_S)
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
        raise


async def _flush(conn: Conn) -> None:
    pg = conn.pgconn
    while pg.flush():  # 1: not all sent (a large statement on a full socket buffer)
        await _ready(conn, writable=True)


async def _collect(conn: Conn) -> pq.abc.PGresult:
    pg = conn.pgconn
    last: pq.abc.PGresult | None = None
    while True:
        if pg.is_busy():
            await _ready(conn, writable=False)
            pg.consume_input()
            continue
        res = pg.get_result()
        if res is None:
            if last is None:
                raise psycopg.OperationalError("the server sent no result")
            return last
        last = res


async def _ready(conn: Conn, *, writable: bool) -> None:
    """Wait for the socket: one future, woken by the event loop's selector."""
    pg = conn.pgconn
    if pg.status == pq.ConnStatus.BAD:
        raise psycopg.OperationalError(pg.get_error_message() or "the connection is closed")
    fd = pg.socket
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    add, remove = ((loop.add_writer, loop.remove_writer) if writable
                   else (loop.add_reader, loop.remove_reader))
    add(fd, wake)
    try:
        await fut
    finally:
        remove(fd)


async def one(conn: Conn, sql: str, params: Sequence[Any]) -> tuple[int, str | None]:
    """(rows affected or returned, the first row's first column as text) of one statement in
    its own transaction: the lean path, or psycopg where it does not apply."""
    try:
        res = await execute(conn, statement(sql), params)
    except Unsupported:
        cur = await conn.execute(sql, params, prepare=True)
        row = await cur.fetchone() if cur.description else None
        return cur.rowcount, None if row is None or row[0] is None else str(row[0])
    value = res.get_value(0, 0) if res.ntuples and res.nfields else None
    rows = res.command_tuples
    return (rows if rows is not None else res.ntuples), (None if value is None
                                                         else value.decode())
