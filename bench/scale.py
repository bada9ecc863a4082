"""Scale-out benchmark (issue 6): worker processes against one PostgreSQL; JSON lines.

    python bench/scale.py                       # private PostgreSQL (fsync on), 1/2/4 workers
    python bench/scale.py --store postgresql://u:p@host/db --workers 1,2,4,8
    python bench/scale.py --fast                # fsync/synchronous_commit off (test settings)

Figures: backlog throughput (runs/s, steps/s) per worker count, the CPU seconds PostgreSQL and
the workers spend per 1000 steps, the claim latency of an idle worker pool (dispatch -> first
step, p50/p99), and the database round trips per step (timed through a proxy that adds a known
delay to every server reply), and what one 3-step run costs, inline (`execute`) and queued
(`dispatch` + 2 workers): transactions, statements and client round trips per run, PostgreSQL
CPU and Python CPU per step. Transactions are pg_stat_database's count, which includes the one
PostgreSQL runs in each listening worker to read a NOTIFY (a dispatch wakes both workers).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ductwork import Ductwork  # noqa: E402
from ductwork.store.postgres import safe_url  # noqa: E402


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def build(store: str, steps: int) -> Ductwork:
    dw = Ductwork(store=store, inline_wait="0ms")

    async def flow(ctx: Any) -> Any:
        total = 0
        for i in range(steps):
            total += (await ctx.step(f"s{i}", lambda i=i: {"i": i}))["i"]
        return total

    dw.workflows.define(product="bench", tag="flow", handler=flow)
    return dw


# -- a private PostgreSQL -------------------------------------------------------------------------
class Server:
    def __init__(self, fast: bool, *, stats: bool = True) -> None:
        from tests.support.ports import free_port

        self.bin = Path(sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1])
        self.root = Path(tempfile.mkdtemp(prefix="dw-bench-pg-"))
        self.port = free_port()
        root_user = os.geteuid() == 0
        if root_user:
            shutil.chown(self.root, "postgres", "postgres")
        self.run([str(self.bin / "initdb"), "-D", str(self.root / "data"), "-U", "postgres",
                  "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"])
        # pg_stat_statements: the statement counts of the "transactions" figure.
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                "-c max_connections=200 -c shared_buffers=256MB")
        if stats:
            opts += " -c shared_preload_libraries=pg_stat_statements"
        if fast:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self.run([str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-l",
                  str(self.root / "log"), "-w", "-o", opts, "start"])
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # the same server through its Unix socket (in self.root)
        self.socket_dsn = f"postgresql://postgres@/postgres?host={self.root}&port={self.port}"
        with open(self.root / "data" / "postmaster.pid") as f:
            self.pid = int(f.readline())

    def run(self, cmd: list[str]) -> None:
        full = ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd
        subprocess.run(full, check=True, capture_output=True)

    def stop(self) -> None:
        self.run([str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "-w",
                  "stop"])
        shutil.rmtree(self.root, ignore_errors=True)

    def cpu_seconds(self) -> float:
        """CPU time of the postmaster and every backend (including ones that exited)."""
        p = psutil.Process(self.pid)
        t = p.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for c in p.children(recursive=True):
            try:
                with_cpu = c.cpu_times()
            except psutil.NoSuchProcess:  # exited in between: counted in children_* above
                continue
            total += with_cpu.user + with_cpu.system
        return total


def new_database(admin_dsn: str) -> str:
    name = "bench_" + uuid.uuid4().hex[:10]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(admin_dsn)._replace(path="/" + name))


# -- worker processes ---------------------------------------------------------------------------
def start_workers(store: str, n: int, concurrency: int, steps: int
                  ) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen(
        [sys.executable, __file__, "worker", "--store", store, "--concurrency", str(concurrency),
         "--steps", str(steps)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(n)]


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> float:
    """SIGTERM, wait; returns the workers' CPU seconds."""
    cpu = 0.0
    for p in procs:
        with_cpu = psutil.Process(p.pid).cpu_times()
        cpu += with_cpu.user + with_cpu.system
        p.send_signal(signal.SIGINT)
    for p in procs:
        p.wait(timeout=60)
    return cpu


async def worker_main(store: str, concurrency: int, steps: int) -> None:
    dw = build(store, steps)
    try:
        await dw.workflows.run_worker(concurrency=concurrency, poll="2s", grace="5s",
                                      schedules=False, handle_signals=True)
    finally:
        await dw.aclose()


async def wait_idle(conn: psycopg.AsyncConnection[Any], n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        cur = await conn.execute("SELECT count(*) FROM dw_runs WHERE status='completed'")
        row = await cur.fetchone()
        if row and row[0] >= n:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"only {row[0] if row else 0}/{n} runs completed in {timeout}s")
        await asyncio.sleep(0.05)


