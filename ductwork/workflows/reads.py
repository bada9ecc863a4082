"""Reading runs: status, history, logs, listing, step detail, and declared queries."""

from __future__ import annotations

import datetime as dt
import inspect
import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ductwork.errors import (
    ConfigurationError,
    DuctworkError,
    RunNotFoundError,
    SerializationError,
)
from ductwork.interpreter import codec
from ductwork.interpreter.context import InputView
from ductwork.interpreter.result import ErrorInfo, checkpoint_ref, completed_tags, elapsed_ms
from ductwork.interpreter.transform import Transform
from ductwork.store.protocol import ACTIVE, TERMINAL, RunRow, StepRow
from ductwork.util.durations import to_ms
from ductwork.util.suggest import did_you_mean
from ductwork.util.text import brief, shown
from ductwork.util.timefmt import iso

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine

STATUSES = tuple(sorted(ACTIVE | TERMINAL | {"preparing"}))
# Re-run links live in the new run's context JSON under "flags"; the relation they express.
LINKS = (("replayed_from", "replay"), ("restarted_from", "restart"), ("resumed_from", "resume"))


# -- small helpers -----------------------------------------------------------------------------
def run_context(run: RunRow) -> dict[str, Any]:
    try:
        extra = codec.loads(run.context)
    except ValueError:
        return {}
    return extra if isinstance(extra, dict) else {}


def run_flags(run: RunRow) -> dict[str, Any]:
    flags = run_context(run).get("flags")
    return dict(flags) if isinstance(flags, Mapping) else {}


def origin_of(run: RunRow) -> tuple[str, str] | None:
    """(relation, source id) when this run is a replay/restart/resume of another one."""
    flags = run_flags(run)
    for key, relation in LINKS:
        src = flags.get(key)
        if isinstance(src, str) and src:
            return relation, src
    return None


def summary(run: RunRow) -> dict[str, Any]:
    """One run as listings show it (JSON-able)."""
    out: dict[str, Any] = {
        "workflow_id": run.workflow_id, "product": run.product, "workflow_tag": run.tag,
        "name": run.name, "env": run.env, "status": run.status, "parent_id": run.parent_id,
        "created_at": iso(run.created_at), "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at), "updated_at": iso(run.updated_at),
        "execution_time": elapsed_ms(run) if run.started_at is not None else None,
        "failed_step": run.failed_step, "error": run.error,
    }
    link = origin_of(run)
    if link is not None:
        out["rerun_of"] = {"relation": link[0], "workflow_id": link[1]}
    return out


async def get_run(engine: Engine, workflow_id: str) -> RunRow:
    if not isinstance(workflow_id, str) or not workflow_id:
        raise ConfigurationError(f"a workflow_id must be a non-empty string, got {workflow_id!r}")
    run = await engine.store.get_run(workflow_id)
    if run is None:
        recent, _ = await engine.store.list_runs(limit=200)
        raise RunNotFoundError(workflow_id, did_you_mean(workflow_id,
                                                         [r.workflow_id for r in recent]))
    return run


