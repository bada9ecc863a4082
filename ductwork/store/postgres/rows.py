"""Rows of the store's tables from libpq's text results (statements run through lean.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from psycopg import AsyncConnection, pq

from ductwork.store.postgres import lean
from ductwork.store.postgres.sql import pgtype

R = TypeVar("R")
Decode = Callable[[bytes], Any]


def _bool(v: bytes) -> bool:
    return v == b"t"


def _text(v: bytes) -> str:
    return v.decode()


_DECODE: dict[str, Decode] = {"float8": float, "int4": int, "boolean": _bool, "text": _text}
_DECODERS: dict[type, list[Decode]] = {}


def _decoders(cls: type) -> list[Decode]:
    """One text decoder per field of the row class, from its annotations (as sql.typed())."""
    dec = _DECODERS.get(cls)
    if dec is None:
        ann = {k: str(v) for c in reversed(cls.__mro__)
               for k, v in getattr(c, "__annotations__", {}).items()}
        dec = _DECODERS[cls] = [_DECODE[pgtype(ann[f])] for f in cls.__slots__]  # type: ignore[attr-defined]
    return dec


def rows(res: pq.abc.PGresult, cls: type[R], *, extra: int = 0) -> list[R]:
    """The result's rows as `cls`, its columns in the order of the class's fields (then
    `extra` more, left to column()): text values decoded by the field's type, NULL as None."""
    dec = _decoders(cls)
    if res.nfields != len(dec) + extra:
        raise ValueError(f"{res.nfields} columns for the {len(dec)} fields of {cls.__name__}")
    get = res.get_value
    out = []
    for i in range(res.ntuples):
        vals = []
        for j, d in enumerate(dec):
            v = get(i, j)
            vals.append(None if v is None else d(v))
        out.append(cls(*vals))
    return out


async def fetch(conn: AsyncConnection[Any], sql: str, params: Sequence[Any], cls: type[R]
                ) -> list[R]:
    """One read (positional %s parameters) as rows of `cls`: prepared through lean.py, or
    psycopg's cursor where the lean path does not apply."""
    try:
        res = await lean.execute(conn, lean.statement(sql), params)
    except lean.Unsupported:
        cur = await conn.execute(sql, params)
        return [cls(*r) for r in await cur.fetchall()]
    return rows(res, cls)


def column(res: pq.abc.PGresult, j: int = 0) -> list[str | None]:
    """Column j of every row, as text (None: NULL)."""
    out: list[str | None] = []
    for i in range(res.ntuples):
        v = res.get_value(i, j)
        out.append(None if v is None else v.decode())
    return out


_POSITIONAL: dict[str, tuple[str, list[str]]] = {}
_NAMED = re.compile(r"%\((\w+)\)s")


def positional(sql: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """A statement with %(name)s parameters as lean.py takes it: %s placeholders and the
    values in their order (a name used twice is sent twice)."""
    got = _POSITIONAL.get(sql)
    if got is None:
        got = _POSITIONAL[sql] = (_NAMED.sub("%s", sql), _NAMED.findall(sql))
    return got[0], [params[n] for n in got[1]]


async def execute(conn: AsyncConnection[Any], sql: str, params: Sequence[Any]
                  ) -> pq.abc.PGresult | None:
    """One statement (positional %s parameters) prepared through lean.py; None where the lean
    path does not apply (nothing was sent: the caller uses psycopg)."""
    try:
        return await lean.execute(conn, lean.statement(sql), params)
    except lean.Unsupported:
        return None
