"""ductwork and DBOS Transact side by side, same workloads, same run: JSON lines; see README.

    .venv/bin/python bench/dbos_compare.py                  # SQLite and PostgreSQL, every case
    .venv/bin/python bench/dbos_compare.py --backends postgres --cases queued --workers 2
    .venv/bin/python bench/dbos_compare.py --dbos-python /tmp/venvs/dbos/bin/python

The driver runs in the project's venv; every measurement runs in a fresh child process, the
ductwork ones in this venv, the DBOS ones in DBOS's own (python3 -m venv /tmp/venvs/dbos &&
/tmp/venvs/dbos/bin/pip install 'dbos==3.4.0'; DBOS is never a ductwork dependency). PostgreSQL
is a private server started here (fsync on), or --store URL; each case gets a fresh database.

Cases: inline (300 sequential 3-step runs started and awaited one after the other: ductwork's
execute(), a direct call of a DBOS workflow), thousand (one 1,000-step run), concurrent (200
3-step runs started at once), signal (200 runs one after the other, each started, sent a message
it waits for, and awaited: ductwork's wait_for_signal, DBOS's recv/send), sleep (200 runs at
once of step, durable sleep of 0.1 s, step), queued (--queued-runs 3-step runs put in a queue,
then 1/2/4 worker processes of 50 runs each drain it; runs/s from the first start to the last
end, read from each side's own tables). DBOS runs with its async API and with its sync one
(--dbos-api); each line carries every figure and `speedup`: ductwork's throughput over the
faster DBOS API's. ductwork's SQLite store and DBOS's SQLite database both run WAL with
synchronous=NORMAL.

Each backend first measures its commit floor (case "floor"): microseconds per commit of a loop
of one-row INSERTs, each its own transaction, through the cheapest client (sqlite3; libpq's
own prepared-statement calls). The inline and thousand lines then add ductwork's time per
durable commit (a 3-step run makes 5: its record, 3 steps, its outcome; the 1,000-step run
1,002), `over_floor` (that over the floor) and `speedup_at_floor`: the speedup over DBOS that
commits costing exactly the floor would give, the bound of this machine for one commit per
durable point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CASES = ("inline", "thousand", "concurrent", "queued", "signal", "sleep")
SIGNALS = 200       # runs of the signal case, one after the other
NAPS = 200          # runs of the sleep case, all at once
NAP_S = 0.1         # their durable sleep
BACKENDS = ("sqlite", "postgres")
CONCURRENCY = 50     # runs per worker process at once (both sides)
DBOS_POLL_S = 0.1    # DBOS queue polling interval (its default is 1 s)


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


# -- DBOS side (runs in DBOS's venv) -------------------------------------------------------------
def dbos_child(backend: str, url: str, case: str, runs: int, api: str) -> None:
    if backend == "sqlite":
        import sqlalchemy as sa
        from sqlalchemy import event

        def on_connect(dbapi_conn: Any, _record: Any) -> None:
            # DBOS sets neither: the same WAL + NORMAL as ductwork's SQLite store
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")

        event.listen(sa.engine.Engine, "connect", on_connect)
    from dbos import DBOS, DBOSClient

    if case == "enqueue":
        # The schema comes from a launched DBOS; the runs from a client, which runs nothing.
        DBOS(config={"name": "dbos-bench", "system_database_url": url, "log_level": "WARNING"})
        DBOS.launch()
        DBOS.register_queue("bench", worker_concurrency=CONCURRENCY,
                            polling_interval_sec=DBOS_POLL_S)
        DBOS.destroy()
        client = DBOSClient(system_database_url=url, application_name="dbos-bench")
        for i in range(runs):
            client.enqueue({"queue_name": "bench", "workflow_name": "three"}, i)
        client.destroy()
        return

    DBOS(config={"name": "dbos-bench", "system_database_url": url, "log_level": "WARNING"})

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

        @DBOS.workflow(name="three")
        async def three(_i: int = 0) -> dict[str, int]:
            a = await first()
            b = await inc(a["n"])
            return await inc(b["n"])

        @DBOS.workflow(name="thousand")
        async def thousand() -> None:
            for i in range(1000):
                await item(i)

        @DBOS.workflow(name="waiter")
        async def waiter() -> Any:
            return await DBOS.recv_async("go", timeout_seconds=60)

        @DBOS.workflow(name="napper")
        async def napper() -> dict[str, int]:
            a = await first()
            await DBOS.sleep_async(NAP_S)
            return await inc(a["n"])
    else:
        @DBOS.step()
        def first_s() -> dict[str, int]:
            return {"n": 1}

        @DBOS.step()
        def inc_s(n: int) -> dict[str, int]:
            return {"n": n + 1}

        @DBOS.step()
        def item_s(i: int) -> dict[str, int]:
            return {"i": i}

        @DBOS.workflow(name="three")
        def three_s(_i: int = 0) -> dict[str, int]:
            a = first_s()
            b = inc_s(a["n"])
            return inc_s(b["n"])

        @DBOS.workflow(name="thousand")
        def thousand_s() -> None:
            for i in range(1000):
                item_s(i)

        @DBOS.workflow(name="waiter")
        def waiter_s() -> Any:
            return DBOS.recv("go", timeout_seconds=60)

        @DBOS.workflow(name="napper")
        def napper_s() -> dict[str, int]:
            a = first_s()
            DBOS.sleep(NAP_S)
            return inc_s(a["n"])

    DBOS.launch()
    if case == "worker":
        DBOS.register_queue("bench", worker_concurrency=CONCURRENCY,
                            polling_interval_sec=DBOS_POLL_S)
        emit(ready=True)
        while True:  # its queue thread works; the driver ends this process with SIGTERM
            time.sleep(1)

    async def go() -> float:
        for _ in range(20):  # warm-up, both sides
            await three()
        t = time.perf_counter()
        if case == "inline":
            for _ in range(300):
                assert (await three()) == {"n": 3}
        elif case == "thousand":
            await thousand()
        elif case == "signal":
            for i in range(SIGNALS):
                h = await DBOS.start_workflow_async(waiter)
                await DBOS.send_async(h.workflow_id, {"i": i}, "go")
                assert (await h.get_result()) == {"i": i}
        elif case == "sleep":
            out = await asyncio.gather(*[napper() for _ in range(NAPS)])
            assert all(x == {"n": 2} for x in out)
        else:
            out = await asyncio.gather(*[three() for _ in range(200)])
            assert all(x == {"n": 3} for x in out)
        return time.perf_counter() - t

    def go_sync() -> float:
        for _ in range(20):
            three_s()
        t = time.perf_counter()
        if case == "inline":
            for _ in range(300):
                assert three_s() == {"n": 3}
        elif case == "thousand":
            thousand_s()
        elif case == "signal":
            for i in range(SIGNALS):
                h = DBOS.start_workflow(waiter_s)
                DBOS.send(h.workflow_id, {"i": i}, "go")
                assert h.get_result() == {"i": i}
        elif case == "sleep":
            handles = [DBOS.start_workflow(napper_s) for _ in range(NAPS)]
            assert all(h.get_result() == {"n": 2} for h in handles)
        else:  # DBOS's way to run sync workflows concurrently: its executor threads
            handles = [DBOS.start_workflow(three_s) for _ in range(200)]
            assert all(h.get_result() == {"n": 3} for h in handles)
        return time.perf_counter() - t

    dt = asyncio.run(go()) if api == "async" else go_sync()
    emit(seconds=dt)
    DBOS.destroy()
    os._exit(0)


# -- ductwork side (runs in the project's venv) ---------------------------------------------------
def ductwork_child(backend: str, url: str, case: str, runs: int) -> None:
    sys.path.insert(0, str(HERE.parent))
    from engine import define, value  # bench/engine.py, beside this script

    from ductwork import Ductwork

    opts: dict[str, Any] = {"synchronous": "NORMAL"} if backend == "sqlite" else {}
    # signal and sleep: the wait stays in the process, as DBOS's does
    inline = "30s" if case in ("signal", "sleep") else "0ms"
    dw = Ductwork(store=url, inline_wait=inline, **opts)

    define(dw)  # three, thousand: the same workflows as bench/engine.py

    @dw.workflows.workflow(product="bench", tag="waiter")
    async def waiter(ctx: Any) -> Any:
        return await ctx.wait_for_signal("go", timeout="60s")

    @dw.workflows.workflow(product="bench", tag="napper")
    async def napper(ctx: Any) -> Any:
        a = await ctx.step("a", value({"n": 1}))
        await ctx.sleep(f"{int(NAP_S * 1000)}ms")
        return await ctx.step("b", value({"n": a["n"] + 1}))

    async def go() -> None:
        async with dw:
            ex = dw.workflows.execute
            if case == "enqueue":
                for i in range(runs):
                    await dw.workflows.dispatch("bench", "dev", "three", {"i": i})
                return
            if case == "worker":
                worker = dw.workflows.worker(concurrency=CONCURRENCY, poll="1s", grace="5s",
                                             schedules=False, handle_signals=True)
                task = asyncio.create_task(worker.run())
                await worker.started()
                emit(ready=True)
                await task
                return
            for _ in range(20):
                await ex(product="bench", env="dev", tag="three")
            t = time.perf_counter()
            if case == "inline":
                for _ in range(300):
                    assert (await ex(product="bench", env="dev", tag="three")).output == {"n": 3}
            elif case == "thousand":
                assert (await ex(product="bench", env="dev", tag="thousand")).status == \
                    "completed"
            elif case == "signal":
                for i in range(SIGNALS):
                    # started and left going (DBOS: start_workflow), signalled, awaited
                    wid = (await ex(product="bench", env="dev", tag="waiter",
                                    timeout="0ms")).workflow_id
                    await dw.workflows.signal(wid, "go", {"i": i})
                    assert (await dw.workflows.result(wid, timeout="60s")).output == {"i": i}
            elif case == "sleep":
                out = await asyncio.gather(*[ex(product="bench", env="dev", tag="napper")
                                             for _ in range(NAPS)])
                assert all(r.output == {"n": 2} for r in out)
            else:
                out = await asyncio.gather(*[ex(product="bench", env="dev", tag="three")
                                             for _ in range(200)])
                assert all(r.output == {"n": 3} for r in out)
            emit(seconds=time.perf_counter() - t)

    asyncio.run(go())


# -- the commit floor (runs in the project's venv) ---------------------------------------------
# Durable commits a run needs on ductwork's side: its record, one per step, its outcome.
COMMITS = {"inline": 300 * 5, "thousand": 1 + 1000 + 1}


def floor_child(backend: str, url: str) -> None:
    """Microseconds per commit of the cheapest client of the same store: one small row, its
    own transaction, a prepared statement (PostgreSQL: libpq's own calls, no driver on top;
    SQLite: the store's settings). No durable workflow step can be cheaper than this."""
    rounds: list[float] = []
    if backend == "sqlite":
        import sqlite3

        db = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        db.execute("PRAGMA page_size=2048")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE f (wid TEXT, k TEXT, res TEXT, PRIMARY KEY (wid, k))")
        for r in range(6):
            t = time.perf_counter()
            for i in range(500):
                db.execute("INSERT INTO f VALUES (?, ?, ?)", (f"run{r}", f"s{i}", '{"i": 1}'))
            rounds.append((time.perf_counter() - t) / 500)
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE f (wid TEXT, k TEXT, res TEXT, PRIMARY KEY (wid, k))")
            pg = conn.pgconn
            pg.prepare(b"ins", b"INSERT INTO f VALUES ($1, $2, $3)")
            for r in range(6):
                t = time.perf_counter()
                for i in range(500):
                    res = pg.exec_prepared(b"ins", [f"run{r}".encode(), f"s{i}".encode(),
                                                    b'{"i": 1}'])
                    assert res.status == psycopg.pq.ExecStatus.COMMAND_OK
                rounds.append((time.perf_counter() - t) / 500)
    rounds.sort()
    emit(us_per_commit=rounds[len(rounds) // 2] * 1e6)


# -- the driver ---------------------------------------------------------------------------------
class Side:
    """ductwork, or DBOS with its async or sync API: each measurement in a child process."""

    def __init__(self, name: str, python: str) -> None:
        self.name, self.python = name, python

    def cmd(self, backend: str, url: str, case: str, runs: int = 0) -> list[str]:
        return [self.python, str(Path(__file__).resolve()), "--child", self.name,
                "--backend", backend, "--url", url, "--case", case, "--runs", str(runs)]

    def run(self, backend: str, url: str, case: str, runs: int = 0) -> dict[str, Any]:
        p = subprocess.run(self.cmd(backend, url, case, runs), capture_output=True, text=True,
                           check=False, timeout=1800)
        lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
        if p.returncode != 0 and not lines:
            raise SystemExit(f"{self.name} {case} on {backend} failed:\n{p.stderr[-3000:]}")
        return lines[-1] if lines else {}

    def queued(self, backend: str, url: str, workers: int, runs: int) -> float:
        """runs/s of `workers` processes draining a backlog of `runs` queued runs."""
        self.run(backend, url, "enqueue", runs)
        procs = [subprocess.Popen(self.cmd(backend, url, "worker"), stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
                 for _ in range(workers)]
        try:
            for p in procs:
                assert p.stdout is not None
                p.stdout.readline()  # {"ready": true}
            deadline = time.monotonic() + 900
            while True:
                first, last, done = self.window(backend, url)
                if done >= runs:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"{self.name}: only {done}/{runs} queued runs done")
                time.sleep(0.1)
        finally:
            for p in procs:  # ductwork's worker stops gracefully; DBOS's process just ends
                p.send_signal(signal.SIGINT if self.name == "ductwork" else signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    p.kill()
        return runs / (last - first)

    def window(self, backend: str, url: str) -> tuple[float, float, int]:
        """(first start, last end, how many finished) of the queued runs, epoch seconds."""
        if self.name == "ductwork":
            sql = ("SELECT min(started_at), max(finished_at), count(*) FROM dw_runs "
                   "WHERE status = 'completed'")
            scale = 1.0
        else:
            table = "dbos.workflow_status" if backend == "postgres" else "workflow_status"
            sql = (f"SELECT min(started_at_epoch_ms), max(updated_at), count(*) FROM {table} "
                   "WHERE status = 'SUCCESS'")
            scale = 1000.0
        row = _query(backend, url, sql)
        if not row or row[2] == 0:
            return 0.0, 0.0, 0
        return float(row[0]) / scale, float(row[1]) / scale, int(row[2])


def _query(backend: str, url: str, sql: str) -> tuple[Any, ...] | None:
    if backend == "sqlite":
        import sqlite3

        path = url.removeprefix("sqlite:///")
        if not os.path.exists(path):
            return None
        with sqlite3.connect(path, timeout=30) as c:
            try:
                return tuple(c.execute(sql).fetchone())
            except sqlite3.OperationalError:  # not created yet
                return None
    import psycopg

    with psycopg.connect(url, autocommit=True) as c:
        try:
            row = c.execute(sql).fetchone()
        except psycopg.errors.UndefinedTable:
            return None
        return tuple(row) if row else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dbos-python", default="/tmp/venvs/dbos/bin/python")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--dbos-api", default="async,sync",
                   help="DBOS's async and/or sync API (each measured; speedup: vs the faster)")
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--workers", default="1,2,4", help="worker processes of the queued case")
    p.add_argument("--queued-runs", type=int, default=1000)
    p.add_argument("--store", help="an existing PostgreSQL (a database per case is created)")
    p.add_argument("--socket", action="store_true",
                   help="both sides reach the private server through its Unix socket, not TCP")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--backend", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--case", help=argparse.SUPPRESS)
    p.add_argument("--runs", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        if args.child == "floor":
            floor_child(args.backend, args.url)
        elif args.child == "ductwork":
            ductwork_child(args.backend, args.url, args.case, args.runs)
        else:
            dbos_child(args.backend, args.url, args.case, args.runs,
                       args.child.removeprefix("dbos-"))
        return
    backends = [b for b in args.backends.split(",") if b]
    cases = [c for c in args.cases.split(",") if c]
    for name, allowed in (("backend", BACKENDS), ("case", CASES)):
        for x in backends if name == "backend" else cases:
            if x not in allowed:
                p.error(f"unknown {name} {x!r} (one of {', '.join(allowed)})")
    if not os.path.exists(args.dbos_python):
        p.error(f"{args.dbos_python} not found: create DBOS's venv first (see the docstring)")
    apis = [a for a in args.dbos_api.split(",") if a]
    if not apis or set(apis) - {"async", "sync"}:
        p.error("--dbos-api: a comma list of async, sync")
    sides = [Side("ductwork", sys.executable)] + [Side(f"dbos-{a}", args.dbos_python)
                                                  for a in apis]
    sys.path.insert(0, str(HERE.parent))
    from bench.scale import Server, new_database

    # fsync on, no pg_stat_statements (neither side needs it): the server's defaults otherwise
    server = (Server(fast=False, stats=False) if "postgres" in backends and not args.store
              else None)
    if args.socket and args.store:
        p.error("--socket applies to the private server only (give --store a socket URL)")
    admin = args.store or ((server.socket_dsn if args.socket else server.dsn) if server else "")
    folder = tempfile.mkdtemp(prefix="dw-dbos-cmp-")
    emit(figure="machine", cpus=os.cpu_count(), python=platform.python_version(),
         load=os.getloadavg()[0], concurrency=CONCURRENCY, dbos_poll_s=DBOS_POLL_S,
         postgres_via="unix socket" if args.socket else "tcp")

    def fresh(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{os.path.join(folder, uuid.uuid4().hex[:10] + '.db')}"
        return new_database(admin)

    try:
        for backend in backends:
            floor = float(Side("floor", sys.executable).run(backend, fresh(backend), "floor")[
                "us_per_commit"])
            emit(bench="dbos_compare", backend=backend, case="floor",
                 us_per_commit=round(floor, 1), load=round(os.getloadavg()[0], 2))
            for case in cases:
                if case == "queued":
                    for n in [int(w) for w in args.workers.split(",") if w]:
                        rate = {s.name: s.queued(backend, fresh(backend), n, args.queued_runs)
                                for s in sides}
                        best = max(v for k, v in rate.items() if k != "ductwork")
                        emit(bench="dbos_compare", backend=backend, case=case, workers=n,
                             runs=args.queued_runs,
                             **{f"{k.replace('-', '_')}_runs_per_s": round(v, 1)
                                for k, v in rate.items()},
                             speedup=round(rate["ductwork"] / best, 2),
                             load=round(os.getloadavg()[0], 2))
                    continue
                secs = {s.name: float(s.run(backend, fresh(backend), case)["seconds"])
                        for s in sides}
                best = min(v for k, v in secs.items() if k != "ductwork")
                # Against the floor: ductwork's time per durable commit, and the speedup it
                # would have if each of its commits cost no more than the floor's.
                vs_floor: dict[str, float] = {}
                if case in COMMITS:
                    per = secs["ductwork"] / COMMITS[case] * 1e6
                    vs_floor = {"ductwork_us_per_commit": round(per, 1),
                                "over_floor": round(per / floor, 2),
                                "speedup_at_floor": round(best / COMMITS[case] * 1e6 / floor,
                                                          2)}
                emit(bench="dbos_compare", backend=backend, case=case,
                     **{f"{k.replace('-', '_')}_s": round(v, 4) for k, v in secs.items()},
                     speedup=round(best / secs["ductwork"], 2), **vs_floor,
                     load=round(os.getloadavg()[0], 2))
    finally:
        if server is not None:
            server.stop()
        for f in Path(folder).glob("*"):
            f.unlink()
        os.rmdir(folder)


if __name__ == "__main__":
    main()
