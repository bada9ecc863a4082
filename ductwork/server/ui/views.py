"""What the UI's pages show, built from the run store's rows: run lists, a run's timeline, lanes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ductwork.interpreter import codec
from ductwork.server.redact import redact as redacted
from ductwork.store.protocol import TERMINAL, RunRow, StepRow
from ductwork.util.timefmt import iso

if TYPE_CHECKING:
    from ductwork.app import Ductwork

# Text search in ids scans at most this many of the newest runs matching the other filters.
SEARCH_SCAN = 5000


def pretty(dw: Ductwork, raw: str | None) -> str | None:
    """A stored JSON value, redacted and indented for a <pre>; None when nothing is stored."""
    if raw is None:
        return None
    try:
        value = codec.loads(raw)
    except ValueError:
        return dw.redact(raw)
    return json.dumps(redacted(dw, value), indent=2, ensure_ascii=False, default=str)


def duration(seconds: float | None) -> str:
    """1.2s, 340ms, 2m 05s, 3h 10m, 2d 4h."""
    if seconds is None:
        return ""
    s = max(0.0, seconds)
    if s < 1:
        return f"{s * 1000:.0f}ms"
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m {sec:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h}h"


def when(ts: float | None) -> str:
    """2024-05-01 12:00:03 (UTC) for a table cell."""
    text = iso(ts)
    return "" if text is None else text.replace("T", " ")[:19]


def trace_id(run: RunRow) -> str | None:
    """The OpenTelemetry trace a run belongs to (stored with it when tracing is on)."""
    try:
        extra = codec.loads(run.context) if run.context else None
    except ValueError:
        return None
    carrier = extra.get("trace") if isinstance(extra, dict) else None
    parent = carrier.get("traceparent") if isinstance(carrier, dict) else None
    parts = parent.split("-") if isinstance(parent, str) else []
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


# -- the runs list ---------------------------------------------------------------------------------
@dataclass
class RunItem:
    workflow_id: str
    workflow: str
    name: str
    env: str
    status: str
    created: str
    took: str
    failed_step: str | None
    error: str | None
    parent_id: str | None


def run_item(dw: Ductwork, run: RunRow) -> RunItem:
    end = run.finished_at if run.status in TERMINAL else time.time()
    start = run.started_at
    return RunItem(run.workflow_id, f"{run.product}/{run.tag}", run.name or run.tag, run.env,
                   run.status, when(run.created_at),
                   "" if start is None or end is None else duration(end - start),
                   run.failed_step, None if run.error is None else dw.redact(run.error),
                   run.parent_id)


async def find_runs(dw: Ductwork, *, workflow: str | None, status: str | None,
                    since: float | None, q: str | None, limit: int = 50,
                    cursor: str | None = None) -> tuple[list[RunRow], str | None]:
    """Newest first, with the filters; `q` keeps the runs whose id contains it (scanning at
    most SEARCH_SCAN runs), and no next page is offered while searching."""
    product, tag = [*workflow.split("/", 1), ""][:2] if workflow else (None, None)
    statuses = [status] if status else None
    if not q:
        return await dw.store.list_runs(product=product or None, tag=tag or None,
                                        status=statuses, since=since, limit=limit,
                                        cursor=cursor)
    found: list[RunRow] = []
    scanned = 0
    page: str | None = None
    needle = q.lower()
    while scanned < SEARCH_SCAN and len(found) < limit:
        rows, page = await dw.store.list_runs(product=product or None, tag=tag or None,
                                              status=statuses, since=since, limit=500,
                                              cursor=page)
        scanned += len(rows)
        found += [r for r in rows if needle in r.workflow_id.lower()]
        if page is None:
            break
    return found[:limit], None


# -- a run's timeline ----------------------------------------------------------------------------
@dataclass
class Tick:
    """A mark on a bar: a retry (with its error) or a signal's arrival."""

    left: float
    title: str


@dataclass
class Bar:
    """One row of the timeline: a step, sleep, signal wait, child run or compensation."""

    label: str
    kind: str            # step | sleep | signal | child | rollback | running
    status: str
    start: float
    end: float | None    # None: still going
    key: str = ""
    attempts: int = 1
    left: float = 0.0
    width: float = 0.0
    ticks: list[Tick] = field(default_factory=list)
    link: str | None = None        # a child run's id
    input: str | None = None
    output: str | None = None
    error: str | None = None
    note: str = ""

    @property
    def took(self) -> str:
        return duration((self.end if self.end is not None else time.time()) - self.start)


@dataclass
class Timeline:
    start: float
    end: float
    main: list[Bar]
    rollback: list[Bar]     # in the order they ran: newest step first
    checkpoints: list[dict[str, Any]]
    axis: list[tuple[float, str]]  # (left %, label)

    @property
    def span(self) -> str:
        return duration(self.end - self.start)


def _events_of(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_]


def _data(e: dict[str, Any]) -> Any:
    try:
        return codec.loads(e.get("data"))
    except ValueError:
        return None


