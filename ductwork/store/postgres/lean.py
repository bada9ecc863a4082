"""The store's statements through libpq directly: prepared, one write and one wait each."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

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


class _OutOfStep(Exception):
    """The server had prepared a statement this side did not know of: send again."""


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


def _names(conn: Conn) -> set[bytes]:
    done = _prepared.get(conn)
    if done is None:
        done = _prepared[conn] = set()
    return done


def _idle(conn: Conn) -> None:
    pg = conn.pgconn
    if pg.transaction_status != _IDLE or pg.pipeline_status or conn.info.encoding != "utf-8":
        raise Unsupported("the connection is not idle")


async def execute(conn: Conn, stmt: Statement, params: Sequence[Any]) -> pq.abc.PGresult:
    """Run the statement on an idle autocommit connection and return its result: psycopg's
    cursor machinery costs several times the libpq calls for a one-row statement. Raises
    Unsupported (nothing sent) when the lean path does not apply, psycopg's errors otherwise."""
    _idle(conn)
    values = [encode(p) for p in params]
    done = _names(conn)
    if stmt.name in done:
        try:
            return _check(conn, await _run(conn, stmt.name, values))
        except errors.InvalidSqlStatementName:
            done.clear()  # DEALLOCATE ALL or DISCARD ALL ran on this connection
    try:
        return (await _pipeline(conn, [stmt], [values], done))[0]
    except _OutOfStep:
        return (await _pipeline(conn, [stmt], [values], done))[0]


async def transaction(conn: Conn, stmts: Sequence[tuple[str, Sequence[Any]]]
                      ) -> list[pq.abc.PGresult]:
    """The statements in one transaction, sent in one pipeline: one write, one wait, the
    results in order once the commit is durable. The pipeline's Sync ends the implicit
    transaction of the extended protocol, so no BEGIN or COMMIT travels: a statement that fails
    rolls back the lot, and its error is raised (psycopg's class, diag included). Raises
    Unsupported (nothing sent) when the lean path does not apply."""
    _idle(conn)
    values = [[encode(p) for p in params] for _, params in stmts]
    plan = [statement(sql) for sql, _ in stmts]
    done = _names(conn)
    try:
        return await _pipeline(conn, plan, values, done)
    except errors.InvalidSqlStatementName:
        done.clear()  # DEALLOCATE ALL or DISCARD ALL ran on this connection
    except _OutOfStep:
        pass
    return await _pipeline(conn, plan, values, done)


async def _run(conn: Conn, name: bytes, values: list[Param]) -> pq.abc.PGresult:
    conn.pgconn.send_query_prepared(name, values)
    try:
        await _flush(conn)
        return await _collect(conn)
    except psycopg.Error:
        raise
    except BaseException:
        await _drain(conn, _collect)
        raise


async def _pipeline(conn: Conn, plan: list[Statement], values: list[list[Param]],
                    done: set[bytes]) -> list[pq.abc.PGresult]:
    """The statements in one pipeline and one write, each one this connection has not
    prepared yet prepared at its head: nothing waits between a prepare and the statements, and
    a name counts as prepared only once the server answered its prepare (one after a failed
    statement is skipped)."""
    pg = conn.pgconn
    missing = list({s.name: s for s in plan if s.name not in done}.values())
    results: list[pq.abc.PGresult] = []
    pg.enter_pipeline_mode()
    try:
        for s in missing:
            pg.send_prepare(s.name, s.sql)
        for s, vals in zip(plan, values, strict=True):
            pg.send_query_prepared(s.name, vals)
        pg.pipeline_sync()
        try:
            await _flush(conn)
            results = await _collect_pipeline(conn)
        except psycopg.Error:
            raise
        except BaseException:
            results = await _drain(conn, _collect_pipeline)
            raise
        finally:
            for s, res in zip(missing, results, strict=False):
                if res.status == pq.ExecStatus.COMMAND_OK:
                    done.add(s.name)
    finally:
        if pg.status == pq.ConnStatus.OK and pg.pipeline_status:
            with contextlib.suppress(psycopg.Error):
                pg.exit_pipeline_mode()  # refused while results are unread: conn is closed
    for res in results:
        if res.status == pq.ExecStatus.FATAL_ERROR:
            if res.error_field(_SQLSTATE) == b"42P05":
                # A prepare interrupted earlier had reached the server: learn its names.
                cur = await conn.execute("SELECT name FROM pg_prepared_statements")
                done.update(r[0].encode() for r in await cur.fetchall())
                raise _OutOfStep()
            _check(conn, res)  # the first failure: the statements after it were not run
    if len(results) != len(missing) + len(plan) or any(r.status not in _OK for r in results):
        raise psycopg.OperationalError(f"unexpected answers to a pipeline of {len(plan)} "
                                       f"statements: {[r.status for r in results]}")
    return results[len(missing):]


