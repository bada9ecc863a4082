"""Re-runs of an ended run: replay, restart, resume, replay_from_step (new runs, linked back)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ductwork.errors import ConfigurationError
from ductwork.interpreter import codec, observe
from ductwork.interpreter.result import ExecutionResult
from ductwork.store.protocol import TERMINAL, Batch, RunRow, StepRow
from ductwork.util.durations import to_ms
from ductwork.util.suggest import did_you_mean
from ductwork.util.text import shown
from ductwork.workflows.inputs import check_workflow_id, encode_input, new_workflow_id
from ductwork.workflows.reads import get_run, origin_of, resolve_step, run_context, run_flags

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine

_DONE = frozenset({"completed", "skipped", "failed"})
# A resume/replay_from_step run is created in this non-active status, then its copied journal
# and its real status are committed in one transaction: a crash in between leaves a run no
# worker will ever pick up, never one that runs without the results it was meant to reuse.
PREPARING = "preparing"


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
                 wait: bool = True, timeout: Any = None, queue: bool = False,
                 run_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create the new run and start it through the engine (or leave it for a worker)."""
    wf = engine.runtime.definitions.find(src.product, src.tag)
    local = wf is not None and not queue
    enc = encode_input(input, "the new run")
    check_workflow_id(workflow_id, "the new run")
    wid = workflow_id or new_workflow_id()
    opts = _rerun_options(src)
    if wf is not None:
        opts = {**opts, **wf.options}
    opts.update(run_options or {})
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
    observe.created(engine.runtime.observer, run)
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
    if flags.get("resumed_from"):
        # The product docs' name on a resume's result: the checkpoint it resumed from.
        out["resumed_checkpoint"] = flags.get("restored_checkpoint")
    return out


RERUN_OPTIONS = ("retries", "timeout", "debug")


