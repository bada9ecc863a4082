"""dispatch(): queued/delayed runs, recurring schedules fired exactly once, options."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ductwork import Ductwork
from ductwork.errors import ConfigurationError, WorkflowNotFoundError
from ductwork.store.protocol import ScheduleRow
from ductwork.workflows import schedules

from .helpers import eventually, log_lines, run_worker, start_worker_process
from .worker_app import build


def define_tick(dw: Ductwork, seen: list[str]) -> None:
    @dw.workflows.workflow(product="p", tag="tick")
    async def tick(ctx: Any) -> Any:
        await ctx.step("t", lambda: seen.append(ctx.workflow_id) or 1)
        return ctx.context


async def _engine(dw: Ductwork) -> Any:
    return await dw._engine()


async def _runs_of(dw: Ductwork, job_id: str) -> list[str]:
    rows, _ = await dw.store.list_runs(tag="tick", limit=1000)
    return sorted(r.workflow_id for r in rows if r.workflow_id.startswith(job_id + "@"))


# -- one-shot ------------------------------------------------------------------------------------
async def test_dispatch_queues_a_run_that_a_worker_runs(dw: Ductwork) -> None:
    seen: list[str] = []
    define_tick(dw, seen)
    job = await dw.workflows.dispatch("p", "dev", "tick", {"x": 1})
    assert job["status"] == "queued" and job["recurring"] is False
    assert job["job_id"] == job["workflow_id"] and job["next_run_at"] == job["scheduled_at"]
    assert (await dw.workflows.status(job["job_id"]))["status"] == "pending"
    async with run_worker(dw):
        res = await dw.workflows.result(job["job_id"], timeout="10s")
    assert res.status == "completed" and seen == [job["job_id"]]
    assert res.output == {"job_id": job["job_id"], "scheduled_at": job["scheduled_at"]}


async def test_dispatch_with_start_at_waits_until_then(dw: Ductwork) -> None:
    seen: list[str] = []
    define_tick(dw, seen)
    when = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=300)
    job = await dw.workflows.dispatch("p", "dev", "tick", {}, schedule={"start_at": when},
                                      workflow_id="later")
    assert job["status"] == "scheduled"
    assert job["scheduled_at"] == when.isoformat(timespec="milliseconds")
    async with run_worker(dw):
        res = await dw.workflows.result("later", timeout="10s")
    run = await dw.store.get_run("later")
    assert res.status == "completed" and run is not None
    assert run.started_at is not None and run.started_at >= when.timestamp()


async def test_dispatch_is_idempotent_on_its_id(dw: Ductwork) -> None:
    seen: list[str] = []
    define_tick(dw, seen)
    await dw.workflows.dispatch("p", "dev", "tick", {}, workflow_id="once")
    await dw.workflows.dispatch("p", "dev", "tick", {}, workflow_id="once")
    async with run_worker(dw):
        await dw.workflows.result("once", timeout="10s")
    again = await dw.workflows.dispatch("p", "dev", "tick", {}, workflow_id="once")
    assert again["status"] == "completed" and seen == ["once"]


async def test_dispatch_checks_its_arguments(dw: Ductwork) -> None:
    define_tick(dw, [])
    cases: list[tuple[str, dict[str, Any]]] = [
        ("unknown key 'every_'.*did you mean 'every'", {"schedule": {"every_": "1s"}}),
        ("cron or schedule.every, not both", {"schedule": {"cron": "* * * * *", "every": "1s"}}),
        ("is not a cron expression", {"schedule": {"cron": "every day"}}),
        # Quartz/Spring put seconds first: croniter would read the sixth field as seconds
        (r"'0 0 2 \* \* \?' is written with seconds first \(Quartz, Spring\); here a cron is "
         r"'minute hour day-of-month month day-of-week'.*write '0 2 \* \* \*'",
         {"schedule": {"cron": "0 0 2 * * ?"}}),
        (r"'0 0 2 \* \* \*' is written with seconds first.*write '0 2 \* \* \*'",
         {"schedule": {"cron": "0 0 2 * * *"}}),
        (r"seconds first.*write '30 9 \* \* 1-5'", {"schedule": {"cron": "0 30 9 * * 1-5 2030"}}),
        ("unknown timezone", {"schedule": {"cron": "* * * * *", "timezone": "Mars/Base"}}),
        ("limit needs cron or every", {"schedule": {"limit": 3}}),
        ("limit must be a whole number", {"schedule": {"every": "1s", "limit": 0}}),
        ("catchup must be", {"schedule": {"every": "1s", "catchup": "some"}}),
        ("start_at: a number is a time in epoch MILLISECONDS", {"schedule": {"start_at": 12345}}),
        ("looks like epoch seconds", {"schedule": {"start_at": 1_900_000_000}}),
        ("start_at: expected a datetime", {"schedule": {"start_at": [1]}}),
        ("unknown key 'retry'", {"options": {"retry": 3}}),
        ("options.retries", {"options": {"retries": -1}}),
        ("options.priority", {"options": {"priority": "high"}}),
    ]
    for message, kwargs in cases:
        with pytest.raises(ConfigurationError, match=message):
            await dw.workflows.dispatch("p", "dev", "tick", {}, **kwargs)
    with pytest.raises(WorkflowNotFoundError):
        await dw.workflows.dispatch("p", "dev", "tock", {})


async def test_options_timeout_and_priority(dw: Ductwork) -> None:
    order: list[str] = []

    @dw.workflows.workflow(product="p", tag="slow")
    async def slow(ctx: Any) -> Any:
        order.append(ctx.workflow_id)
        await ctx.step("s", lambda: asyncio.sleep(ctx.input.get("s", 0)))

    await dw.workflows.dispatch("p", "dev", "slow", {"s": 5}, options={"timeout": "100ms"},
                                workflow_id="too-slow")
    await dw.workflows.dispatch("p", "dev", "slow", {}, options={"priority": 5},
                                workflow_id="urgent")
    async with run_worker(dw, concurrency=1):
        late = await dw.workflows.result("too-slow", timeout="10s")
        await dw.workflows.result("urgent", timeout="10s")
    assert order == ["urgent", "too-slow"]
    assert late.status == "failed" and late.error is not None
    assert "timed out after 0.1s" in late.error


async def test_options_retries_rerun_a_failed_job_as_new_runs(dw: Ductwork) -> None:
    attempts: list[str] = []

    @dw.workflows.workflow(product="p", tag="flaky")
    async def flaky(ctx: Any) -> Any:
        attempts.append(ctx.workflow_id)
        if len(attempts) < 3:
            await ctx.step("s", lambda: 1 / 0)
        return "ok"

    await dw.workflows.dispatch("p", "dev", "flaky", {"a": 1}, options={"retries": 3},
                                workflow_id="j")
    async with run_worker(dw):
        await eventually(None, lambda: _exists(dw, "j#3"))
        res = await dw.workflows.result("j#3", timeout="10s")
    assert res.status == "completed" and attempts == ["j", "j#2", "j#3"]
    assert (await dw.workflows.status("j"))["status"] == "failed"
    assert await dw.store.get_run("j#4") is None


async def _exists(dw: Ductwork, wid: str) -> bool:
    return await dw.store.get_run(wid) is not None


# -- recurring -----------------------------------------------------------------------------------
async def test_every_with_limit_fires_each_occurrence_once(dw: Ductwork) -> None:
    seen: list[str] = []
    define_tick(dw, seen)
    job = await dw.workflows.dispatch("p", "dev", "tick", {}, workflow_id="hb",
                                      schedule={"every": "100ms", "limit": 3})
    assert job["status"] == "scheduled" and job["recurring"] is True
    async with run_worker(dw):
        await eventually(None, lambda: len(seen) == 3)
        await eventually(None, lambda: _schedule_status(dw, "hb", "completed"))
    info = await dw.workflows.get_schedule("hb")
    assert info["runs"] == 3 and info["next_run_at"] is None
    runs = await _runs_of(dw, "hb")
    assert sorted(seen) == runs and len(set(runs)) == 3
    stamps = [dt.datetime.fromisoformat(r.split("@")[1].replace("Z", "+00:00")) for r in runs]
    gaps = {round((b - a).total_seconds(), 3) for a, b in itertools.pairwise(stamps)}
    assert gaps == {0.1}  # occurrences are on the schedule's grid, not when the worker looked


async def _schedule_status(dw: Ductwork, job_id: str, status: str) -> bool:
    return bool((await dw.workflows.get_schedule(job_id))["status"] == status)


async def test_concurrent_schedulers_fire_each_occurrence_exactly_once(store_url: str) -> None:
    a, b = Ductwork(store=store_url), Ductwork(store=store_url)
    for d in (a, b):
        define_tick(d, [])
    async with a, b:
        start = time.time() - 10
        await a.workflows.dispatch("p", "dev", "tick", {}, workflow_id="many",
                                   schedule={"every": "1s", "start_at": dt.datetime.fromtimestamp(
                                       start, dt.UTC), "limit": 8})
        fired_a, fired_b = await asyncio.gather(
            schedules.tick(await _engine(a)), schedules.tick(await _engine(b)))
        assert not set(fired_a) & set(fired_b)
        assert len(fired_a) + len(fired_b) == 8
        assert await _runs_of(a, "many") == sorted(fired_a + fired_b)
        assert (await a.workflows.get_schedule("many"))["status"] == "completed"


async def test_a_schedule_continues_across_a_worker_restart_without_double_firing(
        store_url: str) -> None:
    seen: list[str] = []
    first = Ductwork(store=store_url)
    define_tick(first, seen)
    async with first:
        await first.workflows.dispatch("p", "dev", "tick", {}, workflow_id="hb",
                                       schedule={"every": "150ms", "limit": 4})
        async with run_worker(first):
            await eventually(None, lambda: len(seen) >= 1)
    second = Ductwork(store=store_url)
    define_tick(second, seen)
    async with second:
        async with run_worker(second):
            await eventually(None, lambda: _schedule_status(second, "hb", "completed"))
            await eventually(None, lambda: len(seen) == 4)
        assert len(set(seen)) == 4 and sorted(seen) == await _runs_of(second, "hb")


async def test_a_schedule_survives_a_killed_worker_process(tmp_path: Path) -> None:
    store, log = f"sqlite:///{tmp_path / 'runs.db'}", str(tmp_path / "effects.log")
    dw = build(store, log)
    async with dw:
        await dw.workflows.dispatch("w", "dev", "tick", {}, workflow_id="s",
                                    schedule={"every": "100ms", "limit": 5})
        proc = start_worker_process(store, log)
        try:
            await eventually(None, lambda: len(log_lines(log)) >= 2)
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        async with run_worker(dw):
            await eventually(None, lambda: _schedule_status(dw, "s", "completed"))
            await eventually(None, lambda: _all_ticked(dw, log, "s"))
        runs, _ = await dw.store.list_runs(tag="tick")
    ids = sorted(r.workflow_id for r in runs)
    assert len(ids) == 5 and all(r.status == "completed" for r in runs)
    ticks = [line.split()[1] for line in log_lines(log)]
    assert sorted(set(ticks)) == ids  # every occurrence ran; at most a re-run of one in flight


async def _all_ticked(dw: Ductwork, log: str, job: str) -> bool:
    rows, _ = await dw.store.list_runs(tag="tick")
    return len(rows) == 5 and all(r.status == "completed" for r in rows)


async def test_pause_resume_and_cancel_a_schedule(dw: Ductwork) -> None:
    define_tick(dw, [])
    engine = await _engine(dw)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    await dw.workflows.dispatch("p", "dev", "tick", {}, workflow_id="sch",
                                schedule={"every": "1s", "start_at": past})
    paused = await dw.workflows.pause_schedule("sch")
    assert paused["status"] == "paused"
    assert await schedules.tick(engine) == []
    resumed = await dw.workflows.resume_schedule("sch")
    assert resumed["status"] == "scheduled"
    # Occurrences that fell inside the pause are skipped, not fired in a burst.
    nxt = dt.datetime.fromisoformat(resumed["next_run_at"])
    assert nxt > dt.datetime.now(dt.UTC) - dt.timedelta(milliseconds=50)
    cancelled = await dw.workflows.cancel_schedule("sch")
    assert cancelled["status"] == "cancelled" and cancelled["next_run_at"] is None
    assert await schedules.tick(engine) == []
    with pytest.raises(ConfigurationError, match="only a paused schedule"):
        await dw.workflows.resume_schedule("sch")
    with pytest.raises(ConfigurationError, match="No schedule"):
        await dw.workflows.pause_schedule("nope")
    assert [s["job_id"] for s in await dw.workflows.list_schedules()] == ["sch"]


async def test_catchup_latest_fires_only_the_most_recent_missed_occurrence(
        dw: Ductwork) -> None:
    define_tick(dw, [])
    engine = await _engine(dw)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=30)
    await dw.workflows.dispatch("p", "dev", "tick", {}, workflow_id="cl",
                                schedule={"every": "10s", "start_at": start,
                                          "catchup": "latest"})
    fired = await schedules.tick(engine)
    assert fired == [f"cl@{(start + dt.timedelta(seconds=30)).strftime('%Y-%m-%dT%H:%M:%S')}"
                     ".000Z"]
    info = await dw.workflows.get_schedule("cl")
    assert info["runs"] == 1
    assert info["next_run_at"] == (start + dt.timedelta(seconds=40)).isoformat(
        timespec="milliseconds")


async def test_end_date_stops_a_schedule(dw: Ductwork) -> None:
    define_tick(dw, [])
    engine = await _engine(dw)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=10)
    await dw.workflows.dispatch("p", "dev", "tick", {}, workflow_id="e",
                                schedule={"every": "1s", "start_at": start,
                                          "end_date": start + dt.timedelta(seconds=2.5)})
    fired = await schedules.tick(engine)
    assert len(fired) == 3  # start, +1s, +2s
    assert (await dw.workflows.get_schedule("e"))["status"] == "completed"


def test_cron_occurrences_follow_the_timezone() -> None:
    row = ScheduleRow(job_id="j", product="p", tag="t", env="dev", cron="30 2 * * *",
                      timezone="Europe/Paris")
    paris = dt.timezone(dt.timedelta(hours=1))
    before = dt.datetime(2026, 3, 28, 12, 0, tzinfo=paris).timestamp()
    first = schedules.next_after(row, before)
    assert first is not None
    assert dt.datetime.fromtimestamp(first, dt.UTC) == dt.datetime(2026, 3, 29, 1, 0,
                                                                   tzinfo=dt.UTC)
    second = schedules.next_after(row, first)
    assert second is not None  # after the DST switch 02:30 Paris is 00:30 UTC
    assert dt.datetime.fromtimestamp(second, dt.UTC) == dt.datetime(2026, 3, 30, 0, 30,
                                                                    tzinfo=dt.UTC)


async def test_a_cron_schedule_fires_through_the_worker(dw: Ductwork) -> None:
    seen: list[str] = []
    define_tick(dw, seen)
    # Every second (croniter's optional sixth field), at most twice.
    job = await dw.workflows.dispatch("p", "dev", "tick", {}, workflow_id="c",
                                      schedule={"cron": "* * * * * *", "limit": 2,
                                                "timezone": "UTC"})
    assert job["recurring"] is True and job["next_run_at"] is not None
    async with run_worker(dw):
        await eventually(None, lambda: len(seen) == 2)
        await eventually(None, lambda: _schedule_status(dw, "c", "completed"))
    assert all(s.endswith(".000Z") for s in seen)  # whole seconds


async def test_start_at_forms_and_timezones(dw: Ductwork) -> None:
    define_tick(dw, [])
    naive = dt.datetime(2031, 1, 15, 9, 0)
    job = await dw.workflows.dispatch("p", "dev", "tick", {}, workflow_id="paris",
                                      schedule={"start_at": naive, "timezone": "Europe/Paris"})
    assert job["status"] == "scheduled"
    assert job["scheduled_at"] == "2031-01-15T08:00:00.000+00:00"
    iso = await dw.workflows.dispatch("p", "dev", "tick", {}, workflow_id="iso",
                                      schedule={"start_at": "2031-01-15T09:00:00Z"})
    assert iso["scheduled_at"] == "2031-01-15T09:00:00.000+00:00"
    soon = await dw.workflows.dispatch("p", "dev", "tick", {}, workflow_id="soon",
                                       schedule={"start_at": "1h"})
    when = dt.datetime.fromisoformat(soon["scheduled_at"])
    assert dt.timedelta(minutes=59) < when - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=1)
    weekly = await dw.workflows.dispatch(
        "p", "dev", "tick", {}, workflow_id="weekly",
        schedule={"cron": "0 9 * * 1", "timezone": "America/New_York",
                  "start_at": dt.datetime(2031, 1, 1, tzinfo=dt.UTC)})
    # The first Monday 09:00 in New York after 2031-01-01 is Jan 6 (14:00 UTC, winter time).
    assert weekly["next_run_at"] == "2031-01-06T14:00:00.000+00:00"
    assert weekly["recurring"] is True and weekly["status"] == "scheduled"
