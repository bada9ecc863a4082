"""Workflow files -> WorkflowPlan: schema, then every semantic check, all errors collected."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from ductwork.dsl import plan as p
from ductwork.dsl import vocabulary as v
from ductwork.dsl.diagnostics import Diagnostic, did_you_mean, known
from ductwork.dsl.expr.checker import ExprChecker, Scope, TagInfo
from ductwork.dsl.loader import DataPath, Document
from ductwork.dsl.schema import checker as schema_check
from ductwork.durations import parse_ms
from ductwork.errors import CompileError

# Bodies that must carry a tag: their result is recorded under it.
_NEEDS_TAG = v.TASKS | {"workflow"}
_DB_OPS = {"insert": "insert", "query": "query", "update": "update", "delete": "delete",
           "upsert": "upsert", "execute": "sql"}


def duration_ms(value: Any) -> int | None:
    """Milliseconds of a static duration ("5s", 250), None if it is not one."""
    ms = parse_ms(value)
    return None if ms is None else int(ms)


@dataclass
class WorkflowCompiler:
    """Compiles one workflow document against its product. Use compile_workflow()."""

    doc: Document
    product: p.ProductSpec
    workflows: frozenset[str] = frozenset()  # tags of the product's workflows (child checks)
    expected_tag: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.exprs = ExprChecker(self._report_expr)
        self.signals: dict[str, Any] | None = None

    # -- reporting --------------------------------------------------------------------------

    def fail(self, path: DataPath, message: str, hint: str | None = None, *, key: bool = False,
             offset: int | None = None, length: int = 1) -> None:
        line, col = self.doc.locate(path, key=key, offset=offset)
        if key and path and length == 1:
            length = len(str(path[-1]))
        elif length == 1 and offset is None:
            length = self.doc.width(path)
        self.diagnostics.append(Diagnostic(self.doc.path, line, col, message, hint,
                                           self.doc.source_line(line), length))

    def _report_expr(self, path: DataPath, offset: int | None, message: str,
                     hint: str | None, length: int) -> None:
        self.fail(path, message, hint, offset=offset, length=length)

    def loc(self, path: DataPath) -> p.Location:
        line, col = self.doc.locate(path)
        return p.Location(self.doc.path, line, col)

    # -- the workflow ------------------------------------------------------------------------

    def compile(self) -> p.WorkflowPlan | None:
        plan = self._compile()
        # Where the compiler has a sharper word for the same spot than the schema, keep it.
        mine = {(d.line, d.col) for d in self.diagnostics}
        schema_diags = schema_check.check(self.doc, "workflow")
        self.diagnostics.extend(d for d in schema_diags if (d.line, d.col) not in mine)
        return None if self.diagnostics else plan

    def _compile(self) -> p.WorkflowPlan | None:
        data = self.doc.data
        if not isinstance(data, dict):
            return None
        tag = data.get("workflow")
        if isinstance(tag, str) and self.expected_tag and tag != self.expected_tag:
            self.fail(("workflow",), f"workflow tag '{tag}' does not match the file name "
                      f"'{self.expected_tag}.yaml'", "rename the file or the tag; they must agree")
        prod = data.get("product")
        if isinstance(prod, str) and prod != self.product.name:
            self.fail(("product",), f"this workflow is in product '{self.product.name}', "
                      f"not '{prod}'", "remove 'product:' (the folder decides) or fix it")
        envs = data.get("envs")
        if isinstance(envs, list):
            for i, env in enumerate(envs):
                if isinstance(env, str) and env not in self.product.envs:
                    self.fail(("envs", i), f"unknown environment '{env}'",
                              did_you_mean(env, self.product.envs)
                              or f"the product declares {known(self.product.envs)}")
        input_schema = data.get("input")
        if isinstance(input_schema, dict):
            self._check_input_schema(input_schema)
            self.exprs.input_schema = input_schema
        signals = data.get("signals")
        if isinstance(signals, dict):
            self.signals = signals
        steps_raw = data.get("steps")
        self._index_tags(steps_raw, ("steps",), (), ())
        scope = Scope()
        steps, visible = self.steps(("steps",), steps_raw, scope)
        output = None
        if "output" in data:
            output = self.exprs.tree(("output",), data["output"],
                                     Scope(visible=frozenset(visible)))
        options = self._options(data.get("options"))
        if not isinstance(tag, str):
            return None
        return p.WorkflowPlan(
            product=self.product.name, tag=tag, name=str(data.get("name") or tag),
            description=str(data.get("description") or ""),
            input_schema=input_schema if isinstance(input_schema, dict) else None,
            options=options, signals=dict(signals or {}),
            envs=tuple(envs) if isinstance(envs, list) else None,
            steps=tuple(steps), output=output, path=self.doc.path,
        )

    def _check_input_schema(self, schema: dict[str, Any]) -> None:
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as e:
            where = ("input", *e.absolute_path)
            if e.absolute_path and e.absolute_path[-1] == "type":
                types = ("string", "number", "integer", "boolean", "object", "array", "null")
                self.fail(where, f"'{e.instance}' is not a JSON Schema type",
                          did_you_mean(e.instance, types) or f"types: {', '.join(types)}")
            else:
                self.fail(where, f"input is not a valid JSON Schema: {e.message}")

    def _options(self, raw: Any) -> p.WorkflowOptions:
        if not isinstance(raw, dict):
            return p.WorkflowOptions()
        strategy = raw.get("rollback_strategy", "reverse_all")
        retries = raw.get("retries")
        return p.WorkflowOptions(
            rollback_strategy=strategy if isinstance(strategy, str) else "reverse_all",
            timeout=duration_ms(raw.get("timeout")),
            retries=retries if isinstance(retries, int) else None,
        )

    # -- tags ----------------------------------------------------------------------------------

    def _index_tags(self, steps: Any, path: DataPath,
                    foreach: tuple[tuple[DataPath, str | None], ...],
                    branches: tuple[tuple[DataPath, int], ...]) -> None:
        """First pass: every tag with its place, so later references can be explained."""
        if not isinstance(steps, list):
            return
        for i, step in enumerate(steps):
            spath = (*path, i)
            if not isinstance(step, dict):
                continue
            tag = step.get("tag")
            if isinstance(tag, str):
                if tag in self.exprs.tags:
                    first = self.exprs.tags[tag]
                    self.fail((*spath, "tag"), f"duplicate step tag '{tag}'",
                              f"first defined on line {first.line}; tags are unique in the "
                              "whole workflow, nested steps included")
                else:
                    line, _ = self.doc.locate((*spath, "tag"))
                    self.exprs.tags[tag] = TagInfo(spath, line, len(self.exprs.tags), foreach,
                                                   branches)
            body = step.get("foreach")
            if isinstance(body, dict):
                ftag = tag if isinstance(tag, str) else None
                self._index_tags(body.get("steps"), (*spath, "foreach", "steps"),
                                 (*foreach, (spath, ftag)), branches)
            body = step.get("parallel")
            if isinstance(body, list):
                for b, branch in enumerate(body):
                    if isinstance(branch, dict):
                        self._index_tags(branch.get("steps"), (*spath, "parallel", b, "steps"),
                                         foreach, (*branches, (spath, b)))
            body = step.get("switch")
            if isinstance(body, dict):
                cases = body.get("cases")
                for c, case in enumerate(cases if isinstance(cases, list) else []):
                    if isinstance(case, dict):
                        self._index_tags(case.get("steps"), (*spath, "switch", "cases", c, "steps"),
                                         foreach, branches)
                self._index_tags(body.get("default"), (*spath, "switch", "default"),
                                 foreach, branches)
            handlers = step.get("catch")
            for h, handler in enumerate(handlers if isinstance(handlers, list) else []):
                if isinstance(handler, dict):
                    self._index_tags(handler.get("steps"), (*spath, "catch", h, "steps"),
                                     foreach, branches)

    # -- steps ---------------------------------------------------------------------------------

    def steps(self, path: DataPath, raw: Any, scope: Scope) -> tuple[list[p.Step], set[str]]:
        """Compile a step list; returns the steps and the tags visible after it."""
        visible = set(scope.visible)
        out: list[p.Step] = []
        if not isinstance(raw, list):
            return out, visible
        for i, step in enumerate(raw):
            spath = (*path, i)
            if not isinstance(step, dict):
                continue
            inner = Scope(frozenset(visible), scope.loop_names, False, None,
                          scope.foreach, scope.branches)
            compiled, produced = self.step(spath, step, inner)
            if compiled is not None:
                out.append(compiled)
            visible |= produced
        return out, visible

    def step(self, path: DataPath, raw: dict[str, Any], scope: Scope
             ) -> tuple[p.Step | None, set[str]]:
        bodies = [k for k in v.BODIES if k in raw]
        tag = raw.get("tag") if isinstance(raw.get("tag"), str) else None
        produced = {tag} if tag else set()
        if len(bodies) != 1:
            return None, produced  # the schema reported it
        body = bodies[0]
        scope = Scope(scope.visible, scope.loop_names, False, tag, scope.foreach, scope.branches)
        if tag is None and body in _NEEDS_TAG:
            self.fail(path, f"a {body} step needs a tag",
                      "its result is recorded under the tag: add 'tag: <name>'")
        if body not in v.TASKS:
            for mod in v.MODIFIERS:
                if mod in raw:
                    self.fail((*path, mod), f"'{mod}' has no effect on a {body} step",
                              "only steps that call something (action.run, database.*, ..., "
                              "python) take rollback/allow_fail/retries/retry_delay/timeout/"
                              "critical", key=True)
        if "args" in raw and body != "python":
            self.fail((*path, "args"), "'args' belongs to python steps", key=True)
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
            node = self._child(bpath, value, tag, when, loc, scope)
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
        if tag is None and body not in _NEEDS_TAG:
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
                          f'write "${{{raw}}}"' if "${" not in raw else None)
                return None
            return self.exprs.tree(path, raw, scope)
        return None

    def _task(self, path: DataPath, raw: dict[str, Any], body: str, tag: str | None,
              when: p.ValueTree | None, loc: p.Location, scope: Scope) -> p.Step | None:
        main: p.Body | p.FailBody | None
        if body == "fail":
            main = p.FailBody(self.exprs.tree((*path, "fail"), raw["fail"], scope),
                              self.loc((*path, "fail")))
        else:
            main = self.body(path, raw, body, scope)
        rollback = None
        rb = raw.get("rollback")
        if isinstance(rb, dict):
            if body == "fail":
                self.fail((*path, "rollback"), "a fail step has nothing to roll back", key=True)
            rb_bodies = [k for k in v.ROLLBACK_BODIES if k in rb]
            if len(rb_bodies) == 1:
                rscope = Scope(scope.visible, scope.loop_names, True, tag, scope.foreach,
                               scope.branches)
                if "args" in rb and rb_bodies[0] != "python":
                    self.fail((*path, "rollback", "args"), "'args' belongs to python steps",
                              key=True)
                rollback = self.body((*path, "rollback"), rb, rb_bodies[0], rscope)
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
        if "retry_delay" in raw and not raw.get("retries"):
            self.fail((*path, "retry_delay"), "'retry_delay' without 'retries' has no effect",
                      "add 'retries: <n>'", key=True)
        return p.TaskStep(tag, when, loc, main, rollback, options)

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

    # -- component calls -------------------------------------------------------------------------

    def _call(self, path: DataPath, call: v.Call, args: dict[str, Any], scope: Scope
              ) -> p.Call | None:
        ok = True
        for param in call.params:
            val = args.get(param.name)
            if param.name not in args:
                continue
            ppath = (*path, param.name)
            if param.type in v.STATIC and isinstance(val, str) and "${" in val:
                self.fail(ppath, f"'{param.name}' must be a name written out, not an expression",
                          "resources and events are checked before the run starts")
                ok = False
            elif param.type in (v.LIST, v.MAP) and isinstance(val, str) \
                    and not self.exprs.is_whole(val):
                what = "a list" if param.type == v.LIST else "a mapping"
                self.fail(ppath, f"'{param.name}' must be {what} or one ${{...}} expression, "
                          "not text")
                ok = False
        resource = self._resource(path, call, args) if ok else None
        tree = self.exprs.tree(path, args, scope)
        return p.Call(call.component, call.method, resource, tree, self.loc(path))

    def _resource(self, path: DataPath, call: v.Call, args: dict[str, Any]) -> str | None:
        kind = call.kind
        if call.resource is None:  # messaging.produce: event = "<broker>:<topic>"
            event = args.get("event")
            if not isinstance(event, str):
                return None
            broker, sep, topic = event.partition(":")
            if not sep or not broker or not topic or "${" in event:
                return None  # the schema (or the static check above) reported it
            if self._known_resource((*path, "event"), kind, broker):
                self._topic((*path, "event"), broker, topic, offset=len(broker) + 1)
                return broker
            return None
        name = args.get(call.resource)
        if not isinstance(name, str):
            return None
        if not self._known_resource((*path, call.resource), kind, name):
            return None
        if call.key == "publish.send":
            event = args.get("event")
            if isinstance(event, str):
                self._topic((*path, "event"), name, event)
            return name
        if call.event:
            event = args.get(call.event)
            if isinstance(event, str):
                self._event((*path, call.event), call, name, event)
        return name

    def _known_resource(self, path: DataPath, kind: str, name: str) -> bool:
        section = v.KIND_SECTION[kind]
        declared = self.product.resources.get(kind, {})
        if name in declared:
            return True
        offset = 0 if path[-1] != "event" else None
        other = [k for k, items in self.product.resources.items() if name in items and k != kind]
        if other:
            hint = f"'{name}' is declared under {v.KIND_SECTION[other[0]]}:, not {section}:"
        else:
            hint = did_you_mean(name, declared) or f"{section} declared: {known(declared)}"
        self.fail(path, f"unknown {v.NOUN[kind]} '{name}'", hint, offset=offset,
                  length=len(name))
        return False

    def _event(self, path: DataPath, call: v.Call, resource: str, event: str) -> None:
        definition = self.product.resources[call.kind][resource]
        block = "actions" if call.event == "action" else "events"
        events = definition.get(block) or {}
        if not isinstance(events, dict):
            return
        if event not in events:
            word = "action" if block == "actions" else "event"
            self.fail(path, f"unknown {word} '{event}' for {v.NOUN[call.kind]} '{resource}'",
                      did_you_mean(event, events) or f"declared: {known(events)}",
                      length=len(event))
            return
        spec = events[event]
        fields = v.CHANNEL_FIELDS.get(call.method) if call.kind == "notification" else None
        if fields and isinstance(spec, dict) and not any(f in spec for f in fields):
            self.fail(path, f"event '{event}' of notification '{resource}' has no "
                      f"{call.method} template", f"give it {' / '.join(fields)}, or use "
                      "another event", length=len(event))
        if call.kind == "database" and isinstance(spec, dict) and isinstance(spec.get("op"), str):
            want = _DB_OPS.get(call.method)
            if want and spec["op"] != want:
                right = next((k for k, op in _DB_OPS.items() if op == spec["op"]), spec["op"])
                self.fail(path, f"event '{event}' of database '{resource}' does "
                          f"'{spec['op']}', not '{want}'", f"call it with database.{right}",
                          length=len(event))

    def _topic(self, path: DataPath, broker: str, topic: str, offset: int = 0) -> None:
        topics = self.product.resources["broker"][broker].get("topics")
        if isinstance(topics, dict) and topic not in topics:
            self.fail(path, f"unknown topic '{topic}' for broker '{broker}'",
                      did_you_mean(topic, topics) or f"declared: {known(topics)}",
                      offset=offset, length=len(topic))

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
            self.fail((*path, "items"), "items must be a list or one ${...} expression")
        items = self.exprs.tree((*path, "items"), items_raw, scope)
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


def compile_workflow(doc: Document, product: p.ProductSpec, *,
                     workflows: frozenset[str] | set[str] = frozenset(),
                     expected_tag: str | None = None) -> tuple[p.WorkflowPlan | None,
                                                               list[Diagnostic]]:
    """Compile one loaded workflow file; returns the plan (None on errors) and diagnostics."""
    c = WorkflowCompiler(doc, product, frozenset(workflows), expected_tag)
    plan = c.compile()
    return plan, sorted(c.diagnostics, key=lambda d: (d.line, d.col))


def compile(doc: Document, product: p.ProductSpec, **kw: Any) -> p.WorkflowPlan:
    """Compile one workflow document or raise CompileError with every diagnostic."""
    plan, diagnostics = compile_workflow(doc, product, **kw)
    if diagnostics or plan is None:
        raise CompileError(sorted(diagnostics, key=lambda d: (d.path, d.line, d.col)))
    return plan


def tag_of(path: str | Path) -> str:
    return Path(path).name.removesuffix(".yaml").removesuffix(".yml")