def run_options(options: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """The docs' `options` of replay/restart: `timeout` (the new run's whole-run limit),
    `retries` (the new run is run again, as `<id>#2`, ..., while it ends failed or
    rolled_back) and `debug` (kept in the new run's history)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"{what}: options must be a dict like {{'retries': 3, "
                                 f"'timeout': '2m'}}, got {type(options).__name__}")
    out: dict[str, Any] = {}
    for k, v in options.items():
        if k not in RERUN_OPTIONS:
            raise ConfigurationError(f"{what}: unknown option {k!r} (known: "
                                     f"{', '.join(RERUN_OPTIONS)})"
                                     + did_you_mean(str(k), RERUN_OPTIONS, prefix="; "))
        if v is None:
            continue
        if k == "timeout":
            out["timeout"] = to_ms(v, f"{what} options.timeout")
        elif k == "retries":
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ConfigurationError(f"{what}: options.retries must be a whole number >= 0")
            if v:
                # The same mechanism as dispatch(options={"retries": n}).
                out.update(retries=v, job=True)
        else:
            out["debug"] = bool(v)
    return out


def _keyed_id(src: RunRow, key: str | None, new_id: str | None, what: str) -> str | None:
    """idempotency_key: the same key gives the same new run, so a retried call replays once."""
    if key is None:
        return new_id
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"{what}: idempotency_key must be a non-empty string")
    if new_id is not None:
        raise ConfigurationError(f"{what}: give new_workflow_id or idempotency_key, not both")
    return f"{src.product}:{src.tag}:{key}"


async def replay(engine: Engine, workflow_id: str, reason: str | None = None, *,
                 options: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
                 new_workflow_id: str | None = None, wait: bool = True, timeout: Any = None,
                 queue: bool = False) -> dict[str, Any]:
    """A new run of the same workflow with the same input."""
    opts = run_options(options, "replay()")
    src = await get_run(engine, workflow_id)
    wid = _keyed_id(src, idempotency_key, new_workflow_id, "replay()")
    flags = {"is_replay": True, "replayed_from": src.workflow_id,
             "replay_reason": reason or "replay"}
    event = {"replayed_from": src.workflow_id, "reason": flags["replay_reason"]}
    if opts:
        event["options"] = dict(options or {})
    return await _start(engine, src, input=codec.loads(src.input), flags=flags, event=event,
                        workflow_id=wid, wait=wait, timeout=timeout, queue=queue,
                        run_options=opts)


async def restart(engine: Engine, workflow_id: str, input: Any = None,
                  merge_input: Mapping[str, Any] | bool | None = None,
                  reason: str | None = None, *, input_override: Mapping[str, Any] | None = None,
                  options: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
                  new_workflow_id: str | None = None, wait: bool = True, timeout: Any = None,
                  queue: bool = False) -> dict[str, Any]:
    """A new run from scratch, with a new input (`input`) or the old one updated (`merge_input`
    a dict of fields; or, as the product docs write it, `input_override` with
    `merge_input=True`, or `input` with `merge_input=True`)."""
    opts = run_options(options, "restart()")
    src = await get_run(engine, workflow_id)
    new_workflow_id = _keyed_id(src, idempotency_key, new_workflow_id, "restart()")
    original = codec.loads(src.input)
    if isinstance(merge_input, bool) or input_override is not None:
        if input is not None and input_override is not None:
            raise ConfigurationError("restart(): give input= (a whole new input) or "
                                     "input_override= (fields to change), not both")
        if merge_input is not None and not isinstance(merge_input, bool):
            raise ConfigurationError("restart(): with input_override=, merge_input is "
                                     "True or False")
        fields = input_override if input_override is not None else input
        if merge_input is False:
            input, merge_input = fields, None  # the given input replaces the original
        else:  # merged: input_override is partial by nature
            input, merge_input = None, fields
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
        new_input = engine.runtime.definitions.validate_input(wf, new_input)
    flags = {"is_restart": True, "restarted_from": src.workflow_id,
             "restart_reason": reason or "restart", "original_input": original}
    return await _start(engine, src, input=new_input, flags=flags,
                        event={"restarted_from": src.workflow_id,
                               "reason": flags["restart_reason"]},
                        workflow_id=new_workflow_id, wait=wait, timeout=timeout, queue=queue,
                        run_options=opts)


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
            codec.dumps(v, "output")
        except (TypeError, ValueError) as e:
            raise ConfigurationError(f"{what}: the value for step {k!r} cannot be stored: "
                                     f"{e}") from None
        out[str(k)] = v
    return out


async def resume(engine: Engine, workflow_id: str, from_checkpoint: str | None = None,
                 from_step: str | None = None, skip_steps: Iterable[str] | None = None, *,
                 input: Mapping[str, Any] | None = None, idempotency_key: str | None = None,
                 new_workflow_id: str | None = None, wait: bool = True, timeout: Any = None,
                 queue: bool = False) -> dict[str, Any]:
    """A new run that reuses the original's recorded results up to a checkpoint or a step.

    No point given: the latest checkpoint, else everything before the step that failed.
    `input` is additional input: its fields are added to (or replace) the original's, for
    the steps that run again; reused steps keep their recorded results."""
    src = await get_run(engine, workflow_id)
    _require_ended(src, "resume()")
    new_workflow_id = _keyed_id(src, idempotency_key, new_workflow_id, "resume()")
    run_input = codec.loads(src.input)
    if input is not None:
        if not isinstance(input, Mapping) or not isinstance(run_input, Mapping | None):
            raise ConfigurationError("resume(): input is a dict of fields to add to the "
                                     "original input (which must be a dict too); use "
                                     "restart(input=...) to replace a whole input")
        run_input = {**(run_input or {}), **input}
        wf = engine.runtime.definitions.find(src.product, src.tag)
        if wf is not None:
            run_input = engine.runtime.definitions.validate_input(wf, run_input)
    if from_checkpoint is not None and from_step is not None:
        raise ConfigurationError("resume(): give from_checkpoint or from_step, not both")
    steps = await engine.store.load_steps(workflow_id)
    checkpoint: str | None = None
    if from_checkpoint is not None:
        cp = resolve_step(steps, from_checkpoint, src, "checkpoint")[-1]
        cut, checkpoint = cp.seq, cp.tag
    elif from_step is not None:
        cut = resolve_step(steps, from_step, src)[0].seq - 1
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
    declared = _plan_tags(engine, src)
    known = recorded | declared
    presets: dict[str, Any] = {}
    for tag in skip:
        hint = "" if tag in known or "#" in tag else did_you_mean(tag, known, prefix="; ")
        # A YAML plan declares every step. A Python handler's steps are known once they ran,
        # so a step the original run never reached may be skipped too (the docs' "skip the
        # problematic step" after the one that failed), unless the name looks like a typo.
        if hint or (declared and tag not in known and "#" not in tag):
            raise ConfigurationError(f"resume(): skip_steps names {tag!r}, which is not a step "
                                     f"of run {src.workflow_id}{hint}")
        rec = [s for s in steps if s.kind == "step" and s.status == "completed"
               and (s.tag == tag or s.step_key == tag)]
        presets[tag] = codec.loads(rec[0].result) if rec else None
    flags: dict[str, Any] = {"is_restored": True, "resumed_from": src.workflow_id,
                             "restored_checkpoint": checkpoint}
    if checkpoint is not None:  # its metadata: ctx.restored_checkpoint.data
        flags["restored_checkpoint_data"] = next(
            (codec.loads(s.result) for s in steps if s.kind == "checkpoint" and s.seq == cut),
            None)
    if from_step is not None:
        flags["resumed_from_step"] = from_step
    if skip:
        flags["skip_steps"] = skip
    return await _start(engine, src, input=run_input, flags=flags,
                        event={"resumed_from": src.workflow_id, "checkpoint": checkpoint,
                               "from_step": from_step,
                               **({"input": sorted(input)} if input else {})},
                        copies=copies, presets=presets, workflow_id=new_workflow_id, wait=wait,
                        timeout=timeout, queue=queue)


async def replay_from_step(engine: Engine, workflow_id: str, from_step: str,
                           step_outputs: Mapping[str, Any] | None = None,
                           reason: str | None = None, *, new_workflow_id: str | None = None,
                           wait: bool = True, timeout: Any = None, queue: bool = False,
                           debug: Mapping[str, Any] | bool | None = None) -> dict[str, Any]:
    """A new run that reuses recorded outputs before `from_step` (`step_outputs` overrides any
    step's output, before or after that point: an overridden step does not run). `debug`
    ({enabled, log_level}) is kept in the new run's history."""
    debug_opts = _debug_options(debug)
    if step_outputs is not None and not isinstance(step_outputs, Mapping):
        raise ConfigurationError(
            "replay_from_step(): step_outputs must map step tags to the outputs to use, such "
            f"as {{'charge': {{'id': 'ch_1'}}}}, got {shown(step_outputs)}")
    src = await get_run(engine, workflow_id)
    _require_ended(src, "replay_from_step()")
    steps = await engine.store.load_steps(workflow_id)
    first = resolve_step(steps, from_step, src)[0]
    copies = _prefix(steps, first.seq - 1, src, "replay_from_step()")
    overrides = _presets(step_outputs or {}, "replay_from_step()")
    known = {s.tag for s in steps if s.kind == "step"} | _plan_tags(engine, src)
    for tag in overrides:
        base = tag.partition("#")[0]
        if base not in known:
            raise ConfigurationError(f"replay_from_step(): step_outputs names {tag!r}, which is "
                                     f"not a step of run {src.workflow_id}"
                                     + did_you_mean(tag, known, prefix="; "))
    for s in copies:
        if s.kind == "step" and (s.step_key in overrides or s.tag in overrides):
            value = overrides.get(s.step_key, overrides.get(s.tag))
            s.status, s.result, s.error = "completed", codec.dumps(value), None
    flags = {"is_replay": True, "replayed_from": src.workflow_id,
             "replay_reason": reason or f"replay from step '{first.tag}'",
             "replay_from_step": first.tag}
    event: dict[str, Any] = {"replayed_from": src.workflow_id, "from_step": first.tag}
    if debug_opts:
        event["debug"] = debug_opts
    return await _start(engine, src, input=codec.loads(src.input), flags=flags, event=event,
                        copies=copies, presets=overrides, workflow_id=new_workflow_id,
                        wait=wait, timeout=timeout, queue=queue)


_LOG_LEVELS = ("info", "verbose", "debug")


def _debug_options(debug: Any) -> dict[str, Any]:
    """replay_from_step's `debug` as the docs write it: {enabled, pause_after_step, log_level}."""
    if debug is None or debug is False:
        return {}
    if debug is True:
        return {"enabled": True}
    where = "replay_from_step(): debug"
    if not isinstance(debug, Mapping):
        raise ConfigurationError(f"{where} is True or a dict like {{'enabled': True, "
                                 f"'log_level': 'debug'}}, got {shown(debug)}")
    known = ("enabled", "pause_after_step", "log_level")
    for key in debug:
        if key not in known:
            raise ConfigurationError(f"{where}: unknown key {key!r} (known: "
                                     f"{', '.join(known)})"
                                     + did_you_mean(str(key), known, prefix="; "))
    if debug.get("pause_after_step"):
        raise ConfigurationError(
            f"{where}: pause_after_step is not supported: a run does not pause between steps "
            "on its own; put ctx.wait_for_signal('continue') where it should wait, or replay "
            "from a later step with replay_from_step")
    level = debug.get("log_level", "info")
    if level not in _LOG_LEVELS:
        raise ConfigurationError(f"{where}: log_level {level!r} is not one of "
                                 f"{', '.join(_LOG_LEVELS)}"
                                 + did_you_mean(str(level), _LOG_LEVELS, prefix="; "))
    enabled = debug.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigurationError(f"{where}: enabled is True or False, got {shown(enabled)}")
    return {"enabled": enabled, "log_level": level} if enabled else {}


def _plan_tags(engine: Engine, run: RunRow) -> set[str]:
    """Step tags a YAML workflow declares (a Python handler's are only known once recorded)."""
    wf = engine.runtime.definitions.find(run.product, run.tag)
    plan = getattr(wf.handler, "plan", None) if wf is not None else None
    walk: Callable[[], list[Any]] | None = getattr(plan, "walk", None)
    if walk is None:
        return set()
    return {s.tag for s in walk() if getattr(s, "tag", None)}
