"""Latency: p50/p99 of step overhead, dispatch -> first step, signal -> resume; JSON lines.

    python bench/latency.py                 # SQLite in one process, then PostgreSQL across
                                            # processes (a private server, fsync on)
    python bench/latency.py --no-postgres   # SQLite only
    python bench/latency.py --no-sqlite     # PostgreSQL only
    python bench/latency.py --no-sqlite --breakdown   # and where the time of each run goes

Figures (each one JSON line with p50_ms, p99_ms, max_ms and the sample size):

- step_overhead: the time between one step's function starting and the next one's, for async
  steps that return at once: the engine's own cost per step (journal, commit, replay checks).
- dispatch_to_first_step: `dispatch()` until the run's first step function starts, in a worker
  that is idle and waiting (in-process on SQLite; a `worker` process woken by NOTIFY on
  PostgreSQL).
- signal_to_resume: `signal()` until the step after `wait_for_signal` starts, for a run that
  waits suspended (its worker is idle).

Times across processes are read from one clock (time.time() on the same machine). On
PostgreSQL each figure also says what one run cost the worker process: its store round trips
(connections taken from its pool: a pipeline counts once) and CPU milliseconds, and the
server's CPU milliseconds; these hardly move with the machine's load, unlike the wall clock.
For signal_to_resume they cover the whole run, and the resume_ ones only what follows the
signals (the claim, the signal taken, the next step and the end).
With --breakdown, one more line per figure gives the median and 90th percentile of each
stretch between the moments of a run: the client's call sent and returned, the worker's
NOTIFY read, its claim sent and answered, the commit that takes the signal sent and answered,
and the step starting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ductwork import Ductwork  # noqa: E402


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def summary(name: str, samples_s: list[float], **extra: Any) -> None:
    ms = sorted(x * 1000 for x in samples_s)
    p99 = statistics.quantiles(ms, n=100, method="inclusive")[98] if len(ms) > 1 else ms[0]
    emit(figure=name, n=len(ms), p50_ms=round(statistics.median(ms), 3), p99_ms=round(p99, 3),
         max_ms=round(ms[-1], 3), **extra)


def build(store: str) -> Ductwork:
    """The bench workflows; each step returns the wall-clock time it started at."""
    dw = Ductwork(store=store, inline_wait="0ms")

    async def now() -> float:
        return time.time()

    async def chain(ctx: Any) -> Any:
        return [await ctx.step(f"s{i}", now) for i in range(int(ctx.input["steps"]))]

    async def first(ctx: Any) -> Any:
        return await ctx.step("first", now)

    async def waits(ctx: Any) -> Any:
        await ctx.wait_for_signal("go", timeout="1h")
        return await ctx.step("after", now)

    dw.workflows.define(product="bench", tag="chain", handler=chain)
    dw.workflows.define(product="bench", tag="first", handler=first)
    dw.workflows.define(product="bench", tag="waits", handler=waits, signals=["go"])
    return dw


async def _until(dw: Ductwork, ids: list[str], statuses: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for wid in ids:
        while (await dw.workflows.status(wid))["status"] not in statuses:
            if time.monotonic() > deadline:
                raise SystemExit(f"run {wid} did not reach {statuses} in {timeout}s")
            await asyncio.sleep(0.01)


Marks = dict[str, dict[str, float]]  # workflow id -> moment -> time.time()


async def dispatched(dw: Ductwork, runs: int, gap: float, marks: Marks | None = None
                     ) -> list[float]:
    sent: dict[str, float] = {}
    for _ in range(runs):
        t = time.time()
        job = await dw.workflows.dispatch("bench", "dev", "first", {})
        sent[job["job_id"]] = t
        if marks is not None:
            marks[job["job_id"]] = {"sent": t, "returned": time.time()}
        await asyncio.sleep(gap)
    await _until(dw, list(sent), {"completed"}, 120)
    return await _ended(dw, sent, marks)


async def _ended(dw: Ductwork, sent: dict[str, float], marks: Marks | None) -> list[float]:
    out = []
    for wid, t in sent.items():
        step = (await dw.workflows.result(wid)).output
        out.append(step - t)
        if marks is not None:
            marks[wid]["step"] = step
    return out


async def signalled(dw: Ductwork, runs: int, gap: float, marks: Marks | None = None,
                    waiting: Any = None) -> list[float]:
    ids = [(await dw.workflows.dispatch("bench", "dev", "waits", {}))["job_id"]
           for _ in range(runs)]
    await _until(dw, ids, {"waiting"}, 120)
    if waiting is not None:
        await waiting()
    sent: dict[str, float] = {}
    for wid in ids:
        t = sent[wid] = time.time()
        await dw.workflows.signal(wid, "go", {})
        if marks is not None:
            marks[wid] = {"sent": t, "returned": time.time()}
        await asyncio.sleep(gap)
    await _until(dw, ids, {"completed"}, 120)
    return await _ended(dw, sent, marks)


def breakdown(name: str, client: Marks, worker: Marks, order: list[str]) -> None:
    """--breakdown: the median and 90th percentile of each gap between consecutive moments of
    a run (ms), over the runs where both were seen."""
    gaps: dict[str, float] = {}
    tails: dict[str, float] = {}
    for a, b in pairwise(order):
        xs = [(m[b] - m[a]) * 1000 for wid, c in client.items()
              for m in [{**c, **worker.get(wid, {})}] if a in m and b in m]
        if len(xs) > 1:
            gaps[f"{a}->{b}"] = round(statistics.median(xs), 3)
            tails[f"{a}->{b}"] = round(statistics.quantiles(xs, n=10)[8], 3)
    emit(figure=name + "_breakdown", median_ms=gaps, p90_ms=tails)


async def sqlite(args: Any, folder: str) -> None:
    dw = build(f"sqlite:///{folder}/latency.db")
    common = {"store": "sqlite", "synchronous": "NORMAL", "processes": 1}
    async with dw:
        gaps: list[float] = []
        for _ in range(args.repeat):
            r = await dw.workflows.execute(product="bench", env="dev", tag="chain",
                                           input={"steps": args.steps})
            times = r.output
            gaps += [b - a for a, b in pairwise(times)]
        summary("step_overhead", gaps, **common)
        worker = asyncio.create_task(dw.workflows.run_worker(
            concurrency=50, poll="1s", schedules=False, handle_signals=False))
        try:
            await asyncio.sleep(0.2)
            summary("dispatch_to_first_step", await dispatched(dw, args.runs, args.gap),
                    **common)
            summary("signal_to_resume", await signalled(dw, args.runs, args.gap), **common)
        finally:
            dw.workflows.stop_worker()
            await worker


class WorkerCost:
    """What the worker process spent between two readings: store round trips and CPU (its
    own, read by the worker on SIGUSR1), and the PostgreSQL server's CPU."""

    def __init__(self, proc: subprocess.Popen[bytes], stats: Path, server: Any) -> None:
        self.proc, self.stats, self.server = proc, stats, server
        self.seq = 0
        self.marks: Marks = {}

    async def read(self) -> tuple[int, float, float]:
        """(round trips, worker CPU, server CPU); the worker's trace marks go to self.marks."""
        self.seq += 1
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                seq, trips, cpu, self.marks = json.loads(self.stats.read_text())
            except (OSError, ValueError):
                seq = -1
            if seq == self.seq:
                return trips, cpu, self.server.cpu_seconds()
            await asyncio.sleep(0.01)
        raise SystemExit("the bench worker did not answer SIGUSR1")

    @staticmethod
    def per_run(before: tuple[int, float, float], after: tuple[int, float, float],
                runs: int) -> dict[str, float]:
        return {"worker_round_trips_per_run": round((after[0] - before[0]) / runs, 2),
                "worker_cpu_ms_per_run": round((after[1] - before[1]) * 1000 / runs, 3),
                "postgres_cpu_ms_per_run": round((after[2] - before[2]) * 1000 / runs, 3)}


