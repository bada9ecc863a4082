"""Management of runs: queries, listing, step detail, re-runs (replay/restart/resume), lineage."""

from __future__ import annotations

import asyncio
import datetime as dt
import difflib
import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ductwork.durations import to_ms
from ductwork.errors import ConfigurationError, DuctworkError, SerializationError
from ductwork.interpreter import codec
from ductwork.interpreter.context import InputView
from ductwork.interpreter.result import ExecutionResult, completed_tags, elapsed_ms
from ductwork.interpreter.transform import Transform
from ductwork.store.protocol import ACTIVE, TERMINAL, Batch, RunRow, StepRow

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine
    from ductwork.interpreter.runtime import LazyEngine

STATUSES = tuple(sorted(ACTIVE | TERMINAL | {"preparing"}))
# Re-run links live in the new run's context JSON under "flags"; the relation they express.
LINKS = (("replayed_from", "replay"), ("restarted_from", "restart"), ("resumed_from", "resume"))
_FLAG_OF = {relation: flag for flag, relation in LINKS}
_DONE = frozenset({"completed", "skipped", "failed"})
# A resume/replay_from_step run is created in this non-active status, then its copied journal
# and its real status are committed in one transaction: a crash in between leaves a run no
# worker will ever pick up, never one that runs without the results it was meant to reuse.
PREPARING = "preparing"
_PAGE = 500


# -- small helpers -----------------------------------------------------------------------------
def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


def _hint(word: str, choices: Iterable[str]) -> str:
    found = difflib.get_close_matches(word, list(choices), 1)
    return f"; did you mean '{found[0]}'?" if found else ""


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
        raise ConfigurationError(f"No workflow run with id {workflow_id!r}"
                                 + _hint(workflow_id, [r.workflow_id for r in recent]))
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

    def __init__(self, run: RunRow, steps: list[StepRow], state: dict[str, Any]) -> None:
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
                    "restart_reason", "restored_checkpoint"):
            setattr(self, key, flags.get(key))
        self.original_input = flags.get("original_input", raw)
        self._state = dict(state)
        self._steps = _step_map(steps)
        self._completed = completed_tags(steps)
        ordered = sorted((s for s in steps if s.seq > 0), key=lambda s: s.seq)
        checkpoints = [s for s in ordered if s.kind == "checkpoint"]
        last = checkpoints[-1] if checkpoints else None
        self.checkpoint_name = last.tag if last else None
        self.checkpoint_data = codec.loads(last.result) if last else None
        waiting = [s for s in steps if s.status in ("running", "waiting")]
        self.current_step = (run.current_step or (waiting[0].tag if waiting else None)
                             if run.status not in TERMINAL else None)
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
            + _hint(name, declared))
    steps = await engine.store.load_steps(workflow_id)
    state = {k: codec.loads(v) for k, v in (await engine.store.get_state(workflow_id)).items()}
    qctx = QueryContext(run, steps, state)
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
        codec.dumps(value)
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
        raise ConfigurationError(f"list(): since must be a time, got {value!r}")
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
        f"list(): cannot read since={value!r}; give a datetime, an ISO time "
        "('2024-05-01T12:00:00Z'), epoch seconds, or how long ago ('15m', '2h', '1d')")


