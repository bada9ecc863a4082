"""Three `ductwork worker` processes share one PostgreSQL; 500 runs are dispatched; one worker is
SIGKILLed mid-way and restarted. Afterwards every run has ended, no step's side effect happened
twice, and every saga designed to fail was rolled back completely."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.scale.app import SCHEMA, build

ROOT = Path(__file__).resolve().parents[2]
N_RUNS = 500
FAIL_EVERY = 10           # every 10th order is a saga designed to fail (and roll back)
CONCURRENCY = 8           # runs one worker drives at once
KILL_AFTER = 120          # finished runs before the victim is killed


class Workers:
    def __init__(self, url: str, logs: Path) -> None:
        self.url, self.logs = url, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "ductwork.cli", "worker", "--app", "tests.scale.app:build",
             "--concurrency", str(CONCURRENCY), "--poll", "1s", "--grace", "10s",
             "--no-schedules"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "DUCTWORK_SCALE_STORE": self.url,
                 "DUCTWORK_SCALE_HOST": f"machine-{len(self.procs)}"})
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return (self.logs / f"worker-{self.procs.index(proc)}.log").read_text(errors="replace")

    async def wait_started(self, proc: subprocess.Popen[bytes]) -> None:
        for _ in range(600):
            if " started (concurrency" in self.log(proc):
                return
            if proc.poll() is not None:
                pytest.fail(f"worker exited at start: {self.log(proc)}")
            await asyncio.sleep(0.05)
        pytest.fail(f"worker did not start: {self.log(proc)}")

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


async def q(conn: psycopg.AsyncConnection[Any], sql: str, *params: Any) -> list[tuple[Any, ...]]:
    cur = await conn.execute(sql, params)
    return await cur.fetchall()


@pytest.mark.slow
async def test_sigkill_one_of_three_workers_mid_way(pg_url: str, tmp_path: Path) -> None:
    conn = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    workers = Workers(pg_url, tmp_path)
    client = build(pg_url)
    try:
        await conn.execute(SCHEMA)
        await client._engine()  # migrates the store before three workers race to
        procs = [workers.start() for _ in range(3)]
        for p in procs:
            await workers.wait_started(p)

        for i in range(N_RUNS):
            await client.workflows.dispatch("scale", "dev", "order",
                                            {"n": i, "fail": i % FAIL_EVERY == 0},
                                            workflow_id=f"order-{i:03}")

        # Kill the victim while it holds runs, once enough work is done that it is mid-way.
        victim = procs[0]
        owner_like = f"%:{victim.pid}:%"
        deadline = time.monotonic() + 60
        while True:
            ((done, held),) = await q(
                conn, "SELECT count(*) FILTER (WHERE status IN ('completed', 'rolled_back', "
                "'failed')), count(*) FILTER (WHERE owner LIKE %s) FROM dw_runs", owner_like)
            if done >= KILL_AFTER and held > 0:
                break
            assert done < N_RUNS, "the backlog drained before the victim could be killed"
            assert time.monotonic() < deadline, f"stuck at {done} finished runs"
            await asyncio.sleep(0.01)
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait() == -signal.SIGKILL
        orphaned = [r[0] for r in await q(conn, "SELECT workflow_id FROM dw_runs WHERE "
                                          "owner LIKE %s", owner_like)]
        assert orphaned, "the victim held no runs when it died"
        restarted = workers.start()
        await workers.wait_started(restarted)

        deadline = time.monotonic() + 90
        while True:
            ((left,),) = await q(conn, "SELECT count(*) FROM dw_runs WHERE status NOT IN "
                                 "('completed', 'rolled_back', 'failed', 'cancelled')")
            if left == 0:
                break
            assert time.monotonic() < deadline, f"{left} runs never finished"
            await asyncio.sleep(0.05)

        for p in workers.procs:  # graceful shutdown of the survivors and the restarted one
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in workers.procs[1:]:
            assert p.wait(timeout=30) == 0, workers.log(p)
            assert "Traceback" not in workers.log(p), workers.log(p)

        # -- every run ended the way it was designed to --------------------------------------
        statuses = dict(await q(conn, "SELECT workflow_id, status FROM dw_runs"))
        assert len(statuses) == N_RUNS
        for i in range(N_RUNS):
            expected = "rolled_back" if i % FAIL_EVERY == 0 else "completed"
            assert statuses[f"order-{i:03}"] == expected, (i, statuses[f"order-{i:03}"])

        # -- the killed worker's runs were taken over from their last committed step ---------
        for wid in orphaned:
            steps = await q(conn, "SELECT step_key, status FROM dw_steps WHERE workflow_id=%s "
                            "AND kind='step'", wid)
            assert steps, wid
        resumed = await q(conn, "SELECT count(*) FROM dw_events WHERE type='workflow_resumed' "
                          "AND workflow_id = ANY(%s)", orphaned)
        assert resumed[0][0] >= len(orphaned)

        # -- side effects: one per completed step; only the victim's in-flight steps re-ran ----
        n_failed = len(range(0, N_RUNS, FAIL_EVERY))
        effects = await q(conn, "SELECT count(*) FROM scale_effects")
        assert effects[0][0] == (N_RUNS - n_failed) * 3 + n_failed * 2
        missing = await q(conn, "SELECT s.workflow_id, s.step_key FROM dw_steps s LEFT JOIN "
                          "scale_effects e ON e.workflow_id=s.workflow_id AND e.step=s.step_key "
                          "WHERE s.kind='step' AND s.status='completed' AND e.pid IS NULL")
        assert missing == []
        reruns = await q(conn, "SELECT workflow_id, step, kind, array_agg(pid ORDER BY id) "
                         "FROM scale_attempts WHERE kind <> 'failed' GROUP BY 1, 2, 3 "
                         "HAVING count(*) > 1")
        for wid, step, kind, pids in reruns:
            # At-least-once only for what was in flight on the killed worker: every extra
            # execution is the victim's, and no live worker ran anything twice.
            assert pids.count(victim.pid) == len(pids) - 1, (wid, step, kind, pids)
            assert wid in orphaned, (wid, step)
        assert len(reruns) <= CONCURRENCY
        failed_ship = await q(conn, "SELECT workflow_id, count(*) FROM scale_attempts WHERE "
                              "kind='failed' GROUP BY 1 HAVING count(*) > 1")
        assert all(w in orphaned for w, _ in failed_ship)

        # -- every failed saga was fully rolled back; no completed order was compensated -------
        comp = await q(conn, "SELECT workflow_id, array_agg(step ORDER BY step) FROM "
                       "scale_compensations GROUP BY 1")
        assert {w: s for w, s in comp} == {
            f"order-{i:03}": ["charge", "reserve"] for i in range(0, N_RUNS, FAIL_EVERY)}
        not_rolled = await q(conn, "SELECT s.workflow_id, s.step_key FROM dw_steps s JOIN "
                             "dw_runs r USING (workflow_id) WHERE r.status='rolled_back' AND "
                             "s.has_rollback AND s.status='completed' AND "
                             "s.rollback_status IS DISTINCT FROM 'rolled_back'")
        assert not_rolled == []
    finally:
        workers.stop_all()
        await client.aclose()
        await conn.close()
