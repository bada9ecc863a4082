"""Steps: bodies, modifiers, catch handlers and the control steps (loops, branches, waits)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ductwork.dsl import plan as p
from ductwork.dsl import vocabulary as v
from ductwork.dsl.compiler.base import NEEDS_TAG, duration_ms
from ductwork.dsl.compiler.calls import CallCompiler
from ductwork.dsl.diagnostics import did_you_mean, known
from ductwork.dsl.expr.checker import Scope
from ductwork.dsl.loader import DataPath
from ductwork.dsl.schema import checker as schema_check

_ARGS_HINT = ("a call takes its values in its own body (input:, data:, template:, ...); "
              "args: goes with python:")

class StepCompiler(CallCompiler):
    # -- steps ---------------------------------------------------------------------------------

    def steps(self, path: DataPath, raw: Any, scope: Scope) -> tuple[list[p.Step], set[str]]:
        """Compile a step list; returns the steps and the tags visible after it."""
        visible = set(scope.visible)
        out: list[p.Step] = []
        if not isinstance(raw, list):
            return out, visible
        ended: int | None = None  # the step that ends the run unconditionally, if any
        for i, step in enumerate(raw):
            spath = (*path, i)
            if not isinstance(step, dict):
                continue
            if ended is not None:
                self._unreachable(spath, step, (*path, ended), raw[ended])
                ended = None  # one report per list: the rest follows from it
            elif _ends_run(step):
                ended = i
            inner = Scope(frozenset(visible), scope.loop_names, False, None,
                          scope.foreach, scope.branches)
            compiled, produced = self.step(spath, step, inner)
            if compiled is not None:
                out.append(compiled)
            visible |= produced
        return out, visible

    def _unreachable(self, path: DataPath, raw: dict[str, Any], ended: DataPath,
                     end: dict[str, Any]) -> None:
        body = next(b for b in v.TERMINALS if b in end)
        line, _ = self.doc.locate(ended)
        tag = raw.get("tag")
        what = f"step '{tag}'" if isinstance(tag, str) else "this step"
        self.fail(path, f"{what} can never run",
                  f"the {body} step on line {line} ends the run (it has no 'if:'): remove the "
                  f"steps after it, or give the {body} an 'if:'")

    def step(self, path: DataPath, raw: dict[str, Any], scope: Scope
             ) -> tuple[p.Step | None, set[str]]:
        bodies = [k for k in v.BODIES if k in raw]
        tag = raw.get("tag") if isinstance(raw.get("tag"), str) else None
        produced = {tag} if tag else set()
        if len(bodies) != 1:
            return None, produced  # the schema reported it
        body = bodies[0]
        scope = Scope(scope.visible, scope.loop_names, False, tag, scope.foreach, scope.branches)
        if tag is None and body in NEEDS_TAG:
            self.fail(path, f"a {body} step needs a tag",
                      "its result is recorded under the tag: add 'tag: <name>'")
        if body not in v.TASKS:
            takes = v.CHILD_MODIFIERS if body == "workflow" else ()
            for mod in v.MODIFIERS:
                if mod in raw and mod not in takes:
                    self.fail((*path, mod), f"'{mod}' has no effect on a {body} step",
                              schema_check.placement_hint(self.doc, path, mod)
                              or "only steps that call something (action.run, database.*, ..., "
                              "python) take rollback/allow_fail/retries/retry_delay/timeout/"
                              "critical", key=True)
        if "args" in raw and body != "python":
            self.fail((*path, "args"), "'args' belongs to python steps",
                      _ARGS_HINT, key=True)
        if "returns" in raw and body != "python":
            self.fail((*path, "returns"), "'returns' belongs to python steps",
                      "it declares what a python function returns; other steps' results are "
                      "known from the product file", key=True)
        handlers: p.Catch = ()
        if "catch" in raw:
            handlers, inner = self._catch(path, raw, body, tag, scope)
            produced |= inner
        when = None
        if "if" in raw:
            when = self._condition((*path, "if"), raw["if"], scope)
        loc = self.loc(path)
        value = raw[body]
        bpath = (*path, body)
        node: p.Step | None = None
        if body in v.TASKS:
            node = self._task(path, raw, body, tag, when, loc, scope)
        elif body == "sleep":
            node = p.SleepStep(tag, when, loc, self.exprs.tree(bpath, value, scope))
        elif body == "wait_for_signal" and isinstance(value, dict):
            node = self._wait(bpath, value, tag, when, loc)
        elif body == "checkpoint" and isinstance(value, dict):
            meta = value.get("metadata")
            node = p.CheckpointStep(tag, when, loc, str(value.get("name")),
                                    self.exprs.tree((*bpath, "metadata"), meta, scope)
                                    if meta is not None else None)
        elif body == "set" and isinstance(value, dict):
            node = p.SetStep(tag, when, loc, tuple(
                (str(k), self.exprs.tree((*bpath, k), val, scope)) for k, val in value.items()))
        elif body == "log" and isinstance(value, dict):
            node = p.LogStep(tag, when, loc, self._log(bpath, value, scope))
        elif body == "foreach" and isinstance(value, dict):
            node = self._foreach(bpath, value, tag, when, loc, scope)
        elif body == "parallel" and isinstance(value, list):
            node, inner = self._parallel(bpath, value, tag, when, loc, scope)
            produced |= inner
        elif body == "switch" and isinstance(value, dict):
            node, inner = self._switch(bpath, value, tag, when, loc, scope)
            produced |= inner
        elif body == "workflow" and isinstance(value, dict):
            child = self._child(bpath, value, tag, when, loc, scope)
            node = replace(child, rollback=self._rollback(path, raw, tag, scope),
                           critical=raw.get("critical") is True)
        elif body in ("return", "trigger_rollback"):
            node = self._ending(path, body, value, tag, when, loc, scope)
        if handlers and isinstance(node, p.TaskStep | p.WaitStep | p.ChildWorkflowStep):
            node = replace(node, catch=handlers)
        return node, produced

    def _catch(self, path: DataPath, raw: dict[str, Any], body: str, tag: str | None,
               scope: Scope) -> tuple[p.Catch, set[str]]:
        """`catch:` handlers: compiled with `error` bound; their tags are visible after."""
        cpath = (*path, "catch")
        if body not in v.CATCHABLE:
            why = ("a fail step fails on purpose; to choose, put it in a switch"
                   if body == "fail" else f"a {body} step cannot fail")
            self.fail(cpath, f"'catch' has no effect on a {body} step",
                      f"{why}; catch goes on calls, python, workflow and wait_for_signal steps",
                      key=True)
            return (), set()
        if raw.get("allow_fail") is True:
            self.fail(cpath, "'catch' and 'allow_fail' cannot be used together",
                      "allow_fail swallows the error, so the catch would never run; keep one",
                      key=True)
        if tag is None and body not in NEEDS_TAG:
            self.fail(path, f"a {body} step with 'catch' needs a tag",
                      "the caught error names the step by its tag: add 'tag: <name>'")
        handlers: list[p.Handler] = []
        produced: set[str] = set()
        raw_handlers = raw["catch"]
        inner = Scope(scope.visible, scope.loop_names | {"error"}, False, None, scope.foreach,
                      scope.branches)
        for h, handler in enumerate(raw_handlers if isinstance(raw_handlers, list) else []):
            if not isinstance(handler, dict):
                continue
            cond = None
            if "if" in handler:
                cond = self._condition((*cpath, h, "if"), handler["if"], inner)
            steps, seen = self.steps((*cpath, h, "steps"), handler.get("steps"), inner)
            produced |= seen - scope.visible
            handlers.append(p.Handler(cond, tuple(steps)))
        return tuple(handlers), produced

    def _condition(self, path: DataPath, raw: Any, scope: Scope) -> p.ValueTree | None:
        if isinstance(raw, bool):
            return p.ValueTree.of(raw)
        if isinstance(raw, str):
            if not self.exprs.is_whole(raw):
                self.fail(path, "a condition must be one ${...} expression",
                          self.exprs.condition_hint(raw))
                return None
            return self.exprs.tree(path, raw, scope)
        return None

    def _task(self, path: DataPath, raw: dict[str, Any], body: str, tag: str | None,
              when: p.ValueTree | None, loc: p.Location, scope: Scope) -> p.Step | None:
        main: p.Body | p.FailBody | None
        # The call and its rollback run inside the step: they may read step.idempotency_key.
        scope = replace(scope, loop_names=scope.loop_names | {"step"})
        if body == "fail":
            main = p.FailBody(self.exprs.tree((*path, "fail"), raw["fail"], scope),
                              self.loc((*path, "fail")))
        else:
            main = self.body(path, raw, body, scope)
        if body == "fail" and isinstance(raw.get("rollback"), dict | list):
            self.fail((*path, "rollback"), "a fail step has nothing to roll back",
                      "remove 'rollback:'; the steps completed before it are undone by their own "
                      "rollbacks", key=True)
        rollback = self._rollback(path, raw, tag, scope)
        if main is None:
            return None
        retries = raw.get("retries", 0)
        delay = duration_ms(raw.get("retry_delay", 1000))
        options = p.TaskOptions(
            allow_fail=raw.get("allow_fail") is True,
            retries=retries if isinstance(retries, int) and not isinstance(retries, bool) else 0,
            retry_delay=delay if delay is not None else 1000,
            timeout=duration_ms(raw.get("timeout")),
            critical=raw.get("critical") is True,
        )
        if options.timeout == 0:  # a limit of nothing: every attempt times out at once
            self.fail((*path, "timeout"), f"'timeout: {raw.get('timeout')}' fails every "
                      "attempt at once", "give the longest an attempt may take, e.g. "
                      "timeout: 30s, or leave timeout out for no limit")
        if "retry_delay" in raw and not raw.get("retries"):
            self.fail((*path, "retry_delay"), "'retry_delay' without 'retries' has no effect",
                      "add 'retries: <n>'", key=True)
        return p.TaskStep(tag, when, loc, main, rollback, options)

    def _rollback(self, path: DataPath, raw: dict[str, Any], tag: str | None, scope: Scope
                  ) -> tuple[p.Body, ...]:
        """`rollback:`, one body or a list run in order, compiled with `result` bound."""
        rb = raw.get("rollback")
        rpath = (*path, "rollback")
        listed = rb if isinstance(rb, list) else [rb] if isinstance(rb, dict) else []
        rscope = Scope(scope.visible, scope.loop_names | {"step"}, True, tag, scope.foreach,
                       scope.branches)
        out: list[p.Body] = []
        for i, entry in enumerate(listed):
            epath = (*rpath, i) if isinstance(rb, list) else rpath
            if not isinstance(entry, dict):
                continue
            found = [k for k in v.ROLLBACK_BODIES if k in entry]
            if len(found) != 1:
                if isinstance(rb, list):  # the schema phase checks a single body itself
                    self._rollback_bodies(epath, found)
                continue
            if "args" in entry and found[0] != "python":
                self.fail((*epath, "args"), "'args' belongs to python steps",
                          _ARGS_HINT, key=True)
            compiled = self.body(epath, entry, found[0], rscope)
            if compiled is not None:
                out.append(compiled)
        return tuple(out)

    def _rollback_bodies(self, path: DataPath, found: list[str]) -> None:
        n = int(path[-1]) + 1
        if not found:
            self.fail(path, f"no body in rollback #{n}",
                      "each entry of a rollback list is one call: action.run, database.*, "
                      "notification.*, ..., python or log")
            return
        for extra in found[1:]:
            self.fail((*path, extra), f"rollback #{n} has two bodies, '{found[0]}' "
                      f"and '{extra}'", "one body per entry: split it into two entries of "
                      "the list (they run in order)", key=True)

    def _ending(self, path: DataPath, body: str, value: Any, tag: str | None,
                when: p.ValueTree | None, loc: p.Location, scope: Scope) -> p.Step | None:
        """`return` and `trigger_rollback`: they end the whole run, so not from inside a
        foreach or a parallel branch, where other items or branches are still running."""
        bpath = (*path, body)
        if scope.foreach or scope.branches:
            where = "a foreach" if scope.foreach and (
                not scope.branches or len(scope.foreach[-1]) > len(scope.branches[-1][0])
            ) else "a parallel branch"
            self.fail(bpath, f"'{body}' cannot be used inside {where}",
                      f"it would end the whole run while the other "
                      f"{'items' if where == 'a foreach' else 'branches'} still run: record "
                      f"what you found with 'set:' and put the {body} (with an 'if:' on that "
                      "state) after the " + ("foreach" if where == "a foreach" else "parallel"),
                      key=True)
        if body == "return":
            return p.ReturnStep(tag, when, loc, self.exprs.tree(bpath, value, scope))
        if not isinstance(value, dict):
            return None
        ended = Scope(scope.visible, scope.loop_names, True, None, scope.foreach, scope.branches)
        output = value.get("output")
        return p.TriggerRollbackStep(
            tag, when, loc, self.exprs.tree((*bpath, "reason"), value.get("reason", ""), scope),
            self.exprs.tree((*bpath, "output"), output, ended) if "output" in value else None)

    def body(self, path: DataPath, raw: dict[str, Any], body: str, scope: Scope
             ) -> p.Body | None:
        """A call, python or log body (of a step or of a rollback)."""
        bpath = (*path, body)
        value = raw[body]
        if body == "python":
            args = raw.get("args", {})
            if isinstance(args, str) and not self.exprs.is_whole(args):
                self.fail((*path, "args"), "args must be a mapping or one ${...} expression")
            if not isinstance(value, str):
                return None
            return p.PythonCall(value, self.exprs.tree((*path, "args"), args, scope),
                                self.loc(bpath))
        if body == "log":
            return self._log(bpath, value, scope) if isinstance(value, dict) else None
        call = v.CALLS[body]
        if not isinstance(value, dict):
            return None
        return self._call(bpath, call, value, scope)

    def _log(self, path: DataPath, raw: dict[str, Any], scope: Scope) -> p.LogCall:
        data = raw.get("data")
        return p.LogCall(
            str(raw.get("level", "info")),
            self.exprs.tree((*path, "message"), raw.get("message", ""), scope),
            self.exprs.tree((*path, "data"), data, scope) if data is not None else None,
            self.loc(path),
        )

    # -- control steps ---------------------------------------------------------------------------

    def _wait(self, path: DataPath, raw: dict[str, Any], tag: str | None,
              when: p.ValueTree | None, loc: p.Location) -> p.WaitStep:
        names = raw.get("name")
        listed = [names] if isinstance(names, str) else names if isinstance(names, list) else []
        if self.signals is not None:
            for i, name in enumerate(listed):
                if isinstance(name, str) and name not in self.signals:
                    where = (*path, "name") if isinstance(names, str) else (*path, "name", i)
                    self.fail(where, f"unknown signal '{name}'",
                              did_you_mean(name, self.signals)
                              or f"the workflow's signals: {known(self.signals)}")
        return p.WaitStep(tag, when, loc, tuple(str(n) for n in listed),
                          duration_ms(raw.get("timeout")))

    def _foreach(self, path: DataPath, raw: dict[str, Any], tag: str | None,
                 when: p.ValueTree | None, loc: p.Location, scope: Scope) -> p.ForeachStep:
        items_raw = raw.get("items")
        if isinstance(items_raw, str) and not self.exprs.is_whole(items_raw):
            self.fail((*path, "items"), "items must be a list or one ${...} expression",
                      'write items: "${ctx.input.items}" or a YAML list such as [a, b]')
        items = self.exprs.tree((*path, "items"), items_raw, scope)
        if isinstance(items_raw, str) and self.exprs.is_whole(items_raw):
            self._foreach_items((*path, "items"), items_raw)
        alias = raw.get("as") if isinstance(raw.get("as"), str) else None
        if alias in v.RESERVED_NAMES:
            self.fail((*path, "as"), f"'{alias}' is already a name in expressions",
                      "pick another name for the item")
            alias = None
        names = {"item", "index", *([alias] if alias else [])}
        inner = Scope(scope.visible, scope.loop_names | names, False, None,
                      (*scope.foreach, path[:-1]), scope.branches)
        steps, _ = self.steps((*path, "steps"), raw.get("steps"), inner)
        concurrency = raw.get("concurrency", 1)
        return p.ForeachStep(tag, when, loc, items, alias,
                             concurrency if isinstance(concurrency, int) else 1, tuple(steps))

    def _foreach_items(self, path: DataPath, text: str) -> None:
        """items that can never be a list fail the run when the foreach starts."""
        typ = self.exprs.value_type(path, text)
        if not typ.known or "list" in typ.kinds:
            return
        expr = text[2:-1].strip()
        hint = {"integer": f'to repeat it that many times, write items: "${{range({expr})}}"',
                "map": f'to loop over its entries, write items: "${{values({expr})}}" (or keys)',
                "string": f'for a comma-separated text, write items: "${{split({expr}, \',\')}}"'}
        kind = next((k for k in ("integer", "map", "string") if k in typ.kinds), "")
        self.fail(path, f"foreach items must be a list, and {expr} is {typ.describe()}",
                  hint.get(kind, "give a list: a list input field, a step result that is a list, "
                           "or a YAML list"))

    def _parallel(self, path: DataPath, raw: list[Any], tag: str | None,
                  when: p.ValueTree | None, loc: p.Location, scope: Scope
                  ) -> tuple[p.ParallelStep, set[str]]:
        branches: list[tuple[p.Step, ...]] = []
        produced: set[str] = set()
        for b, branch in enumerate(raw):
            if not isinstance(branch, dict):
                continue
            inner = Scope(scope.visible, scope.loop_names, False, None, scope.foreach,
                          (*scope.branches, (path[:-1], b)))
            steps, seen = self.steps((*path, b, "steps"), branch.get("steps"), inner)
            branches.append(tuple(steps))
            produced |= seen - scope.visible
        return p.ParallelStep(tag, when, loc, tuple(branches)), produced

    def _switch(self, path: DataPath, raw: dict[str, Any], tag: str | None,
                when: p.ValueTree | None, loc: p.Location, scope: Scope
                ) -> tuple[p.SwitchStep, set[str]]:
        cases: list[p.Case] = []
        produced: set[str] = set()
        raw_cases = raw.get("cases")
        for c, case in enumerate(raw_cases if isinstance(raw_cases, list) else []):
            if not isinstance(case, dict):
                continue
            cond = self._condition((*path, "cases", c, "if"), case.get("if"), scope)
            inner = Scope(scope.visible, scope.loop_names, False, None, scope.foreach,
                          scope.branches)
            steps, seen = self.steps((*path, "cases", c, "steps"), case.get("steps"), inner)
            produced |= seen - scope.visible
            if cond is not None:
                cases.append(p.Case(cond, tuple(steps)))
        default = None
        if "default" in raw:
            steps, seen = self.steps((*path, "default"), raw["default"], scope)
            produced |= seen - scope.visible
            default = tuple(steps)
        return p.SwitchStep(tag, when, loc, tuple(cases), default), produced

    def _child(self, path: DataPath, raw: dict[str, Any], tag: str | None,
               when: p.ValueTree | None, loc: p.Location, scope: Scope) -> p.ChildWorkflowStep:
        child = raw.get("tag")
        if isinstance(child, str) and self.workflows and child not in self.workflows:
            self.fail((*path, "tag"), f"unknown workflow '{child}' in product "
                      f"'{self.product.name}'",
                      did_you_mean(child, self.workflows) or f"known: {known(self.workflows)}")
        child_id = raw.get("id")
        retries = raw.get("retries")
        return p.ChildWorkflowStep(
            tag, when, loc, str(child),
            self.exprs.tree((*path, "input"), raw.get("input", {}), scope),
            self.exprs.tree((*path, "id"), child_id, scope) if child_id is not None else None,
            duration_ms(raw.get("timeout")),
            retries if isinstance(retries, int) else None,
            str(raw.get("parent_close_policy", "terminate")),
        )


def _ends_run(step: dict[str, Any]) -> bool:
    """A return, trigger_rollback or fail step without `if:` (a fail allowed to fail goes on)."""
    if "if" in step or sum(k in step for k in v.BODIES) != 1:
        return False
    if "fail" in step:
        return step.get("allow_fail") is not True
    return any(k in step for k in v.TERMINALS)
