"""Rows of the store's tables from libpq's text results (statements run through lean.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def rows(res: pq.abc.PGresult, cls: type[R]) -> list[R]:
    """The result's rows as `cls`, its columns in the order of the class's fields: text
    values decoded by the field's type, NULL as None."""
    dec = _decoders(cls)
    if res.nfields != len(dec):
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
