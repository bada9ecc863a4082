"""Flow checks of a whole workflow: rollback strategies with nothing to act on, catch handlers
and switch cases that can never run, waits and sleeps the run's timeout cuts short, signals
waited on but never declared; and child workflows that start each other in a circle."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from ductwork.dsl import vocabulary as v
from ductwork.dsl.compiler.base import CompilerBase
from ductwork.dsl.diagnostics import ERROR, WARNING, Diagnostic, did_you_mean
from ductwork.dsl.expr import expressions
from ductwork.dsl.expr import nodes as ast
from ductwork.dsl.loader import DataPath, Document
from ductwork.errors import ExpressionError
from ductwork.util.durations import parse_ms

# What a catch reads as error.type (interpreter/plan_runner.describe_error).
ERROR_TYPES = ("StepError", "StepTimeoutError", "SignalTimeoutError", "ChildWorkflowError",
               "ConnectorError")


@dataclass(frozen=True)
class Site:
    """One step of a workflow document, wherever it is nested."""

    path: DataPath
    step: dict[str, Any]
    # It may not run in every run: under an `if`, a switch branch, a catch or a foreach
    # (whose items may be none).
    guarded: bool


def walk(data: Any) -> Iterator[Site]:
    """Every step of a workflow document in document order, nested ones included."""
    if isinstance(data, dict):
        yield from _steps(data.get("steps"), ("steps",), False)


def _steps(raw: Any, path: DataPath, guarded: bool) -> Iterator[Site]:
    if not isinstance(raw, list):
        return
    for i, step in enumerate(raw):
        if not isinstance(step, dict):
            continue
        spath = (*path, i)
        here = guarded or "if" in step
        yield Site(spath, step, here)
        body = step.get("foreach")
        if isinstance(body, dict):
            yield from _steps(body.get("steps"), (*spath, "foreach", "steps"), True)
        body = step.get("parallel")
        if isinstance(body, list):
            for b, branch in enumerate(body):
                if isinstance(branch, dict):
                    yield from _steps(branch.get("steps"), (*spath, "parallel", b, "steps"),
                                      here)
        body = step.get("switch")
        if isinstance(body, dict):
            cases = body.get("cases")
            for c, case in enumerate(cases if isinstance(cases, list) else []):
                if isinstance(case, dict):
                    yield from _steps(case.get("steps"), (*spath, "switch", "cases", c, "steps"),
                                      True)
            yield from _steps(body.get("default"), (*spath, "switch", "default"), True)
        handlers = step.get("catch")
        for h, handler in enumerate(handlers if isinstance(handlers, list) else []):
            if isinstance(handler, dict):
                yield from _steps(handler.get("steps"), (*spath, "catch", h, "steps"), True)


def check_flow(c: CompilerBase) -> None:
    """Report what the flow of `c.doc` makes impossible or pointless."""
    data = c.doc.data
    if not isinstance(data, dict):
        return
    sites = list(walk(data))
    _checkpoints(c, data, sites)
    _quoted_numbers(c, data, sites)
    _critical_only(c, data, sites)
    _run_timeout(c, data, sites)
    _stored_secrets(c, data, sites)
    _expression_keys(c, data, ())
    _child_ids_in_loops(c, data, sites)
    for site in sites:
        handlers = site.step.get("catch")
        if isinstance(handlers, list):
            _never_run(c, (*site.path, "catch"), handlers, "handler", catch_all_ok=True)
            _error_types(c, site, handlers)
        switch = site.step.get("switch")
        if isinstance(switch, dict) and isinstance(switch.get("cases"), list):
            _never_run(c, (*site.path, "switch", "cases"), switch["cases"], "case",
                       catch_all_ok=False)
    if "signals" not in data:
        _undeclared_signals(c, sites)


# Values the run store keeps in plain text, each with what the message calls it.
_STORED = (("set",), "its state"), (("return",), "its output"), \
    (("trigger_rollback", "output"), "its output"), (("checkpoint", "metadata"), "a checkpoint"), \
    (("workflow", "input"), "the child run's input")


def _stored_secrets(c: CompilerBase, data: dict[str, Any], sites: list[Site]) -> None:
    """env.* and secrets.* are redacted from logs and errors, but a value the run stores
    (output, state, a checkpoint, a child's input) would keep the secret in plain text."""
    places: list[tuple[DataPath, Any, str]] = [(("output",), data.get("output"), "its output")]
    for site in sites:
        for sub, what in _STORED:
            value: Any = site.step
            for key in sub:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None:
                places.append(((*site.path, *sub), value, what))
    for path, value, what in places:
        for spath, text in _dollar_strings(path, value):
            try:
                sites_ = expressions.compile_value(text).expressions()
            except ExpressionError:
                continue  # the expression checker reports it
            for expr, offset in sites_:
                for ref in expr.references():
                    if ref.root in ("env", "secrets") and ref.path:
                        name = f"{ref.root}.{ref.path[0]}"
                        c.fail(spath, f"{name} would be stored with the run ({what}) in plain "
                               "text", "secrets never reach the run store: pass it only to "
                               "the call that needs it (a connector's config or arguments)",
                               offset=offset + ref.column - 1, length=len(name))


def _child_ids_in_loops(c: CompilerBase, data: dict[str, Any], sites: list[Site]) -> None:
    """A child `workflow:` step inside a foreach whose `id:` is the same for every item: the
    id is an idempotency key, so only the first item's child runs and every other item gets
    its result back."""
    for site in sites:
        body = site.step.get("workflow")
        if not isinstance(body, dict) or "id" not in body or "foreach" not in site.path:
            continue
        names = {"item", "index"}
        for k, part in enumerate(site.path):
            loop = _value_at(data, site.path[:k]) if part == "foreach" else None
            if isinstance(loop, dict) and isinstance(loop.get("foreach"), dict) \
                    and isinstance(loop["foreach"].get("as"), str):
                names.add(loop["foreach"]["as"])
        text = body["id"]
        if isinstance(text, str) and "${" in text:
            try:
                exprs = [e for e, _ in expressions.compile_value(text).expressions()]
            except ExpressionError:
                continue  # the expression checker reports it
            if any(r.root in names for e in exprs for r in e.references()) \
                    or any(ast.calls(e.node) for e in exprs):
                continue
        c.fail((*site.path, "workflow", "id"), "this child id is the same for every item of "
               "the foreach: it is an idempotency key, so only the first item's child runs and "
               "the others get its result", "make it differ per item, e.g. id: "
               "\"${ctx.workflow_id}-${index}\", or leave id out (each item's child then "
               "gets its own)")


def _value_at(data: Any, path: DataPath) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def _expression_keys(c: CompilerBase, value: Any, path: DataPath) -> None:
    """A `${...}` written as a map key is never evaluated: the key goes out as that text."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            _expression_keys(c, item, (*path, i))
    if not isinstance(value, dict):
        return
    for key, item in value.items():
        if isinstance(key, str) and "${" in key and path[-1:] != ("set",):  # set: says its own
            c.fail((*path, key), f"'{key}' is a map key, and keys are never evaluated: it is "
                   "used as this text", "write the key out; for a key chosen at run time, build "
                   "the map in a python: step", key=True)
        _expression_keys(c, item, (*path, key))


def _dollar_strings(path: DataPath, value: Any) -> Iterator[tuple[DataPath, str]]:
    if isinstance(value, str):
        if "${" in value:
            yield path, value
    elif isinstance(value, dict):
        for k, item in value.items():
            yield from _dollar_strings((*path, k), item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _dollar_strings((*path, i), item)


def _checkpoints(c: CompilerBase, data: dict[str, Any], sites: list[Site]) -> None:
    options = data.get("options")
    if not isinstance(options, dict) or options.get("rollback_strategy") != "to_checkpoint":
        return
    if any("checkpoint" in s.step for s in sites):
        return
    undone = [s for s in sites if isinstance(s.step.get("rollback"), dict)]
    if not undone:
        return
    first = undone[0].step.get("tag")
    c.fail(("options", "rollback_strategy"),
           "rollback_strategy 'to_checkpoint' but the workflow has no checkpoint step",
           f"with no checkpoint every rollback runs (from '{first}' on), as with reverse_all: "
           "add '- checkpoint: {name: <name>}' after the steps that must stay done, or write "
           "reverse_all")


def _quoted_numbers(c: CompilerBase, data: dict[str, Any], sites: list[Site]) -> None:
    """`sleep: "30"` is 30 ms like `sleep: 30`; the schema check flags the bare number, this
    the same number in quotes (a duration place only: elsewhere "30" is plain text)."""
    places: list[DataPath] = [("options", "timeout")]
    for site in sites:
        places += [(*site.path, "sleep"), (*site.path, "timeout"),
                   (*site.path, "retry_delay"), (*site.path, "wait_for_signal", "timeout"),
                   (*site.path, "workflow", "timeout"), (*site.path, "action.run", "timeout")]
    for path in places:
        value = _value_at(data, path)
        if isinstance(value, str) and value.strip().isdigit() and 0 < int(value) < 100:
            key = str(path[-1])
            c.fail(path, f"'{key}: \"{value}\"' means {int(value)} milliseconds",
                   f"a number without a unit is milliseconds: write {key}: {int(value)}s if you "
                   f"meant seconds, or {key}: {int(value)}ms to keep milliseconds")


def _critical_only(c: CompilerBase, data: dict[str, Any], sites: list[Site]) -> None:
    options = data.get("options")
    if not isinstance(options, dict) or options.get("rollback_strategy") != "critical_only":
        return
    undone = [s for s in sites if isinstance(s.step.get("rollback"), dict)]
    if undone and not any(s.step.get("critical") is True for s in sites):
        c.fail(("options", "rollback_strategy"),
               "rollback_strategy 'critical_only' but no step is critical: no rollback ever runs",
               f"mark the steps whose rollback must run with critical: true (e.g. "
               f"'{undone[0].step.get('tag')}'), or write reverse_all")


def _run_timeout(c: CompilerBase, data: dict[str, Any], sites: list[Site]) -> None:
    """A sleep as long as the run's whole timeout surely ends the run; a wait whose own
    timeout is longer is cut short by it."""
    options = data.get("options")
    limit_raw = options.get("timeout") if isinstance(options, dict) else None
    limit = parse_ms(limit_raw)
    if not limit:
        return
    for site in sites:
        sleep = site.step.get("sleep")
        if sleep is not None and (ms := parse_ms(sleep)) is not None and ms >= limit:
            c.fail((*site.path, "sleep"), f"this sleep ({sleep}) outlasts the run's timeout "
                   f"({limit_raw}): the run times out while it sleeps",
                   f"raise options.timeout above {sleep}, or sleep less")
        wait = site.step.get("wait_for_signal")
        timeout = wait.get("timeout") if isinstance(wait, dict) else None
        if timeout is not None and (ms := parse_ms(timeout)) is not None and ms > limit:
            c.fail((*site.path, "wait_for_signal", "timeout"), f"the run's timeout "
                   f"({limit_raw}) ends it before this wait's timeout ({timeout})",
                   f"a signal later than {limit_raw} fails the whole run, not the wait: raise "
                   f"options.timeout, or wait at most {limit_raw}")
            c.diagnostics[-1] = replace(c.diagnostics[-1], severity=WARNING)


def _error_types(c: CompilerBase, site: Site, handlers: list[Any]) -> None:
    """`error.type == 'X'` where this step never fails with X: that handler never runs."""
    body = next((b for b in v.BODIES if b in site.step), None)
    if body == "wait_for_signal":
        wait = site.step.get("wait_for_signal")
        if isinstance(wait, dict) and wait.get("timeout") is None:
            c.fail((*site.path, "catch"), "a wait_for_signal without a timeout never fails, "
                   "so its catch never runs", "give the wait a timeout: wait_for_signal: "
                   "{name: ..., timeout: 2d}; the handlers then see SignalTimeoutError",
                   key=True)
            return
    possible = _possible_types(body, site.step)
    for h, handler in enumerate(handlers):
        cond = handler.get("if") if isinstance(handler, dict) else None
        if not isinstance(cond, str) or "error" not in cond:
            continue
        for name, offset in _compared_types(cond):
            where = (*site.path, "catch", h, "if")
            # An unknown name is the expression checker's (error.type is never 'X').
            if name not in ERROR_TYPES:
                continue
            if possible is not None and name not in possible:
                why = {"SignalTimeoutError": "only a wait_for_signal with a timeout raises it",
                       "StepTimeoutError": "only a step with a 'timeout:' raises it",
                       "ChildWorkflowError": "only a workflow step raises it",
                       "ConnectorError": "only calls (and python code that makes them) raise it",
                       }.get(name, "")
                c.fail(where, f"this {body} step never fails with {name}, so this handler "
                       "never runs", f"{why}; this step's errors: {', '.join(sorted(possible))}",
                       offset=offset, length=len(name) + 2)


def _possible_types(body: str | None, step: dict[str, Any]) -> set[str] | None:
    timeout = {"StepTimeoutError"} if "timeout" in step else set()
    if body == "wait_for_signal":
        return {"SignalTimeoutError"}
    if body == "workflow":
        return {"ChildWorkflowError", "StepError", "StepTimeoutError"}
    if body in v.CALLS or body == "python":
        return {"StepError", "ConnectorError"} | timeout
    return None


def _compared_types(cond: str) -> list[tuple[str, int]]:
    """(type name, offset of its quote in `cond`) of each `error.type == '<name>'`."""
    try:
        found = expressions.compile_value(cond).expressions()
    except ExpressionError:
        return []  # the expression checker reports it
    out: list[tuple[str, int]] = []
    for expr, offset in found:
        stack: list[ast.Node] = [expr.node]
        while stack:
            node = stack.pop()
            stack.extend(node.children())
            if not isinstance(node, ast.Compare) or node.op != "==":
                continue
            for path_side, other in ((node.left, node.right), (node.right, node.left)):
                read = ast.path_of(path_side)
                if read is not None and read[:2] == ("error", ("type",)) \
                        and isinstance(other, ast.Const) and isinstance(other.value, str):
                    out.append((other.value, offset + other.pos))
    return out


def _condition(raw: Any) -> str | None:
    """A condition's text for comparing two of them (spaces and the ${...} wrapper dropped)."""
    if isinstance(raw, bool):
        return str(raw).lower()
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1]
    return re.sub(r"\s+", "", text)


