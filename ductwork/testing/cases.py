"""`ductwork test`: run the YAML test cases in <product>/tests/*.yaml against its workflows."""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import jsonschema

from ductwork.dsl.diagnostics import Diagnostic, did_you_mean, known, sort_key
from ductwork.dsl.loader import DataPath, Document, load_file
from ductwork.dsl.plan import ChildWorkflowStep, PythonCall, TaskStep, WaitStep
from ductwork.dsl.specs import product_dirs
from ductwork.errors import CompileError, DuctworkError
from ductwork.util import schema_defaults
from ductwork.util.paths import display_path

TEST_DIR = "tests"
FILE_KEYS = ("workflow", "env", "description", "cases")
CASE_KEYS = ("name", "workflow", "env", "input", "mocks", "signals", "expect", "workflow_id")
MOCK_KEYS = ("result", "error", "sequence")   # what answers the step (at most one)
ROLLBACK_KEYS = ("result", "error")            # what answers its rollback
EXPECT_KEYS = ("status", "output", "output_contains", "completed_steps", "failed_step", "error",
               "rolled_back", "steps")
STEP_KEYS = ("status", "output", "attempts", "error", "rollback")
ROLLBACKS = ("rolled_back", "failed", "not_run")
STATUSES = ("completed", "failed", "rolled_back", "cancelled", "running")
STEP_STATUSES = ("completed", "failed", "skipped", "running")  # skipped: allow_fail failed

EXAMPLE = """\
workflow: user-onboarding
cases:
  - name: a new user is welcomed
    input: {email: ann@example.com, name: Ann}
    mocks:
      create-user: {result: {id: 7}}
      send-welcome: {error: smtp down}
    expect:
      status: completed
      completed_steps: [create-user, audit-log]"""


@dataclass
class Case:
    path: str
    index: int
    name: str
    workflow: str
    env: str
    input: Any
    mocks: dict[str, dict[str, Any]]
    signals: list[tuple[str, Any]]
    expect: dict[str, Any]
    workflow_id: str | None = None

    @property
    def title(self) -> str:
        return f"{self.workflow}: {self.name}"


@dataclass
class Outcome:
    case: Case
    problems: list[str] = field(default_factory=list)
    status: str | None = None
    error: str | None = None
    workflow_id: str | None = None
    ms: int = 0

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.case.path, "workflow": self.case.workflow, "name": self.case.name,
                "passed": self.passed, "problems": self.problems, "status": self.status,
                "error": self.error, "workflow_id": self.workflow_id}


@dataclass
class Suite:
    product: str
    product_dir: Path
    cases: list[Case] = field(default_factory=list)


# -- discovery and parsing --------------------------------------------------------------------
def _display(path: Path) -> str:
    return display_path(path)


def discover(paths: Iterable[str]) -> tuple[list[tuple[Path, list[Path]]], list[Diagnostic]]:
    """(product folder, its test files) for every path; a missing path is a diagnostic."""
    found: dict[Path, list[Path]] = {}
    problems: list[Diagnostic] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            problems.append(Diagnostic(raw, 0, 0, "no such file or folder"))
            continue
        if path.is_file():
            product_dir = path.parent.parent
            if path.parent.name != TEST_DIR or not (product_dir / "product.yaml").is_file():
                problems.append(Diagnostic(raw, 0, 0, f"a test file lives in <product>/"
                                           f"{TEST_DIR}/ next to product.yaml"))
                continue
            found.setdefault(product_dir.resolve(), []).append(path)
            continue
        dirs = product_dirs(path)
        if not dirs:
            inside = (path.parent / "product.yaml").is_file()
            problems.append(Diagnostic(raw, 0, 0, "no product folder (one with product.yaml) "
                                       "here" + (f"; test cases live in {path.parent / TEST_DIR}"
                                                 f": run ductwork test {path.parent}"
                                                 if inside else "")))
        for d in dirs:
            tdir = d / TEST_DIR
            files = sorted(f for f in tdir.iterdir() if f.suffix in (".yaml", ".yml")) \
                if tdir.is_dir() else []
            found.setdefault(d.resolve(), []).extend(files)
    return [(d, sorted(set(fs))) for d, fs in found.items()], problems


