"""The app the scale test's worker processes run: `ductwork worker --app tests.scale.app:build`.

Every step writes its side effect into a table keyed by (workflow_id, step) and logs each
execution attempt with the worker's pid, so the test can tell a step that ran twice."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import psycopg

from ductwork import Ductwork

STEP_DELAY_S = float(os.environ.get("DUCTWORK_SCALE_STEP_DELAY", "0.02"))
# How long a compensation's remote call takes after its side effect landed.
COMPENSATION_DELAY_S = float(os.environ.get("DUCTWORK_SCALE_COMPENSATION_DELAY", "0"))
_store = ""
_conn: psycopg.AsyncConnection[Any] | None = None
_lock = asyncio.Lock()

SCHEMA = """
CREATE TABLE IF NOT EXISTS scale_effects (workflow_id TEXT NOT NULL, step TEXT NOT NULL,
    pid INTEGER NOT NULL, PRIMARY KEY (workflow_id, step));
CREATE TABLE IF NOT EXISTS scale_compensations (workflow_id TEXT NOT NULL, step TEXT NOT NULL,
    pid INTEGER NOT NULL, PRIMARY KEY (workflow_id, step));
CREATE TABLE IF NOT EXISTS scale_attempts (id BIGSERIAL PRIMARY KEY, workflow_id TEXT NOT NULL,
    step TEXT NOT NULL, kind TEXT NOT NULL, pid INTEGER NOT NULL,
    ts TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp());
"""


async def _db() -> psycopg.AsyncConnection[Any]:
    global _conn
    async with _lock:
        if _conn is None or _conn.closed:
            _conn = await psycopg.AsyncConnection.connect(_store, autocommit=True)
        return _conn


async def _record(table: str, kind: str, wid: str, step: str) -> None:
    conn = await _db()
    pid = os.getpid()
    # One statement: the attempt log and the keyed side effect commit together.
    await conn.execute(
        "WITH a AS (INSERT INTO scale_attempts (workflow_id, step, kind, pid) "
        f"VALUES (%s, %s, %s, %s)) INSERT INTO {table} (workflow_id, step, pid) "
        "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", (wid, step, kind, pid, wid, step, pid))


async def effect(wid: str, step: str) -> dict[str, Any]:
    await asyncio.sleep(STEP_DELAY_S)  # the remote call
    await _record("scale_effects", "effect", wid, step)
    return {"step": step, "pid": os.getpid()}


async def compensate(wid: str, step: str) -> None:
    await _record("scale_compensations", "compensation", wid, step)
    if COMPENSATION_DELAY_S:
        await asyncio.sleep(COMPENSATION_DELAY_S)


async def broken_carrier(wid: str) -> None:
    conn = await _db()
    await conn.execute("INSERT INTO scale_attempts (workflow_id, step, kind, pid) VALUES "
                       "(%s, 'ship', 'failed', %s)", (wid, os.getpid()))
    raise RuntimeError("the carrier API is down")


def build(store: str | None = None) -> Ductwork:
    """The app on `store` (default: $DUCTWORK_SCALE_STORE); lease 2s so takeover is quick."""
    global _store
    _store = store or os.environ["DUCTWORK_SCALE_STORE"]
    host = os.environ.get("DUCTWORK_SCALE_HOST")
    if host:
        # Pretend to be a machine of its own: no worker can see another's pid die, so a dead
        # worker's runs are taken over only when its lease expires, as across machines.
        from ductwork.interpreter import engine

        engine.HOST = host
    dw = Ductwork(store=_store, lease="2s", inline_wait="1s")
    dw.workflows.define(product="scale", tag="order", handler=order)
    return dw


async def order(ctx: Any) -> Any:
    wid = ctx.workflow_id
    await ctx.step("reserve", lambda: effect(wid, "reserve"),
                   rollback=lambda _r: compensate(wid, "reserve"))
    await ctx.step("charge", lambda: effect(wid, "charge"),
                   rollback=lambda _r: compensate(wid, "charge"))
    if ctx.input["fail"]:
        await ctx.step("ship", lambda: broken_carrier(wid))  # a saga designed to fail
    await ctx.step("ship", lambda: effect(wid, "ship"))
    return {"order": ctx.input["n"]}