def _check(conn: Conn, res: pq.abc.PGresult) -> pq.abc.PGresult:
    if res.status in _OK:
        return res
    state = (res.error_field(_SQLSTATE) or b"").decode()
    msg = res.get_error_message(conn.info.encoding)
    try:
        cls = errors.lookup(state)
    except KeyError:
        cls = psycopg.DatabaseError
    raise cls(msg, info=res, encoding=conn.info.encoding)


T = TypeVar("T")


async def _drain(conn: Conn, collect: Callable[[Conn], Awaitable[T]]) -> T:
    """Interrupted while waiting (cancelled): read the answer anyway, within a few seconds,
    so that the connection goes back to its pool idle, as psycopg does; failing that, close
    it. Returns what was read (the caller re-raises the interruption)."""
    try:
        return await asyncio.wait_for(asyncio.shield(collect(conn)), _DRAIN_S)
    except BaseException:
        with contextlib.suppress(Exception):
            await conn.close()
        raise


async def _flush(conn: Conn) -> None:
    pg = conn.pgconn
    while pg.flush():  # 1: not all sent (a large statement on a full socket buffer)
        await _ready(conn, writable=True)


async def _next(conn: Conn) -> pq.abc.PGresult | None:
    """libpq's next result once the server's answer holds it (None: a message's end)."""
    pg = conn.pgconn
    while pg.is_busy():
        await _ready(conn, writable=False)
        pg.consume_input()
    return pg.get_result()


async def _collect(conn: Conn) -> pq.abc.PGresult:
    last: pq.abc.PGresult | None = None
    while (res := await _next(conn)) is not None:
        last = res
    if last is None:
        raise psycopg.OperationalError("the server sent no result")
    return last


async def _collect_pipeline(conn: Conn) -> list[pq.abc.PGresult]:
    """The last result of each message (prepare or statement), up to the Sync's answer (the
    commit is durable then): one after a failed one answers PIPELINE_ABORTED, a commit that
    fails one more error."""
    out: list[pq.abc.PGresult] = []
    last: pq.abc.PGresult | None = None
    while True:
        res = await _next(conn)
        if res is None:  # the end of one message's results
            if last is not None:
                out.append(last)
                last = None
        elif res.status == pq.ExecStatus.PIPELINE_SYNC:
            if last is not None:
                out.append(last)
            return out
        else:
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


def value(res: pq.abc.PGresult) -> str | None:
    """The first row's first column of a result, as text (None: NULL or no row)."""
    v = res.get_value(0, 0) if res.ntuples and res.nfields else None
    return None if v is None else v.decode()


async def one(conn: Conn, sql: str, params: Sequence[Any]) -> tuple[int, str | None]:
    """(rows affected or returned, the first row's first column as text) of one statement in
    its own transaction: the lean path, or psycopg where it does not apply."""
    try:
        res = await execute(conn, statement(sql), params)
    except Unsupported:
        cur = await conn.execute(sql, params, prepare=True)
        row = await cur.fetchone() if cur.description else None
        return cur.rowcount, None if row is None or row[0] is None else str(row[0])
    rows = res.command_tuples
    return (rows if rows is not None else res.ntuples), value(res)
