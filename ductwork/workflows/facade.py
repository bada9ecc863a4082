"""dw.workflows: define, execute, and read runs."""

from __future__ import annotations

import asyncio
import difflib
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ductwork.durations import to_ms
from ductwork.errors import ConfigurationError
from ductwork.interpreter import codec
from ductwork.interpreter.result import ExecutionResult, Handler, WorkflowDef, completed_tags
from ductwork.store.protocol import TERMINAL, RunRow
from ductwork.workflows import management

if TYPE_CHECKING:
    from ductwork.interpreter.definitions import Definitions
    from ductwork.interpreter.engine import Engine
    from ductwork.interpreter.runtime import LazyEngine


def new_workflow_id() -> str:
    return "wf_" + uuid.uuid4().hex[:20]


def encode_input(data: Any, where: str) -> str:
    try:
        return codec.dumps(data)
    except (TypeError, ValueError) as e:
        raise ConfigurationError(
            f"{where}: the input cannot be stored: {e}; use {codec.SUPPORTED}") from None


def check_workflow_id(workflow_id: Any, where: str) -> None:
    if workflow_id is not None and (not isinstance(workflow_id, str) or not workflow_id):
        raise ConfigurationError(f"{where}: workflow_id must be a non-empty string")


def prepare_input(defs: Definitions, wf: WorkflowDef, env: str, input: Any, where: str) -> str:
    """Check env and input against the definition; the input encoded for the store."""
    defs.check_env(wf, env)
    data = {} if input is None else input
    defs.validate_input(wf, data)
    return encode_input(data, where)