def _never_run(c: CompilerBase, path: DataPath, items: list[Any], noun: str, *,
               catch_all_ok: bool) -> None:
    """A handler (or case) after one that takes every error, or with a condition seen
    before, or with `if: false`, is never chosen: the first that matches wins."""
    seen: dict[str, int] = {}
    catch_all: int | None = None
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        line, _ = c.doc.locate((*path, i))
        has_if = "if" in item
        cond = _condition(item.get("if")) if has_if else "true"
        where = (*path, i, "if") if has_if else (*path, i)
        if catch_all is not None:
            if noun == "handler":
                c.fail(where, f"this handler never runs: the handler on line {catch_all} "
                       "catches every error first", "the first matching handler wins: move "
                       "the one without a condition last", key=not has_if)
            else:
                c.fail(where, f"this case never runs: the case on line {catch_all} always "
                       "matches first", "write the fallback as the switch's default:")
            continue
        if cond is None:
            continue
        if cond == "false":
            c.fail(where, f"this {noun} never runs: its condition is false",
                   f"remove the {noun}, or give it a real condition")
        elif cond in seen:
            c.fail(where, f"this {noun} never runs: the {noun} on line {seen[cond]} has the "
                   "same condition", f"the first matching {noun} wins: merge their steps, or "
                   "change one of the conditions")
        else:
            seen[cond] = line
        if cond == "true" and (catch_all_ok or has_if):
            catch_all = line


