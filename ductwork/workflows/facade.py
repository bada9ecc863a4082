"""dw.workflows: the public surface; each call is done by the module named in its section."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ductwork.errors import ConfigurationError, DuctworkError, RunNotFoundError
from ductwork.interpreter.result import ExecutionResult, Handler, WorkflowDef
from ductwork.util.durations import to_ms
from ductwork.util.text import check_text, shown
from ductwork.workflows import lineage, reads, reruns, retention, running, schedules
from ductwork.workflows.worker import Worker

if TYPE_CHECKING:
    from ductwork.interpreter.engine import Engine
    from ductwork.interpreter.runtime import LazyEngine


def _names(where: str, **names: Any) -> None:
    """Ids and names must be non-empty valid text: the store could not hold anything else."""
    for what, value in names.items():
        check_text(value, what, where)


def _rerun_args(where: str, workflow_id: Any, reason: Any, kw: Mapping[str, Any]) -> None:
    check_text(workflow_id, "workflow_id", where)
    check_text(reason if reason is not None else kw.get("reason"), "reason", where,
               optional=True)
    check_text(kw.get("new_workflow_id"), "new_workflow_id", where, optional=True)


def _store_errors(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """A call that met the run store's own exception (SQLite: "database is locked") raises it
    as the StoreError that says what failed and what to do, not as a bare driver error."""

    @functools.wraps(fn)
    async def call(self: Workflows, *args: Any, **kw: Any) -> Any:
        try:
            return await fn(self, *args, **kw)
        except DuctworkError:
            raise
        except Exception as e:
            err = self._engines.runtime.store.explain(e)
            if err is None:
                raise
            raise err from e

    return call


def _recording_options(branch_overrides: Any, record_input: Any, record_scenarios: Any
                       ) -> None:
    """The docs' recording options tell their SDK how to trace a handler's branches and loops
    ahead of time. A Python handler is not traced: its if, for and match run as written on
    each run, which is what those options arrange. They are accepted (checked, not needed)."""
    for name, value in (("branch_overrides", branch_overrides), ("record_input", record_input)):
        if value is not None and not isinstance(value, Mapping):
            raise ConfigurationError(f"define(): {name} must be a dict, got {shown(value)}")
    if record_scenarios is not None and (
            not isinstance(record_scenarios, list | tuple)
            or not all(isinstance(x, Mapping) for x in record_scenarios)):
        raise ConfigurationError("define(): record_scenarios must be a list of input dicts, "
                                 f"got {shown(record_scenarios)}")


async def _in_scope(engine: Engine, where: str, workflow_ids: list[str], product: Any,
                    env: Any) -> None:
    """The docs pass product= and env= to every call about a run: given, the run must be of
    that product and env (a run id alone names it; they guard against asking the wrong one)."""
    if product is None and env is None:
        return
    check_text(product, "product", where, optional=True)
    check_text(env, "env", where, optional=True)
    for wid in workflow_ids:
        run = await engine.store.get_run(wid)
        if run is None:
            raise RunNotFoundError(wid)
        if (product is not None and run.product != product) or (
                env is not None and run.env != env):
            asked = " and ".join(f"{k} {v!r}" for k, v in (("product", product), ("env", env))
                                 if v is not None)
            raise ConfigurationError(
                f"{where}: run {wid!r} is a run of {run.product}/{run.tag} in env "
                f"{run.env!r}, not of {asked}; check the workflow_id, or leave product= and "
                "env= out (the id alone names the run)")


class Workflows:
    """dw.workflows. Definitions are kept by the interpreter (the engine looks handlers up
    there); the engine is opened on first use."""

    def __init__(self, engines: LazyEngine) -> None:
        self._engines = engines
        self._defs = engines.runtime.definitions
        self._worker: Worker | None = None  # the Worker running in this process, if any

    async def _engine(self) -> Engine:
        return await self._engines.get()

    # -- definitions (interpreter/definitions.py) -------------------------------------------------
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
        input_schema: Mapping[str, Any] | type | None = None,
        source: str | None = None,
        branch_overrides: Mapping[str, Any] | None = None,
        record_input: Mapping[str, Any] | None = None,
        record_scenarios: list[Mapping[str, Any]] | None = None,
    ) -> WorkflowDef:
        _recording_options(branch_overrides, record_input, record_scenarios)
        return self._defs.define(
            product=product, tag=tag, handler=handler, name=name, description=description,
            options=options, signals=signals, queries=queries, envs=envs,
            input_schema=input_schema, source=source)

    def workflow(self, *given: Any, product: str | None = None, tag: str | None = None,
                 name: str | None = None, **kw: Any) -> Callable[[Handler], Handler]:
        """Decorator form of define()."""
        if given or product is None or tag is None:
            # @dw.workflows.workflow without its parentheses gets the function itself.
            bare = len(given) == 1 and callable(given[0])
            what = ("is written without its arguments" if bare else
                    "takes product= and tag= by keyword" if given else "needs product= and tag=")
            raise ConfigurationError(f"@dw.workflows.workflow {what}: write "
                                     "@dw.workflows.workflow(product='my-product', "
                                     "tag='my-workflow') above the handler")

        def deco(fn: Handler) -> Handler:
            self.define(product=product, tag=tag, name=name, handler=fn, **kw)
            return fn

        return deco

    def get(self, product: str, tag: str) -> WorkflowDef:
        _names("get()", product=product, tag=tag)
        return self._defs.get(product, tag)

    def definitions(self) -> list[WorkflowDef]:
        return self._defs.all()

    # -- running (running.py) ---------------------------------------------------------------------
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
        _names("execute()", product=product, env=env, tag=tag)
        check_text(workflow_id, "workflow_id", "execute()", optional=True)
        check_text(idempotency_key, "idempotency_key", "execute()", optional=True)
        return await running.execute(self._engines, product, env, tag, input, workflow_id,
                                     idempotency_key=idempotency_key, timeout=timeout,
                                     context=context, session=session, auth=auth)

    async def result(self, workflow_id: str, timeout: Any = None) -> ExecutionResult:
        """Wait for a run to end (resuming it here if it is due and nobody owns it)."""
        check_text(workflow_id, "workflow_id", "result()")
        return await running.result(await self._engine(), workflow_id, timeout)

    async def recover(self) -> list[ExecutionResult]:
        """Resume every run a dead process left unfinished, and every suspended run now due."""
        return await running.recover(await self._engine())

    async def signal(self, workflow_id: str, signal: str, payload: Any = None, *,
                     product: str | None = None, env: str | None = None) -> dict[str, Any]:
        _names("signal()", workflow_id=workflow_id, signal=signal)
        engine = await self._engine()
        await _in_scope(engine, "signal()", [workflow_id], product, env)
        return await running.signal(engine, workflow_id, signal, payload)

    # -- reading (reads.py) -----------------------------------------------------------------------
    async def status(self, workflow_id: str, *, product: str | None = None,
                     env: str | None = None) -> dict[str, Any]:
        check_text(workflow_id, "workflow_id", "status()")
        engine = await self._engine()
        await _in_scope(engine, "status()", [workflow_id], product, env)
        return await reads.status(engine, workflow_id)

    async def history(self, workflow_id: str, *, include_step_details: bool = False,
                      include_rollback_details: bool = False, product: str | None = None,
                      env: str | None = None) -> Any:
        """Typed events with timestamps, oldest first: a list that also carries `events`,
        `checkpoints`, `replays`, `restarts`, `resumes` (attributes and keys)."""
        check_text(workflow_id, "workflow_id", "history()")
        engine = await self._engine()
        await _in_scope(engine, "history()", [workflow_id], product, env)
        return await lineage.history(engine, workflow_id,
                                     step_details=include_step_details,
                                     rollback_details=include_rollback_details)

    async def logs(self, workflow_id: str, *, product: str | None = None,
                   env: str | None = None) -> list[dict[str, Any]]:
        check_text(workflow_id, "workflow_id", "logs()")
        engine = await self._engine()
        await _in_scope(engine, "logs()", [workflow_id], product, env)
        return await reads.logs(engine, workflow_id)

    async def query(self, workflow_id: str, query: str, *, product: str | None = None,
                    env: str | None = None) -> Any:
        """Answer a declared query from the run's latest persisted state."""
        _names("query()", workflow_id=workflow_id, query=query)
        engine = await self._engine()
        await _in_scope(engine, "query()", [workflow_id], product, env)
        return await reads.query(engine, workflow_id, query)

    async def step_detail(self, workflow_id: str, step_tag: str, *, product: str | None = None,
                          env: str | None = None) -> dict[str, Any]:
        _names("step_detail()", workflow_id=workflow_id, step_tag=step_tag)
        engine = await self._engine()
        await _in_scope(engine, "step_detail()", [workflow_id], product, env)
        return await reads.step_detail(engine, workflow_id, step_tag)

    # -- dispatch, schedules, cancel, worker (schedules.py, children.py, worker.py) ---------------
    async def dispatch(self, product: str, env: str, workflow: str, input: Any = None,
                       schedule: Mapping[str, Any] | None = None,
                       options: Mapping[str, Any] | None = None,
                       workflow_id: str | None = None) -> dict[str, Any]:
        """Queue a run for a worker, or store a recurring schedule; returns {job_id, status:
        scheduled|queued, scheduled_at, recurring, next_run_at}."""
        _names("dispatch()", product=product, env=env, workflow=workflow)
        check_text(workflow_id, "workflow_id", "dispatch()", optional=True)
        return await schedules.dispatch(self._engines, product, env, workflow, input, schedule,
                                        options, workflow_id)

    async def pause_schedule(self, job_id: str) -> dict[str, Any]:
        check_text(job_id, "job_id", "pause_schedule()")
        return await schedules.pause(await self._engine(), job_id)

    async def resume_schedule(self, job_id: str) -> dict[str, Any]:
        check_text(job_id, "job_id", "resume_schedule()")
        return await schedules.resume(await self._engine(), job_id)

    async def cancel_schedule(self, job_id: str) -> dict[str, Any]:
        check_text(job_id, "job_id", "cancel_schedule()")
        return await schedules.cancel(await self._engine(), job_id)

    async def get_schedule(self, job_id: str) -> dict[str, Any]:
        check_text(job_id, "job_id", "get_schedule()")
        return await schedules.get(await self._engine(), job_id)

    async def list_schedules(self, status: str | list[str] | None = None,
                             limit: int = 100) -> list[dict[str, Any]]:
        engine = await self._engine()
        return [schedules.describe(r)
                for r in await engine.store.list_schedules(status=status, limit=limit)]

    async def cancel(self, workflow_id: str, reason: str = "cancelled", *,
                     timeout: Any = None, product: str | None = None,
                     env: str | None = None) -> dict[str, Any]:
        """Cancel a run and compensate its completed steps -> {cancelled, rolled_back_steps,
        status, ...}. A run another live process owns is cancelled by that process at its
        next durable point: status "cancelling" unless `timeout` waits for the end."""
        from ductwork.interpreter.children import cancel_run

        _names("cancel()", workflow_id=workflow_id, reason=reason)
        engine = await self._engine()
        await _in_scope(engine, "cancel()", [workflow_id], product, env)
        return await cancel_run(engine, workflow_id, reason,
                                timeout=None if timeout is None else to_ms(
                                    timeout, "cancel() timeout") / 1000)

    async def prune(self, older_than: Any, status: str | list[str] | None = None,
                    limit: int = 10_000) -> dict[str, Any]:
        """Delete finished runs (completed, failed, rolled_back, cancelled; `status` narrows)
        that finished longer ago than `older_than` ('30d', a timedelta or a datetime), with
        their steps, events, logs, state and signals; at most `limit` runs -> {"deleted": n}."""
        return await retention.prune(self._engines, older_than=older_than, status=status,
                                     limit=limit)

    def worker(self, *, concurrency: int = 10, queues: list[str] | None = None,
               poll: Any = "1s", grace: Any = "30s", schedules: bool = True,
               handle_signals: bool = False) -> Any:
        """A Worker object (not started): `await w.run()`, `w.stop()`."""
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

    # -- re-runs (reruns.py) ----------------------------------------------------------------------
    async def replay(self, workflow_id: str, reason: str | None = None, *,
                     options: Mapping[str, Any] | None = None,
                     idempotency_key: str | None = None, product: str | None = None,
                     env: str | None = None, **kw: Any) -> dict[str, Any]:
        _rerun_args("replay()", workflow_id, reason, kw)
        check_text(idempotency_key, "idempotency_key", "replay()", optional=True)
        engine = await self._engine()
        await _in_scope(engine, "replay()", [workflow_id], product, env)
        return await reruns.replay(engine, workflow_id, reason, options=options,
                                   idempotency_key=idempotency_key, **kw)

    async def restart(self, workflow_id: str, input: Any = None,
                      merge_input: Mapping[str, Any] | bool | None = None,
                      reason: str | None = None, *, product: str | None = None,
                      env: str | None = None, **kw: Any) -> dict[str, Any]:
        _rerun_args("restart()", workflow_id, reason, kw)
        engine = await self._engine()
        await _in_scope(engine, "restart()", [workflow_id], product, env)
        return await reruns.restart(engine, workflow_id, input, merge_input, reason, **kw)

    async def resume(self, workflow_id: str, from_checkpoint: str | None = None,
                     from_step: str | None = None, skip_steps: Any = None, *,
                     product: str | None = None, env: str | None = None, **kw: Any
                     ) -> dict[str, Any]:
        _rerun_args("resume()", workflow_id, None, kw)
        check_text(from_checkpoint, "from_checkpoint", "resume()", optional=True)
        check_text(from_step, "from_step", "resume()", optional=True)
        engine = await self._engine()
        await _in_scope(engine, "resume()", [workflow_id], product, env)
        return await reruns.resume(engine, workflow_id, from_checkpoint, from_step, skip_steps,
                                   **kw)

    async def replay_from_step(self, workflow_id: str, from_step: str,
                               step_outputs: Mapping[str, Any] | None = None, *,
                               product: str | None = None, env: str | None = None, **kw: Any
                               ) -> dict[str, Any]:
        _rerun_args("replay_from_step()", workflow_id, None, kw)
        check_text(from_step, "from_step", "replay_from_step()")
        engine = await self._engine()
        await _in_scope(engine, "replay_from_step()", [workflow_id], product, env)
        return await reruns.replay_from_step(engine, workflow_id, from_step, step_outputs,
                                             **kw)

    # -- lineage (lineage.py) ---------------------------------------------------------------------
    async def related_executions(self, workflow_id: str, *, product: str | None = None,
                                 env: str | None = None) -> dict[str, Any]:
        check_text(workflow_id, "workflow_id", "related_executions()")
        engine = await self._engine()
        await _in_scope(engine, "related_executions()", [workflow_id], product, env)
        return await lineage.related_executions(engine, workflow_id)

    async def compare(self, workflow_ids: Any, *, product: str | None = None,
                      env: str | None = None) -> dict[str, Any]:
        if not isinstance(workflow_ids, list | tuple):
            raise ConfigurationError("compare(): give a list of two or more workflow ids")
        for wid in workflow_ids:
            check_text(wid, "workflow_ids", "compare()")
        if product is not None or env is not None:
            await _in_scope(await self._engine(), "compare()", list(workflow_ids), product, env)
        return await lineage.compare(self._engines, workflow_ids)

    # Keep `list` the last method: below it, mypy would read `list[...]` annotations as it.
    async def list(self, product: str | None = None, tag: str | None = None,
                   status: Any = None, since: Any = None, limit: int = 50,
                   cursor: str | None = None) -> dict[str, Any]:
        """{runs: [...], next_cursor}: newest first; pass next_cursor back for the next page."""
        check_text(product, "product", "list()", optional=True)
        check_text(tag, "tag", "list()", optional=True)
        check_text(cursor, "cursor", "list()", optional=True)
        return await reads.list_runs(await self._engine(), product=product, tag=tag,
                                          status=status, since=since, limit=limit, cursor=cursor)


for _name, _fn in list(vars(Workflows).items()):
    if not _name.startswith("_") and inspect.iscoroutinefunction(_fn):
        setattr(Workflows, _name, _store_errors(_fn))
