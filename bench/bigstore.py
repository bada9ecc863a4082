"""Runs/s on a store that already holds many runs, by kind of run id: JSON lines.

    .venv/bin/python bench/bigstore.py                  # SQLite and PostgreSQL (fsync on)
    .venv/bin/python bench/bigstore.py --backends postgres --before 1000000

A store fills up: every run adds a key to the run table's primary key and one per step to the
step table's. Random ids put each new key at a random place of those indexes, so once they
outgrow the database's cache every run reads and dirties pages all over them (and on
PostgreSQL writes a full-page image of each into the WAL after every checkpoint); ids that
grow with time append at the right edge. The script fills a store with --before 3-step runs
(copies of one real run, under ids of the kind measured), then times --runs sequential 3-step
runs started by execute() with the same kind of id, each round right after a checkpoint:
`random` (20 random hex digits) or `ordered` (ductwork's own ids: creation time first).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine import define  # bench/engine.py, beside this script

from ductwork import Ductwork
from ductwork.workflows import inputs, running


def random_id() -> str:
    return "wf_" + secrets.token_hex(10)


KINDS: dict[str, Callable[[], str]] = {"random": random_id, "ordered": inputs.new_workflow_id}


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def fill(dw: Ductwork, make_id: Callable[[], str], n: int) -> None:
    """n copies of one finished 3-step run (its rows and steps), each under a new id."""
    template = (await dw.workflows.execute(product="bench", env="dev", tag="three")).workflow_id
    store: Any = dw.store
    sqlite = hasattr(store, "conn")
    run_cols = [c for c in await _columns(store, "dw_runs", sqlite) if c != "workflow_id"]
    step_cols = [c for c in await _columns(store, "dw_steps", sqlite) if c != "workflow_id"]
    ph = "?" if sqlite else "%s"
    runs_sql = (f"INSERT INTO dw_runs (workflow_id, {', '.join(run_cols)}) SELECT {ph}, "
                f"{', '.join(run_cols)} FROM dw_runs WHERE workflow_id={ph}")
    steps_sql = (f"INSERT INTO dw_steps (workflow_id, {', '.join(step_cols)}) SELECT {ph}, "
                 f"{', '.join(step_cols)} FROM dw_steps WHERE workflow_id={ph}")
    chunk = 5000
    for start in range(0, n, chunk):
        ids = [(make_id(), template) for _ in range(min(chunk, n - start))]
        if sqlite:
            db = store.conn
            db.execute("BEGIN")
            db.executemany(runs_sql, ids)
            db.executemany(steps_sql, ids)
            db.execute("COMMIT")
        else:
            async with store.pool.connection() as conn, conn.cursor() as cur:
                await cur.executemany(runs_sql, ids)
                await cur.executemany(steps_sql, ids)


async def checkpoint(dw: Ductwork) -> None:
    """Each round starts right after a checkpoint, as production does every few minutes: the
    first change of a page after one writes the whole page into the WAL (PostgreSQL's
    full_page_writes; SQLite's WAL is folded back into the file)."""
    store: Any = dw.store
    if hasattr(store, "conn"):
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    else:
        async with store.pool.connection() as conn:
            await conn.execute("CHECKPOINT")


async def wal_position(dw: Ductwork) -> int | None:
    """PostgreSQL's WAL insert position in bytes (None on SQLite)."""
    store: Any = dw.store
    if hasattr(store, "conn"):
        return None
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn")
        row = await cur.fetchone()
        return int(row[0]) if row else None


async def _columns(store: Any, table: str, sqlite: bool) -> list[str]:
    if sqlite:
        return [r[1] for r in store.conn.execute(f"PRAGMA table_info({table})")]
    async with store.pool.connection() as conn:
        cur = await conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                                 "table_name=%s ORDER BY ordinal_position", (table,))
        return [r[0] for r in await cur.fetchall()]


async def measure(url: str, kind: str, before: int, runs: int, rounds: int) -> None:
    make_id = KINDS[kind]
    running.new_workflow_id = make_id  # type: ignore[attr-defined]  # the id of each run
    dw = Ductwork(store=url, inline_wait="0ms")
    define(dw)
    async with dw:
        t = time.perf_counter()
        await fill(dw, make_id, before)
        fill_s = time.perf_counter() - t
        ex = dw.workflows.execute
        per_round, wal = [], []
        for _ in range(rounds):
            await checkpoint(dw)
            lsn = await wal_position(dw)
            t = time.perf_counter()
            for _ in range(runs):
                await ex(product="bench", env="dev", tag="three")
            per_round.append(runs / (time.perf_counter() - t))
            end = await wal_position(dw)
            if lsn is not None and end is not None:
                wal.append((end - lsn) / runs)
    emit(bench="bigstore", store=url.split(":", 1)[0], ids=kind, runs_before=before,
         runs=runs * rounds, fill_s=round(fill_s, 1),
         runs_per_s=round(statistics.median(per_round), 1),
         runs_per_s_rounds=[round(x) for x in per_round],
         **({"wal_bytes_per_run": round(statistics.median(wal))} if wal else {}),
         cpus=os.cpu_count(), load=round(os.getloadavg()[0], 2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--store", help="an existing PostgreSQL server's admin URL (a database per "
                   "kind is created on it); default: a private server, fsync on")
    p.add_argument("--before", type=int, default=200_000, help="runs in the store first")
    p.add_argument("--runs", type=int, default=1000, help="runs timed per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--ids", default="random,ordered,random,ordered",
                   help="kinds of id, each a fresh store, in this order")
    args = p.parse_args()
    backends = args.backends.split(",")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from bench.scale import Server, new_database

    server = Server(fast=False, stats=False) if "postgres" in backends and not args.store \
        else None
    admin = args.store or (server.dsn if server else "")
    try:
        with tempfile.TemporaryDirectory() as folder:
            for backend in backends:
                for i, kind in enumerate(args.ids.split(",")):
                    url = (f"sqlite:///{os.path.join(folder, f'{kind}{i}.db')}"
                           if backend == "sqlite" else new_database(admin))
                    asyncio.run(measure(url, kind, args.before, args.runs, args.rounds))
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