def _undeclared_signals(c: CompilerBase, sites: list[Site]) -> None:
    """Without `signals:` the run accepts any signal: a typo in a name is found when the
    signal never comes. Declaring them lets validate and the sender check names."""
    for site in sites:
        wait = site.step.get("wait_for_signal")
        if not isinstance(wait, dict):
            continue
        names = wait.get("name")
        listed = [(names, ("name",))] if isinstance(names, str) else [
            (n, ("name", i)) for i, n in enumerate(names)] if isinstance(names, list) else []
        for name, sub in listed:
            if isinstance(name, str):
                c.fail((*site.path, "wait_for_signal", *sub),
                       f"signal '{name}' is not declared (the workflow has no signals:)",
                       f"declare what the run waits for: signals: {{{name}: {{type: object}}}}; "
                       "then senders and waits are checked against it")
                # A warning: without signals: the run accepts any name, so it works as is.
                c.diagnostics[-1] = replace(c.diagnostics[-1], severity=WARNING)


# -- across the workflows of a product ----------------------------------------------------------


@dataclass(frozen=True)
class _Edge:
    parent: str
    child: str
    path: DataPath  # the `tag` of the workflow: body
    guarded: bool


def child_cycles(docs: dict[str, Document]) -> list[Diagnostic]:
    """Child workflows that call each other in a circle (A -> B -> A, or A -> A): each run
    starts the next without end. One diagnostic on every call that closes a circle; a
    warning when a condition, a branch or a loop may stop it."""
    edges: dict[str, list[_Edge]] = {}
    for tag, doc in docs.items():
        for site in walk(doc.data):
            body = site.step.get("workflow")
            child = body.get("tag") if isinstance(body, dict) else None
            if isinstance(child, str) and child in docs:
                edges.setdefault(tag, []).append(
                    _Edge(tag, child, (*site.path, "workflow", "tag"), site.guarded))
    out: list[Diagnostic] = []
    for tag in sorted(edges):
        for edge in edges[tag]:
            back = _path(edges, edge.child, tag)
            if back is None:
                continue
            circle = [edge, *back]
            names = " -> ".join([tag, *(e.child for e in circle)])
            guarded = any(e.guarded for e in circle)
            doc = docs[tag]
            line, col = doc.locate(edge.path)
            if edge.child == tag:
                message = f"workflow '{tag}' starts itself as a child"
            else:
                message = f"workflow '{tag}' starts '{edge.child}', which starts '{tag}' " \
                          f"again: {names}"
            hint = ("a condition, branch or loop on the way must end it; check that it does"
                    if guarded else "every run starts the next without end: break the circle "
                    "(move the shared steps into a workflow that calls neither)")
            out.append(Diagnostic(doc.path, line, col, message, hint, doc.source_line(line),
                                  doc.width(edge.path), WARNING if guarded else ERROR))
    return out