async def postgres(args: Any) -> None:
    import scale  # bench/scale.py: its private PostgreSQL server

    server = scale.Server(fast=False)
    try:
        store = scale.new_database(server.dsn)
        client = build(store)
        async with client:
            await client.workflows.list()  # creates the schema before the worker starts
            with tempfile.TemporaryDirectory() as folder:
                stats = Path(folder) / "stats.json"
                trace = ["--trace"] if args.breakdown else []
                proc = subprocess.Popen([sys.executable, __file__, "worker", "--store", store,
                                         "--stats", str(stats), *trace],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                try:
                    await scale.ready(store, 1)
                    cost = WorkerCost(proc, stats, server)
                    common = {"store": "postgresql", "fsync": "on", "processes": 2}
                    gaps: list[float] = []
                    for _ in range(args.repeat):
                        r = await client.workflows.execute(product="bench", env="dev",
                                                           tag="chain",
                                                           input={"steps": args.steps})
                        gaps += [b - a for a, b in pairwise(r.output)]
                    summary("step_overhead", gaps, **{**common, "processes": 1})
                    marks: Marks | None = {} if args.breakdown else None
                    before = await cost.read()
                    samples = await dispatched(client, args.runs, args.gap, marks)
                    summary("dispatch_to_first_step", samples, **common,
                            **cost.per_run(before, await cost.read(), args.runs))
                    if marks is not None:
                        breakdown("dispatch_to_first_step", marks, cost.marks,
                                  ["sent", "returned", "notified", "claim_sent", "claimed",
                                   "step"])
                        marks = {}
                    before = await cost.read()
                    waited: list[tuple[int, float, float]] = []

                    async def all_waiting() -> None:
                        waited.append(await cost.read())

                    samples = await signalled(client, args.runs, args.gap, marks, all_waiting)
                    end = await cost.read()
                    # The per-run figures include each run's start up to its signal wait; the
                    # resume_ ones count from the first signal on (the resume and the end).
                    resume = {"resume_" + k: v for k, v in
                              cost.per_run(waited[0], end, args.runs).items()}
                    summary("signal_to_resume", samples, **common,
                            **cost.per_run(before, end, args.runs), **resume)
                    if marks is not None:
                        breakdown("signal_to_resume", marks, cost.marks,
                                  ["sent", "returned", "notified", "claim_sent", "claimed",
                                   "consume_sent", "consumed", "step"])
                finally:
                    proc.terminate()
                    proc.wait(30)
    finally:
        server.stop()


def _trace_worker() -> dict[str, dict[str, float]]:
    """--breakdown: the worker's moments per run (workflow id -> mark -> time.time()), the
    first of each kind since the last reading: the NOTIFY read, the claim sent and answered,
    the commit that consumes a signal sent and answered."""
    from ductwork.store.postgres import PostgresStore
    from ductwork.store.postgres.notify import Listener
    from ductwork.store.postgres.sql import RUN_SEP

    marks: dict[str, dict[str, float]] = {}

    def mark(wid: str, name: str) -> None:
        marks.setdefault(wid, {}).setdefault(name, time.time())

    announce = Listener._announce

    def announced(self: Any, payload: str) -> None:
        _, sep, wid = payload.rpartition(RUN_SEP)
        if sep:
            mark(wid, "notified")
        announce(self, payload)

    claim_announced = PostgresStore.claim_announced

    async def claim(self: Any, owner: str, lease_s: float, wids: list[str],
                    **kw: Any) -> Any:
        for w in wids:
            mark(w, "claim_sent")
        got = await claim_announced(self, owner, lease_s, wids, **kw)
        for c in got:
            mark(c.run.workflow_id, "claimed")
        return got

    claim_due = PostgresStore.claim_due

    async def due(self: Any, *a: Any, **kw: Any) -> Any:
        t = time.time()
        got = await claim_due(self, *a, **kw)
        for r in got:
            marks.setdefault(r.workflow_id, {}).setdefault("claim_sent", t)
            mark(r.workflow_id, "claimed")
        return got

    commit, commit_many = PostgresStore.commit, PostgresStore.commit_many

    async def one(self: Any, wid: str, batch: Any) -> Any:
        if batch.consume_signal is not None:
            mark(wid, "consume_sent")
        await commit(self, wid, batch)
        if batch.consume_signal is not None:
            mark(wid, "consumed")

    async def many(self: Any, items: list[Any]) -> Any:
        for wid, b in items:
            if b.consume_signal is not None:
                mark(wid, "consume_sent")
        out = await commit_many(self, items)
        for wid, b in items:
            if b.consume_signal is not None:
                mark(wid, "consumed")
        return out

    Listener._announce = announced  # type: ignore[method-assign]
    PostgresStore.claim_announced = claim  # type: ignore[method-assign, assignment]
    PostgresStore.claim_due = due  # type: ignore[method-assign]
    PostgresStore.commit = one  # type: ignore[method-assign, assignment]
    PostgresStore.commit_many = many  # type: ignore[method-assign]
    return marks


async def worker_main(store: str, stats: str, trace: bool) -> None:
    from ductwork.store.postgres import PostgresStore

    trips = 0
    with_conn = PostgresStore._with

    async def counted(self: Any, fn: Any) -> Any:
        nonlocal trips
        trips += 1
        return await with_conn(self, fn)

    PostgresStore._with = counted  # type: ignore[method-assign]
    marks = _trace_worker() if trace else {}
    seq = 0

    def report() -> None:
        nonlocal seq
        seq += 1
        tmp = stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump([seq, trips, time.process_time(), marks], f)
        os.replace(tmp, stats)
        marks.clear()

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, report)
    dw = build(store)
    try:
        await dw.workflows.run_worker(concurrency=50, poll="2s", grace="5s", schedules=False,
                                      handle_signals=True)
    finally:
        await dw.aclose()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        asyncio.run(worker_main(sys.argv[sys.argv.index("--store") + 1],
                                sys.argv[sys.argv.index("--stats") + 1],
                                "--trace" in sys.argv))
        return
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=200, help="runs per latency figure")
    p.add_argument("--gap", type=float, default=0.005, help="seconds between dispatches")
    p.add_argument("--steps", type=int, default=200, help="steps of the step-overhead run")
    p.add_argument("--repeat", type=int, default=5, help="step-overhead runs")
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--no-sqlite", action="store_true")
    p.add_argument("--breakdown", action="store_true",
                   help="PostgreSQL: also the median of each moment to the next (the worker "
                        "traced; its own cost figures then include the tracing)")
    args = p.parse_args()
    emit(figure="machine", cpus=os.cpu_count(), python=platform.python_version(),
         load_average=[round(x, 2) for x in os.getloadavg()])
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as folder:
            asyncio.run(sqlite(args, folder))
    if not args.no_postgres:
        asyncio.run(postgres(args))


if __name__ == "__main__":
    main()
