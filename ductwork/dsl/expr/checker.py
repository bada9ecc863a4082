"""Compiling `${...}` leaves of a YAML value and checking what their expressions refer to."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from ductwork.dsl.diagnostics import did_you_mean, known
from ductwork.dsl.expr import expressions, habits, sources
from ductwork.dsl.expr import nodes as ast
from ductwork.dsl.expr import types as t
from ductwork.dsl.expr.functions import lookup
from ductwork.dsl.expr.infer import Infer
from ductwork.dsl.expr.runtime import render_key
from ductwork.dsl.loader import DataPath
from ductwork.dsl.plan import Dynamic, ProductSpec, ValueTree
from ductwork.dsl.vocabulary import CTX_FIELDS, ERROR_FIELDS, STEP_FIELDS
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
    document: Any = None  # the workflow file's data: where types and conditions come from
    product: ProductSpec | None = None
    _memo: dict[str, _Facts] = field(default_factory=dict, init=False, repr=False)

    # -- values ---------------------------------------------------------------------------

    def tree(self, path: DataPath, raw: Any, scope: Scope) -> ValueTree:
        """Compile every `${...}` string inside `raw`; constants stay as they are."""
        node, constant = self._node(path, raw, scope)
        return ValueTree(node, constant)

    def _node(self, path: DataPath, raw: Any, scope: Scope) -> tuple[Any, bool]:
        if isinstance(raw, str):
            if "${" not in raw:
                self._habit(path, raw)
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

    def _habit(self, path: DataPath, text: str) -> bool:
        """Report a template written for another engine ({{ x }}, $(x), ...); True if one."""
        found = habits.in_text(text, frozenset(self._aliases))
        if found is None:
            return False
        self.report(path, found.offset, found.message, found.hint, found.length)
        return True

    def leaf(self, path: DataPath, text: str, scope: Scope) -> Dynamic | None:
        if "${{" in text and self._habit(path, text):
            return None  # `${{ x }}`: the parse error would only repeat it
        try:
            value = expressions.compile_value(text)
        except ExpressionError as e:
            offset = (e.column - 1) if e.column else None
            message, _, hint = _COLUMN_NOTE.sub("", str(e)).partition("; did you mean ")
            better = habits.parse_error(text, offset) if offset is not None else None
            if better is not None:
                self.report(path, better[0], better[1], better[2], 1)
            else:
                self.report(path, offset, f"bad expression: {message}",
                            f"did you mean {hint}" if hint else _parse_hint(message), 1)
            return None
        if value.is_constant:
            return None
        self._habit(path, text)
        for expr, offset in value.expressions():
            self.check(path, expr, offset, scope)
        return Dynamic(value, text)

    @staticmethod
    def is_whole(text: Any) -> bool:
        """True when `text` is one `${...}` expression and nothing else (so it keeps its type):
        even a space around it makes the value text."""
        if not isinstance(text, str) or not (text.startswith("${") and text.endswith("}")):
            return False
        try:
            return expressions.compile_value(text).is_expression
        except ExpressionError:
            return True  # reported elsewhere

    @staticmethod
    def condition_hint(raw: str) -> str | None:
        """How to write an `if:` that is not one `${...}` (text there is always true)."""
        return habits.condition(raw)

    # -- references -----------------------------------------------------------------------

    def check(self, path: DataPath, expr: Any, offset: int, scope: Scope) -> None:
        def at(column: int) -> int:
            return offset + column - 1

        facts = self._facts(expr)
        refs = facts.refs
        for problem in facts.problems:
            message, _, hint = str(problem).partition("; did you mean ")
            arity = _ARITY.fullmatch(message)
            if arity:  # "f() takes 2 arguments, got 1: f(list, field)": the form is the fix
                message, hint = arity[1], f"call it as {arity[2]}"
            else:
                hint = f"did you mean {hint}" if hint else ""
            self.report(path, at(problem.column or 1), message, hint or None, 1)
        joined = self._hyphenated_roots(path, expr, at, refs)
        optional = facts.optional
        for ref in refs:
            if ref.column not in joined:
                self._reference(path, ref, at, scope, ref.column - 1 in optional)
        self._types(path, expr, offset)
        if not path or path[0] != "queries":  # a query may come at any time: all may be absent
            self._maybe_run(path, expr, at, scope, refs, facts.guards)

    def _facts(self, expr: Any) -> _Facts:
        """What depends on the expression alone, worked out once per text in the file."""
        found = self._memo.get(expr.source)
        if found is None:
            refs = expr.references()
            found = self._memo[expr.source] = _Facts(
                refs,
                # problems() also knows each function's arity; roots are checked with context
                expr.problems(roots=frozenset(r.root for r in refs)),
                _optional_names(expr.node),
                _guards(expr.node),
            )
        return found

    def _hyphenated_roots(self, path: DataPath, expr: Any, at: Callable[[int], int],
                          refs: list[Any]) -> set[int]:
        """`${create-user.id}` is `create - user.id`: say it is read as steps.create-user.
        Returns the columns of the names it covers (reported once, here)."""
        covered: set[int] = set()
        for ref in refs:
            if ref.root in ROOTS or ref.column in covered:
                continue
            m = re.match(r"[A-Za-z_][A-Za-z0-9_]*(?:\s*-\s*[A-Za-z_][A-Za-z0-9_]*)+",
                         expr.source[ref.column - 1:])
            tag = re.sub(r"\s+", "", m[0]) if m else None
            if m is None or tag not in self.tags:
                continue
            covered |= {r.column for r in refs if ref.column <= r.column < ref.column + len(m[0])}
            self.report(path, at(ref.column), f"unknown name '{ref.root}'",
                        f"'{tag}' is a step: read its result as steps.{tag} "
                        f"(or steps['{tag}'])", len(m[0]))
        return covered

    def _reference(self, path: DataPath, ref: Any, at: Callable[[int], int], scope: Scope,
                   optional: bool = False) -> None:
        """`optional`: the read is inside default/coalesce/exists, where a missing path is no
        error (an unknown name or step still is: it is a typo)."""
        root = ref.root
        cols = tuple(getattr(ref, "columns", ()) or ())

        def seg(i: int) -> int:
            return at(cols[i]) if i < len(cols) else at(ref.column)

        if root == "error":
            self._error_ref(path, ref, at(ref.column), seg, scope)
            return
        if root == "step":
            self._step_field_ref(path, ref, at(ref.column), seg, scope)
            return
        if root in scope.loop_names:
            return
        if root in ("item", "index"):
            self.report(path, at(ref.column), f"'{root}' is only defined inside a foreach",
                        "item and index exist in the steps of a foreach; after the loop, read "
                        "steps.<foreach tag> (one result per item)", len(root))
            return
        if root == "result":
            if not scope.in_rollback:
                self.report(path, at(ref.column), "'result' is only defined in a rollback",
                            "it is the result of the step being rolled back; elsewhere read "
                            "steps.<tag>", 6)
            return
        if root in self._aliases:
            ftag = self._aliases[root]
            where = f"foreach '{ftag}'" if ftag else "a foreach"
            self.report(path, at(ref.column), f"'{root}' is the item of {where}: it exists "
                        "only inside that foreach's steps",
                        f"after the loop, read steps.{ftag} (one entry per item)" if ftag
                        else "tag the foreach and read steps.<tag> after it", len(root))
            return
        if root not in ROOTS:
            names = set(ROOTS) - {"item", "index", "result"}
            names |= scope.loop_names | ({"result"} if scope.in_rollback else set())
            hint = (f"did you mean 'ctx.{root}'?" if root in CTX_FIELDS
                    else habits.literal(root) or did_you_mean(root, names)
                    or f"expressions start with {known(names)}")
            self.report(path, at(ref.column), f"unknown name '{root}'", hint, len(root))
            return
        if root == "steps" and ref.path and isinstance(ref.path[0], str):
            self._step_ref(path, ref.path[0], seg(0), scope)
        elif root == "state" and ref.path and isinstance(ref.path[0], str) and not optional:
            self._state_ref(path, ref.path[0], seg(0))
        elif root in ("variables", "constants") and ref.path and isinstance(ref.path[0], str):
            self._app_value_ref(path, root, ref.path, seg, optional)
        elif root == "ctx" and ref.path and isinstance(ref.path[0], str):
            field_name = ref.path[0]
            if field_name not in CTX_FIELDS:
                self.report(path, seg(0), f"unknown ctx field '{field_name}'",
                            did_you_mean(field_name, CTX_FIELDS) or f"known: {known(CTX_FIELDS)}",
                            len(field_name))

    def _app_value_ref(self, path: DataPath, root: str, ref_path: tuple[Any, ...],
                       seg: Callable[[int], int], optional: bool) -> None:
        """`variables.<app>.<name>` / `constants.<app>.<name>` against the product file."""
        if self.product is None:
            return
        apps = self.product.resources.get("action") or {}
        app = str(ref_path[0])
        if app not in apps:
            self.report(path, seg(0), f"unknown app '{app}' in {root}.{app}",
                        did_you_mean(app, sorted(apps)) or (
                            f"the product's apps: {known(sorted(apps))}" if apps
                            else "the product file declares no app under `apps:`"), len(app))
            return
        if optional or len(ref_path) < 2 or not isinstance(ref_path[1], str):
            return
        key, definition = ref_path[1], apps[app]
        if root == "constants":
            names = set(definition.get("constants") or {})
            where = f"apps.{app}.constants"
        else:
            names = set()
            for config in (definition.get("envs") or {}).values():
                if isinstance(config, dict) and isinstance(config.get("variables"), dict):
                    names |= set(config["variables"])
            where = f"`variables:` under each env of apps.{app}.envs"
        if key not in names:
            self.report(path, seg(1), f"app '{app}' has no {root[:-1]} '{key}'",
                        did_you_mean(key, sorted(map(str, names)))
                        or f"declare it in {where} of the product file", len(key))

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

    def _step_field_ref(self, path: DataPath, ref: Any, offset: int,
                        seg: Callable[[int], int], scope: Scope) -> None:
        if "step" not in scope.loop_names:
            self.report(path, offset, "'step' is only defined in a step's call and its rollback",
                        "step.idempotency_key is the key of the step running the call: use it "
                        "in the arguments of action.run, database.*, python ... or of a "
                        "rollback", 4)
            return
        field_name = ref.path[0] if ref.path else None
        if isinstance(field_name, str) and field_name not in STEP_FIELDS:
            self.report(path, seg(0), f"'step' has no field '{field_name}'",
                        did_you_mean(field_name, STEP_FIELDS) or f"known: {known(STEP_FIELDS)}",
                        len(field_name))

    def _state_ref(self, path: DataPath, key: str, offset: int) -> None:
        results = self._results
        if results.runs_python or key in results.sets:
            return  # a python step may set any key
        self.report(path, offset, f"state.{key} is never set in this workflow",
                    did_you_mean(key, results.sets)
                    or "state is written by a 'set: {" + key + ": ...}' step", len(key))

    def _step_ref(self, path: DataPath, tag: str, offset: int, scope: Scope) -> None:
        if tag in scope.visible:
            return
        info = self.tags.get(tag)
        n = len(tag)
        if info is None:
            hint = did_you_mean(tag, self.tags)
            head = next((tag[:i] for i in range(len(tag) - 1, 0, -1)
                         if tag[i] == "-" and tag[:i] in self.tags), None)
            if head is not None:
                hint = (f"'{tag}' is read as one tag; to subtract, put spaces around '-': "
                        f"steps.{head} - {tag[len(head) + 1:]}")
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
        other = _other_arm(info.path, path)
        if other is not None:
            self.report(path, offset, f"step '{tag}' runs in another {other[0]}",
                        f"only one {other[1]} runs, so here it never has: read it after the "
                        f"{other[2]}, with default(steps.{tag}, <fallback>)", n)
            return
        self.report(path, offset, f"step '{tag}' is used before it runs",
                    f"it is defined on line {info.line}; move it earlier", n)

    # -- types ------------------------------------------------------------------------------

    @cached_property
    def _data(self) -> dict[str, Any]:
        return self.document if isinstance(self.document, dict) else {}

    @cached_property
    def _aliases(self) -> dict[str, str | None]:
        """Every foreach `as:` name -> the tag of its foreach (for "used outside its loop")."""
        out: dict[str, str | None] = {}
        for _, step in sources.walk_steps(self._data):
            body = step.get("foreach")
            if isinstance(body, dict) and isinstance(body.get("as"), str):
                tag = step.get("tag")
                out.setdefault(body["as"], tag if isinstance(tag, str) else None)
        return out

    @cached_property
    def _results(self) -> sources.Results:
        resources = self.product.resources if self.product is not None else {}
        return sources.Results(self._data, resources,
                               {tag: info.path for tag, info in self.tags.items()},
                               self.value_type)

    @cached_property
    def _ctx(self) -> t.Type:
        data = self._data
        envs = data.get("envs") if isinstance(data.get("envs"), list) else (
            self.product.envs if self.product is not None else ())
        tag = data.get("workflow")
        schema = self.input_schema
        text_or_null = t.of("string", "null")
        fields = {
            "input": t.from_schema(schema, where="in the input schema") if isinstance(
                schema, dict) else t.ANY,
            "env": t.of("string", values=tuple(e for e in envs if isinstance(e, str)),
                        where="(the environments this workflow runs in)") if envs else t.STRING,
            "workflow_id": t.STRING,
            "workflow_tag": t.of("string", values=(tag,)) if isinstance(tag, str) else t.STRING,
            "product": t.of("string", values=(self.product.name,)) if self.product else t.STRING,
            "checkpoint_name": text_or_null, "current_step": text_or_null,
            "completed_steps": t.list_of(t.STRING), "is_replay": t.BOOLEAN,
            "is_restart": t.BOOLEAN, "is_restored": t.BOOLEAN,
        }
        return t.record(fields, closed=False)  # unknown ctx fields have their own message

    def value_type(self, path: DataPath, raw: Any) -> t.Type:
        """The type of a YAML value written at `path` (nothing is reported)."""
        if isinstance(raw, dict):
            return t.record({str(k): self.value_type((*path, k), x) for k, x in raw.items()})
        if isinstance(raw, list):
            items = [self.value_type((*path, i), x) for i, x in enumerate(raw)]
            return t.list_of(t.join_all(items) if items else t.ANY)
        if not isinstance(raw, str) or "${" not in raw:
            return t.from_value(raw)
        try:
            value = expressions.compile_value(raw)
        except ExpressionError:
            return t.ANY
        if value.is_expression:
            return Infer(_Roots(self, path)).type(value.expressions()[0][0].node)
        return t.STRING if not value.is_constant else t.from_value(value.evaluate({}))

    def _types(self, path: DataPath, expr: Any, offset: int) -> None:
        def say(pos: int, length: int, message: str, hint: str | None) -> None:
            self.report(path, offset + pos, message, hint, length)

        Infer(_Roots(self, path), say).type(expr.node)

    # -- steps that may not have run ----------------------------------------------------------

    def _maybe_run(self, path: DataPath, expr: Any, at: Callable[[int], int], scope: Scope,
                   refs: list[Any], guards: _Guards) -> None:
        """A step skipped by an `if:`, in a switch case or a catch handler is absent from
        `steps`; one that failed with allow_fail (or was caught) is null: reading it without
        default(...) fails the run."""
        protected, checked = guards[0], guards[2]
        guarded, held = set(guards[1]), set(guards[3])  # added to below
        for text in sources.enclosing_conditions(self._data, path):
            found = _paths(text)
            held |= found
            guarded |= {str(p[1][0]) for p in found if p[0] == "steps" and p[1]}
        done: set[str] = set()
        for ref in refs:
            if ref.root != "steps" or not ref.path or not isinstance(ref.path[0], str):
                continue
            tag = ref.path[0]
            info = self.tags.get(tag)
            if (info is None or tag not in scope.visible or tag in done or tag in guarded
                    or ref.column - 1 in protected):
                continue
            read = "steps" + "".join(render_key(k) for k in ref.path)
            col = at(ref.columns[0] if ref.columns else ref.column)
            why = self._skipped(info.path, path, held)
            if why is not None:
                done.add(tag)
                self.report(path, col, f"step '{tag}' may not have run: {why}",
                            f"read it with default({read}, <fallback>), or test "
                            f"exists(steps{render_key(tag)}) first", len(tag))
                continue
            if len(ref.path) > 1 and tag not in checked and not sources.is_prefix(info.path, path):
                why = sources.may_be_null(self._data, info.path)
                if why is not None:
                    done.add(tag)
                    self.report(path, col, f"step '{tag}' may have failed: {why}",
                                f"read it with default({read}, <fallback>)", len(tag))

    def _skipped(self, step: DataPath, reader: DataPath, held: set[_Path]) -> str | None:
        """Why the step may not have run when `reader` is evaluated, or None. A reader under a
        condition that tests what the step's condition tests counts as guarded (a heuristic
        that can only keep quiet, never report more)."""
        for c in sources.conditionals(self._data, step):
            if sources.is_prefix(c.path, reader):
                continue
            if c.text is not None and _paths(c.text) <= held:
                continue
            return c.why
        return None


class _Roots:
    """The roots of an expression written at `path`: their types for Infer."""

    def __init__(self, checker: ExprChecker, path: DataPath) -> None:
        self.checker, self.path = checker, path

    def root(self, name: str) -> t.Type:
        c = self.checker
        if name == "ctx":
            return c._ctx
        if name == "error":
            return sources.ERROR
        if name == "index":
            return t.INTEGER
        if name == "step":
            return sources.STEP
        if name == "result":
            owner = sources.rollback_owner(self.path)
            if owner is not None:
                tag = sources.at(c._data, (*owner, "tag"))
                return t.non_null(c._results.step(tag)) if isinstance(tag, str) else t.ANY
            return sources.ROLLBACK_SUMMARY if "trigger_rollback" in self.path else t.ANY
        for loop in reversed(sources.loops(self.path)):
            body = sources.at(c._data, (*loop, "foreach"))
            if not isinstance(body, dict) or (name != "item" and body.get("as") != name):
                continue
            items = c.value_type((*loop, "foreach", "items"), body.get("items"))
            return (items.items or t.ANY) if "list" in items.kinds and items.known else t.ANY
        return t.ANY

    def step(self, tag: str) -> t.Type:
        return self.checker._results.step(tag) if tag in self.checker.tags else t.ANY

    def state(self, key: str) -> t.Type:
        return self.checker._results.state(key) or t.ANY


def _other_arm(step: DataPath, reader: DataPath) -> tuple[str, str, str] | None:
    """(what, which, after) when `step` sits in another case of a switch, or another handler
    of a catch, than `reader`: only one of them runs."""
    for i, part in enumerate(step[:-1]):
        if part == "switch":
            arm = tuple(step[:i + 3]) if step[i + 1] == "cases" else tuple(step[:i + 2])
            if sources.is_prefix(step[:i + 1], reader) and not sources.is_prefix(arm, reader):
                return "case of the switch", "case", "switch"
        if part == "catch" and sources.is_prefix(step[:i + 1], reader) and not \
                sources.is_prefix(step[:i + 2], reader):
            return "catch handler", "handler", "step"
    return None


_Path = tuple[str, tuple[str | int, ...]]
_Guards = tuple[set[int], set[str], set[str], set[_Path]]


class _Facts(NamedTuple):
    refs: list[Any]
    problems: list[ExpressionError]
    optional: set[int]
    guards: _Guards


def _optional_names(node: ast.Node) -> set[int]:
    """Positions of the root names read inside default/coalesce/exists."""
    out: set[int] = set()
    stack: list[tuple[ast.Node, bool]] = [(node, False)]
    while stack:
        n, inside = stack.pop()
        if isinstance(n, ast.Name) and inside:
            out.add(n.pos)
        lazy = isinstance(n, ast.Call) and (entry := lookup(n.name)) is not None and entry[2]
        stack.extend((c, inside or lazy) for c in n.children())
    return out


def _guards(node: ast.Node) -> _Guards:
    """What protects a steps.<tag> read inside one expression: (positions of `steps` names
    inside default/coalesce/exists, whose missing paths are no error; tags tested with
    `'tag' in steps` or inside those functions; tags tested for truth as a whole, e.g.
    `steps.x.id if steps.x else 0`; every path a condition of `a if c else b` or the left
    side of and/or reads, since the other operand runs only after that test)."""
    protected: set[int] = set()
    guarded: set[str] = set()
    checked: set[str] = set()
    held: set[_Path] = set()
    stack: list[tuple[ast.Node, bool]] = [(node, False)]
    while stack:
        n, safe = stack.pop()
        found = ast.path_of(n)
        if found is not None and found[0] == "steps" and found[1] and safe:
            guarded.add(str(found[1][0]))
            base = n
            while isinstance(base, ast.Field | ast.Index):
                base = base.obj
            protected.add(base.pos)
        if isinstance(n, ast.Call) and (entry := lookup(n.name)) is not None and entry[2]:
            # default/coalesce/exists: a missing path is "no value"; a fallback runs only then
            stack.extend((arg, True) for arg in n.args)
            continue
        if isinstance(n, ast.Compare) and n.op in ("in", "not in") and isinstance(
                n.left, ast.Const) and isinstance(n.right, ast.Name) and n.right.name == "steps":
            guarded.add(str(n.left.value))
        tests = ([n.cond] if isinstance(n, ast.Cond) else [n.left] if isinstance(n, ast.BoolOp)
                 else [n.operand] if isinstance(n, ast.Unary) and n.op == "not" else [])
        for test in tests:
            whole = ast.path_of(test)
            if whole is not None and whole[0] == "steps" and len(whole[1]) == 1:
                checked.add(str(whole[1][0]))
            if not isinstance(n, ast.Unary):
                held |= {(r.root, r.path) for r in ast.references(test)}
        stack.extend((c, safe) for c in n.children())
    return protected, guarded, checked, held


def _paths(text: str) -> set[_Path]:
    """Every path the expression (the inside of `${...}`, or a YAML boolean) reads."""
    try:
        refs = expressions.parse(text).references()
    except ExpressionError:
        return set()
    return {(r.root, r.path) for r in refs}


_ARITY = re.compile(r"(\S+\(\) takes .+, got \d+): (.+)")


def _parse_hint(message: str) -> str | None:
    """A fix for the commonest expression syntax errors (the message says what the parser saw)."""
    if "never closed" in message:
        return "end the expression with '}' before the text goes on: \"${ctx.input.a}\""
    if "unexpected end of expression" in message:
        if "expected ',' or ')'" in message:
            return "a '(' is never closed: add ')' after the last argument"
        if "expected a value" in message:
            return "something is missing at the end: an operator needs a value on both sides"
        return "the expression stops too early: something is missing before '}'"
    if "expression is too long" in message or "expression has too many terms" in message:
        return ("compute it in a python: step, or in parts: one set: per part, then an "
                "expression over state.<part>")
    return None
