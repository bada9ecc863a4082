"""A worker told to stop while its PostgreSQL store is down: it stops, and the runs it could not
give back are taken over once the store is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.store.postgres import PostgresStore
from tests.support.postgres import PgServer, _as_server_user, start_postgres


@pytest.fixture
def private_pg() -> Iterator[PgServer]:
    """A server of its own, which the test stops and starts again."""
    srv = start_postgres()
    try:
        yield srv
    finally:
        srv.stop()


def _pg_ctl(srv: PgServer, action: str) -> None:
    data = str(srv.root / "data")
    args = [str(srv.bin_dir / "pg_ctl"), "-D", data, "-w"]
    if action == "stop":
        args += ["-m", "fast", "stop"]
    else:
        args += ["-l", str(srv.root / "log"), "-o", f"-c listen_addresses=127.0.0.1 -p "
                 f"{srv.port} -k {srv.root} -c fsync=off", "start"]
    _as_server_user(args)


def define(dw: Ductwork, started: list[str], hang: bool) -> None:
    @dw.workflows.workflow(product="p", tag="t")
    async def wf(ctx: Any) -> Any:
        async def call() -> str:
            started.append(ctx.workflow_id)
            if hang:
                await asyncio.Event().wait()  # a remote call that never answers
            return "ok"

        return await ctx.step("call", call)


@pytest.mark.slow
async def test_a_worker_stopping_while_postgres_is_down_is_not_held_by_its_releases(
        private_pg: PgServer) -> None:
    # The store retries a lost connection for ten minutes: each release of a run still inside
    # a step held the stopping worker that long, one after the other.
    dw = Ductwork(store=PostgresStore(private_pg.dsn, retry_s=600), lease="3s")
    started: list[str] = []
    define(dw, started, hang=True)
    wids = [f"r{i}" for i in range(3)]
    async with dw:
        for wid in wids:
            await dw.workflows.dispatch("p", "dev", "t", workflow_id=wid)
        worker = asyncio.create_task(dw.workflows.run_worker(
            concurrency=5, poll="10s", grace="100ms", schedules=False, handle_signals=False))
        deadline = time.monotonic() + 30
        while sorted(started) != wids:
            assert time.monotonic() < deadline and not worker.done(), started
            await asyncio.sleep(0.02)
        _pg_ctl(private_pg, "stop")
        try:
            dw.workflows.stop_worker()
            # Far more than the worker needs, far less than one release's retry window.
            await asyncio.wait_for(worker, 60)
        finally:
            _pg_ctl(private_pg, "start")
        runs = [await dw.store.get_run(w) for w in wids]
        assert all(r is not None and r.status == "running" and r.owner for r in runs)
    # Not given back: another process takes them over when their leases run out.
    started.clear()
    dw2 = Ductwork(store=private_pg.dsn, lease="3s")
    define(dw2, started, hang=False)
    async with dw2:
        done: list[Any] = []
        deadline = time.monotonic() + 30
        while len(done) < len(wids):
            assert time.monotonic() < deadline, done
            done += await dw2.workflows.recover()
            await asyncio.sleep(0.2)
    assert sorted((r.workflow_id, r.status) for r in done) == [(w, "completed") for w in wids]
