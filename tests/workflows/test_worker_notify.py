"""Workers on PostgreSQL woken by NOTIFY naming the run: across processes, within queue limits,
and still served by the poll when the LISTEN connection is gone."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ductwork import Ductwork
from tests.support.ports import free_port
from tests.support.postgres import PgServer, postgres_server  # noqa: F401 (session fixture)

from .helpers import eventually, log_lines, run_worker, start_worker_process, wait_for_line
from .worker_app import build


@pytest.fixture
def pg_url(postgres_server: PgServer) -> str:  # noqa: F811
    return postgres_server.create_database("n_" + uuid.uuid4().hex[:16])


async def _status(dw: Ductwork, wid: str) -> str:
    return str((await dw.workflows.status(wid))["status"])


async def test_a_signal_from_another_process_resumes_a_run_in_a_worker_process(
        pg_url: str, tmp_path: Path) -> None:
    """The worker process polls once a minute: the dispatch and the signal reach it by
    NOTIFY, and it claims the named run directly."""
    log = str(tmp_path / "effects.log")
    proc = start_worker_process(pg_url, log, "--poll", "60s")
    try:
        client = build(pg_url, log)  # the same workflows: dispatch() checks the definition
        async with client:
            await asyncio.sleep(1.0)  # let the worker start and go idle on LISTEN
            job = await client.workflows.dispatch("w", "dev", "approval", workflow_id="a1")
            await wait_for_line(log, "asked a1", proc)

            async def waiting() -> bool:
                run = await client.store.get_run("a1")
                return run is not None and run.status == "waiting" and run.owner is None

            await eventually(None, waiting, timeout=30)  # suspended: nothing holds it
            await asyncio.sleep(0.5)  # the worker goes idle again (the test holds either way)
            await client.workflows.signal(job["job_id"], "go", {"ok": True})
            await eventually(None, lambda: _is(client, "a1", "completed"), timeout=30)
            result = await client.workflows.result("a1")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert result.output == {"ok": True}
    # Each step ran once: the second claim replayed "asked" from the history read with it.
    assert log_lines(log) == ["asked a1", "apply a1"]


async def _is(dw: Ductwork, wid: str, status: str) -> bool:
    return await _status(dw, wid) == status


async def test_an_announced_run_of_a_limited_queue_waits_for_its_slot(pg_url: str) -> None:
    """Runs dispatched to an idle worker are announced by name; a queue's concurrency limit
    still holds them back, and a run that ends lets the next one in without waiting for the
    poll."""
    running = {"now": 0, "max": 0}

    async def send(n: int) -> int:
        running["now"] += 1
        running["max"] = max(running["max"], running["now"])
        await asyncio.sleep(0.05)
        running["now"] -= 1
        return n

    def define(d: Ductwork) -> None:
        d.queues.configure("mail", concurrency=1)

        @d.workflows.workflow(product="p", tag="mail", options={"queue": "mail"})
        async def mail(ctx: Any) -> Any:
            return await ctx.step("send", lambda: send(ctx.input["n"]))

    client = Ductwork(store=pg_url)
    worker_side = Ductwork(store=pg_url)
    define(client)
    define(worker_side)
    async with client, worker_side, run_worker(worker_side, poll="60s", concurrency=10) as w:
        await asyncio.sleep(0.2)  # idle, waiting on LISTEN
        ids = [(await client.workflows.dispatch("p", "dev", "mail", {"n": i}))["job_id"]
               for i in range(4)]
        for wid in ids:  # (not result(): the client would run them itself)
            await eventually(None, lambda wid=wid: _is(client, wid, "completed"), timeout=30)
        assert w.claimed == 4
    assert running["max"] == 1


async def test_a_worker_whose_listen_connection_is_gone_still_finds_runs_by_polling(
        pg_url: str) -> None:
    ran: list[str] = []

    def define(d: Ductwork) -> None:
        @d.workflows.workflow(product="p", tag="one")
        async def one(ctx: Any) -> Any:
            return await ctx.step("only", lambda: ran.append(ctx.workflow_id) or 1)

    client = Ductwork(store=pg_url)
    worker_side = Ductwork(store=pg_url)
    define(client)
    define(worker_side)
    async with client, worker_side, run_worker(worker_side, poll="200ms") as w:
        listener = worker_side.store._listener  # type: ignore[attr-defined]
        # Its reconnections now fail (nothing listens on that port), and the live
        # connection is cut by the server.
        listener.conninfo = f"host=127.0.0.1 port={free_port()} connect_timeout=1"
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "query LIKE 'LISTEN%%' AND datname = current_database()")
            assert [r[0] for r in await cur.fetchall()] == [True]
        await eventually(None, lambda: not listener._listening.is_set(), timeout=15)
        job = await client.workflows.dispatch("p", "dev", "one")
        await eventually(None, lambda: _is(client, job["job_id"], "completed"), timeout=30)
        assert not listener._listening.is_set()  # found by the poll, not by a notification
        assert w.claimed == 1
    assert ran == [job["job_id"]]