def _path(edges: dict[str, list[_Edge]], start: str, goal: str) -> list[_Edge] | None:
    """The shortest chain of calls from `start` to `goal` (breadth first), or None."""
    if start == goal:
        return []
    seen = {start}
    queue: list[tuple[str, list[_Edge]]] = [(start, [])]
    while queue:
        node, chain = queue.pop(0)
        for e in edges.get(node, ()):
            if e.child == goal:
                return [*chain, e]
            if e.child not in seen:
                seen.add(e.child)
                queue.append((e.child, [*chain, e]))
    return None


def child_inputs(docs: dict[str, Document]) -> list[Diagnostic]:
    """A child `workflow:` step whose written input lacks a field the child's input schema
    requires (and has no default for), or names a field the child does not declare: the child
    run would be refused, or read a field that is not there, when the step runs."""
    out: list[Diagnostic] = []
    for doc in docs.values():
        for site in walk(doc.data):
            body = site.step.get("workflow")
            child = body.get("tag") if isinstance(body, dict) else None
            if not isinstance(child, str) or child not in docs or not isinstance(body, dict):
                continue
            schema = docs[child].data.get("input") if isinstance(docs[child].data, dict) \
                else None
            given = body.get("input", {})
            if not isinstance(schema, dict) or not isinstance(given, dict):
                continue  # no schema, or an input built by an expression: known at run time
            raw_props, raw_required = schema.get("properties"), schema.get("required")
            props: dict[str, Any] = raw_props if isinstance(raw_props, dict) else {}
            required: list[Any] = raw_required if isinstance(raw_required, list) else []
            at: DataPath = (*site.path, "workflow", *(("input",) if "input" in body else ()))
            missing = [r for r in required if isinstance(r, str) and r not in given and not (
                isinstance(props.get(r), dict) and "default" in props[r])]
            for key in given:
                near = did_you_mean(str(key), [p for p in props if p not in given])
                if key in props or not props or not (
                        near or schema.get("additionalProperties") is False):
                    continue
                line, col = doc.locate((*at, key), key=True)
                out.append(Diagnostic(doc.path, line, col, f"workflow '{child}' has no input "
                                      f"field '{key}'", near or "its input fields: "
                                      + ", ".join(map(str, props)), doc.source_line(line),
                                      len(str(key))))
            if missing:
                line, col = doc.locate(at, key="input" not in body)
                names = ", ".join(f"'{m}'" for m in missing)
                out.append(Diagnostic(doc.path, line, col, f"workflow '{child}' requires input "
                                      f"{names}, which this step does not give",
                                      f"add {missing[0]}: ... to the child's input (its input "
                                      "schema requires it)", doc.source_line(line),
                                      doc.width(at)))
    return out