async def ready(store: str, n_workers: int) -> None:
    """Wait until every worker holds its LISTEN connection (it has made its first pass)."""
    async with await psycopg.AsyncConnection.connect(store, autocommit=True) as conn:
        for _ in range(600):
            cur = await conn.execute("SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                                     "'LISTEN dw_%%' AND datname = current_database()")
            row = await cur.fetchone()
            if row and row[0] >= n_workers:
                return
            await asyncio.sleep(0.05)
    raise SystemExit("the workers did not start")


# -- figures --------------------------------------------------------------------------------------
async def throughput(admin: str, server: Server | None, n_workers: int, args: Any) -> None:
    store = new_database(admin)
    client = build(store, args.steps)
    async with client:
        for i in range(args.runs):
            await client.workflows.dispatch("bench", "dev", "flow", {"i": i})
    async with await psycopg.AsyncConnection.connect(store, autocommit=True) as conn:
        pg0 = server.cpu_seconds() if server else 0.0
        cur = await conn.execute("SELECT pg_current_wal_lsn()")
        lsn0 = (await cur.fetchone() or ("0/0",))[0]
        procs = start_workers(store, n_workers, args.concurrency, args.steps)
        try:
            await wait_idle(conn, args.runs, 600)
        finally:
            worker_cpu = stop_workers(procs)
        pg_cpu = (server.cpu_seconds() - pg0) if server else None
        cur = await conn.execute("SELECT min(started_at), max(finished_at), "
                                 "pg_wal_lsn_diff(pg_current_wal_lsn(), %s) FROM dw_runs",
                                 (lsn0,))
        t0, t1, wal = await cur.fetchone() or (0.0, 0.0, 0)
    elapsed = float(t1) - float(t0)
    steps = args.runs * args.steps
    out: dict[str, Any] = {
        "figure": "throughput", "workers": n_workers, "concurrency": args.concurrency,
        "runs": args.runs, "steps_per_run": args.steps, "seconds": round(elapsed, 2),
        "runs_per_s": round(args.runs / elapsed, 1), "steps_per_s": round(steps / elapsed, 1),
        "worker_cpu_s_per_1k_steps": round(worker_cpu / steps * 1000, 3),
        "wal_bytes_per_step": round(float(wal) / steps)}
    if pg_cpu is not None:
        out["pg_cpu_s_per_1k_steps"] = round(pg_cpu / steps * 1000, 3)
        out["steps_per_pg_cpu_s"] = round(steps / pg_cpu, 0)
    emit(**out)


async def claim_latency(admin: str, n_workers: int, args: Any) -> None:
    store = new_database(admin)
    client = build(store, 1)
    procs = start_workers(store, n_workers, args.concurrency, 1)
    try:
        async with client:
            await client._engine()
            await ready(store, n_workers)
            for i in range(args.latency_runs):
                await client.workflows.dispatch("bench", "dev", "flow", {"i": i})
                await asyncio.sleep(args.latency_gap)
            async with await psycopg.AsyncConnection.connect(store, autocommit=True) as conn:
                await wait_idle(conn, args.latency_runs, 120)
                cur = await conn.execute(
                    "SELECT s.started_at - r.created_at FROM dw_runs r JOIN dw_steps s USING "
                    "(workflow_id) WHERE s.step_key = 's0'")
                lat = sorted(float(r[0]) * 1000 for r in await cur.fetchall())
    finally:
        stop_workers(procs)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    emit(figure="claim_latency", workers=n_workers, runs=len(lat),
         p50_ms=round(statistics.median(lat), 2), p99_ms=round(q[98], 2),
         max_ms=round(lat[-1], 2), note="idle workers woken by NOTIFY (poll 2s)")


class DbCounters:
    """Transactions, statements and server time of one database, read from the admin database
    (so that reading them does not count). Backends publish their counts when they go idle
    (at most ~1 s late), so take() waits for that first."""

    def __init__(self, admin: str, store: str) -> None:
        self.admin = admin
        self.db = store.rsplit("/", 1)[1]
        self.statements = True

    async def take(self) -> dict[str, float]:
        await asyncio.sleep(1.2)
        async with await psycopg.AsyncConnection.connect(self.admin, autocommit=True) as c:
            cur = await c.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                  "WHERE datname=%s", (self.db,))
            out = {"xacts": float((await cur.fetchone() or (0,))[0])}
            if self.statements:
                try:
                    await c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                    cur = await c.execute(
                        "SELECT COALESCE(sum(calls), 0), COALESCE(sum(total_exec_time), 0), "
                        "COALESCE(sum(calls) FILTER (WHERE query ~* '^(BEGIN|COMMIT)'), 0) "
                        "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                        "WHERE d.datname=%s", (self.db,))
                    calls, ms, tx = await cur.fetchone() or (0, 0, 0)
                    out.update(statements=float(calls) - float(tx), exec_ms=float(ms))
                except psycopg.Error:
                    self.statements = False  # not preloaded on this server
        return out


class TurnCounter:
    """A TCP proxy in front of PostgreSQL counting request/response turns: one each time a
    client sends after the server last answered it (a pipelined transaction is one turn)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.turns = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _conn(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        sr, sw = await asyncio.open_connection("127.0.0.1", self.port)
        answered = [True]

        async def up() -> None:
            while data := await cr.read(65536):
                if answered[0]:
                    self.turns += 1
                    answered[0] = False
                sw.write(data)
            sw.close()

        async def down() -> None:
            while data := await sr.read(65536):
                answered[0] = True
                cw.write(data)
            cw.close()

        await asyncio.gather(up(), down(), return_exceptions=True)


async def run_costs(admin: str, server: Server | None, args: Any) -> None:
    """What one 3-step run costs the database: inline (`execute`, one after the other), queued
    (dispatched one at a time to 2 idle workers) and backlog (n dispatched while the 2 workers
    are stopped with SIGSTOP, then let go)."""
    steps, n = 3, args.cost_runs
    for case in ("inline", "queued", "backlog"):
        figures: dict[str, float] = {}
        for proxied in (False, True):  # round trips through the counting proxy, apart
            store = new_database(admin)
            port = int(store.split(":")[-1].split("/")[0])
            proxy = TurnCounter(port) if proxied else None
            url = store
            if proxy is not None:
                url = store.replace(f":{port}/", f":{await proxy.start()}/")
            got = await _one_cost(case, admin, url, store, server, steps, n, args)
            if proxy is not None:
                proxy.close()
                figures["round_trips_per_run"] = round(proxy.turns / n, 2)
            else:
                figures.update(got)
        emit(figure="run_cost", case=case, steps_per_run=steps, runs=n, **figures)


async def _one_cost(case: str, admin: str, url: str, store: str, server: Server | None,
                    steps: int, n: int, args: Any) -> dict[str, float]:
    counters = DbCounters(admin, store)
    client = build(url, steps)
    procs: list[subprocess.Popen[bytes]] = []
    polls = 0
    async with client:
        await client.workflows.execute(product="bench", env="dev", tag="flow")  # warm up
        if case != "inline":
            procs = start_workers(url, 2, args.concurrency, steps)
            await ready(store, 2)
        if case == "backlog":
            for p in procs:
                p.send_signal(signal.SIGSTOP)
        before = await counters.take()
        pg0 = server.cpu_seconds() if server else 0.0
        cpu0 = time.process_time()
        wcpu0 = [_cpu(p.pid) for p in procs]
        if case == "inline":
            for i in range(n):
                await client.workflows.execute(product="bench", env="dev", tag="flow",
                                               input={"i": i})
        else:
            for i in range(n):
                await client.workflows.dispatch("bench", "dev", "flow", {"i": i})
            for p in procs if case == "backlog" else []:
                p.send_signal(signal.SIGCONT)
            async with await psycopg.AsyncConnection.connect(store, autocommit=True) as conn:
                while True:
                    polls += 1
                    cur = await conn.execute("SELECT count(*) FROM dw_runs WHERE "
                                             "status='completed'")
                    if (await cur.fetchone() or (0,))[0] >= n + 1:
                        break
                    await asyncio.sleep(0.02)
        py_cpu = time.process_time() - cpu0 + sum(
            _cpu(p.pid) - c for p, c in zip(procs, wcpu0, strict=True))
        pg_cpu = (server.cpu_seconds() - pg0) if server else None
    if procs:  # in a thread: the counting proxy runs on this loop and must keep serving them
        await asyncio.to_thread(stop_workers, procs)
    after = await counters.take()
    out = {"transactions_per_run": round((after["xacts"] - before["xacts"] - polls) / n, 2),
           "python_cpu_ms_per_step": round(py_cpu / (n * steps) * 1000, 3)}
    if "statements" in after:
        out["statements_per_run"] = round(
            (after["statements"] - before["statements"] - polls) / n, 2)
        out["pg_exec_ms_per_step"] = round(
            (after["exec_ms"] - before["exec_ms"]) / (n * steps), 3)
    if pg_cpu is not None:
        out["pg_cpu_ms_per_step"] = round(pg_cpu / (n * steps) * 1000, 3)
    return out


def _cpu(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


async def round_trips(admin: str, args: Any) -> None:
    """Time runs of K and K+20 steps through a proxy that delays every reply by D: the extra
    time divided by 20*D is the number of network round trips one step costs."""
    delay = 0.02
    store = new_database(admin)
    port = int(store.split(":")[-1].split("/")[0])
    proxy = await asyncio.start_server(lambda r, w: _pipe(r, w, port, delay), "127.0.0.1", 0)
    via = store.replace(f":{port}/", f":{proxy.sockets[0].getsockname()[1]}/")
    results = {}
    for k in (2, 22):
        dw = build(via + "?pool_min_size=1&pool_max_size=1", k)
        async with dw:
            await dw.workflows.execute(product="bench", env="dev", tag="flow")  # warm up
            t = time.perf_counter()
            await dw.workflows.execute(product="bench", env="dev", tag="flow")
            results[k] = time.perf_counter() - t
    proxy.close()
    per_step = (results[22] - results[2]) / 20 / delay
    per_run = results[2] / delay - 2 * per_step
    emit(figure="round_trips", per_step=round(per_step, 2), per_run_overhead=round(per_run, 2),
         note="execute(): create run + start + N step commits + finish; proxy delay 20ms")


async def _pipe(cr: asyncio.StreamReader, cw: asyncio.StreamWriter, port: int,
                delay: float) -> None:
    sr, sw = await asyncio.open_connection("127.0.0.1", port)

    async def up() -> None:
        while data := await cr.read(65536):
            sw.write(data)
        sw.close()

    async def down() -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                at, data = await queue.get()
                if not data:
                    break
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                cw.write(data)
            cw.close()

        task = asyncio.create_task(deliver())
        while data := await sr.read(65536):
            queue.put_nowait((time.monotonic() + delay, data))
        queue.put_nowait((0.0, b""))
        await task

    await asyncio.gather(up(), down(), return_exceptions=True)


async def main_async(args: Any) -> None:
    server = None if args.store else Server(args.fast)
    admin = args.store or (server.dsn if server else "")
    try:
        async with await psycopg.AsyncConnection.connect(admin, autocommit=True) as conn:
            cur = await conn.execute("SHOW server_version")
            version = (await cur.fetchone() or ("?",))[0]
            cur = await conn.execute("SELECT current_setting('fsync'), "
                                     "current_setting('synchronous_commit')")
            fsync, sync_commit = await cur.fetchone() or ("?", "?")
        emit(figure="machine", cpus=os.cpu_count(), python=platform.python_version(),
             postgresql=version, fsync=fsync, synchronous_commit=sync_commit,
             store=safe_url(admin), same_host=server is not None,
             ram_gb=round(psutil.virtual_memory().total / 2**30, 1))
        only = set(args.only.split(",")) if args.only else None
        if only is None or "round_trips" in only:
            await round_trips(admin, args)
        if args.cost_runs and (only is None or "run_cost" in only):
            await run_costs(admin, server, args)
        for n in args.workers if only is None or "throughput" in only else []:
            await throughput(admin, server, n, args)
        for n in args.latency_workers if only is None or "claim_latency" in only else []:
            await claim_latency(admin, n, args)
    finally:
        if server is not None:
            server.stop()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        p = argparse.ArgumentParser()
        p.add_argument("worker")
        p.add_argument("--store", required=True)
        p.add_argument("--concurrency", type=int, default=50)
        p.add_argument("--steps", type=int, default=5)
        a = p.parse_args()
        asyncio.run(worker_main(a.store, a.concurrency, a.steps))
        return
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", help="an existing PostgreSQL (a database per figure is created)")
    p.add_argument("--fast", action="store_true", help="fsync=off (the private server only)")
    p.add_argument("--workers", default="1,2,4", help="worker process counts (default 1,2,4)")
    p.add_argument("--latency-workers", default="1,4")
    p.add_argument("--concurrency", type=int, default=50, help="runs per worker at once")
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--latency-runs", type=int, default=300)
    p.add_argument("--only", help="comma list of figures: round_trips, run_cost, "
                   "throughput, claim_latency (default: all)")
    p.add_argument("--cost-runs", type=int, default=300,
                   help="runs per case of the run_cost figure (0: skip it)")
    p.add_argument("--latency-gap", type=float, default=0.01, help="seconds between dispatches")
    args = p.parse_args()
    args.workers = [int(x) for x in args.workers.split(",") if x]
    args.latency_workers = [int(x) for x in args.latency_workers.split(",") if x]
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
