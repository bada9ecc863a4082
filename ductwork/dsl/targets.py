"""`python:` targets of a workflow imported, and their parameters checked against `args:`."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ductwork.connectors.checks import Runtime
from ductwork.dsl.compiler.arguments import static_value
from ductwork.dsl.compiler.flow import walk
from ductwork.dsl.diagnostics import Diagnostic, did_you_mean
from ductwork.dsl.loader import DataPath, Document
from ductwork.util.suggest import suggest

_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_NO_IMPORT = "python: modules are imported from the folder that holds the product folder, " \
             "the working directory or the installed packages; put the module there, or " \
             "pass --no-import"


class Targets:
    """Imports each module once per validate run; what importing it said, if it failed."""

    def __init__(self) -> None:
        self._modules: dict[str, Any] = {}

    def module(self, name: str) -> tuple[Any, str | None]:
        if name not in self._modules:
            try:
                self._modules[name] = importlib.import_module(name)
            # Importing runs the user's code: whatever it raises (even SystemExit) is the
            # finding, never a traceback out of validate.
            except (Exception, SystemExit) as e:
                self._modules[name] = f"cannot import '{name}': {type(e).__name__}: {e}"
        found = self._modules[name]
        return (None, found) if isinstance(found, str) else (found, None)

    def problems(self, doc: Document) -> list[Diagnostic]:
        """Every python: body of the document (steps and rollbacks), checked."""
        out: list[Diagnostic] = []
        report = _Reporter(doc, out)
        schema = doc.data.get("input") if isinstance(doc.data, dict) else None
        for site in walk(doc.data):
            for path, body in ((site.path, site.step), *_rollbacks(site.path, site.step)):
                if isinstance(body, dict) and isinstance(body.get("python"), str):
                    self._check(report, path, body["python"], body, schema)
        return out

    def _check(self, report: _Reporter, path: DataPath, target: str, body: dict[str, Any],
               schema: Any) -> None:
        module_name, sep, name = target.partition(":")
        if not sep or not module_name or not name:
            return  # the schema reports a malformed target
        at = (*path, "python")
        module, failed = self.module(module_name)
        if failed:
            report(at, failed, _NO_IMPORT)
            return
        fn = getattr(module, name, None)
        if fn is None:
            names = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
            report(at, f"module '{module_name}' has no function '{name}'",
                   did_you_mean(name, names) or f"its functions: {', '.join(sorted(names)[:12])}"
                   if names else None)
            return
        if not callable(fn):
            report(at, f"'{target}' is not a function (it is {type(fn).__name__})")
            return
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return  # a builtin without a signature: nothing to compare
        _parameters(report, path, name, sig, body, schema if isinstance(schema, dict) else None)


def _parameters(report: _Reporter, path: DataPath, name: str, sig: inspect.Signature,
                body: dict[str, Any], schema: dict[str, Any] | None) -> None:
    """fn(ctx, **args): a first positional parameter for ctx, and args matching the rest."""
    params = list(sig.parameters.values())
    star_args = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params)
    star_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    positional = [p for p in params if p.kind in _POSITIONAL]
    at = (*path, "python")
    if not positional and not star_args:
        report(at, f"{name}() takes no ctx, but it is called as {name}(ctx, **args)",
               f"make ctx its first parameter: def {name}(ctx, ...)")
        return
    ctx_name = positional[0].name if positional else None
    rest = [p for p in params if p.name != ctx_name and p.kind in _KEYWORD]
    for p in params[1:]:
        if p.kind is inspect.Parameter.POSITIONAL_ONLY and p.default is p.empty:
            report(at, f"{name}() parameter '{p.name}' is positional-only: args cannot give it",
                   "make it a keyword parameter (drop the '/' before it)")
            return
    raw = body.get("args")
    given = _given(raw, schema)
    if given is None:
        return  # args is an expression: only the run knows its keys
    names = given
    accepted = {p.name for p in rest}
    meant: set[str] = set()  # parameters an unknown argument is a misspelling of
    if isinstance(raw, dict):
        for key in raw:
            if key == ctx_name:
                report((*path, "args", key), f"'{key}' is {name}()'s ctx parameter, which "
                       "ductwork passes", "rename the argument or the parameter", key=True)
            elif key not in accepted and not star_kwargs:
                close = suggest(key, accepted)
                meant.add(close or "")
                report((*path, "args", key), f"{name}() has no parameter '{key}'",
                       f"did you mean '{close}'?" if close else (
                           f"it takes {', '.join(sorted(accepted))}" if accepted
                           else f"it takes only ctx: def {name}(ctx)"), key=True)
    for p in rest:
        # A misspelt argument was reported with the right name: once is enough.
        if p.default is p.empty and p.name not in names and p.name not in meant:
            where = (*path, "args") if "args" in body else at
            report(where, f"{name}() needs '{p.name}', which args does not give",
                   f"add {p.name}: ... to args", key="args" in body)


def _given(raw: Any, schema: dict[str, Any] | None) -> frozenset[str] | None:
    """The keys args can have, or None when only the run knows them."""
    if raw is None:
        return frozenset()
    value = static_value(raw, schema)
    if isinstance(value, dict):
        return frozenset(str(k) for k in value)
    if isinstance(value, Runtime) and value.possibly is not None:
        return value.possibly
    return None


class _Reporter:
    def __init__(self, doc: Document, out: list[Diagnostic]) -> None:
        self.doc, self.out = doc, out

    def __call__(self, path: DataPath, message: str, hint: str | None = None, *,
                 key: bool = False) -> None:
        line, col = self.doc.locate(path, key=key)
        length = len(str(path[-1])) if key else self.doc.width(path)
        self.out.append(Diagnostic(self.doc.path, line, col, message, hint,
                                   self.doc.source_line(line), length))


def _rollbacks(path: DataPath, step: dict[str, Any]) -> list[tuple[DataPath, Any]]:
    """A step's rollback bodies with their paths: one mapping, or each entry of a list."""
    rollback = step.get("rollback")
    if isinstance(rollback, list):
        return [((*path, "rollback", i), body) for i, body in enumerate(rollback)]
    return [((*path, "rollback"), rollback)]