def timeline(dw: Ductwork, run: RunRow, steps: list[StepRow],
             events: list[dict[str, Any]], now: float | None = None) -> Timeline:
    now = time.time() if now is None else now
    t0 = run.started_at or run.created_at
    t1 = run.finished_at if run.status in TERMINAL and run.finished_at else now
    main: list[Bar] = []
    waits = [(e["ts"], _data(e) or {}) for e in _events_of(events, "signal_wait_started")]
    retries: dict[str, list[tuple[float, dict[str, Any]]]] = {}
    for e in _events_of(events, "step_retried"):
        retries.setdefault(e["step"] or "", []).append((e["ts"], _data(e) or {}))
    checkpoints: list[dict[str, Any]] = []
    for s in sorted(steps, key=lambda s: (s.seq == 0, s.seq, s.started_at or 0)):
        meta = _meta(s)
        start = s.started_at if s.started_at is not None else t0
        if s.kind == "step":
            bar = Bar(s.tag, "step", _step_status(s), start, s.finished_at, key=s.step_key,
                      attempts=s.attempts, input=pretty(dw, s.input), output=pretty(dw, s.result),
                      error=None if s.error is None else dw.redact(s.error))
            for ts, d in retries.get(s.tag, []):
                if start <= ts <= (s.finished_at or now):
                    bar.ticks.append(Tick(ts, f"attempt {d.get('attempt')} failed: "
                                              f"{dw.redact(str(d.get('error', '')))}"))
            if s.attempts > 1:
                bar.note = f"{s.attempts} attempts"
        elif s.kind == "sleep":
            wake = float(meta.get("wake_at") or start)
            bar = Bar("sleep", "sleep", "completed" if wake <= now else "sleeping", start,
                      wake if wake <= now else None, key=s.step_key,
                      note=f"until {when(wake)}")
        elif s.kind == "signal":
            names = meta.get("signals") or [s.tag]
            # A received signal's row starts when the signal arrived: the wait began earlier.
            began = next((ts for ts, d in waits if d.get("signals") == names and ts <= start),
                         start)
            waits = [(ts, d) for ts, d in waits if ts != began]
            bar = Bar("signal " + " | ".join(names), "signal",
                      {"waiting": "waiting", "completed": "received"}.get(s.status, "timed_out"),
                      began, s.finished_at, key=s.step_key, output=pretty(dw, s.result),
                      error=None if s.error is None else dw.redact(s.error))
            if s.status == "completed":
                bar.ticks.append(Tick(start, f"signal '{s.tag}' arrived"))
        elif s.kind == "child":
            child_id = meta.get("run_id")
            bar = Bar(f"child {s.tag}", "child", s.status, start, s.finished_at,
                      key=s.step_key, attempts=s.attempts, link=child_id,
                      input=pretty(dw, s.input), output=pretty(dw, s.result),
                      error=None if s.error is None else dw.redact(s.error),
                      note=f"{meta.get('product')}/{meta.get('tag')}")
        elif s.kind == "checkpoint":
            checkpoints.append({"name": s.tag, "at": when(s.started_at),
                                "metadata": pretty(dw, s.result)})
            continue
        else:
            continue  # state writes are shown as the state; trigger_rollback in the rollback
        if s.status == "waiting" and bar.end is None and run.status in TERMINAL:
            bar.end = t1
        main.append(bar)
    if run.status == "running" and run.current_step and not any(
            b.end is None for b in main):
        last = max([b.end or b.start for b in main] + [t0])
        main.append(Bar(run.current_step, "running", "running", last, None))
    rollback = _rollback_lane(dw, events)
    t1 = max([t1, *[b.end or now for b in main + rollback]])
    total = max(t1 - t0, 1e-3)
    for b in main + rollback:
        b.left = _pct(b.start - t0, total)
        b.width = max(_pct((b.end if b.end is not None else t1) - b.start, total), 0.4)
        b.left = min(b.left, 100 - b.width)
        for tk in b.ticks:
            tk.left = _pct(tk.left - t0, total)
    axis = [(i * 25.0, "+" + duration(total * i / 4)) for i in range(5)]
    return Timeline(t0, t1, main, rollback, checkpoints, axis)


def _rollback_lane(dw: Ductwork, events: list[dict[str, Any]]) -> list[Bar]:
    """Compensations from the history: each ran from the previous rollback event to its own."""
    lane: list[Bar] = []
    prev: float | None = None
    for e in events:
        if e["type"] == "rollback_started":
            prev = e["ts"]
        elif e["type"] in ("step_rolled_back", "rollback_failed") and prev is not None:
            failed = e["type"] == "rollback_failed"
            err = (_data(e) or {}).get("error") if failed else None
            lane.append(Bar("undo " + (e["step"] or ""), "rollback",
                            "rollback_failed" if failed else "rolled_back", prev, e["ts"],
                            error=None if err is None else dw.redact(str(err))))
            prev = e["ts"]
    return lane


def _pct(part: float, total: float) -> float:
    return round(max(0.0, min(100.0, part / total * 100)), 3)


def _meta(s: StepRow) -> dict[str, Any]:
    try:
        meta = json.loads(s.meta or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _step_status(s: StepRow) -> str:
    if s.rollback_status:
        return s.rollback_status
    return s.status
