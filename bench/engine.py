"""Engine benchmarks (issue 2): prints one JSON line per figure. Run: python bench/engine.py"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ductwork import Ductwork


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def value(v: Any) -> Any:
    """An async step function returning v: steps in real workflows await I/O (ctx.action.run,
    ctx.database.insert), so the engine's own cost is measured with async steps."""

    async def fn() -> Any:
        return v

    return fn


def define(dw: Ductwork) -> None:
    @dw.workflows.workflow(product="bench", tag="three")
    async def three(ctx: Any) -> Any:
        a = await ctx.step("a", value({"n": 1}))
        b = await ctx.step("b", value({"n": a["n"] + 1}))
        return await ctx.step("c", value({"n": b["n"] + 1}))

    @dw.workflows.workflow(product="bench", tag="thousand")
    async def thousand(ctx: Any) -> Any:
        for i in range(1000):
            await ctx.step(f"s{i}", value({"i": i}))

    # The same with sync functions: each runs in a worker thread (so that a step timeout can
    # interrupt a blocking one); the difference to `thousand` is the cost of that hand-off.
    @dw.workflows.workflow(product="bench", tag="thousand-sync")
    async def thousand_sync(ctx: Any) -> Any:
        for i in range(1000):
            await ctx.step(f"s{i}", lambda i=i: {"i": i})

    @dw.workflows.workflow(product="bench", tag="nap")
    async def nap(ctx: Any) -> Any:
        await ctx.step("before", value({"ok": True}))
        await ctx.sleep("1h")


async def count_writes(dw: Ductwork, work: Callable[[], Awaitable[Any]]) -> dict[str, int]:
    """Write transactions and statements SQLite sees while `work` runs (an untimed pass: the
    trace costs time): concurrent runs share transactions (group commit)."""
    db = dw.store.conn  # type: ignore[attr-defined]
    n = {"write_transactions": 0, "statements": 0}

    def trace(sql: str) -> None:
        n["statements"] += 1
        head = sql.lstrip()[:6].upper()
        # A write outside BEGIN is a transaction of its own.
        if head == "BEGIN " or (not db.in_transaction and head in ("INSERT", "UPDATE",
                                                                      "DELETE")):
            n["write_transactions"] += 1

    db.set_trace_callback(trace)
    try:
        await work()
    finally:
        db.set_trace_callback(None)
    return n


def commit_floor(sync: str, folder: str) -> float:
    """Microseconds per commit of a loop of one-row INSERTs into a table keyed like the step
    table, each its own transaction, with the store's settings: what one durable step cannot
    undercut (median of 6 rounds of 500)."""
    db = sqlite3.connect(os.path.join(folder, f"floor-{sync.lower()}.db"), isolation_level=None)
    db.execute("PRAGMA page_size=2048")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={sync}")
    db.execute("CREATE TABLE f (wid TEXT, k TEXT, res TEXT, PRIMARY KEY (wid, k))")
    rounds = []
    for r in range(6):
        t = time.perf_counter()
        for i in range(500):
            db.execute("INSERT INTO f VALUES (?, ?, ?)", (f"run{r}", f"s{i}", '{"i": 1}'))
        rounds.append((time.perf_counter() - t) / 500 * 1e6)
    db.close()
    return statistics.median(rounds)


async def run(sync: str, folder: str, suspended: int) -> None:
    url = f"sqlite:///{os.path.join(folder, f'bench-{sync.lower()}.db')}"
    dw = Ductwork(store=url, synchronous=sync, inline_wait="0ms")
    define(dw)
    common = {"synchronous": sync, "cpus": os.cpu_count(), "python": platform.python_version()}
    floor = commit_floor(sync, folder)
    emit(bench="commit_floor", us_per_commit=round(floor, 1), **common)
    async with dw:
        ex = dw.workflows.execute
        for _ in range(20):  # warm-up
            await ex(product="bench", env="dev", tag="three")
        # cpu_*: the event loop thread's CPU time (time.thread_time), which other processes on
        # a shared machine disturb far less than the wall clock.
        t, c = time.perf_counter(), time.thread_time()
        for _ in range(300):
            await ex(product="bench", env="dev", tag="three")
        dt, dc = time.perf_counter() - t, time.thread_time() - c
        emit(bench="a_sequential_3_step", workflows=300, seconds=round(dt, 4),
             workflows_per_s=round(300 / dt, 1), us_per_step=round(dt / 900 * 1e6, 1),
             cpu_us_per_workflow=round(dc / 300 * 1e6, 1), **common)

        t, c = time.perf_counter(), time.thread_time()
        r = await ex(product="bench", env="dev", tag="thousand")
        dt, dc = time.perf_counter() - t, time.thread_time() - c
        assert r.status == "completed"
        # 1,002 commits: the run's record, 1,000 steps, its outcome
        emit(bench="b_one_1000_step_workflow", ms=round(dt * 1000, 1), cpu_ms=round(dc * 1000, 1),
             over_floor=round(dt / 1002 * 1e6 / floor, 2), **common)

        t = time.perf_counter()
        r = await ex(product="bench", env="dev", tag="thousand-sync")
        dt = time.perf_counter() - t
        assert r.status == "completed"
        emit(bench="b_one_1000_sync_step_workflow", ms=round(dt * 1000, 1), **common)

        t = time.perf_counter()
        results = await asyncio.gather(*[ex(product="bench", env="dev", tag="three")
                                         for _ in range(200)])
        dt = time.perf_counter() - t
        assert all(x.status == "completed" for x in results)
        emit(bench="c_200_concurrent", seconds=round(dt, 4), **common)
        emit(bench="c_200_concurrent_writes", **await count_writes(dw, lambda: asyncio.gather(
            *[ex(product="bench", env="dev", tag="three") for _ in range(200)])), **common)

        if suspended:
            base = rss_mb()
            t = time.perf_counter()
            for _ in range(suspended):
                r = await ex(product="bench", env="dev", tag="nap")
            dt = time.perf_counter() - t
            assert r.status == "running"
            emit(bench="d_rss_with_suspended_runs", suspended_runs=suspended,
                 rss_mb=round(rss_mb(), 1), rss_before_mb=round(base, 1),
                 seconds_to_start=round(dt, 2), **common)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--suspended", type=int, default=10_000)
    p.add_argument("--sync", default="NORMAL,FULL")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for sync in args.sync.split(","):
            asyncio.run(run(sync.strip().upper(), folder,
                            args.suspended if sync.strip().upper() == "NORMAL" else 0))


if __name__ == "__main__":
    main()
