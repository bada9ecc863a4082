"""Compiling `${...}` leaves of a YAML value and checking what their expressions refer to."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ductwork.dsl.diagnostics import did_you_mean, known
from ductwork.dsl.expr import expressions
from ductwork.dsl.loader import DataPath
from ductwork.dsl.plan import Dynamic, ValueTree
from ductwork.dsl.vocabulary import CTX_FIELDS, ERROR_FIELDS
from ductwork.errors import ExpressionError

# The diagnostic is placed at the column already, so the expression's own "at column N" goes.
_COLUMN_NOTE = re.compile(r"\s*\((?:the '\$\{' is )?at column \d+\)| at column \d+")

# The roots a workflow file can use anywhere (`error` only inside a `catch:`, checked apart).
ROOTS = frozenset(expressions.ROOTS) - {"error"}

# fail(path, offset_in_string, message, hint, length)
Reporter = Callable[[DataPath, int | None, str, str | None, int], None]


@dataclass(frozen=True)
class TagInfo:
    """Where a step tag is defined and which containers enclose it."""

    path: DataPath
    line: int
    order: int  # document order
    foreach: tuple[tuple[DataPath, str | None], ...]  # enclosing foreach steps (path, tag)
    branches: tuple[tuple[DataPath, int], ...]  # enclosing (parallel step path, branch index)


@dataclass(frozen=True)
class Scope:
    """What an expression may read at one point of the workflow."""

    visible: frozenset[str] = frozenset()  # step tags whose results are addressable
    loop_names: frozenset[str] = frozenset()  # item, index, and `as:` aliases
    in_rollback: bool = False
    current: str | None = None  # the step being compiled
    foreach: tuple[DataPath, ...] = ()  # enclosing foreach step paths
    branches: tuple[tuple[DataPath, int], ...] = ()


@dataclass
class ExprChecker:
    report: Reporter
    tags: dict[str, TagInfo] = field(default_factory=dict)
    input_schema: dict[str, Any] | None = None

    # -- values ---------------------------------------------------------------------------

    def tree(self, path: DataPath, raw: Any, scope: Scope) -> ValueTree:
        """Compile every `${...}` string inside `raw`; constants stay as they are."""
        node, constant = self._node(path, raw, scope)
        return ValueTree(node, constant)

    def _node(self, path: DataPath, raw: Any, scope: Scope) -> tuple[Any, bool]:
        if isinstance(raw, str):
            if "${" not in raw:
                return raw, True
            leaf = self.leaf(path, raw, scope)
            return (leaf, False) if leaf is not None else (raw, True)
        if isinstance(raw, dict):
            out: dict[str, Any] = {}
            constant = True
            for k, v in raw.items():
                out[k], c = self._node((*path, k), v, scope)
                constant = constant and c
            return out, constant
        if isinstance(raw, list):
            items = []
            constant = True
            for i, v in enumerate(raw):
                item, c = self._node((*path, i), v, scope)
                items.append(item)
                constant = constant and c
            return items, constant
        return raw, True

    def leaf(self, path: DataPath, text: str, scope: Scope) -> Dynamic | None:
        try:
            value = expressions.compile_value(text)
        except ExpressionError as e:
            offset = (e.column - 1) if e.column else None
            message, _, hint = _COLUMN_NOTE.sub("", str(e)).partition("; did you mean ")
            self.report(path, offset, f"bad expression: {message}",
                        f"did you mean {hint}" if hint else None, 1)
            return None
        if value.is_constant:
            return None
        for expr, offset in value.expressions():
            self.check(path, expr, offset, scope)
        return Dynamic(value, text)

    @staticmethod
    def is_whole(text: Any) -> bool:
        """True when `text` is one `${...}` expression and nothing else (so it keeps its type)."""
        if not isinstance(text, str):
            return False
        s = text.strip()
        if not (s.startswith("${") and s.endswith("}")):
            return False
        try:
            exprs = expressions.compile_value(text).expressions()
        except ExpressionError:
            return True  # reported elsewhere
        return len(exprs) == 1

    # -- references -----------------------------------------------------------------------

    def check(self, path: DataPath, expr: Any, offset: int, scope: Scope) -> None:
        def at(column: int) -> int:
            return offset + column - 1

        refs = expr.references()
        # problems() also knows each function's arity; roots are checked below, with context.
        for problem in expr.problems(roots=frozenset(r.root for r in refs)):
            message, _, hint = str(problem).partition("; did you mean ")
            self.report(path, at(problem.column or 1), message,
                        f"did you mean {hint}" if hint else None, 1)
        for ref in refs:
            self._reference(path, ref, at, scope)

    def _reference(self, path: DataPath, ref: Any, at: Callable[[int], int], scope: Scope) -> None:
        root = ref.root
        cols = tuple(getattr(ref, "columns", ()) or ())

        def seg(i: int) -> int:
            return at(cols[i]) if i < len(cols) else at(ref.column)

        if root == "error":
            self._error_ref(path, ref, at(ref.column), seg, scope)
            return
        if root in scope.loop_names:
            return
        if root in ("item", "index"):
            self.report(path, at(ref.column), f"'{root}' is only defined inside a foreach", None,
                        len(root))
            return
        if root == "result":
            if not scope.in_rollback:
                self.report(path, at(ref.column), "'result' is only defined in a rollback",
                            "it is the result of the step being rolled back; elsewhere read "
                            "steps.<tag>", 6)
            return
        if root not in ROOTS:
            names = set(ROOTS) - {"item", "index", "result"}
            names |= scope.loop_names | ({"result"} if scope.in_rollback else set())
            hint = (f"did you mean 'ctx.{root}'?" if root in CTX_FIELDS
                    else did_you_mean(root, names) or f"expressions start with {known(names)}")
            self.report(path, at(ref.column), f"unknown name '{root}'", hint, len(root))
            return
        if root == "steps" and ref.path and isinstance(ref.path[0], str):
            self._step_ref(path, ref.path[0], seg(0), scope)
        elif root == "ctx" and ref.path and isinstance(ref.path[0], str):
            field_name = ref.path[0]
            if field_name not in CTX_FIELDS:
                self.report(path, seg(0), f"unknown ctx field '{field_name}'",
                            did_you_mean(field_name, CTX_FIELDS) or f"known: {known(CTX_FIELDS)}",
                            len(field_name))
            elif field_name == "input":
                self._input_ref(path, ref.path[1:], [seg(i) for i in range(1, len(ref.path))])

    def _error_ref(self, path: DataPath, ref: Any, offset: int, seg: Callable[[int], int],
                   scope: Scope) -> None:
        if "error" not in scope.loop_names:
            self.report(path, offset, "'error' is only defined inside a catch",
                        "it is the error of the step that failed: read it in the steps of "
                        "that step's 'catch:'", 5)
            return
        field_name = ref.path[0] if ref.path else None
        if isinstance(field_name, str) and field_name not in ERROR_FIELDS:
            self.report(path, seg(0), f"'error' has no field '{field_name}'",
                        did_you_mean(field_name, ERROR_FIELDS) or f"known: {known(ERROR_FIELDS)}",
                        len(field_name))

    def _input_ref(self, path: DataPath, fields: tuple[Any, ...], offsets: list[int]) -> None:
        schema = self.input_schema
        trail = "ctx.input"
        for i, name in enumerate(fields):
            if not isinstance(schema, dict) or not isinstance(name, str):
                return
            props = schema.get("properties")
            extra = schema.get("additionalProperties", None)
            if not isinstance(props, dict) or extra not in (None, False):
                return
            if name not in props:
                hint = did_you_mean(name, props) or f"declared: {known(props)}"
                head, dash, _ = name.partition("-")
                if dash and head in props:
                    hint = f"'{name}' is one field name; to subtract, put spaces around '-'"
                self.report(path, offsets[i], f"{trail} has no field '{name}' in the input "
                            "schema", hint, len(name))
                return
            schema = props[name]
            trail += f".{name}"

    def _step_ref(self, path: DataPath, tag: str, offset: int, scope: Scope) -> None:
        if tag in scope.visible:
            return
        info = self.tags.get(tag)
        n = len(tag)
        if info is None:
            hint = did_you_mean(tag, self.tags)
            self.report(path, offset, f"unknown step '{tag}'", hint, n)
            return
        if tag == scope.current:
            self.report(path, offset, f"step '{tag}' cannot read its own result",
                        "a rollback reads it as 'result'", n)
            return
        for fpath, ftag in info.foreach:
            if fpath not in scope.foreach:
                how = (f"read steps.{ftag} after it (one entry per item)" if ftag
                       else "tag the foreach and read steps.<tag> after it")
                self.report(path, offset, f"step '{tag}' runs inside a foreach", how, n)
                return
        for ppath, branch in info.branches:
            for spath, sbranch in scope.branches:
                if spath == ppath and sbranch != branch:
                    self.report(path, offset, f"step '{tag}' runs in another parallel branch",
                                "branches run concurrently; read it after the parallel", n)
                    return
        self.report(path, offset, f"step '{tag}' is used before it runs",
                    f"it is defined on line {info.line}; move it earlier", n)
