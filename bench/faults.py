"""Fault campaign: worker processes SIGKILLed at random while they drive sagas; JSON lines.

    python bench/faults.py                          # 200 runs on SQLite, then 200 on PostgreSQL
    python bench/faults.py --store sqlite --runs 1000 --workers 3 --seed 7
    python bench/faults.py --store postgresql://u:p@host/db   # an existing, empty database

N runs of a three-step order saga (every 5th designed to fail at its last step and roll back)
are dispatched to `ductwork worker` processes; a killer SIGKILLs a random worker every 0.2-1 s
(one that claims runs, keeping at least one) and starts a new one. Each step and each
compensation calls a provider (an HTTP server in this process, which records the call on
arrival, with its Idempotency-Key header, then answers after 0-40 ms: a kill in that window is a
step killed after its side effect and before its commit).
Then it checks, per run, from the provider's records and the run store:

- no run lost: every run ends, with the status it was designed to end with;
- no step re-executed after its commit: no call of a step reaches the provider after the
  step's result was recorded (at-least-once is allowed only before it: those are counted);
- every call of one step carries the same idempotency key, and no two steps share one;
- every failed saga compensated: each completed step's compensation ran and is recorded, newest
  first, and none ran again after its own record; no completed order was compensated.

One JSON line per store with the figures and `"ok"`; the exit status is 1 if any check failed.
PostgreSQL is a private server started for the campaign (the test settings: fsync off, as only
the workers are killed, never the database) unless --store gives a URL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FAIL_EVERY = 5
STEPS = ("reserve", "charge", "ship")


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


# -- the app the workers run: `ductwork worker --app faults:build` --------------------------------
def build() -> Any:
    import httpx

    from ductwork import Ductwork

    provider = os.environ["DW_FAULTS_PROVIDER"]
    client: dict[str, httpx.AsyncClient] = {}

    async def call(ctx: Any, kind: str, step: str) -> dict[str, Any]:
        if "c" not in client:
            client["c"] = httpx.AsyncClient(base_url=provider, timeout=30)
        body = {"wid": ctx.workflow_id, "step": step, "kind": kind, "pid": os.getpid()}
        resp = await client["c"].post("/call", json=body,
                                      headers={"Idempotency-Key": ctx.idempotency_key})
        resp.raise_for_status()
        return {"step": step}

    async def order(ctx: Any) -> Any:
        for step in STEPS:
            if step == "ship" and ctx.input["fail"]:
                await ctx.step("ship", declined)
            await ctx.step(step, lambda s=step: call(ctx, "effect", s),
                           rollback=None if step == "ship"
                           else (lambda _r, s=step: call(ctx, "compensation", s)))
        return {"order": ctx.input["n"]}

    dw = Ductwork(store=os.environ["DW_FAULTS_STORE"], lease="2s", inline_wait="0ms")
    dw.workflows.define(product="faults", tag="order", handler=order)
    return dw


async def declined() -> None:
    raise RuntimeError("card declined")


# -- the provider ---------------------------------------------------------------------------------
class Provider:
    """Records every call on arrival (time, body, idempotency key), answers 0-40 ms later."""

    def __init__(self, seed: int) -> None:
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        rng = random.Random(seed)
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                except ValueError:  # the worker died while sending: no call was made
                    return
                with provider.lock:
                    provider.calls.append({**body, "t": time.time(),
                                           "key": self.headers.get("Idempotency-Key")})
                    delay = rng.uniform(0, 0.04)
                time.sleep(delay)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:  # the worker was killed while waiting for this reply
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            # socketserver's default backlog of 5 refuses connections when several workers
            # each run 50 steps at once; a real service accepts them
            request_queue_size = 1024
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- workers and the killer -----------------------------------------------------------------------
class Workers:
    def __init__(self, store: str, provider: str, logs: Path, concurrency: int) -> None:
        self.env = {**os.environ, "DW_FAULTS_STORE": store, "DW_FAULTS_PROVIDER": provider,
                    "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT),
                                                   os.environ.get("PYTHONPATH", "")])}
        self.logs, self.concurrency = logs, concurrency
        self.procs: list[subprocess.Popen[bytes]] = []
        self.started = 0

    def start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        with open(self.logs / f"worker-{self.started}.log", "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "ductwork.cli", "worker", "--app", "faults:build",
                 "--concurrency", str(self.concurrency), "--poll", "200ms", "--grace", "5s",
                 "--no-schedules"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.procs.append(proc)
        return proc

    def is_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        log = self.logs / f"worker-{self.procs.index(proc) + 1}.log"
        return " started (concurrency" in log.read_text(errors="replace")

    async def ready(self, proc: subprocess.Popen[bytes]) -> None:
        """Wait until the worker claims runs (killing one still importing proves nothing)."""
        log = self.logs / f"worker-{self.procs.index(proc) + 1}.log"
        deadline = time.monotonic() + 60
        while " started (concurrency" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start: {log.read_text(errors='replace')}")
            await asyncio.sleep(0.02)

    def live(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    async def stop(self) -> list[int]:
        """SIGTERM the live workers once they run (one still importing would just die of it);
        their exit codes."""
        live = self.live()
        for p in live:
            await self.ready(p)
        for p in live:
            p.send_signal(signal.SIGTERM)
        return [p.wait(timeout=60) for p in live]


async def campaign(store: str, name: str, args: argparse.Namespace, logs: Path) -> bool:
    rng = random.Random(args.seed)
    provider = Provider(args.seed)
    workers = Workers(store, provider.url, logs, args.concurrency)
    os.environ.update(DW_FAULTS_STORE=store, DW_FAULTS_PROVIDER=provider.url)
    client = build()  # the same workflow as the workers, to dispatch it and read its runs
    kills = held_at_kill = 0
    t0 = time.monotonic()
    try:
        await client._engine()  # create/migrate the store before the workers race to
        for proc in [workers.start() for _ in range(args.workers)]:
            await workers.ready(proc)
        ids = [f"order-{i:04}" for i in range(args.runs)]
        for i, wid in enumerate(ids):
            await client.workflows.dispatch("faults", "dev", "order",
                                            {"n": i, "fail": i % FAIL_EVERY == 0},
                                            workflow_id=wid)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            left = [w for w in ids if await status(client, w)
                    not in ("completed", "rolled_back", "failed", "cancelled")]
            if not left:
                break
            await asyncio.sleep(rng.uniform(args.kill_min, args.kill_max))
            ready = [p for p in workers.live() if workers.is_ready(p)]
            if len(ready) < 2:
                continue  # keep one worker claiming while the new ones start
            victim = rng.choice(ready)
            owners = await client.store.live_owners()
            held_at_kill += any(f":{victim.pid}:" in o for o in owners)
            victim.kill()
            victim.wait()
            kills += 1
            workers.start()
        seconds = time.monotonic() - t0
        exits = await workers.stop()
        report = await check(client, ids, provider.calls)
        report.update(bench="faults", store=name, runs=args.runs, workers=args.workers,
                      kills=kills, kills_holding_runs=held_at_kill, seconds=round(seconds, 1),
                      exit_codes=sorted(set(exits)), clean_exits=exits.count(0) == len(exits))
        report["ok"] = report["clean_exits"] and not any(
            report[k] for k in ("lost", "wrong_status", "re_executed_after_commit",
                                "keys_differ_within_step", "keys_shared_between_steps",
                                "not_compensated", "compensation_order_wrong",
                                "compensated_after_commit", "completed_but_compensated"))
        emit(**report)
        return bool(report["ok"])
    finally:
        for p in workers.live():
            p.kill()
            p.wait()
        await client.aclose()
        provider.close()


async def status(client: Any, workflow_id: str) -> str | None:
    run = await client.store.get_run(workflow_id)
    return None if run is None else str(run.status)


async def check(client: Any, ids: list[str], calls: list[dict[str, Any]]) -> dict[str, Any]:
    by: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        by[(c["wid"], c["step"], c["kind"])].append(c)
    out: dict[str, Any] = defaultdict(int)
    examples: list[dict[str, Any]] = []
    owner_of_key: dict[str, tuple[str, str, str]] = {}
    for (wid, step, kind), cs in by.items():
        keys = {c["key"] for c in cs}
        out["keys_differ_within_step"] += len(keys) > 1
        for k in keys:
            if owner_of_key.setdefault(k, (wid, step, kind)) != (wid, step, kind):
                out["keys_shared_between_steps"] += 1
    for i, wid in enumerate(ids):
        run = await client.store.get_run(wid)
        fail = i % FAIL_EVERY == 0
        if run.status not in ("completed", "rolled_back", "failed", "cancelled"):
            out["lost"] += 1
            continue
        if run.status != ("rolled_back" if fail else "completed"):
            out["wrong_status"] += 1
        steps = {s.step_key: s for s in await client.store.load_steps(wid)}
        rolled = {e["step"]: e["ts"] for e in await client.store.events(wid)
                  if e["type"] == "step_rolled_back"}
        for step in STEPS:
            effects = by.get((wid, step, "effect"), [])
            rec = steps.get(step)
            if rec is not None and rec.status == "completed" and rec.finished_at is not None:
                # The committed record's time is taken after the call returned: a call that
                # arrives later ran the step again after its commit.
                late = [c for c in effects if c["t"] > rec.finished_at]
                out["re_executed_after_commit"] += len(late)
                if late:
                    examples.append({"run": wid, "step": step, "recorded_at": rec.finished_at,
                                     "attempts": rec.attempts,
                                     "calls": [(c["t"], c["pid"]) for c in effects]})
            out["re_executed_in_flight"] += max(0, len(effects) - 1)
            comps = by.get((wid, step, "compensation"), [])
            if not fail:
                out["completed_but_compensated"] += bool(comps)
                continue
            if step == "ship":
                continue
            if not comps or rec is None or rec.rollback_status != "rolled_back":
                out["not_compensated"] += 1
                continue
            out["compensated_again_in_flight"] += len(comps) - 1
            if step in rolled:
                late = [c for c in comps if c["t"] > rolled[step]]
                out["compensated_after_commit"] += len(late)
                if late:
                    examples.append({"run": wid, "compensation": step,
                                     "recorded_at": rolled[step],
                                     "calls": [(c["t"], c["pid"]) for c in comps]})
        if fail:
            first = {s: min((c["t"] for c in by.get((wid, s, "compensation"), [])),
                            default=None) for s in ("reserve", "charge")}
            if None not in first.values() and first["charge"] > first["reserve"]:  # type: ignore
                out["compensation_order_wrong"] += 1
    for key in ("lost", "wrong_status", "re_executed_after_commit", "re_executed_in_flight",
                "keys_differ_within_step", "keys_shared_between_steps", "not_compensated",
                "compensation_order_wrong", "compensated_again_in_flight",
                "compensated_after_commit", "completed_but_compensated"):
        out.setdefault(key, 0)
    out["provider_calls"] = len(calls)
    if examples:
        out["violations"] = examples[:5]
    return dict(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", default="both",
                    help="sqlite, postgres, both (default) or a postgresql:// URL")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8, help="runs one worker drives at once")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kill-min", type=float, default=0.2, help="least seconds between kills")
    ap.add_argument("--kill-max", type=float, default=1.0, help="most seconds between kills")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a run is lost")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    ok = True
    with tempfile.TemporaryDirectory(prefix="dw-faults-") as tmp:
        kinds = ["sqlite", "postgres"] if args.store == "both" else [args.store]
        for kind in kinds:
            logs = Path(tmp) / kind.split(":")[0]
            logs.mkdir()
            if kind == "sqlite":
                ok &= asyncio.run(campaign(f"sqlite:///{tmp}/runs.db", "sqlite", args, logs))
            elif kind == "postgres":
                from tests.support.postgres import start_postgres

                server = start_postgres()
                try:
                    ok &= asyncio.run(campaign(server.dsn, "postgresql", args, logs))
                finally:
                    server.stop()
            else:
                ok &= asyncio.run(campaign(kind, "postgresql", args, logs))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
