"""A worker frozen with SIGSTOP past its lease while it compensates a saga: another worker takes
the run over and ends it; continued, the frozen one starts no compensation of the run it lost.

The freeze lands at the one place no commit fences: right after the frozen worker's commit of
one compensation and before it starts the next. The test holds a lock that the commit waits
for, stops the worker while it waits, and lets the commit through: the database finishes it
while the worker is frozen."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.scale.app import SCHEMA, build
from tests.scale.test_kill_worker import Workers, q

WID = "frozen-saga"


async def until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.mark.slow
async def test_a_frozen_worker_does_not_compensate_a_run_taken_over(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each compensation's remote call takes 1 s after its side effect: time to take the lock.
    monkeypatch.setenv("DUCTWORK_SCALE_COMPENSATION_DELAY", "1")
    conn = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    locker = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    workers = Workers(pg_url, tmp_path)
    client = build(pg_url)
    frozen_at: float | None = None
    try:
        await conn.execute(SCHEMA)
        await client._engine()
        first = workers.start()
        await workers.wait_started(first)
        await client.workflows.dispatch("scale", "dev", "order", {"n": 1, "fail": True},
                                        workflow_id=WID)

        async def charge_compensated() -> bool:
            rows = await q(conn, "SELECT pid FROM scale_attempts WHERE workflow_id=%s AND "
                           "step='charge' AND kind='compensation'", WID)
            return bool(rows)

        # The first compensation (charge, the newest step) has had its side effect and waits
        # 1 s for its reply: block the commit that will record it, and freeze the worker there.
        await until("the first compensation", charge_compensated)
        await locker.execute("BEGIN")
        await locker.execute("LOCK TABLE dw_steps IN SHARE MODE")

        async def commit_waiting() -> bool:
            rows = await q(conn, "SELECT count(*) FROM pg_stat_activity WHERE "
                           "datname=current_database() AND wait_event_type='Lock' AND "
                           "query ILIKE '%%dw_steps%%'")
            return bool(rows[0][0])

        await until("the compensation's commit to wait for the lock", commit_waiting)
        os.kill(first.pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        await locker.execute("COMMIT")  # the database finishes the commit of the frozen worker

        async def charge_recorded() -> bool:
            rows = await q(conn, "SELECT rollback_status FROM dw_steps WHERE workflow_id=%s AND "
                           "step_key='charge'", WID)
            return rows == [("rolled_back",)]

        await until("the frozen worker's commit", charge_recorded)

        # Another worker takes the run over once the frozen one's 2 s lease ran out, runs the
        # remaining compensation and ends the run.
        second = workers.start()
        await workers.wait_started(second)

        async def ended() -> Any:
            rows = await q(conn, "SELECT status, owner FROM dw_runs WHERE workflow_id=%s", WID)
            return rows[0] if rows[0][0] in ("rolled_back", "failed") else None

        status, owner = await until("the takeover to end the run", ended)
        assert (status, owner) == ("rolled_back", None)

        # Continued, the frozen worker finds the run is no longer its own and stops there.
        os.kill(first.pid, signal.SIGCONT)
        frozen_at = None

        async def gave_up() -> bool:
            return "another worker took it over" in workers.log(first)

        await until("the continued worker to drop the run", gave_up)

        attempts = await q(conn, "SELECT step, kind, pid FROM scale_attempts WHERE "
                           "workflow_id=%s ORDER BY id", WID)
        assert attempts == [
            ("reserve", "effect", first.pid), ("charge", "effect", first.pid),
            ("ship", "failed", first.pid),
            ("charge", "compensation", first.pid),   # before the freeze, recorded once
            ("reserve", "compensation", second.pid),  # by the new owner only
        ]
        steps = await q(conn, "SELECT step_key, rollback_status FROM dw_steps WHERE "
                        "workflow_id=%s AND kind='step' ORDER BY seq", WID)
        assert steps == [("reserve", "rolled_back"), ("charge", "rolled_back"), ("ship", None)]

        for p in (first, second):
            p.send_signal(signal.SIGTERM)
        for p in (first, second):
            assert p.wait(timeout=30) == 0, workers.log(p)
            assert "Traceback" not in workers.log(p), workers.log(p)
    finally:
        if frozen_at is not None:
            for p in workers.procs:
                if p.poll() is None:
                    os.kill(p.pid, signal.SIGCONT)
        workers.stop_all()
        await client.aclose()
        await locker.close()
        await conn.close()
