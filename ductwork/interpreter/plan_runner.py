"""Runs a compiled YAML WorkflowPlan as an ordinary handler, through the same ctx.step machinery."""

from __future__ import annotations

import importlib
import os
import sys
from collections import ChainMap
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from functools import cache, partial
from typing import Any

from ductwork.dsl import plan as p
from ductwork.dsl.vocabulary import CALLS, CTX_FIELDS, STEP_FIELDS
from ductwork.errors import (
    ChildWorkflowError,
    ConfigurationError,
    DuctworkError,
    ExpressionError,
    SignalTimeoutError,
    StepError,
    StepTimeoutError,
)
from ductwork.interpreter import threads
from ductwork.interpreter.context import AppValues


class FailStep(DuctworkError):
    """Raised by a `fail:` step; its message is the evaluated text."""


class LocatedExpressionError(ExpressionError):
    """An expression that failed at run time, with the YAML place it was written."""


class _Ended(Exception):
    """A `return` or `trigger_rollback` step ends the run with this output."""

    def __init__(self, output: Any) -> None:
        super().__init__("the run ended early")
        self.output = output


@contextmanager
def located(where: p.Location | str) -> Iterator[None]:
    try:
        yield
    except LocatedExpressionError:
        raise
    except ExpressionError as e:
        raise LocatedExpressionError(f"{e} (in {where})", expression=e.expression,
                                     column=e.column) from None


def describe_error(err: DuctworkError, tag: str) -> dict[str, Any]:
    """What a catch reads as `error`: message, step (the YAML tag), type and HTTP status."""
    status = None
    if isinstance(err, SignalTimeoutError | ChildWorkflowError | StepTimeoutError):
        kind = type(err).__name__
    elif isinstance(err, StepError) and err.cause_type == "ConnectorError":
        kind, status = "ConnectorError", err.status
    else:
        kind = "StepError"
    return {"message": str(err), "step": tag, "type": kind, "status": status}


def definitions(specs: p.Specs) -> list[dict[str, Any]]:
    """Keyword arguments for dw.workflows.define(), one per compiled workflow."""
    out: list[dict[str, Any]] = []
    for product in specs.products.values():
        for plan in product.workflows.values():
            out.append({
                "product": plan.product, "tag": plan.tag, "name": plan.name,
                "description": plan.description or None, "handler": make_handler(plan),
                "options": plan.options.to_dict(), "signals": dict(plan.signals) or None,
                "envs": list(plan.envs) if plan.envs else None,
                "input_schema": plan.input_schema, "source": plan.path,
                "queries": {name: _query(plan, name, tree)
                            for name, tree in plan.queries.items()} or None,
            })
    return out


def _query(plan: p.WorkflowPlan, name: str, tree: p.ValueTree) -> Callable[[Any], Any]:
    """A `queries:` entry as the function dw.workflows.query calls with its read-only ctx (the
    run's persisted input, state, step results and metadata; the plan does not run)."""

    def answer(qctx: Any) -> Any:
        scope = {"ctx": _CtxView(qctx), "steps": qctx.steps, "state": qctx.state}
        with located(f"query '{name}' of {plan.path}"):
            return tree.evaluate(scope)

    return answer


class PlanHandler:
    """A compiled plan as a workflow handler; `plan` lets management list its declared steps."""

    def __init__(self, plan: p.WorkflowPlan) -> None:
        self.plan = plan
        self.__name__ = self.__qualname__ = f"yaml:{plan.product}/{plan.tag}"

    async def __call__(self, ctx: Any) -> Any:
        return await PlanRun(ctx, self.plan).run()


def make_handler(plan: p.WorkflowPlan) -> PlanHandler:
    return PlanHandler(plan)


