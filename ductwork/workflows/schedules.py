"""dispatch(): queued and delayed runs, recurring schedules and the scheduler a worker ticks."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ductwork.errors import ConfigurationError
from ductwork.interpreter import codec, observe
from ductwork.interpreter.dispatched import pending_run, retry_failed_run
from ductwork.store.protocol import ScheduleRow
from ductwork.util.durations import to_ms
from ductwork.util.suggest import did_you_mean
from ductwork.util.timefmt import iso, iso_z
from ductwork.workflows.inputs import check_workflow_id, prepare_input

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine
    from ductwork.interpreter.runtime import LazyEngine

SCHEDULE_KEYS = ("start_at", "cron", "every", "timezone", "limit", "end_date", "catchup")
OPTION_KEYS = ("retries", "timeout", "queue", "priority")
CATCHUP = ("all", "latest")
# Numbers given as start_at/end_date are epoch milliseconds between 2000 and 9999.
EPOCH_MS_MIN = 946_684_800_000
EPOCH_MS_MAX = 253_402_300_799_000


# -- dispatch -------------------------------------------------------------------------------------
async def dispatch(engines: LazyEngine, product: str, env: str, workflow: str, input: Any = None,
                   schedule: Mapping[str, Any] | None = None,
                   options: Mapping[str, Any] | None = None,
                   workflow_id: str | None = None) -> dict[str, Any]:
    """Queue a run for a worker (now or at start_at), or store a recurring schedule."""
    defs = engines.runtime.definitions
    wf = defs.get(product, workflow)
    where = f"dispatch({product}/{workflow})"
    enc = prepare_input(defs, wf, env, input, where)
    check_workflow_id(workflow_id, "dispatch()")
    sched = _check_keys(schedule, SCHEDULE_KEYS, f"{where} schedule")
    opts = {**wf.options, **_run_options(_check_keys(options, OPTION_KEYS, f"{where} options"),
                                         where), "job": True}
    tzname = _timezone(sched.get("timezone"), where)
    t = time.time()
    start = None if sched.get("start_at") is None else _instant(
        sched["start_at"], tzname, f"{where} schedule.start_at", t)
    engine = await engines.get()
    recurring = sched.get("cron") is not None or sched.get("every") is not None
    if not recurring:
        for k in ("limit", "end_date", "catchup"):
            if sched.get(k) is not None:
                raise ConfigurationError(f"{where}: schedule.{k} needs cron or every (a "
                                         "recurring schedule)")
        wid = workflow_id or "job_" + uuid.uuid4().hex[:20]
        due = max(start or t, t)
        run = pending_run(wid, product, workflow, env, enc, opts, due, t, wf.name,
                       {"job_id": wid, "scheduled_at": iso(start or t)})
        observe.created(engine.runtime.observer, run)
        stored, _ = await engine.store.create_run(run, [(t, "workflow_queued", None, None)])
        engine.nudge()
        wake = stored.wake_at if stored.wake_at is not None else stored.created_at
        return {"job_id": wid, "workflow_id": wid,
                "status": "scheduled" if stored.status == "pending" and wake > t else (
                    "queued" if stored.status == "pending" else stored.status),
                "scheduled_at": iso(wake), "recurring": False, "next_run_at": iso(wake)}

    row = _schedule_row(sched, where, tzname, start, t)
    row.job_id = workflow_id or "sch_" + uuid.uuid4().hex[:20]
    row.product, row.tag, row.env = product, workflow, env
    row.input, row.options = enc, codec.dumps(opts)
    stored_s, _ = await engine.store.create_schedule(row)
    engine.nudge()
    return describe(stored_s)


def _check_keys(value: Mapping[str, Any] | None, known: tuple[str, ...], what: str
                ) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{what} must be a dict with keys {', '.join(known)}")
    for k in value:
        if k not in known:
            raise ConfigurationError(
                f"{what}: unknown key {k!r} (known: {', '.join(known)})"
                + did_you_mean(str(k), known, prefix="; "))
    return {k: v for k, v in value.items() if v is not None}


def _run_options(opts: dict[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "retries" in opts:
        r = opts["retries"]
        if isinstance(r, bool) or not isinstance(r, int) or r < 0:
            raise ConfigurationError(f"{where}: options.retries must be a whole number >= 0")
        out["retries"] = r
    if "timeout" in opts:
        out["timeout"] = to_ms(opts["timeout"], f"{where} options.timeout")
    if "queue" in opts:
        if not isinstance(opts["queue"], str) or not opts["queue"]:
            raise ConfigurationError(f"{where}: options.queue must be a non-empty string")
        out["queue"] = opts["queue"]
    if "priority" in opts:
        p = opts["priority"]
        if isinstance(p, bool) or not isinstance(p, int):
            raise ConfigurationError(f"{where}: options.priority must be an integer "
                                     "(higher runs first)")
        out["priority"] = p
    return out


def _timezone(name: Any, where: str) -> str | None:
    if name is None:
        return None
    try:
        ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(f"{where}: unknown timezone {name!r}; use an IANA name such "
                                 "as 'UTC' or 'Europe/Paris'") from None
    return str(name)


def _instant(value: Any, tzname: str | None, what: str, now: float) -> float:
    """A point in time: datetime, date, ISO-8601 text, epoch milliseconds (a number, as
    JavaScript's Date.now()), or a duration from now ("5m", timedelta). Naive times are read
    in the schedule's timezone (UTC by default)."""
    tz = ZoneInfo(tzname or "UTC")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not EPOCH_MS_MIN <= value <= EPOCH_MS_MAX:
            seconds = EPOCH_MS_MIN / 1000 <= value <= EPOCH_MS_MAX / 1000
            raise ConfigurationError(
                f"{what}: a number is a time in epoch MILLISECONDS (like Date.now()), and "
                f"{value!r} is not one after 2000"
                + ("; it looks like epoch seconds: multiply by 1000" if seconds else
                   "; for a delay write a duration like '5m' or '1h'"))
        return float(value) / 1000
    if isinstance(value, dt.timedelta):
        return now + value.total_seconds()
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=tz)).timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=tz).timestamp()
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                return now + to_ms(value, what) / 1000
            except ConfigurationError:
                pass
        else:
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).timestamp()
    raise ConfigurationError(
        f"{what}: expected a datetime, an ISO-8601 time like '2030-01-01T09:00:00Z', epoch "
        f"milliseconds, or a delay like '5m', got {value!r}")


