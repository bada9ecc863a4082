"""DBOS Transact on SQLite, workloads (a)-(c) of bench/engine.py, as JSON lines; see README."""

# Runs in its own venv, never the project's: python3 -m venv /tmp/venvs/dbos &&
# /tmp/venvs/dbos/bin/pip install 'dbos==3.4.0'; /tmp/venvs/dbos/bin/python bench/dbos_compare.py

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from typing import Any

# Each (synchronous, api) pair runs in a child process: DBOS is a process-wide singleton and the
# PRAGMA hook below is global, so a fresh process keeps one configuration from leaking into the
# next (bench/engine.py gets the same isolation from a fresh Ductwork and database file per mode).
MODES = ("NORMAL", "FULL", "DEFAULT")
APIS = ("async", "sync")


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def install_pragmas(sync: str) -> None:
    """Apply WAL + synchronous to every SQLite connection DBOS opens (its own code sets neither:
    out of the box it runs journal_mode=DELETE with the compiled-in synchronous=FULL)."""
    if sync == "DEFAULT":
        return
    import sqlalchemy as sa
    from sqlalchemy import event

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute(f"PRAGMA synchronous={sync}")

    event.listen(sa.engine.Engine, "connect", on_connect)


def observed_pragmas() -> dict[str, Any]:
    """What DBOS's own pooled connection really runs with (read through its engine)."""
    import sqlalchemy as sa
    from dbos._dbos import _get_dbos_instance

    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    with _get_dbos_instance()._sys_db.engine.connect() as c:
        jm = c.execute(sa.text("PRAGMA journal_mode")).scalar()
        sy = c.execute(sa.text("PRAGMA synchronous")).scalar()
    return {"journal_mode": str(jm).upper(), "synchronous": names.get(int(sy or 0), sy)}


def run_one(sync: str, api: str, folder: str) -> None:
    install_pragmas(sync)
    from dbos import DBOS

    db = os.path.join(folder, f"dbos-{sync.lower()}-{api}.sqlite")
    DBOS(config={"name": "dbos-bench", "system_database_url": f"sqlite:///{db}",
                 "log_level": "WARNING"})

    if api == "async":
        @DBOS.step()
        async def first() -> dict[str, int]:
            return {"n": 1}

        @DBOS.step()
        async def inc(n: int) -> dict[str, int]:
            return {"n": n + 1}

        @DBOS.step()
        async def item(i: int) -> dict[str, int]:
            return {"i": i}

        @DBOS.workflow()
        async def three() -> dict[str, int]:
            a = await first()
            b = await inc(a["n"])
            return await inc(b["n"])

        @DBOS.workflow()
        async def thousand() -> None:
            for i in range(1000):
                await item(i)
    else:
        @DBOS.step()
        def first() -> dict[str, int]:
            return {"n": 1}

        @DBOS.step()
        def inc(n: int) -> dict[str, int]:
            return {"n": n + 1}

        @DBOS.step()
        def item(i: int) -> dict[str, int]:
            return {"i": i}

        @DBOS.workflow()
        def three() -> dict[str, int]:
            a = first()
            b = inc(a["n"])
            return inc(b["n"])

        @DBOS.workflow()
        def thousand() -> None:
            for i in range(1000):
                item(i)

    DBOS.launch()
    common = {"dbos": version("dbos"), "api": api, "mode": sync, **observed_pragmas(),
              "cpus": os.cpu_count(), "python": platform.python_version()}

    async def a_async() -> float:
        for _ in range(20):  # warm-up, as bench/engine.py
            await three()
        t = time.perf_counter()
        for _ in range(300):
            assert (await three()) == {"n": 3}
        return time.perf_counter() - t

    def a_sync() -> float:
        for _ in range(20):
            three()
        t = time.perf_counter()
        for _ in range(300):
            assert three() == {"n": 3}
        return time.perf_counter() - t

    async def b_async() -> float:
        t = time.perf_counter()
        await thousand()
        return time.perf_counter() - t

    def b_sync() -> float:
        t = time.perf_counter()
        thousand()
        return time.perf_counter() - t

    async def c_async() -> float:
        t = time.perf_counter()
        out = await asyncio.gather(*[three() for _ in range(200)])
        dt = time.perf_counter() - t
        assert all(x == {"n": 3} for x in out)
        return dt

    def c_sync() -> float:
        # DBOS's way to run sync workflows concurrently: its executor threads.
        t = time.perf_counter()
        handles = [DBOS.start_workflow(three) for _ in range(200)]
        out = [h.get_result() for h in handles]
        dt = time.perf_counter() - t
        assert all(x == {"n": 3} for x in out)
        return dt

    if api == "async":
        dt_a = asyncio.run(a_async())
        dt_b = asyncio.run(b_async())
        dt_c = asyncio.run(c_async())
    else:
        dt_a, dt_b, dt_c = a_sync(), b_sync(), c_sync()

    emit(bench="dbos_a_sequential_3_step", workflows=300, seconds=round(dt_a, 4),
         workflows_per_s=round(300 / dt_a, 1), us_per_step=round(dt_a / 900 * 1e6, 1), **common)
    emit(bench="dbos_b_one_1000_step_workflow", ms=round(dt_b * 1000, 1), **common)
    emit(bench="dbos_c_200_concurrent", seconds=round(dt_c, 4), **common)

    # Every workflow and step checkpoint really is in the file: 320 + 1 + 200 runs, 1,000 + 3*520
    # steps (read back from a separate connection, so only committed rows count).
    DBOS.destroy()
    with sqlite3.connect(db) as c:
        wfs = c.execute("SELECT count(*) FROM workflow_status WHERE status='SUCCESS'").fetchone()
        ops = c.execute("SELECT count(*) FROM operation_outputs").fetchone()
    assert wfs[0] == 521 and ops[0] == 2560, (wfs, ops)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sync", default="NORMAL,FULL",
                   help="comma list of NORMAL, FULL (both with WAL) and DEFAULT "
                        "(DBOS untouched: rollback journal, synchronous=FULL)")
    p.add_argument("--api", default="async,sync", help="comma list of async, sync")
    p.add_argument("--one", nargs=3, metavar=("SYNC", "API", "FOLDER"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        run_one(*args.one)
        return
    syncs = [s.strip().upper() for s in args.sync.split(",") if s.strip()]
    apis = [a.strip().lower() for a in args.api.split(",") if a.strip()]
    for s in syncs:
        if s not in MODES:
            p.error(f"--sync: {s!r} is not one of {', '.join(MODES)}")
    for a in apis:
        if a not in APIS:
            p.error(f"--api: {a!r} is not one of {', '.join(APIS)}")
    with tempfile.TemporaryDirectory() as folder:
        for s in syncs:
            for a in apis:
                subprocess.run([sys.executable, __file__, "--one", s, a, folder], check=True)


if __name__ == "__main__":
    main()