class _FileCheck:
    """Collects every problem of one test file, each located like a compiler error."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Diagnostic] = []

    def fail(self, path: DataPath, message: str, hint: str | None = None, *,
             key: bool = False) -> None:
        line, col = self.doc.locate(path, key=key)
        self.problems.append(Diagnostic(self.doc.path, line, col, message, hint,
                                        self.doc.source_line(line)))

    def keys(self, value: Mapping[str, Any], allowed: tuple[str, ...], path: DataPath,
             what: str) -> None:
        for k in value:
            if k not in allowed:
                self.fail((*path, k), f"unknown key '{k}' in {what}",
                          did_you_mean(k, allowed) or f"known: {', '.join(allowed)}", key=True)


def parse_file(path: Path, plans: Mapping[str, Any], envs: Iterable[str] = ()
               ) -> tuple[list[Case], list[Diagnostic]]:
    try:
        doc = load_file(_display(path))
    except CompileError as e:
        return [], list(e.diagnostics)
    chk = _FileCheck(doc)
    data = doc.data
    if not isinstance(data, Mapping) or not isinstance(data.get("cases"), list):
        near = [k for k in data if k != "cases" and did_you_mean(str(k), ["cases"])] \
            if isinstance(data, Mapping) else []
        if near:  # `case:` or `tests:` for `cases:`
            chk.fail((near[0],), f"unknown key '{near[0]}' in the test file",
                     "did you mean 'cases'? (a list of cases)", key=True)
        else:
            chk.fail((), "a test file is a mapping with a `cases:` list",
                     "for example:\n" + EXAMPLE)
        return [], chk.problems
    chk.keys(data, FILE_KEYS, (), "the test file")
    cases: list[Case] = []
    for i, raw in enumerate(data["cases"]):
        where: DataPath = ("cases", i)
        before = len(chk.problems)
        if not isinstance(raw, Mapping):
            chk.fail(where, "each case is a mapping (name, input, mocks, expect)")
            continue
        chk.keys(raw, CASE_KEYS, where, "a case")
        wf = raw.get("workflow", data.get("workflow"))
        name = str(raw.get("name") or f"case {i + 1}")
        if not isinstance(wf, str) or wf not in plans:
            at = (*where, "workflow") if "workflow" in raw else ("workflow",)
            chk.fail(at if isinstance(wf, str) else where,
                     f"unknown workflow {wf!r}" if isinstance(wf, str) else
                     "name the workflow (in the case or at the top of the file)",
                     did_you_mean(wf, plans) or f"known: {known(plans)}")
            continue
        tags = {s.tag for s in plans[wf].walk() if getattr(s, "tag", None)}
        mocks = _mocks(chk, raw.get("mocks") or {}, (*where, "mocks"), tags)
        signals = _signals(chk, raw.get("signals") or {}, (*where, "signals"),
                           _waited_for(plans, wf, set()))
        expect = raw.get("expect") or {}
        if not isinstance(expect, Mapping):
            chk.fail((*where, "expect"), "expect is a mapping, e.g. {status: completed}")
            expect = {}
        _check_expect(chk, expect, (*where, "expect"), tags)
        _check_input(chk, plans[wf].input_schema, raw, where)
        env = raw.get("env", data.get("env", "dev"))
        allowed = plans[wf].envs or tuple(envs)
        if allowed and env not in allowed:
            at_env = (*where, "env") if "env" in raw else ("env",) if "env" in data else where
            chk.fail(at_env, f"workflow '{wf}' does not run in env {env!r}",
                     did_you_mean(str(env), allowed) or f"its envs: {known(allowed)}")
        if len(chk.problems) > before:
            continue  # a case with a mistake in it is reported, not run half-understood
        cases.append(Case(doc.path, i, name, wf, str(raw.get("env", data.get("env", "dev"))),
                          raw.get("input", {}), mocks, signals, dict(expect),
                          raw.get("workflow_id")))
    return cases, chk.problems


def _mocks(chk: _FileCheck, raw: Any, path: DataPath, tags: set[str]
           ) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, Mapping):
        chk.fail(path, "mocks map step tags to {result: ...} or {error: ...}")
        return {}
    out: dict[str, dict[str, Any]] = {}
    for tag, spec in raw.items():
        if tag not in tags:
            chk.fail((*path, tag), f"the workflow has no step '{tag}'",
                     did_you_mean(tag, tags) or f"steps: {known(tags)}", key=True)
            continue
        answers = [k for k in spec if k in MOCK_KEYS] if isinstance(spec, Mapping) else []
        if not isinstance(spec, Mapping) or len(answers) > 1 or not spec or any(
                k not in (*MOCK_KEYS, "rollback") for k in spec):
            odd = next((k for k in spec if k not in (*MOCK_KEYS, "rollback")), None) \
                if isinstance(spec, Mapping) else None
            chk.fail((*path, tag), "a mock is one of {result: VALUE}, {error: MESSAGE}, "
                     "{sequence: [{error: ...}, {result: ...}]} (one entry per attempt), "
                     "optionally with rollback: {result: VALUE} | {error: MESSAGE}",
                     None if odd is None else f"'{odd}' is not one of them: "
                     + (did_you_mean(str(odd), (*MOCK_KEYS, "rollback"))
                        or "write result: for what the step returns"))
            continue
        seq = spec.get("sequence")
        if "sequence" in spec and not (isinstance(seq, list) and seq and all(
                isinstance(x, Mapping) and len(x) == 1 and next(iter(x)) in ("result", "error")
                for x in seq)):
            chk.fail((*path, tag, "sequence"), "a sequence lists {result: ...} or "
                     "{error: ...} entries, one per attempt")
            continue
        rb = spec.get("rollback")
        if "rollback" in spec and not (isinstance(rb, Mapping) and len(rb) == 1
                                       and next(iter(rb)) in ROLLBACK_KEYS):
            chk.fail((*path, tag, "rollback"), "a rollback mock is {result: VALUE} (it "
                     "succeeds) or {error: MESSAGE} (it fails)")
            continue
        out[tag] = dict(spec)
    return out


def _signals(chk: _FileCheck, raw: Any, path: DataPath, waited: set[str] | None
             ) -> list[tuple[str, Any]]:
    if isinstance(raw, Mapping):
        out, at = [(str(k), v) for k, v in raw.items()], [(*path, k) for k in raw]
    elif isinstance(raw, list) and all(isinstance(x, Mapping) and "name" in x for x in raw):
        out = [(str(x["name"]), x.get("payload")) for x in raw]
        at = [(*path, i, "name") for i in range(len(raw))]
    else:
        chk.fail(path, "signals map a signal name to its payload (or list {name, payload} "
                 "entries to send one signal several times)")
        return []
    if waited is not None:
        for (name, _), where in zip(out, at, strict=True):
            if name not in waited:
                # queued and never delivered: the run would wait for the real name instead
                chk.fail(where, f"the workflow never waits for signal '{name}'",
                         did_you_mean(name, waited) or (
                             f"it waits for: {known(waited)}" if waited
                             else "it waits for no signal: remove it"),
                         key=isinstance(raw, Mapping))
    return out


def _waited_for(plans: Mapping[str, Any], tag: str, seen: set[str]) -> set[str] | None:
    """The signals a run of `tag` (or a child workflow it starts) can wait for and declares;
    None when a python step could wait for any."""
    plan = plans.get(tag)
    if plan is None or tag in seen:
        return set()
    seen.add(tag)
    names = set(plan.signals)
    for step in plan.walk():
        if isinstance(step, WaitStep):
            names |= set(step.names)
        elif isinstance(step, TaskStep) and isinstance(step.body, PythonCall):
            return None
        elif isinstance(step, ChildWorkflowStep):
            more = _waited_for(plans, step.workflow, seen)
            if more is None:
                return None
            names |= more
    return names


def _check_input(chk: _FileCheck, schema: Any, raw: Mapping[str, Any], where: DataPath
                 ) -> None:
    """The case's input against the workflow's input schema (its defaults filled in first, as
    a run does): a case that could not start is a mistake in the file, shown where it is."""
    if not isinstance(schema, Mapping):
        return
    data = raw.get("input", {})
    try:
        errors = list(jsonschema.Draft202012Validator(schema).iter_errors(
            schema_defaults.fill(schema, data)))
    except Exception:  # a schema the validator cannot use: the run says why
        return
    for e in sorted(errors, key=lambda e: [str(p) for p in e.path])[:5]:
        at: DataPath = (*where, "input", *e.path) if "input" in raw else where
        hint = None
        if e.validator == "required" and isinstance(e.instance, Mapping):
            missing = next((k for k in e.validator_value if k not in e.instance), None)
            hint = f"add {missing}: ... to the case's input" if missing else None
        chk.fail(at, f"the input does not match the workflow's input schema: {e.message}",
                 hint, key="input" in raw and e.validator == "additionalProperties")


def _check_expect(chk: _FileCheck, expect: Mapping[str, Any], path: DataPath,
                  tags: set[str]) -> None:
    chk.keys(expect, EXPECT_KEYS, path, "expect")
    status = expect.get("status")
    if status is not None and status not in STATUSES:
        chk.fail((*path, "status"), f"unknown status {status!r}",
                 did_you_mean(status, STATUSES) or f"one of {', '.join(STATUSES)}")
    for key in ("completed_steps", "rolled_back"):
        value = expect.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            chk.fail((*path, key), f"{key} is a list of step tags")
            continue
        for j, t in enumerate(value):
            if t not in tags:
                chk.fail((*path, key, j), f"the workflow has no step {t!r}",
                         did_you_mean(t, tags) or f"steps: {known(tags)}")
    steps = expect.get("steps")
    if steps is not None:
        if not isinstance(steps, Mapping):
            chk.fail((*path, "steps"), "steps map a step tag to {status, output, attempts, "
                     "error}")
            return
        for t, spec in steps.items():
            if t.partition("#")[0] not in tags:
                chk.fail((*path, "steps", t), f"the workflow has no step '{t}'",
                         did_you_mean(t, tags) or f"steps: {known(tags)}", key=True)
            elif not isinstance(spec, Mapping):
                chk.fail((*path, "steps", t), "expected {status, output, attempts, error}")
            else:
                chk.keys(spec, STEP_KEYS, (*path, "steps", t), f"the expectation of '{t}'")
                st = spec.get("status")
                if st is not None and st not in STEP_STATUSES:
                    chk.fail((*path, "steps", t, "status"), f"unknown step status {st!r}",
                             did_you_mean(str(st), STEP_STATUSES)
                             or f"one of {', '.join(STEP_STATUSES)} (skipped: an allow_fail "
                             "step that failed)")
                rb = spec.get("rollback")
                if rb is not None and rb not in ROLLBACKS:
                    chk.fail((*path, "steps", t, "rollback"), f"unknown rollback {rb!r}",
                             did_you_mean(str(rb), ROLLBACKS) or f"one of {', '.join(ROLLBACKS)}")


# -- running ----------------------------------------------------------------------------------
def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(expected, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and _contains(actual[k], v) for k, v in expected.items())
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(actual) == len(expected)
                and all(_contains(a, e) for a, e in zip(actual, expected, strict=True)))
    return bool(actual == expected)


def _show(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _install_mocks(env: Any, mocks: Mapping[str, Mapping[str, Any]]) -> None:
    for tag, spec in mocks.items():
        if "sequence" in spec:
            env.mock_step(tag, side_effect=[
                RuntimeError(str(x["error"])) if "error" in x else x["result"]
                for x in spec["sequence"]])
        elif "error" in spec:
            env.mock_step(tag, error=str(spec["error"]))
        elif "result" in spec:
            env.mock_step(tag, result=spec["result"])
        # A mocked step's rollback is mocked too: it would otherwise undo, for real, work that
        # was never done (a refund of a charge that does not exist).
        rb = spec.get("rollback", {"result": None})
        if "error" in rb:
            env.mock_rollback(tag, error=str(rb["error"]))
        else:
            env.mock_rollback(tag, result=rb.get("result"))


async def run_case(case: Case, suite: Suite) -> Outcome:
    from ductwork.testing import WorkflowTestEnv

    out = Outcome(case)
    started = time.monotonic()
    try:
        # environ={}: a case never reads the developer's environment; sandbox: the files its
        # resources write (SQLite, outbox, local storage) live in a folder removed afterwards.
        with tempfile.TemporaryDirectory(prefix="ductwork-test-") as sandbox:
            async with WorkflowTestEnv(specs=suite.product_dir, env=case.env,
                                       product=suite.product, environ={},
                                       sandbox=sandbox) as env:
                _install_mocks(env, case.mocks)
                for name, payload in case.signals:
                    env.queue_signal(name, payload)
                res = await env.execute(suite.product, case.workflow, case.input,
                                        workflow_id=case.workflow_id)
                out.status, out.error, out.workflow_id = res.status, res.error, res.workflow_id
                out.problems = _compare(case.expect, res, env)
    except DuctworkError as e:
        out.problems.append(f"the case could not run: {e}")
    out.ms = round((time.monotonic() - started) * 1000)
    return out


def _compare(expect: Mapping[str, Any], res: Any, env: Any) -> list[str]:
    problems: list[str] = []
    want = expect.get("status", "completed")
    if res.status != want:
        problems.append(f"status: expected {want!r}, got {res.status!r}"
                        + (f" ({res.error})" if res.error else ""))
    if "output" in expect and res.output != expect["output"]:
        problems.append(f"output: expected {_show(expect['output'])}, got {_show(res.output)}")
    if "output_contains" in expect and not _contains(res.output, expect["output_contains"]):
        problems.append(f"output: {_show(res.output)} does not contain "
                        f"{_show(expect['output_contains'])}")
    if "completed_steps" in expect and res.completed_steps != expect["completed_steps"]:
        problems.append(f"completed_steps: expected {expect['completed_steps']}, got "
                        f"{res.completed_steps}")
    if "failed_step" in expect and res.failed_step != expect["failed_step"]:
        problems.append(f"failed_step: expected {expect['failed_step']!r}, got "
                        f"{res.failed_step!r}")
    if "error" in expect:
        e = expect["error"]
        if (e is None and res.error is not None) or (e is not None and str(e) not in (
                res.error or "")):
            problems.append(f"error: expected {'no error' if e is None else repr(e)}, got "
                            f"{res.error!r}")
    if "rolled_back" in expect:
        rb = list((res.rollback_result or {}).get("rolled_back_steps") or [])
        if rb != expect["rolled_back"]:
            problems.append(f"rolled_back: expected {expect['rolled_back']}, got {rb}")
    for tag, spec in (expect.get("steps") or {}).items():
        kw = {k: spec[k] for k in STEP_KEYS if k in spec}
        try:
            env.assert_step(res, tag, **kw)
        except AssertionError as e:
            problems.append(str(e).splitlines()[0])
    return problems


async def run_all(paths: Iterable[str], keyword: str | None = None, counted: list[int] | None = None
                  ) -> tuple[list[Outcome], list[Diagnostic]]:
    from ductwork.dsl.specs import load_specs

    found, problems = discover(paths)
    suites: list[Suite] = []
    for product_dir, files in found:
        if not files:
            continue
        try:
            specs = load_specs(product_dir)
        except CompileError as e:
            problems.extend(e.diagnostics)
            continue
        for name, product in specs.products.items():
            suite = Suite(name, product_dir)
            for f in files:
                cases, diags = parse_file(f, product.workflows, product.envs)
                problems.extend(diags)
                if counted is not None:
                    counted[0] += len(cases)
                suite.cases += [c for c in cases if not keyword or keyword in c.title]
            suites.append(suite)
    outcomes = [await run_case(c, s) for s in suites for c in s.cases]
    return outcomes, sorted(problems, key=sort_key)


def main(paths: list[str], *, keyword: str | None = None, as_json: bool = False,
         stream: IO[str]) -> int:
    # Importing a workflow's python: modules must not write __pycache__ next to the specs.
    bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        counted = [0]  # cases before -k
        outcomes, problems = asyncio.run(run_all(paths, keyword, counted))
    finally:
        sys.dont_write_bytecode = bytecode
    passed = sum(o.passed for o in outcomes)
    failed = len(outcomes) - passed
    ok = not problems and not failed and bool(outcomes)
    if as_json:
        stream.write(json.dumps({
            "ok": ok, "passed": passed, "failed": failed,
            "cases": [o.to_dict() for o in outcomes],
            "diagnostics": [d.to_dict() for d in problems]}, indent=2, default=str) + "\n")
        return 0 if ok else 1
    for d in problems:
        stream.write(d.render() + "\n\n")
    current = None
    for o in outcomes:
        if o.case.path != current:
            current = o.case.path
            stream.write(f"{current}\n")
        stream.write(f"  {'PASS' if o.passed else 'FAIL'}  {o.case.title}  ({o.ms} ms)\n")
        for p in o.problems:
            stream.write(f"        {p}\n")
    if not outcomes and not problems and counted[0]:
        stream.write(f"no case matches -k {keyword!r} (its workflow and name are searched, "
                     f"{counted[0]} case{'s' if counted[0] != 1 else ''} found)\n")
        return 1
    if not outcomes and not problems:
        stream.write(f"no test cases found: put them in <product>/{TEST_DIR}/*.yaml\n")
        return 1
    summary = f"{passed} passed, {failed} failed"
    if problems:
        n = len(problems)
        summary += f", {n} error{'s' if n != 1 else ''} in test files"
    stream.write(summary + "\n")
    return 0 if ok else 1