def _schedule_row(sched: dict[str, Any], where: str, tzname: str | None, start: float | None,
                  t: float) -> ScheduleRow:
    cron, every = sched.get("cron"), sched.get("every")
    if cron is not None and every is not None:
        raise ConfigurationError(f"{where}: give schedule.cron or schedule.every, not both")
    every_ms = None
    if cron is not None:
        from croniter import croniter

        fields = cron.split() if isinstance(cron, str) else []
        if len(fields) == 7 or (len(fields) == 6 and (
                "?" in fields or (fields[5] in ("*", "?") and fields[0] != "*"))):
            # Quartz and Spring write seconds FIRST (a day-of-week of * or ?, maybe a year
            # last); croniter reads a sixth field as seconds at the END: '0 0 2 * * *' would
            # fire every second of midnight on the 2nd of each month, not at 02:00 daily.
            five = " ".join(fields[1:6]).replace("?", "*")
            raise ConfigurationError(
                f"{where}: schedule.cron {cron!r} is written with seconds first (Quartz, "
                f"Spring); here a cron is 'minute hour day-of-month month day-of-week' (an "
                f"optional sixth field is seconds, at the end): write {five!r}")
        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise ConfigurationError(
                f"{where}: schedule.cron {cron!r} is not a cron expression; use five fields "
                "'minute hour day-of-month month day-of-week', e.g. '0 9 * * 1-5'")
    else:
        every_ms = to_ms(every, f"{where} schedule.every")
        if every_ms <= 0:
            raise ConfigurationError(f"{where}: schedule.every must be longer than 0")
    limit = sched.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise ConfigurationError(f"{where}: schedule.limit must be a whole number >= 1")
    end = None if sched.get("end_date") is None else _instant(
        sched["end_date"], tzname, f"{where} schedule.end_date", t)
    catchup = sched.get("catchup", "all")
    if catchup not in CATCHUP:
        raise ConfigurationError(f"{where}: schedule.catchup must be 'all' (fire every missed "
                                 "occurrence) or 'latest' (only the most recent one)")
    row = ScheduleRow(job_id="", product="", tag="", env="", cron=cron, every_ms=every_ms,
                      timezone=tzname, start_at=start, end_at=end, max_runs=limit,
                      catchup=catchup, created_at=t, updated_at=t)
    first = start if (every_ms is not None and start is not None) else (
        t if every_ms is not None else next_after(row, (start or t) - 0.001))
    row.next_run_at = first
    if end is not None and first is not None and first > end:
        row.status, row.next_run_at = "completed", None
    return row


def next_after(row: ScheduleRow, after: float) -> float | None:
    """The first occurrence strictly after `after`."""
    if row.every_ms is not None:
        anchor = row.start_at if row.start_at is not None else row.created_at
        step = row.every_ms / 1000
        if after < anchor:
            return anchor
        # The epsilon keeps float error from turning "after occurrence k" into k again.
        n = int((after - anchor) / step + 1e-6) + 1
        return anchor + n * step
    if row.cron is None:
        return None
    from croniter import croniter

    tz = ZoneInfo(row.timezone or "UTC")
    nxt = croniter(row.cron, dt.datetime.fromtimestamp(after, tz)).get_next(dt.datetime)
    return float(nxt.timestamp())


# -- the scheduler ------------------------------------------------------------------------------
async def tick(engine: Engine, *, limit: int = 100) -> list[str]:
    """Turn every due occurrence of every active schedule into a pending run. Each occurrence
    becomes exactly one run: its id is f"{job_id}@{occurrence}" and it is inserted in the same
    transaction as a compare-and-set advance of the schedule, so concurrent workers and
    restarts cannot fire it twice."""
    store = engine.store
    created: list[str] = []
    for _ in range(limit):
        t = time.time()
        due = await store.due_schedules(t, 20)
        if not due:
            break
        for row in due:
            rid = await _fire(engine, row, t)
            if rid is not None:
                created.append(rid)
        if len(created) >= limit:
            break
    if created:
        engine.nudge()
    return created


