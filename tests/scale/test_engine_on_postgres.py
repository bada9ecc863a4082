"""The engine on the PostgreSQL store, end to end through the public API: execute, sagas,
durable sleeps and signals picked up by a worker of another instance (woken by NOTIFY), and
named-queue limits shared by two workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.errors import ConfigurationError
from ductwork.store.postgres import PostgresStore
from tests.workflows.helpers import eventually, run_worker


@pytest.fixture
async def dw(pg_url: str) -> AsyncIterator[Ductwork]:
    d = Ductwork(store=pg_url, inline_wait="50ms")
    async with d:
        yield d


async def test_execute_commits_each_step_once_and_is_idempotent(dw: Ductwork) -> None:
    assert isinstance(dw.store, PostgresStore)
    calls: list[str] = []

    def call(name: str, result: Any) -> Any:
        calls.append(name)
        return result

    @dw.workflows.workflow(product="shop", tag="order")
    async def order(ctx: Any) -> Any:
        a = await ctx.step("reserve", lambda: call("reserve", {"sku": "x"}))
        b = await ctx.step("charge", lambda: call("charge", 42))
        await ctx.set_state("paid", True)
        ctx.log.info("charged", {"amount": b})
        return {"sku": a["sku"], "amount": b}

    r1 = await dw.workflows.execute(product="shop", env="dev", tag="order", workflow_id="o-1")
    r2 = await dw.workflows.execute(product="shop", env="dev", tag="order", workflow_id="o-1")
    assert r1.status == r2.status == "completed"
    assert r1.output == r2.output == {"sku": "x", "amount": 42}
    assert calls == ["reserve", "charge"]
    status = await dw.workflows.status("o-1")
    assert status["completed_steps"] == ["reserve", "charge"] and status["state"] == {"paid": True}
    assert [e["type"] for e in await dw.workflows.history("o-1")][-1] == "workflow_completed"


async def test_a_failing_saga_is_rolled_back_newest_first(dw: Ductwork) -> None:
    undone: list[str] = []

    @dw.workflows.workflow(product="shop", tag="saga")
    async def saga(ctx: Any) -> Any:
        await ctx.step("reserve", lambda: 1, rollback=lambda _r: undone.append("reserve"))
        await ctx.step("charge", lambda: 2, rollback=lambda _r: undone.append("charge"))
        await ctx.step("ship", lambda: 1 / 0)

    r = await dw.workflows.execute(product="shop", env="dev", tag="saga")
    assert r.status == "rolled_back" and r.failed_step == "ship"
    assert undone == ["charge", "reserve"]


def _define_nap(d: Ductwork, ran: list[str]) -> None:
    @d.workflows.workflow(product="p", tag="nap")
    async def nap(ctx: Any) -> Any:
        await ctx.step("before", lambda: ran.append("before"))
        await ctx.sleep("300ms")
        await ctx.step("after", lambda: ran.append("after"))
        return "rested"


async def test_a_durable_sleep_is_finished_by_a_worker_of_another_instance(
        dw: Ductwork, pg_url: str) -> None:
    ran: list[str] = []
    _define_nap(dw, ran)
    r = await dw.workflows.execute(product="p", env="dev", tag="nap")
    assert r.status == "running"  # suspended: the process holds nothing while it sleeps
    run = await dw.store.get_run(r.workflow_id)
    assert run is not None and run.status == "sleeping" and run.owner is None

    other = Ductwork(store=pg_url)
    _define_nap(other, ran)
    async with other, run_worker(other, poll="5s"):
        done = await other.workflows.result(r.workflow_id, timeout="20s")
    assert done.status == "completed" and done.output == "rested"
    assert ran == ["before", "after"]


async def test_a_signal_wakes_an_idle_worker_through_notify(dw: Ductwork, pg_url: str) -> None:
    """The worker polls once a minute: only PostgreSQL's NOTIFY can bring it the signal."""

    def define(d: Ductwork) -> None:
        @d.workflows.workflow(product="p", tag="approval")
        async def approval(ctx: Any) -> Any:
            decision = await ctx.wait_for_signal("approve")
            return await ctx.step("apply", lambda: decision)

    define(dw)
    r = await dw.workflows.execute(product="p", env="dev", tag="approval")
    assert r.status == "running"
    other = Ductwork(store=pg_url)
    define(other)
    async with other, run_worker(other, poll="60s") as worker:
        await asyncio.sleep(0.2)  # the worker is idle, waiting on LISTEN
        t0 = time.monotonic()
        await dw.workflows.signal(r.workflow_id, "approve", {"by": "ana"})

        async def ended() -> bool:
            return (await dw.workflows.status(r.workflow_id))["status"] == "completed"

        await eventually(None, ended, timeout=30)
        assert time.monotonic() - t0 < 60  # not the poll: the notification woke it
        assert worker.claimed == 1
    assert (await dw.workflows.result(r.workflow_id)).output == {"by": "ana"}


