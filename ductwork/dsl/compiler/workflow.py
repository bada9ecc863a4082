"""Workflow files -> WorkflowPlan: schema, then every semantic check, all errors collected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ductwork.dsl import plan as p
from ductwork.dsl import vocabulary as v
from ductwork.dsl.compiler.base import duration_ms
from ductwork.dsl.compiler.flow import check_flow
from ductwork.dsl.compiler.steps import StepCompiler
from ductwork.dsl.diagnostics import Diagnostic, did_you_mean, errors, known
from ductwork.dsl.expr import expressions
from ductwork.dsl.expr.checker import Scope, TagInfo
from ductwork.dsl.loader import DataPath, Document
from ductwork.dsl.schema import authored
from ductwork.dsl.schema import checker as schema_check
from ductwork.errors import CompileError, ExpressionError

# Why a query cannot read an app's values (env and secrets: the default hint).
_QUERY_HINTS = {
    "variables": "a query answers whoever asks, and a variable may hold a secret, which never "
                 "leaves the run: record what the query needs with 'set:' and read state.<key>",
    "constants": "a query answers from the run's recorded ctx, state and steps: record what "
                 "it needs with 'set:' and read state.<key>",
}


class WorkflowCompiler(StepCompiler):
    """Compiles one workflow document against its product. Use compile_workflow()."""

    # -- the workflow ------------------------------------------------------------------------

    def compile(self) -> p.WorkflowPlan | None:
        plan = self._compile()
        check_flow(self)
        # Where the compiler has a sharper word for the same spot than the schema, keep it.
        mine = {(d.line, d.col) for d in self.diagnostics}
        schema_diags = schema_check.check(self.doc, "workflow")
        self.diagnostics.extend(d for d in schema_diags if (d.line, d.col) not in mine)
        return None if errors(self.diagnostics) else plan

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
        queries = self._queries(data.get("queries"))
        if not isinstance(tag, str):
            return None
        return p.WorkflowPlan(
            product=self.product.name, tag=tag, name=str(data.get("name") or tag),
            description=str(data.get("description") or ""),
            input_schema=input_schema if isinstance(input_schema, dict) else None,
            options=options, signals=dict(signals) if isinstance(signals, dict) else {},
            envs=tuple(envs) if isinstance(envs, list) else None,
            steps=tuple(steps), output=output, path=self.doc.path, queries=queries,
        )

    def _check_input_schema(self, schema: dict[str, Any]) -> None:
        # The schema phase gives the signals' payload schemas the same check.
        self.diagnostics.extend(authored.check(self.doc, ("input",), schema))

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

    # -- queries -------------------------------------------------------------------------------

    def _queries(self, raw: Any) -> dict[str, p.ValueTree]:
        """`queries:` name -> value, answered from the run's persisted state while the handler
        is not running: ctx, state, and the recorded results of call and python steps."""
        if not isinstance(raw, dict):
            return {}
        unreadable = self._unreadable_steps()
        # Any step may have run by the time a query comes: none is "used before it runs".
        scope = Scope(visible=frozenset(self.exprs.tags))
        out: dict[str, p.ValueTree] = {}
        for name, value in raw.items():
            qpath: DataPath = ("queries", name)
            for spath, text in _strings(qpath, value):
                self._query_refs(spath, text, unreadable)
            out[str(name)] = self.exprs.tree(qpath, value, scope)
        return out

    def _query_refs(self, path: DataPath, text: str, unreadable: dict[str, str]) -> None:
        try:
            sites = expressions.compile_value(text).expressions()
        except ExpressionError:
            return  # the expression checker reports it
        for expr, offset in sites:
            for ref in expr.references():
                if ref.root in ("env", "secrets", "variables", "constants"):
                    self.fail(path, f"a query cannot read {ref.root}.*",
                              _QUERY_HINTS.get(ref.root, "a query answers whoever asks, "
                                               "and secrets never leave the run: read ctx, "
                                               "state or steps"),
                              offset=offset + ref.column - 1, length=len(ref.root))
                elif ref.root == "steps" and ref.path and str(ref.path[0]) in unreadable:
                    tag = str(ref.path[0])
                    col = ref.columns[0] if ref.columns else ref.column
                    self.fail(path, f"a query cannot read step '{tag}'", unreadable[tag],
                              offset=offset + col - 1, length=len(tag))

    def _unreadable_steps(self) -> dict[str, str]:
        """Tags whose result a query cannot read, with why: a query sees the recorded result
        of each call and python step, not what the plan assembles (loops, branches, waits)."""
        out: dict[str, str] = {}
        record = "record what you need with 'set:' and read state.<key>"
        for tag, info in self.exprs.tags.items():
            step = _at(self.doc.data, info.path)
            body = next((b for b in v.BODIES if isinstance(step, dict) and b in step), None)
            if info.foreach:
                out[tag] = f"it runs once per item of a foreach: {record}"
            elif body is not None and body not in v.CALLS and body != "python":
                out[tag] = (f"a query reads the results of call and python steps; a {body} "
                            f"step's is not recorded under its tag: {record}")
        return out

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


def _strings(path: DataPath, value: Any) -> list[tuple[DataPath, str]]:
    """Every string holding `${` inside a YAML value, with its path."""
    if isinstance(value, str):
        return [(path, value)] if "${" in value else []
    if isinstance(value, dict):
        return [s for k, item in value.items() for s in _strings((*path, k), item)]
    if isinstance(value, list):
        return [s for i, item in enumerate(value) for s in _strings((*path, i), item)]
    return []


def _at(data: Any, path: DataPath) -> Any:
    for part in path:
        found = part in data if isinstance(data, dict) else (
            isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data))
        if not found:
            return None
        data = data[part]
    return data


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
    if errors(diagnostics) or plan is None:
        raise CompileError(sorted(diagnostics, key=lambda d: (d.path, d.line, d.col)))
    return plan


def tag_of(path: str | Path) -> str:
    return Path(path).name.removesuffix(".yaml").removesuffix(".yml")