async def _fire(engine: Engine, row: ScheduleRow, t: float) -> str | None:
    occ = row.next_run_at
    if occ is None:
        return None
    if row.catchup == "latest":
        while True:
            following = next_after(row, occ)
            if following is None or following > t or (
                    row.end_at is not None and following > row.end_at):
                break
            occ = following
    if row.end_at is not None and occ > row.end_at:
        await engine.store.fire_schedule(row.job_id, row.fired, {
            "status": "completed", "next_run_at": None}, None, [])
        return None
    fired = row.fired + 1
    nxt = next_after(row, occ)
    done = (row.max_runs is not None and fired >= row.max_runs) or nxt is None or (
        row.end_at is not None and nxt > row.end_at)
    rid = f"{row.job_id}@{iso_z(occ)}"
    opts = codec.loads(row.options) or {}
    wf = engine.runtime.definitions.find(row.product, row.tag)
    run = pending_run(rid, row.product, row.tag, row.env, row.input, opts, max(occ, t), t,
                   wf.name if wf else None, {"job_id": row.job_id, "scheduled_at": iso(occ)})
    obs = engine.runtime.observer
    observe.created(obs, run)
    ok = await engine.store.fire_schedule(
        row.job_id, row.fired,
        {"fired": fired, "status": "completed" if done else "active",
         "next_run_at": None if done else nxt, "last_run_id": rid},
        run, [(t, "workflow_queued", None, engine.dumps_safe({"job_id": row.job_id,
                                                              "occurrence": iso(occ)}))])
    if ok and obs is not None:
        observe.call(obs.schedule_fired, row.product, row.tag, row.job_id, rid)
    return rid if ok else None


# -- managing schedules ---------------------------------------------------------------------------
async def pause(engine: Engine, job_id: str) -> dict[str, Any]:
    row = await _get(engine, job_id)
    if row.status == "active":
        await engine.store.update_schedule(job_id, {"status": "paused"},
                                           only_status=frozenset({"active"}))
    return describe(await _get(engine, job_id))


async def resume(engine: Engine, job_id: str) -> dict[str, Any]:
    """Occurrences that fell inside the pause are skipped: the next one is after now."""
    row = await _get(engine, job_id)
    if row.status == "paused":
        t = time.time()
        nxt = row.next_run_at
        if nxt is None or nxt < t:
            nxt = next_after(row, t)
        fields: dict[str, Any] = {"status": "active", "next_run_at": nxt}
        if nxt is None or (row.end_at is not None and nxt > row.end_at):
            fields = {"status": "completed", "next_run_at": None}
        await engine.store.update_schedule(job_id, fields, only_status=frozenset({"paused"}))
        engine.nudge()
    elif row.status != "active":
        raise ConfigurationError(f"schedule {job_id} is {row.status}; only a paused schedule "
                                 "can be resumed")
    return describe(await _get(engine, job_id))


async def cancel(engine: Engine, job_id: str) -> dict[str, Any]:
    """No more occurrences; runs already started are not touched (cancel them by id)."""
    row = await _get(engine, job_id)
    if row.status in ("active", "paused"):
        await engine.store.update_schedule(job_id, {"status": "cancelled", "next_run_at": None},
                                           only_status=frozenset({"active", "paused"}))
    return describe(await _get(engine, job_id))


async def _get(engine: Engine, job_id: str) -> ScheduleRow:
    row = await engine.store.get_schedule(job_id)
    if row is None:
        raise ConfigurationError(f"No schedule with job_id {job_id!r} (a one-shot dispatch is a "
                                 "run: use dw.workflows.status/cancel with its id)")
    return row


async def get(engine: Engine, job_id: str) -> dict[str, Any]:
    return describe(await _get(engine, job_id))


def describe(row: ScheduleRow) -> dict[str, Any]:
    return {
        "job_id": row.job_id, "product": row.product, "workflow": row.tag, "env": row.env,
        "status": "scheduled" if row.status == "active" else row.status,
        "recurring": True, "cron": row.cron,
        "every_ms": row.every_ms, "timezone": row.timezone,
        "scheduled_at": iso(row.start_at if row.start_at is not None else row.created_at),
        "next_run_at": iso(row.next_run_at), "end_date": iso(row.end_at),
        "limit": row.max_runs, "runs": row.fired, "last_run_id": row.last_run_id,
    }


# -- dispatched runs: retries ---------------------------------------------------------------------
async def sweep_retries(engine: Engine, since: float) -> int:
    """Worker start-up: make sure every failed dispatched run with retries left has its
    successor (the creation may have been lost in a crash)."""
    made = 0
    cursor: str | None = None
    while True:
        rows, cursor = await engine.store.list_runs(status=["failed", "rolled_back"],
                                                    since=since, limit=500, cursor=cursor)
        for r in rows:
            if await retry_failed_run(engine, r):
                made += 1
        if cursor is None:
            return made