async def test_queue_concurrency_holds_across_two_workers(dw: Ductwork, pg_url: str) -> None:
    running = {"now": 0, "max": 0}

    async def send(n: int) -> int:
        running["now"] += 1
        running["max"] = max(running["max"], running["now"])
        await asyncio.sleep(0.05)
        running["now"] -= 1
        return n

    def define(d: Ductwork) -> None:
        d.queues.configure("mail", concurrency=2)

        @d.workflows.workflow(product="p", tag="mail", options={"queue": "mail"})
        async def mail(ctx: Any) -> Any:
            return await ctx.step("send", lambda: send(ctx.input["n"]))

    define(dw)
    other = Ductwork(store=pg_url)
    define(other)
    ids = [(await dw.workflows.dispatch("p", "dev", "mail", {"n": i}))["job_id"]
           for i in range(8)]
    async with other, run_worker(dw, concurrency=10), run_worker(other, concurrency=10):
        for wid in ids:
            assert (await dw.workflows.result(wid, timeout="30s")).status == "completed"
    assert running["max"] == 2


def test_queue_configuration_is_checked(pg_url: str) -> None:
    d = Ductwork(store=pg_url)
    lim = d.queues.configure("api", worker_concurrency=3, rate_limit="100/1m")
    assert lim.rate == (100, 60.0) and d.store.queue_limits["api"] is not None
    assert d.queues.configure("api", rate_limit=(5, "1s")).rate == (5, 1.0)
    d.queues.configure("api")  # no limits left: removed
    assert "api" not in d.store.queue_limits
    for bad in ({"concurrency": 0}, {"rate_limit": "lots"}, {"rate_limit": (0, "1s")},
                {"worker_concurrency": True}):
        with pytest.raises(ConfigurationError, match=r"queues\.configure"):
            d.queues.configure("api", **bad)


async def test_a_signal_from_another_process_ends_an_inline_wait_at_once(
        dw: Ductwork, pg_url: str) -> None:
    """The worker holds the run in an inline wait of a minute; a signal sent by another
    instance reaches it through NOTIFY instead of at the end of that minute."""

    def define(d: Ductwork) -> None:
        @d.workflows.workflow(product="p", tag="inline")
        async def inline(ctx: Any) -> Any:
            await ctx.step("ready", lambda: 1)
            return await ctx.wait_for_signal("go")

    define(dw)
    worker_side = Ductwork(store=pg_url, inline_wait="60s")
    define(worker_side)
    async with worker_side, run_worker(worker_side, poll="60s"):
        job = await dw.workflows.dispatch("p", "dev", "inline")

        async def waiting() -> bool:
            run = await dw.store.get_run(job["job_id"])
            steps = await dw.store.load_steps(job["job_id"])
            return run is not None and run.owner is not None and any(
                s.kind == "signal" for s in steps)

        await eventually(None, waiting, timeout=20)
        t0 = time.monotonic()
        await dw.workflows.signal(job["job_id"], "go", "now")

        async def ended() -> bool:
            return (await dw.workflows.status(job["job_id"]))["status"] == "completed"

        await eventually(None, ended, timeout=30)
        assert time.monotonic() - t0 < 30