def _step_map(steps: list[StepRow]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in sorted(steps, key=lambda s: s.seq):
        if s.kind == "step" and s.status == "completed" and s.seq > 0:
            out[s.tag] = codec.loads(s.result)
    return out


# -- queries -----------------------------------------------------------------------------------
_WRITES = frozenset({"step", "sleep", "set_state", "checkpoint", "wait_for_signal", "workflow",
                     "parallel", "foreach", "trigger_rollback", "action", "database",
                     "notification", "storage", "graph", "publish", "messaging"})


class QueryContext:
    """What a query function sees: the run's latest persisted state, read-only."""

    def __init__(self, run: RunRow, steps: list[StepRow], state: dict[str, Any],
                 live_step: str | None = None) -> None:
        self.workflow_id = run.workflow_id
        self.workflow_tag = run.tag
        self.product = run.product
        self.env = run.env
        self.name = run.name
        self.status = run.status
        self.output = codec.loads(run.output)
        self.error = run.error
        self.failed_step = run.failed_step
        raw = codec.loads(run.input)
        raw = {} if raw is None else raw
        self.input: Any = InputView(raw) if isinstance(raw, Mapping) else raw
        extra = run_context(run)
        self.context = extra.get("context")
        self.session = extra.get("session")
        self.auth = extra.get("auth")
        flags = run_flags(run)
        for key in ("is_replay", "is_restart", "is_restored"):
            setattr(self, key, bool(flags.get(key)))
        for key in ("replayed_from", "restarted_from", "resumed_from", "replay_reason",
                    "restart_reason"):
            setattr(self, key, flags.get(key))
        self.restored_checkpoint = checkpoint_ref(flags)
        self.original_input = flags.get("original_input", raw)
        self._state = dict(state)
        self._steps = _step_map(steps)
        self._completed = completed_tags(steps)
        ordered = sorted((s for s in steps if s.seq > 0), key=lambda s: s.seq)
        checkpoints = [s for s in ordered if s.kind == "checkpoint"]
        last = checkpoints[-1] if checkpoints else None
        self.checkpoint_name = last.tag if last else None
        self.checkpoint_data = codec.loads(last.result) if last else None
        self.current_step = current_step(run, steps, live_step)
        self.transform = Transform()

    @property
    def state(self) -> Mapping[str, Any]:
        return MappingProxyType(self._state)

    @property
    def steps(self) -> Mapping[str, Any]:
        return MappingProxyType(self._steps)

    @property
    def completed_steps(self) -> list[str]:
        return list(self._completed)

    def get_state(self, key: str, default: Any = None) -> Any:
        """Plain (not awaitable) in a query: `ctx.get_state("progress", 0)`."""
        return self._state.get(key, default)

    def default(self, value: Any, fallback: Any) -> Any:
        return fallback if value is None or value == "" else value

    def __getattr__(self, name: str) -> Any:
        if name in _WRITES:
            raise ConfigurationError(
                f"queries are read-only: ctx.{name} is not available in a query function "
                "(it sees input, state, steps, completed_steps, status, checkpoint_name/data)")
        raise AttributeError(name)


async def query(engine: Engine, workflow_id: str, name: str) -> Any:
    """Answer a declared query from the run's latest persisted state (the handler never runs)."""
    run = await get_run(engine, workflow_id)
    wf = engine.runtime.definitions.get(run.product, run.tag)
    if name not in wf.queries:
        declared = sorted(wf.queries)
        raise ConfigurationError(
            f"workflow {run.product}/{run.tag} has no query {name!r} "
            + (f"(declared: {', '.join(declared)})" if declared else
               "(it declares none: define(..., queries={'name': fn}))")
            + did_you_mean(name, declared, prefix="; "))
    steps = await engine.store.load_steps(workflow_id)
    state = {k: codec.loads(v) for k, v in (await engine.store.get_state(workflow_id)).items()}
    qctx = QueryContext(run, steps, state, _live_step(engine, workflow_id))
    fn = wf.queries[name]
    try:
        value = fn(qctx)
        if inspect.isawaitable(value):
            value = await value
    except DuctworkError:
        raise
    except Exception as e:
        raise DuctworkError(engine.runtime.redact(
            f"query {name!r} of run {workflow_id} failed: {type(e).__name__}: {e}")) from e
    try:
        codec.dumps(value, "result")
    except (TypeError, ValueError) as e:
        raise SerializationError(
            f"query {name!r} returned a value that cannot be sent back: {e}; return "
            f"{codec.SUPPORTED}") from None
    return value


# -- listing and detail ------------------------------------------------------------------------
def _since(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC).timestamp()
    if isinstance(value, bool):
        raise ConfigurationError(f"list(): since must be a time, got {shown(value)}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dt.timedelta):
        return time.time() - value.total_seconds()
    if isinstance(value, str):
        try:
            return _since(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            pass
        try:
            return time.time() - to_ms(value) / 1000
        except ConfigurationError:
            pass
    raise ConfigurationError(
        f"list(): cannot read since={brief(value)}; give a datetime, an ISO time "
        "('2024-05-01T12:00:00Z'), epoch seconds, or how long ago ('15m', '2h', '1d')")


async def list_runs(engine: Engine, *, product: str | None = None, tag: str | None = None,
                    status: str | Iterable[str] | None = None, since: Any = None,
                    limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    sts: list[str] | None = None
    if status is not None:
        if not isinstance(status, str | list | tuple):
            raise ConfigurationError(f"list(): status must be a status or a list of them, got "
                                     f"{shown(status)}")
        sts = [status] if isinstance(status, str) else list(status)
        for s in sts:
            if not isinstance(s, str) or s not in STATUSES:
                raise ConfigurationError(f"list(): unknown status {shown(s)} (statuses: "
                                         f"{', '.join(STATUSES)})"
                                         + did_you_mean(str(s), STATUSES, prefix="; "))
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ConfigurationError(f"list(): limit must be an integer from 1 to 1000, got "
                                 f"{shown(limit)}")
    if cursor is not None:
        ts, sep, wid = str(cursor).partition("|")
        try:
            float(ts)
        except ValueError:
            sep = ""
        if not sep or not wid:
            raise ConfigurationError(f"list(): cursor {cursor!r} is not one this API returned "
                                     "(pass next_cursor from the previous page)")
    rows, nxt = await engine.store.list_runs(product=product, tag=tag, status=sts,
                                             since=_since(since), limit=limit, cursor=cursor)
    return {"runs": [summary(r) for r in rows], "next_cursor": nxt}


def resolve_step(steps: list[StepRow], step_tag: str, run: RunRow, kind: str = "step"
                  ) -> list[StepRow]:
    rows = [s for s in steps if s.kind == kind and s.seq > 0 and
            (s.step_key == step_tag or s.tag == step_tag)]
    if not rows:
        known = sorted({s.tag for s in steps if s.kind == kind})
        what = "step" if kind == "step" else kind
        raise ConfigurationError(
            f"run {run.workflow_id} ({run.product}/{run.tag}) has no recorded {what} "
            f"{step_tag!r} (recorded: {', '.join(known) or 'none'})"
            + did_you_mean(step_tag, known, prefix="; "))
    return sorted(rows, key=lambda s: s.seq)


async def step_detail(engine: Engine, workflow_id: str, step_tag: str) -> dict[str, Any]:
    """One step's record: `tag` (first occurrence) or `tag#n` (the n-th)."""
    run = await get_run(engine, workflow_id)
    steps = await engine.store.load_steps(workflow_id)
    live = engine.contexts.get(workflow_id)
    try:
        rows = resolve_step(steps, step_tag, run)
    except ConfigurationError:
        if live is not None and live.current_step == step_tag and run.status not in TERMINAL:
            return {"tag": step_tag, "name": step_tag, "key": step_tag, "status": "running",
                    "input": None, "output": None, "error": None, "attempts": None,
                    "start_time": None, "end_time": None, "duration": None,
                    "rollback_status": None, "occurrences": 0}
        raise
    row = next((r for r in rows if r.step_key == step_tag), rows[0])
    status = "rolled_back" if row.rollback_status == "rolled_back" else row.status
    duration = (None if row.started_at is None or row.finished_at is None
                else max(0, round((row.finished_at - row.started_at) * 1000)))
    return {
        "tag": row.tag, "name": row.tag, "key": row.step_key, "status": status,
        "input": codec.loads(row.input), "output": codec.loads(row.result),
        "error": None if row.error is None else ErrorInfo(row.error, row.tag),
        "attempts": row.attempts, "start_time": iso(row.started_at),
        "end_time": iso(row.finished_at), "duration": duration,
        "rollback_status": row.rollback_status, "rollback_error": row.rollback_error,
        "critical": row.critical, "has_rollback": row.has_rollback, "occurrences": len(rows),
    }


# -- status, history, logs ----------------------------------------------------------------
def current_step(run: RunRow, steps: list[StepRow], live_step: str | None) -> str | None:
    """What a live run is doing now, the same for status() and a query's ctx.current_step:
    the step running in this process, else what the run waits on (a signal, a child), else
    None (between steps, sleeping, or ended)."""
    if run.status in TERMINAL:
        return None
    if live_step or run.current_step:
        return live_step or run.current_step
    waiting = [s for s in steps if s.status in ("running", "waiting")]
    return waiting[0].tag if waiting else None


def _live_step(engine: Engine, workflow_id: str) -> str | None:
    live = engine.contexts.get(workflow_id)
    return None if live is None else live.current_step


async def status(engine: Engine, workflow_id: str) -> dict[str, Any]:
    run = await engine.store.get_run(workflow_id)
    if run is None:
        raise RunNotFoundError(workflow_id)
    steps = await engine.store.load_steps(workflow_id)
    state = {k: codec.loads(v) for k, v in (await engine.store.get_state(workflow_id)).items()}
    return {
        "workflow_id": run.workflow_id, "workflow_tag": run.tag, "product": run.product,
        "env": run.env, "status": run.status,
        "current_step": current_step(run, steps, _live_step(engine, workflow_id)),
        "completed_steps": completed_tags(steps), "state": state,
        "started_at": iso(run.started_at), "updated_at": iso(run.updated_at),
        "finished_at": iso(run.finished_at), "wake_at": iso(run.wake_at),
        "parent_id": run.parent_id, "error": run.error, "failed_step": run.failed_step,
    }


class History(list[dict[str, Any]]):
    """What dw.workflows.history() returns: the events, oldest first (a list, as before),
    with the documented record around them as attributes and keys: `events`, `checkpoints`,
    `replays`, `restarts`, `resumes`, `workflow_id`, `workflow_tag`, `status`
    (`h.checkpoints` or `h["checkpoints"]`; `h.to_dict()` for all of them)."""

    FIELDS = ("workflow_id", "workflow_tag", "status", "events", "checkpoints", "replays",
              "restarts", "resumes")

    def __init__(self, events: list[dict[str, Any]], **record: Any) -> None:
        super().__init__(events)
        self.workflow_id: str = record.get("workflow_id", "")
        self.workflow_tag: str = record.get("workflow_tag", "")
        self.status: str = record.get("status", "")
        self.checkpoints: list[dict[str, Any]] = record.get("checkpoints", [])
        self.replays: list[str] = record.get("replays", [])
        self.restarts: list[str] = record.get("restarts", [])
        self.resumes: list[str] = record.get("resumes", [])

    @property
    def events(self) -> list[dict[str, Any]]:
        return list(self)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key in self.FIELDS:
                return getattr(self, key)
            raise KeyError(f"a history has {', '.join(self.FIELDS)}, not {key!r}")
        return super().__getitem__(key)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.FIELDS}


def checkpoints_of(steps: list[StepRow]) -> list[dict[str, Any]]:
    return [{"name": s.tag, "timestamp": iso(s.finished_at), "data": codec.loads(s.result)}
            for s in sorted(steps, key=lambda s: s.seq)
            if s.kind == "checkpoint" and s.status == "completed"]


async def history(engine: Engine, workflow_id: str, *, step_details: bool = False,
                  rollback_details: bool = False) -> list[dict[str, Any]]:
    """Typed events with timestamps, oldest first; `step_details` adds each step's input,
    output and duration to its end event, `rollback_details` each rollback's outcome."""
    run = await engine.store.get_run(workflow_id)
    if run is None:
        raise RunNotFoundError(workflow_id)
    rows: list[tuple[float, int, dict[str, Any]]] = []
    for e in await engine.store.events(workflow_id):
        rows.append((e["ts"], 1, {"type": e["type"], "step": e["step"],
                                  "data": codec.loads(e["data"]), "ts": e["ts"]}))
    # The common start and end are read off the run row rather than stored twice.
    types = {r[2]["type"] for r in rows}
    if "workflow_started" not in types and run.started_at is not None:
        rows.append((run.started_at, -1, {"type": "workflow_started", "step": None,
                                          "data": None, "ts": run.started_at}))
    if run.status == "completed" and "workflow_completed" not in types:
        end = run.finished_at or run.updated_at
        rows.append((end, 2, {"type": "workflow_completed", "step": None, "data": None,
                              "ts": end}))
    # Step lifecycle events are not stored twice: they are read off the step journal.
    for st in await engine.store.load_steps(workflow_id):
        if st.kind != "step":
            continue
        if st.started_at is not None:
            rows.append((st.started_at, 0, {"type": "step_started", "step": st.tag,
                                            "data": None, "ts": st.started_at}))
        end = st.finished_at or st.started_at or 0.0
        data: dict[str, Any] = {"attempts": st.attempts}
        if st.error:
            data["error"] = ErrorInfo(st.error, st.tag)  # a string with .message and .code
        if st.status == "completed":  # as the docs' history shows it: {step, output}
            data["output"] = codec.loads(st.result)
        if step_details:
            data.update(key=st.step_key, input=codec.loads(st.input), critical=st.critical,
                        duration=None if st.started_at is None or st.finished_at is None
                        else max(0, round((st.finished_at - st.started_at) * 1000)))
        if rollback_details and st.rollback_status:
            data.update(rollback_status=st.rollback_status, rollback_error=st.rollback_error)
        rows.append((end, 0, {"type": _STEP_EVENT.get(st.status, "step_" + st.status),
                              "step": st.tag, "data": data, "ts": end}))
    rows.sort(key=lambda r: (r[0], r[1]))
    given = codec.loads(run.input)
    return [{"type": r["type"], "timestamp": iso(r["ts"]), "step": r["step"],
             "data": _event_data(r["type"], r["step"], r["data"], given)} for _, _, r in rows]


def _event_data(kind: str, step: str | None, data: Any, given: Any) -> dict[str, Any]:
    """An event's data as the product's docs show it, always a map: a step's events name
    the step (`data["step"]`), a checkpoint its `name` (and `metadata`), a start the input."""
    if kind == "checkpoint_created":
        return {"name": step, "metadata": data}
    out = dict(data) if isinstance(data, Mapping) else {} if data is None else {"value": data}
    if step is not None and not kind.startswith("signal_"):  # a signal's is its name
        out.setdefault("step", step)
    if kind == "workflow_started":
        out.setdefault("input", given)
    return out


async def logs(engine: Engine, workflow_id: str) -> list[dict[str, Any]]:
    return [{"level": lg["level"], "message": lg["message"], "timestamp": iso(lg["ts"]),
             "step": lg["step"], "data": codec.loads(lg["data"])}
            for lg in await engine.store.logs(workflow_id)]


_STEP_EVENT = {"completed": "step_completed", "failed": "step_failed", "skipped": "step_skipped"}