class Workflows:
    """dw.workflows. Definitions are kept by the interpreter (the engine looks handlers up
    there); the engine is opened on first use."""

    def __init__(self, engines: LazyEngine) -> None:
        self._engines = engines
        self._defs = engines.runtime.definitions
        self._worker: Any = None  # the Worker running in this process, if any

    async def _engine(self) -> Engine:
        return await self._engines.get()

    # -- definitions ------------------------------------------------------------------------------
    def define(
        self,
        *,
        product: str,
        tag: str,
        handler: Handler,
        name: str | None = None,
        description: str | None = None,
        options: Mapping[str, Any] | None = None,
        signals: Any = None,
        queries: Mapping[str, Callable[[Any], Any]] | None = None,
        envs: list[str] | None = None,
        input_schema: Mapping[str, Any] | None = None,
        source: str | None = None,
    ) -> WorkflowDef:
        return self._defs.define(
            product=product, tag=tag, handler=handler, name=name, description=description,
            options=options, signals=signals, queries=queries, envs=envs,
            input_schema=input_schema, source=source)

    def workflow(self, *, product: str, tag: str, name: str | None = None,
                 **kw: Any) -> Callable[[Handler], Handler]:
        """Decorator form of define()."""

        def deco(fn: Handler) -> Handler:
            self.define(product=product, tag=tag, name=name, handler=fn, **kw)
            return fn

        return deco

    def get(self, product: str, tag: str) -> WorkflowDef:
        return self._defs.get(product, tag)

    def definitions(self) -> list[WorkflowDef]:
        return self._defs.all()

    # -- running ----------------------------------------------------------------------------------
    async def execute(
        self,
        product: str,
        env: str,
        tag: str,
        input: Any = None,
        workflow_id: str | None = None,
        *,
        idempotency_key: str | None = None,
        timeout: Any = None,
        context: Any = None,
        session: Any = None,
        auth: Any = None,
    ) -> ExecutionResult:
        """Run a workflow to its end (or until it suspends, or `timeout` passes)."""
        wf = self._defs.get(product, tag)
        enc = prepare_input(self._defs, wf, env, input, f"execute({product}/{tag})")
        check_workflow_id(workflow_id, "execute()")
        wid = workflow_id or (f"{product}:{tag}:{idempotency_key}" if idempotency_key
                              else new_workflow_id())
        engine = await self._engine()
        t = time.time()
        extra = {k: v for k, v in (("context", context), ("session", session), ("auth", auth))
                 if v is not None}
        timeout_ms = wf.options.get("timeout")
        run = RunRow(
            workflow_id=wid, product=product, tag=tag, env=env, status="running", input=enc,
            options=codec.dumps(wf.options) if wf.options else None,
            context=engine.runtime.redact(codec.dumps(extra)) if extra else None,
            created_at=t, updated_at=t, started_at=t,
            deadline_at=None if timeout_ms is None else t + float(timeout_ms) / 1000,
            owner=engine.owner, lease_until=t + engine.lease_s, attempt=1, name=wf.name,
            queue=str(wf.options.get("queue", "default")),
            priority=int(wf.options.get("priority", 0)))
        stored, created = await engine.store.create_run(
            run, [])  # history derives workflow_started from the run row
        if created:
            task = engine.spawn(stored, fresh=True)
        else:
            if (stored.product, stored.tag) != (product, tag):
                raise ConfigurationError(
                    f"workflow_id {wid!r} already belongs to a run of {stored.product}/"
                    f"{stored.tag}; a workflow_id is an idempotency key: pick a new one")
            if stored.status in TERMINAL:
                return await engine.result_from_store(wid)
            existing = engine.tasks.get(wid)
            if existing is None:
                return await self.result(wid, timeout=timeout)
            task = existing
        return await self._await(task, wid, timeout)

    async def _await(self, task: asyncio.Task[ExecutionResult], wid: str, timeout: Any
                     ) -> ExecutionResult:
        engine = await self._engine()
        if timeout is None:
            return await asyncio.shield(task)
        try:
            return await asyncio.wait_for(asyncio.shield(task), to_ms(timeout) / 1000)
        except TimeoutError:
            return await engine.result_from_store(wid)

    async def result(self, workflow_id: str, timeout: Any = None) -> ExecutionResult:
        """Wait for a run to end (resuming it here if it is due and nobody owns it)."""
        engine = await self._engine()
        deadline = None if timeout is None else time.monotonic() + to_ms(timeout) / 1000
        delay = 0.01
        while True:
            run = await engine.store.get_run(workflow_id)
            if run is None:
                raise ConfigurationError(f"No workflow run with id {workflow_id!r}")
            if run.status in TERMINAL:
                return await engine.result_from_store(workflow_id)
            task = engine.tasks.get(workflow_id)
            if task is None and engine.is_due(run):
                claimed = await engine.store.claim(
                    workflow_id, engine.owner, engine.lease_s,
                    steal_from=engine.dead_owners([run.owner] if run.owner else []))
                if claimed is not None:
                    task = engine.spawn(claimed)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return await engine.result_from_store(workflow_id)
            if task is not None:
                try:
                    res = await asyncio.wait_for(asyncio.shield(task), left)
                except TimeoutError:
                    return await engine.result_from_store(workflow_id)
                if res.status != "running":
                    return res
            pause = delay if run.wake_at is None else max(0.0, min(
                run.wake_at - time.time(), 1.0))
            if left is not None:
                pause = min(pause, left)
            await asyncio.sleep(max(pause, 0.005))
            delay = min(delay * 2, 0.5)

    async def recover(self) -> list[ExecutionResult]:
        """Resume every run a dead process left unfinished, and every suspended run now due."""
        engine = await self._engine()
        results: list[ExecutionResult] = []
        while True:
            dead = engine.dead_owners(await engine.store.live_owners())
            runs = await engine.store.claim_due(engine.owner, engine.lease_s, 500,
                                                steal_from=dead)
            known = [r for r in runs if self._defs.knows(r.product, r.tag)]
            for r in runs:
                if not self._defs.knows(r.product, r.tag):
                    # Another process (with that definition) may run it; don't hold it.
                    await engine.store.release(r.workflow_id, engine.owner)
            if not known:
                return results
            tasks = [engine.spawn(r) for r in known]
            results.extend(await asyncio.gather(*tasks))

    # -- reading ------------------------------------------------------------------------------
    async def status(self, workflow_id: str) -> dict[str, Any]:
        engine = await self._engine()
        run = await engine.store.get_run(workflow_id)
        if run is None:
            raise ConfigurationError(f"No workflow run with id {workflow_id!r}")
        steps = await engine.store.load_steps(workflow_id)
        state = {k: codec.loads(v) for k, v in (await engine.store.get_state(workflow_id)).items()}
        return {
            "workflow_id": run.workflow_id, "workflow_tag": run.tag, "product": run.product,
            "env": run.env, "status": run.status,
            "current_step": run.current_step or (
                max(steps, key=lambda st: st.seq).tag
                if steps and run.status not in TERMINAL else None),
            "completed_steps": completed_tags(steps), "state": state,
            "started_at": _iso(run.started_at), "updated_at": _iso(run.updated_at),
            "finished_at": _iso(run.finished_at), "wake_at": _iso(run.wake_at),
            "parent_id": run.parent_id, "error": run.error, "failed_step": run.failed_step,
        }

    async def signal(self, workflow_id: str, signal: str, payload: Any = None) -> dict[str, Any]:
        engine = await self._engine()
        run = await engine.store.get_run(workflow_id)
        if run is None:
            raise ConfigurationError(f"No workflow run with id {workflow_id!r}")
        if run.status in TERMINAL:
            raise ConfigurationError(
                f"run {workflow_id} has already ended ({run.status}); a signal can no longer "
                "reach it")
        wf = self._defs.find(run.product, run.tag)
        if wf is not None and wf.signals:
            if signal not in wf.signals:
                hint = difflib.get_close_matches(signal, list(wf.signals), 1)
                raise ConfigurationError(
                    f"workflow {run.product}/{run.tag} does not accept signal {signal!r} "
                    f"(declared: {', '.join(sorted(wf.signals))})"
                    + (f"; did you mean '{hint[0]}'?" if hint else ""))
            schema = wf.signals[signal]
            if isinstance(schema, Mapping):
                import jsonschema

                err = jsonschema.exceptions.best_match(
                    jsonschema.Draft202012Validator(schema).iter_errors(payload))
                if err is not None:
                    raise ConfigurationError(
                        f"signal {signal!r} payload does not match its declared shape: "
                        f"{'/'.join(map(str, err.path)) or '(payload)'}: {err.message}")
        try:
            enc = codec.dumps(payload)
        except (TypeError, ValueError) as e:
            raise ConfigurationError(f"signal {signal!r}: payload cannot be stored: {e}") from None
        sid = await engine.store.send_signal(workflow_id, signal, enc)
        engine.wake(workflow_id)
        if self._worker is not None:
            self._worker.nudge()
        return {"workflow_id": workflow_id, "signal": signal, "signal_id": sid,
                "delivered": True}

    async def history(self, workflow_id: str) -> list[dict[str, Any]]:
        """Typed events with timestamps, oldest first."""
        engine = await self._engine()
        run = await engine.store.get_run(workflow_id)
        if run is None:
            raise ConfigurationError(f"No workflow run with id {workflow_id!r}")
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
                data["error"] = st.error
            rows.append((end, 0, {"type": _STEP_EVENT.get(st.status, "step_" + st.status),
                                  "step": st.tag, "data": data, "ts": end}))
        rows.sort(key=lambda r: (r[0], r[1]))
        return [{"type": r["type"], "timestamp": _iso(r["ts"]), "step": r["step"],
                 "data": r["data"]} for _, _, r in rows]

    async def logs(self, workflow_id: str) -> list[dict[str, Any]]:
        engine = await self._engine()
        return [{"level": lg["level"], "message": lg["message"], "timestamp": _iso(lg["ts"]),
                 "step": lg["step"], "data": codec.loads(lg["data"])}
                for lg in await engine.store.logs(workflow_id)]

    # -- dispatch, schedules, cancel, worker (logic in schedules.py, children.py, worker.py) ------
    async def dispatch(self, product: str, env: str, workflow: str, input: Any = None,
                       schedule: Mapping[str, Any] | None = None,
                       options: Mapping[str, Any] | None = None,
                       workflow_id: str | None = None) -> dict[str, Any]:
        """Queue a run for a worker, or store a recurring schedule; returns {job_id, status:
        scheduled|queued, scheduled_at, recurring, next_run_at}."""
        from ductwork.workflows import schedules

        return await schedules.dispatch(self._engines, product, env, workflow, input, schedule,
                                        options, workflow_id)

    async def pause_schedule(self, job_id: str) -> dict[str, Any]:
        from ductwork.workflows import schedules

        return await schedules.pause(await self._engine(), job_id)

    async def resume_schedule(self, job_id: str) -> dict[str, Any]:
        from ductwork.workflows import schedules

        return await schedules.resume(await self._engine(), job_id)

    async def cancel_schedule(self, job_id: str) -> dict[str, Any]:
        from ductwork.workflows import schedules

        return await schedules.cancel(await self._engine(), job_id)

    async def get_schedule(self, job_id: str) -> dict[str, Any]:
        from ductwork.workflows import schedules

        return await schedules.get(await self._engine(), job_id)

    async def list_schedules(self, status: str | list[str] | None = None,
                             limit: int = 100) -> list[dict[str, Any]]:
        from ductwork.workflows import schedules

        engine = await self._engine()
        return [schedules.describe(r)
                for r in await engine.store.list_schedules(status=status, limit=limit)]

    async def cancel(self, workflow_id: str, reason: str = "cancelled", *,
                     timeout: Any = None) -> dict[str, Any]:
        """Cancel a run and compensate its completed steps -> {cancelled, rolled_back_steps,
        status, ...}. A run another live process owns is cancelled by that process at its
        next durable point: status "cancelling" unless `timeout` waits for the end."""
        from ductwork.interpreter.children import cancel_run

        if not isinstance(reason, str) or not reason:
            raise ConfigurationError("cancel(): reason must be a non-empty string")
        return await cancel_run(await self._engine(), workflow_id, reason,
                                timeout=None if timeout is None else to_ms(
                                    timeout, "cancel() timeout") / 1000)

    async def prune(self, older_than: Any, status: str | list[str] | None = None,
                    limit: int = 10_000) -> dict[str, Any]:
        """Delete finished runs (completed, failed, rolled_back, cancelled; `status` narrows)
        that finished longer ago than `older_than` ('30d', a timedelta or a datetime), with
        their steps, events, logs, state and signals; at most `limit` runs -> {"deleted": n}."""
        from ductwork.workflows import retention

        return await retention.prune(self._engines, older_than=older_than, status=status,
                                     limit=limit)

    def worker(self, *, concurrency: int = 10, queues: list[str] | None = None,
               poll: Any = "1s", grace: Any = "30s", schedules: bool = True,
               handle_signals: bool = False) -> Any:
        """A Worker object (not started): `await w.run()`, `w.stop()`."""
        from ductwork.workflows.worker import Worker

        return Worker(self, concurrency=concurrency, queues=queues, poll=poll, grace=grace,
                      schedules=schedules, handle_signals=handle_signals)

    async def run_worker(self, *, concurrency: int = 10, queues: list[str] | None = None,
                         poll: Any = "1s", grace: Any = "30s", schedules: bool = True,
                         handle_signals: bool = True) -> None:
        """Run a worker until stop_worker(), SIGTERM or SIGINT."""
        await self.worker(concurrency=concurrency, queues=queues, poll=poll, grace=grace,
                          schedules=schedules, handle_signals=handle_signals).run()

    def stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.stop()

    # -- queries and management (logic in management.py) -----------------------------------------
    async def query(self, workflow_id: str, query: str) -> Any:
        """Answer a declared query from the run's latest persisted state."""
        return await management.query(await self._engine(), workflow_id, query)

    async def step_detail(self, workflow_id: str, step_tag: str) -> dict[str, Any]:
        return await management.step_detail(await self._engine(), workflow_id, step_tag)

    async def replay(self, workflow_id: str, reason: str | None = None, **kw: Any
                     ) -> dict[str, Any]:
        return await management.replay(await self._engine(), workflow_id, reason, **kw)

    async def restart(self, workflow_id: str, input: Any = None,
                      merge_input: Mapping[str, Any] | None = None, reason: str | None = None,
                      **kw: Any) -> dict[str, Any]:
        return await management.restart(await self._engine(), workflow_id, input, merge_input,
                                        reason, **kw)

    async def resume(self, workflow_id: str, from_checkpoint: str | None = None,
                     from_step: str | None = None, skip_steps: Any = None, **kw: Any
                     ) -> dict[str, Any]:
        return await management.resume(await self._engine(), workflow_id, from_checkpoint,
                                       from_step, skip_steps, **kw)

    async def replay_from_step(self, workflow_id: str, from_step: str,
                               step_outputs: Mapping[str, Any] | None = None, **kw: Any
                               ) -> dict[str, Any]:
        return await management.replay_from_step(await self._engine(), workflow_id, from_step,
                                                 step_outputs, **kw)

    async def related_executions(self, workflow_id: str) -> dict[str, Any]:
        return await management.related_executions(await self._engine(), workflow_id)

    async def compare(self, workflow_ids: Any) -> dict[str, Any]:
        return await management.compare(self._engines, workflow_ids)

    # Keep `list` the last method: below it, mypy would read `list[...]` annotations as it.
    async def list(self, product: str | None = None, tag: str | None = None,
                   status: Any = None, since: Any = None, limit: int = 50,
                   cursor: str | None = None) -> dict[str, Any]:
        """{runs: [...], next_cursor}: newest first; pass next_cursor back for the next page."""
        return await management.list_runs(await self._engine(), product=product, tag=tag,
                                          status=status, since=since, limit=limit, cursor=cursor)


_STEP_EVENT = {"completed": "step_completed", "failed": "step_failed", "skipped": "step_skipped"}


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()