class _CtxView(Mapping[str, Any]):
    """`ctx` as expressions see it: the metadata fields only, read live."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def __getitem__(self, key: str) -> Any:
        if key not in CTX_FIELDS:
            raise KeyError(key)
        value = getattr(self._ctx, key, None)
        to_dict = getattr(value, "to_dict", None)
        return to_dict() if key in ("input", "original_input") and callable(to_dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(CTX_FIELDS)

    def __len__(self) -> int:
        return len(CTX_FIELDS)


class _StepView(Mapping[str, Any]):
    """`step` in a step's call or rollback: the running step's idempotency key, read live."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def __getitem__(self, key: str) -> Any:
        if key not in STEP_FIELDS:
            raise KeyError(key)
        return self._ctx.idempotency_key

    def __iter__(self) -> Iterator[str]:
        return iter(STEP_FIELDS)

    def __len__(self) -> int:
        return len(STEP_FIELDS)


class _Secrets(Mapping[str, Any]):
    """`env.NAME` / `secrets.NAME`: resolved through ctx.token (registered for redaction)."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx

    def __getitem__(self, key: str) -> Any:
        return self._ctx.token(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@cache
def import_target(target: str) -> Callable[..., Any]:
    """`pkg.mod:fn` -> the function; the working directory counts as importable, like -m."""
    module, _, name = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        cwd = os.getcwd()
        if cwd in sys.path or not (e.name and module.startswith(e.name)):
            raise ConfigurationError(f"python step: cannot import '{module}' ({e})") from None
        sys.path.append(cwd)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e2:
            raise ConfigurationError(f"python step: cannot import '{module}' ({e2})") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise ConfigurationError(f"python step: module '{module}' has no function '{name}'")
    return fn


class PlanRun:
    """One execution of a plan inside one handler call (re-created on every replay)."""

    def __init__(self, ctx: Any, plan: p.WorkflowPlan) -> None:
        self.ctx = ctx
        self.plan = plan
        self.base = {"ctx": _CtxView(ctx), "env": _Secrets(ctx), "secrets": _Secrets(ctx),
                     "step": _StepView(ctx), "variables": AppValues(ctx, "variables"),
                     "constants": AppValues(ctx, "constants")}

    def scope(self, steps: Mapping[str, Any], names: Mapping[str, Any]) -> dict[str, Any]:
        return {**self.base, "steps": steps, "state": self.ctx.state, **names}

    async def run(self) -> Any:
        steps: dict[str, Any] = {}
        try:
            await self.block(self.plan.steps, steps, {})
        except _Ended as end:
            return end.output  # the workflow's `output:` is for runs that reach the end
        if self.plan.output is None:
            return None
        with located(f"the output of {self.plan.path}"):
            return self.plan.output.evaluate(self.scope(steps, {}))

    async def block(self, steps: tuple[p.Step, ...], results: MutableMapping[str, Any],
                    names: Mapping[str, Any]) -> None:
        for step in steps:
            await self.step(step, results, names)

    async def step(self, step: p.Step, results: MutableMapping[str, Any],
                   names: Mapping[str, Any]) -> None:
        with located(step.loc):
            await self._step(step, results, names)

    async def _step(self, step: p.Step, results: MutableMapping[str, Any],
                    names: Mapping[str, Any]) -> None:
        if step.when is not None and not step.when.evaluate(self.scope(results, names)):
            return
        handlers = p.catches(step)
        if not handlers:
            value = await self._run(step, results, names)
        else:
            try:
                value = await self._run(step, results, names)
            except (StepError, SignalTimeoutError) as e:
                if not await self.caught(step, handlers, e, results, names):
                    raise
                value = None
        if step.tag is not None:
            results[step.tag] = value

    async def _run(self, step: p.Step, results: MutableMapping[str, Any],
                   names: Mapping[str, Any]) -> Any:
        ctx = self.ctx
        value: Any = None
        if isinstance(step, p.TaskStep):
            value = await self.task(step, results, names)
        elif isinstance(step, p.SleepStep):
            await ctx.sleep(step.duration.evaluate(self.scope(results, names)))
        elif isinstance(step, p.WaitStep):
            which: Any = step.names[0] if len(step.names) == 1 else list(step.names)
            value = await ctx.wait_for_signal(which, timeout=step.timeout)
        elif isinstance(step, p.CheckpointStep):
            meta = step.metadata.evaluate(self.scope(results, names)) if step.metadata else None
            await ctx.checkpoint(step.name, meta)
        elif isinstance(step, p.SetStep):
            for key, tree in step.values:
                await ctx.set_state(key, tree.evaluate(self.scope(results, names)))
        elif isinstance(step, p.LogStep):
            self.log(step.log, self.scope(results, names))
        elif isinstance(step, p.ForeachStep):
            value = await self.foreach(step, results, names)
        elif isinstance(step, p.ParallelStep):
            value = await self.parallel(step, results, names)
        elif isinstance(step, p.SwitchStep):
            value = await self.switch(step, results, names)
        elif isinstance(step, p.ChildWorkflowStep):
            value = await self.child(step, results, names)
        elif isinstance(step, p.ReturnStep):
            raise _Ended(step.value.evaluate(self.scope(results, names)))
        elif isinstance(step, p.TriggerRollbackStep):
            await self.trigger_rollback(step, results, names)
        return value

    async def caught(self, step: p.Step, handlers: p.Catch, err: DuctworkError,
                     results: MutableMapping[str, Any], names: Mapping[str, Any]) -> bool:
        """Run the first matching handler of a failed step; False: none matched. A replay
        re-raises the recorded failure with the same type and status, so it picks the same
        handler."""
        tag = str(step.tag)
        error = describe_error(err, tag)
        inner = {**names, "error": error}
        for handler in handlers:
            if handler.when is None or handler.when.evaluate(self.scope(results, inner)):
                await self.block(handler.steps, results, inner)
                return True
        return False

    # -- tasks ----------------------------------------------------------------------------------

    async def task(self, step: p.TaskStep, results: MutableMapping[str, Any],
                   names: Mapping[str, Any]) -> Any:
        assert step.tag is not None  # the compiler requires a tag on every task

        async def run() -> Any:
            with located(step.loc):
                return await self.body(step.body, self.scope(results, names))

        o = step.options
        return await self.ctx.step(step.tag, run, self.rollback(step.rollback, results, names),
                                   allow_fail=o.allow_fail, retries=o.retries,
                                   retry_delay=o.retry_delay, timeout=o.timeout,
                                   critical=o.critical)

    def rollback(self, bodies: tuple[p.Body, ...], results: MutableMapping[str, Any],
                 names: Mapping[str, Any]) -> Callable[[Any], Any] | None:
        """The rollback function of a step or child: its bodies in order, with `result`; like
        one Python rollback function, a failing body stops the rest and fails the rollback."""
        if not bodies:
            return None

        async def rollback(result: Any) -> None:
            scope = self.scope(results, {**names, "result": result})
            for body in bodies:
                with located(body.loc):
                    await self.body(body, scope)

        return rollback

    async def body(self, body: p.Body | p.FailBody, scope: dict[str, Any]) -> Any:
        if isinstance(body, p.Call):
            kwargs = body.args.evaluate(scope)
            if body.resources:
                self.check_resource(body, kwargs)
            if body.key == "graph.create_relationship" and "from" in kwargs:
                kwargs["from_"] = kwargs.pop("from")
            method = getattr(getattr(self.ctx, body.component), body.method)
            return await method(**kwargs)
        if isinstance(body, p.PythonCall):
            fn = import_target(body.target)
            args = body.args.evaluate(scope)
            if not isinstance(args, Mapping):
                raise ConfigurationError(f"python step {body.target}: args must evaluate to "
                                         f"a mapping, got {type(args).__name__}")
            # A sync function runs in a worker thread, so that the step's timeout holds.
            return await threads.call(partial(fn, self.ctx, **args))
        if isinstance(body, p.LogCall):
            self.log(body, scope)
            return None
        raise FailStep(str(body.message.evaluate(scope)))

    @staticmethod
    def check_resource(body: p.Call, kwargs: Mapping[str, Any]) -> None:
        """A resource chosen by an expression must be one the compiler checked (an input that
        skipped schema validation could name any other)."""
        param = str(CALLS[body.key].resource)
        name = kwargs.get(param)
        if name not in body.resources:
            raise ConfigurationError(
                f"{body.key} ({body.loc}): {param} {name!r} is not one of the names this "
                f"workflow was checked with ({', '.join(body.resources)})")

    def log(self, log: p.LogCall, scope: dict[str, Any]) -> None:
        data = log.data.evaluate(scope) if log.data is not None else None
        getattr(self.ctx.log, log.level)(str(log.message.evaluate(scope)), data)

    # -- control flow ---------------------------------------------------------------------------

    async def foreach(self, step: p.ForeachStep, results: MutableMapping[str, Any],
                      names: Mapping[str, Any]) -> list[dict[str, Any]]:
        items = step.items.evaluate(self.scope(results, names))
        if not isinstance(items, list | tuple):
            raise ConfigurationError(
                f"foreach{f' {step.tag!r}' if step.tag else ''} ({step.loc}): items must be a "
                f"list, got {type(items).__name__}")

        async def one(item: Any, index: int) -> dict[str, Any]:
            mine: dict[str, Any] = {}
            inner = {**names, "item": item, "index": index}
            if step.alias:
                inner[step.alias] = item
            await self.block(step.steps, ChainMap(mine, results), inner)
            return mine

        out: list[dict[str, Any]] = await self.ctx.foreach(list(items), one,
                                                           concurrency=step.concurrency)
        return out

    async def parallel(self, step: p.ParallelStep, results: MutableMapping[str, Any],
                       names: Mapping[str, Any]) -> dict[str, Any]:
        before = set(results)

        def branch(steps: tuple[p.Step, ...]) -> Callable[[], Any]:
            return lambda: self.block(steps, results, names)

        await self.ctx.parallel([branch(b) for b in step.branches])
        return {k: v for k, v in results.items() if k not in before}

    async def switch(self, step: p.SwitchStep, results: MutableMapping[str, Any],
                     names: Mapping[str, Any]) -> dict[str, Any]:
        before = set(results)
        chosen = step.default
        for case in step.cases:
            if case.when.evaluate(self.scope(results, names)):
                chosen = case.steps
                break
        if chosen:
            await self.block(chosen, results, names)
        return {k: v for k, v in results.items() if k not in before}

    async def child(self, step: p.ChildWorkflowStep, results: MutableMapping[str, Any],
                    names: Mapping[str, Any]) -> Any:
        scope = self.scope(results, names)
        # The engine names the child run "<parent id>:<child_id>".
        child_id = (str(step.child_id.evaluate(scope)) if step.child_id is not None
                    else str(step.tag))
        options: dict[str, Any] = {"parent_close_policy": step.parent_close_policy}
        if step.timeout is not None:
            options["timeout"] = step.timeout
        if step.retries is not None:
            options["retries"] = step.retries
        rollback = self.rollback(step.rollback, results, names)
        if rollback is not None:
            options["rollback"] = rollback
            options["critical"] = step.critical
        return await self.ctx.workflow(child_id, step.workflow, step.input.evaluate(scope),
                                       **options)

    async def trigger_rollback(self, step: p.TriggerRollbackStep,
                               results: MutableMapping[str, Any], names: Mapping[str, Any]
                               ) -> None:
        """ctx.trigger_rollback(reason) (journaled: a replay gets the recorded summary and runs
        no rollback again), then the run ends with `output`, which reads the summary as
        `result`."""
        reason = step.reason.evaluate(self.scope(results, names))
        summary = await self.ctx.trigger_rollback("" if reason is None else str(reason))
        output = None
        if step.output is not None:
            output = step.output.evaluate(self.scope(results, {**names, "result": summary}))
        raise _Ended(output)