async def list_runs(engine: Engine, *, product: str | None = None, tag: str | None = None,
                    status: str | Iterable[str] | None = None, since: Any = None,
                    limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    sts: list[str] | None = None
    if status is not None:
        sts = [status] if isinstance(status, str) else list(status)
        for s in sts:
            if s not in STATUSES:
                raise ConfigurationError(f"list(): unknown status {s!r} (statuses: "
                                         f"{', '.join(STATUSES)})" + _hint(str(s), STATUSES))
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ConfigurationError(f"list(): limit must be an integer from 1 to 1000, got {limit!r}")
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


def _resolve_step(steps: list[StepRow], step_tag: str, run: RunRow, kind: str = "step"
                  ) -> list[StepRow]:
    rows = [s for s in steps if s.kind == kind and s.seq > 0 and
            (s.step_key == step_tag or s.tag == step_tag)]
    if not rows:
        known = sorted({s.tag for s in steps if s.kind == kind})
        what = "step" if kind == "step" else kind
        raise ConfigurationError(
            f"run {run.workflow_id} ({run.product}/{run.tag}) has no recorded {what} "
            f"{step_tag!r} (recorded: {', '.join(known) or 'none'})" + _hint(step_tag, known))
    return sorted(rows, key=lambda s: s.seq)


async def step_detail(engine: Engine, workflow_id: str, step_tag: str) -> dict[str, Any]:
    """One step's record: `tag` (first occurrence) or `tag#n` (the n-th)."""
    run = await get_run(engine, workflow_id)
    steps = await engine.store.load_steps(workflow_id)
    live = engine.contexts.get(workflow_id)
    try:
        rows = _resolve_step(steps, step_tag, run)
    except ConfigurationError:
        if live is not None and live.current_step == step_tag and run.status not in TERMINAL:
            return {"tag": step_tag, "key": step_tag, "status": "running", "input": None,
                    "output": None, "error": None, "attempts": None, "start_time": None,
                    "end_time": None, "duration": None, "rollback_status": None,
                    "occurrences": 0}
        raise
    row = next((r for r in rows if r.step_key == step_tag), rows[0])
    status = "rolled_back" if row.rollback_status == "rolled_back" else row.status
    duration = (None if row.started_at is None or row.finished_at is None
                else max(0, round((row.finished_at - row.started_at) * 1000)))
    return {
        "tag": row.tag, "key": row.step_key, "status": status,
        "input": codec.loads(row.input), "output": codec.loads(row.result), "error": row.error,
        "attempts": row.attempts, "start_time": iso(row.started_at),
        "end_time": iso(row.finished_at), "duration": duration,
        "rollback_status": row.rollback_status, "rollback_error": row.rollback_error,
        "critical": row.critical, "has_rollback": row.has_rollback, "occurrences": len(rows),
    }


# -- re-runs -----------------------------------------------------------------------------------
def _rerun_context(src: RunRow, flags: dict[str, Any], presets: dict[str, Any] | None
                   ) -> str:
    extra = {k: v for k, v in run_context(src).items() if k in ("context", "session", "auth")}
    # Presets ride under flags, which child runs never inherit (a child's step of the same
    # tag must run for real).
    extra["flags"] = {**flags, "presets": presets} if presets else flags
    return codec.dumps(extra)


def _rerun_options(src: RunRow) -> dict[str, Any]:
    try:
        opts = codec.loads(src.options) or {}
    except ValueError:
        opts = {}
    # A cancel asked of the original must not cancel its re-run.
    return {k: v for k, v in dict(opts).items() if not str(k).startswith("cancel")}


async def _start(engine: Engine, src: RunRow, *, input: Any, flags: dict[str, Any],
                 event: dict[str, Any], copies: list[StepRow] | None = None,
                 presets: dict[str, Any] | None = None, workflow_id: str | None = None,
                 wait: bool = True, timeout: Any = None, queue: bool = False) -> dict[str, Any]:
    """Create the new run and start it through the engine (or leave it for a worker)."""
    from ductwork.workflows.facade import check_workflow_id, encode_input, new_workflow_id

    wf = engine.runtime.definitions.find(src.product, src.tag)
    local = wf is not None and not queue
    enc = encode_input(input, "the new run")
    check_workflow_id(workflow_id, "the new run")
    wid = workflow_id or new_workflow_id()
    opts = _rerun_options(src)
    if wf is not None:
        opts = {**opts, **wf.options}
    t = time.time()
    timeout_ms = opts.get("timeout")
    status = "running" if local else "pending"
    owned = local and copies is None
    run = RunRow(
        workflow_id=wid, product=src.product, tag=src.tag, env=src.env,
        status=status if copies is None else PREPARING, input=enc,
        options=codec.dumps(opts) if opts else None,
        context=engine.runtime.redact(_rerun_context(src, flags, presets)),
        created_at=t, updated_at=t, started_at=t if owned else None,
        deadline_at=None if timeout_ms is None or not owned else t + float(timeout_ms) / 1000,
        owner=engine.owner if owned else None,
        lease_until=t + engine.lease_s if owned else None,
        attempt=1 if owned else 0, name=src.name if wf is None else wf.name,
        queue=src.queue, priority=src.priority, wake_at=None if local else t)
    stored, created = await engine.store.create_run(
        run, [(t, "workflow_started", None, engine.dumps_safe(event))])
    if not created:
        # The same new id again (a retried call) returns that run; any other run is an error.
        if origin_of(stored) != origin_of(run):
            raise ConfigurationError(
                f"workflow_id {wid!r} is already taken by another run; pick a new one")
        if stored.status != PREPARING or copies is None:
            return await _outcome(engine, stored, wait, timeout, spawn=False)
    if copies is not None:
        stored = await _commit_copies(engine, wid, copies, local, event)
    if not local:
        return await _outcome(engine, stored, wait=False, timeout=None, spawn=False)
    return await _outcome(engine, stored, wait, timeout, spawn=True, fresh=copies is None)


async def _commit_copies(engine: Engine, wid: str, copies: list[StepRow], local: bool,
                         event: dict[str, Any]) -> RunRow:
    t = time.time()
    rows: list[StepRow] = []
    state: dict[str, str] = {}
    for s in sorted(copies, key=lambda s: s.seq):
        rows.append(StepRow(
            wid, s.step_key, s.tag, s.kind, s.status, s.seq, s.attempts, s.input, s.result,
            s.error, s.started_at, s.finished_at, s.critical, s.has_rollback, None, None,
            s.meta))
        if s.kind == "state" and s.status == "completed" and s.result is not None:
            state[s.tag] = s.result
    fields: dict[str, Any] = ({"status": "running", "owner": engine.owner,
                               "lease_until": t + engine.lease_s, "started_at": t,
                               "attempt": 1, "wake_at": None}
                              if local else {"status": "pending", "wake_at": t})
    await engine.store.commit(wid, Batch(
        run=fields, steps=rows, state=state,
        events=[(t, "workflow_restored", None, engine.dumps_safe(
            {**event, "reused_steps": [r.step_key for r in rows if r.kind == "step"]}))]))
    run = await engine.store.get_run(wid)
    assert run is not None
    return run


async def _outcome(engine: Engine, run: RunRow, wait: bool, timeout: Any, *,
                   spawn: bool, fresh: bool = False) -> dict[str, Any]:
    wid = run.workflow_id
    if spawn:
        if not fresh and run.owner != engine.owner:
            claimed = await engine.store.claim(wid, engine.owner, engine.lease_s)
            if claimed is None:
                return _with_links(await engine.result_from_store(wid), run)
            run = claimed
        task = engine.spawn(run, fresh=fresh)
        if wait:
            if timeout is None:
                res = await asyncio.shield(task)
            else:
                try:
                    res = await asyncio.wait_for(asyncio.shield(task), to_ms(timeout) / 1000)
                except TimeoutError:
                    res = await engine.result_from_store(wid)
            return _with_links(res, run)
    res = await engine.result_from_store(wid)
    out = _with_links(res, run)
    if not spawn and run.status in ("pending", PREPARING):
        out["status"] = "pending"  # queued: a worker with this workflow defined will run it
    return out


def _with_links(res: ExecutionResult, run: RunRow) -> dict[str, Any]:
    out = res.to_dict()
    out["rollback_result"] = res.rollback_result
    flags = run_flags(run)
    for key in ("replayed_from", "restarted_from", "resumed_from", "restored_checkpoint"):
        if flags.get(key):
            out[key] = flags[key]
    return out


async def replay(engine: Engine, workflow_id: str, reason: str | None = None, *,
                 new_workflow_id: str | None = None, wait: bool = True, timeout: Any = None,
                 queue: bool = False) -> dict[str, Any]:
    """A new run of the same workflow with the same input."""
    src = await get_run(engine, workflow_id)
    flags = {"is_replay": True, "replayed_from": src.workflow_id,
             "replay_reason": reason or "replay"}
    return await _start(engine, src, input=codec.loads(src.input), flags=flags,
                        event={"replayed_from": src.workflow_id, "reason": flags["replay_reason"]},
                        workflow_id=new_workflow_id, wait=wait, timeout=timeout, queue=queue)


async def restart(engine: Engine, workflow_id: str, input: Any = None,
                  merge_input: Mapping[str, Any] | None = None, reason: str | None = None, *,
                  new_workflow_id: str | None = None, wait: bool = True, timeout: Any = None,
                  queue: bool = False) -> dict[str, Any]:
    """A new run from scratch, with a new input (`input`) or the old one updated (`merge_input`)."""
    src = await get_run(engine, workflow_id)
    original = codec.loads(src.input)
    if input is not None and merge_input is not None:
        raise ConfigurationError("restart(): give input= (a whole new input) or merge_input= "
                                 "(fields to change), not both")
    if merge_input is not None:
        if not isinstance(merge_input, Mapping) or not isinstance(original, Mapping):
            raise ConfigurationError("restart(): merge_input needs a dict, and the original "
                                     "input must be a dict too; pass input= instead")
        new_input: Any = {**original, **merge_input}
    else:
        new_input = original if input is None else input
    wf = engine.runtime.definitions.find(src.product, src.tag)
    if wf is not None:
        engine.runtime.definitions.validate_input(wf, new_input)
    flags = {"is_restart": True, "restarted_from": src.workflow_id,
             "restart_reason": reason or "restart", "original_input": original}
    return await _start(engine, src, input=new_input, flags=flags,
                        event={"restarted_from": src.workflow_id,
                               "reason": flags["restart_reason"]},
                        workflow_id=new_workflow_id, wait=wait, timeout=timeout, queue=queue)


def _require_ended(src: RunRow, what: str) -> None:
    if src.status not in TERMINAL:
        raise ConfigurationError(
            f"{what}: run {src.workflow_id} is still {src.status}; a run that reuses its results "
            "can start once it has ended (cancel it first, or wait for it)")


def _prefix(steps: list[StepRow], cut: int, src: RunRow, what: str) -> list[StepRow]:
    """Recorded operations with seq <= cut: the new run replays them instead of running them."""
    rows = [s for s in steps if s.seq > 0 and s.seq <= cut and s.status in _DONE]
    undone = [s.tag for s in rows if s.kind == "step" and s.rollback_status == "rolled_back"]
    if undone:
        raise ConfigurationError(
            f"{what}: step(s) {', '.join(repr(t) for t in undone)} of run {src.workflow_id} were "
            "rolled back when it ended, so their recorded results no longer hold; resume from "
            "an earlier point, use restart(), or give the workflow rollback_strategy "
            "'to_checkpoint' so that steps before a checkpoint are kept")
    return rows


def _presets(values: Mapping[str, Any], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in values.items():
        try:
            codec.dumps(v)
        except (TypeError, ValueError) as e:
            raise ConfigurationError(f"{what}: the value for step {k!r} cannot be stored: "
                                     f"{e}") from None
        out[str(k)] = v
    return out


async def resume(engine: Engine, workflow_id: str, from_checkpoint: str | None = None,
                 from_step: str | None = None, skip_steps: Iterable[str] | None = None, *,
                 new_workflow_id: str | None = None, wait: bool = True, timeout: Any = None,
                 queue: bool = False) -> dict[str, Any]:
    """A new run that reuses the original's recorded results up to a checkpoint or a step.

    No point given: the latest checkpoint, else everything before the step that failed."""
    src = await get_run(engine, workflow_id)
    _require_ended(src, "resume()")
    if from_checkpoint is not None and from_step is not None:
        raise ConfigurationError("resume(): give from_checkpoint or from_step, not both")
    steps = await engine.store.load_steps(workflow_id)
    checkpoint: str | None = None
    if from_checkpoint is not None:
        cp = _resolve_step(steps, from_checkpoint, src, "checkpoint")[-1]
        cut, checkpoint = cp.seq, cp.tag
    elif from_step is not None:
        cut = _resolve_step(steps, from_step, src)[0].seq - 1
    else:
        cps = sorted((s for s in steps if s.kind == "checkpoint" and s.seq > 0),
                     key=lambda s: s.seq)
        failed = sorted((s for s in steps if s.kind == "step" and s.status == "failed"
                         and s.seq > 0), key=lambda s: s.seq)
        if cps:
            cut, checkpoint = cps[-1].seq, cps[-1].tag
        elif failed:
            cut = failed[0].seq - 1
        else:
            cut = max((s.seq for s in steps), default=0)
    copies = _prefix(steps, cut, src, "resume()")
    skip = [skip_steps] if isinstance(skip_steps, str) else list(skip_steps or [])
    recorded = {s.tag for s in steps if s.kind == "step"}
    known = recorded | _plan_tags(engine, src)
    presets: dict[str, Any] = {}
    for tag in skip:
        if tag not in known and "#" not in tag:
            raise ConfigurationError(f"resume(): skip_steps names {tag!r}, which is not a step "
                                     f"of run {src.workflow_id}" + _hint(tag, known))
        rec = [s for s in steps if s.kind == "step" and s.status == "completed"
               and (s.tag == tag or s.step_key == tag)]
        presets[tag] = codec.loads(rec[0].result) if rec else None
    flags: dict[str, Any] = {"is_restored": True, "resumed_from": src.workflow_id,
                             "restored_checkpoint": checkpoint}
    if from_step is not None:
        flags["resumed_from_step"] = from_step
    if skip:
        flags["skip_steps"] = skip
    return await _start(engine, src, input=codec.loads(src.input), flags=flags,
                        event={"resumed_from": src.workflow_id, "checkpoint": checkpoint,
                               "from_step": from_step},
                        copies=copies, presets=presets, workflow_id=new_workflow_id, wait=wait,
                        timeout=timeout, queue=queue)


async def replay_from_step(engine: Engine, workflow_id: str, from_step: str,
                           step_outputs: Mapping[str, Any] | None = None,
                           reason: str | None = None, *, new_workflow_id: str | None = None,
                           wait: bool = True, timeout: Any = None, queue: bool = False
                           ) -> dict[str, Any]:
    """A new run that reuses recorded outputs before `from_step` (`step_outputs` overrides any
    step's output, before or after that point: an overridden step does not run)."""
    src = await get_run(engine, workflow_id)
    _require_ended(src, "replay_from_step()")
    steps = await engine.store.load_steps(workflow_id)
    first = _resolve_step(steps, from_step, src)[0]
    copies = _prefix(steps, first.seq - 1, src, "replay_from_step()")
    overrides = _presets(dict(step_outputs or {}), "replay_from_step()")
    known = {s.tag for s in steps if s.kind == "step"} | _plan_tags(engine, src)
    for tag in overrides:
        base = tag.partition("#")[0]
        if base not in known:
            raise ConfigurationError(f"replay_from_step(): step_outputs names {tag!r}, which is "
                                     f"not a step of run {src.workflow_id}" + _hint(tag, known))
    for s in copies:
        if s.kind == "step" and (s.step_key in overrides or s.tag in overrides):
            value = overrides.get(s.step_key, overrides.get(s.tag))
            s.status, s.result, s.error = "completed", codec.dumps(value), None
    flags = {"is_replay": True, "replayed_from": src.workflow_id,
             "replay_reason": reason or f"replay from step '{first.tag}'",
             "replay_from_step": first.tag}
    return await _start(engine, src, input=codec.loads(src.input), flags=flags,
                        event={"replayed_from": src.workflow_id, "from_step": first.tag},
                        copies=copies, presets=overrides, workflow_id=new_workflow_id,
                        wait=wait, timeout=timeout, queue=queue)


def _plan_tags(engine: Engine, run: RunRow) -> set[str]:
    """Step tags a YAML workflow declares (a Python handler's are only known once recorded)."""
    wf = engine.runtime.definitions.find(run.product, run.tag)
    plan = getattr(wf.handler, "plan", None) if wf is not None else None
    walk: Callable[[], list[Any]] | None = getattr(plan, "walk", None)
    if walk is None:
        return set()
    return {s.tag for s in walk() if getattr(s, "tag", None)}


# -- lineage and comparison --------------------------------------------------------------------
async def _family_candidates(engine: Engine, root: RunRow) -> list[RunRow]:
    """Runs of the same workflow created since the root: re-runs are always of that kind."""
    out: list[RunRow] = []
    cursor: str | None = None
    while True:
        rows, cursor = await engine.store.list_runs(product=root.product, tag=root.tag,
                                                    since=root.created_at, limit=_PAGE,
                                                    cursor=cursor)
        out.extend(rows)
        if cursor is None:
            return out


async def related_executions(engine: Engine, workflow_id: str) -> dict[str, Any]:
    """Runs linked to this one: re-runs (replay/restart/resume, both ways) and parent/children."""
    run = await get_run(engine, workflow_id)
    ancestors: list[dict[str, Any]] = []
    cur, seen = run, {run.workflow_id}
    while (link := origin_of(cur)) is not None:
        relation, src_id = link
        if src_id in seen:
            break
        seen.add(src_id)
        src = await engine.store.get_run(src_id)
        if src is None:
            ancestors.append({"workflow_id": src_id, "relation": _FLAG_OF[relation],
                              "missing": True})
            break
        ancestors.append({**summary(src), "relation": _FLAG_OF[relation]})
        cur = src
    root = cur
    by_source: dict[str, list[tuple[str, RunRow]]] = {}
    for r in await _family_candidates(engine, root):
        link = origin_of(r)
        if link is not None:
            by_source.setdefault(link[1], []).append((link[0], r))
    descendants: list[dict[str, Any]] = []
    family: list[dict[str, Any]] = []
    queue: list[tuple[str, int]] = [(root.workflow_id, 0)]
    on_path = {a["workflow_id"] for a in ancestors}
    below = {run.workflow_id}
    while queue:
        src_id, depth = queue.pop(0)
        for relation, r in sorted(by_source.get(src_id, []), key=lambda x: x[1].created_at):
            entry = {**summary(r), "relation": relation, "of": src_id, "depth": depth + 1}
            family.append(entry)
            if src_id in below:
                below.add(r.workflow_id)
                descendants.append(entry)
            queue.append((r.workflow_id, depth + 1))
    parent = await engine.store.get_run(run.parent_id) if run.parent_id else None
    children, _ = await engine.store.list_runs(parent_id=run.workflow_id, limit=1000)
    siblings = [e for e in family if e["workflow_id"] not in below
                and e["workflow_id"] not in on_path]
    return {
        "workflow_id": run.workflow_id, "origin": root.workflow_id,
        "ancestors": ancestors, "descendants": descendants, "siblings": siblings,
        "parent": summary(parent) if parent is not None else None,
        "children": [summary(c) for c in sorted(children, key=lambda c: c.created_at)],
    }


_MISSING: Any = object()


def _diff(values: list[Any], path: str = "") -> list[dict[str, Any]]:
    present = [v is not _MISSING for v in values]
    if all(present) and all(isinstance(v, Mapping) for v in values):
        keys: dict[str, None] = {}
        for v in values:
            keys.update(dict.fromkeys(v))
        out: list[dict[str, Any]] = []
        for k in keys:
            out += _diff([v.get(k, _MISSING) for v in values], f"{path}.{k}" if path else str(k))
        return out
    if (all(present) and all(isinstance(v, list) for v in values)
            and len({len(v) for v in values}) == 1):
        out = []
        for i in range(len(values[0])):
            out += _diff([v[i] for v in values], f"{path}[{i}]")
        return out
    if all(present) and all(v == values[0] and type(v) is type(values[0]) for v in values):
        return []
    if not any(present):
        return []
    return [{"path": path or "$", "values": [v if p else None for v, p in zip(values, present,
                                                                             strict=True)],
             "present": present}]


async def compare(engines: LazyEngine, workflow_ids: Iterable[str]) -> dict[str, Any]:
    """Input, step and outcome differences between two or more runs."""
    ids = [workflow_ids] if isinstance(workflow_ids, str) else list(workflow_ids)
    if len(ids) < 2 or len(set(ids)) != len(ids):
        raise ConfigurationError("compare(): give two or more different workflow ids")
    engine = await engines.get()
    runs = [await get_run(engine, w) for w in ids]
    journals = [await engine.store.load_steps(w) for w in ids]
    input_diffs = _diff([codec.loads(r.input) for r in runs])
    order: dict[str, float] = {}
    per_run: list[dict[str, StepRow]] = []
    for steps in journals:
        rows = {s.step_key: s for s in steps if s.kind == "step" and s.seq > 0}
        per_run.append(rows)
        for k, s in rows.items():
            order[k] = min(order.get(k, s.seq), s.seq)
    step_diffs: list[dict[str, Any]] = []
    for key in sorted(order, key=lambda k: (order[k], k)):
        cells = [_step_cell(rows.get(key)) for rows in per_run]
        comparable = [{k: v for k, v in c.items() if k != "attempts"} if c else None
                      for c in cells]
        if any(c != comparable[0] for c in comparable):
            tag = next(rows[key].tag for rows in per_run if key in rows)
            step_diffs.append({"step": key, "tag": tag, "values": cells,
                               "fields": sorted(_fields(comparable))})
    results = [ExecutionResult.from_rows(r, s) for r, s in zip(runs, journals, strict=True)]
    outcome: list[dict[str, Any]] = []
    for field in ("status", "error", "failed_step", "completed_steps"):
        vals = [getattr(res, field) for res in results]
        if any(v != vals[0] for v in vals):
            outcome.append({"field": field, "values": vals})
    for d in _diff([res.output for res in results], "output"):
        outcome.append({"field": d["path"], "values": d["values"], "present": d["present"]})
    return {
        "workflow_ids": ids, "runs": [summary(r) for r in runs],
        "same": not (input_diffs or step_diffs or outcome),
        "input": {"same": not input_diffs, "diffs": input_diffs},
        "steps": {"same": not step_diffs, "diffs": step_diffs},
        "outcome": {"same": not outcome, "diffs": outcome},
    }


def _step_cell(row: StepRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    status = "rolled_back" if row.rollback_status == "rolled_back" else row.status
    return {"status": status, "output": codec.loads(row.result), "error": row.error,
            "attempts": row.attempts}


def _fields(cells: list[dict[str, Any] | None]) -> set[str]:
    present = [c for c in cells if c is not None]
    if len(present) != len(cells):
        return {"presence"}
    return {k for k in present[0] if any(c[k] != present[0][k] for c in present)}
