"""The compiled Plan: products, workflows and step nodes, ready for the interpreter."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class _Evaluable(Protocol):
    def evaluate(self, scope: Mapping[str, Any]) -> Any: ...


@dataclass(frozen=True)
class Dynamic:
    """A string leaf holding `${...}`: the expression module's compiled Value."""

    value: _Evaluable
    text: str


@dataclass(frozen=True)
class ValueTree:
    """A YAML value whose `${...}` strings are compiled; evaluate() builds the runtime value."""

    node: Any
    constant: bool

    def evaluate(self, scope: Mapping[str, Any]) -> Any:
        if self.constant:
            return copy.deepcopy(self.node)  # callers may mutate what they get
        return _evaluate(self.node, scope)

    @staticmethod
    def of(value: Any) -> ValueTree:
        return ValueTree(value, True)


def _evaluate(node: Any, scope: Mapping[str, Any]) -> Any:
    if isinstance(node, Dynamic):
        return node.value.evaluate(scope)
    if isinstance(node, dict):
        return {k: _evaluate(v, scope) for k, v in node.items()}
    if isinstance(node, list):
        return [_evaluate(v, scope) for v in node]
    return node


@dataclass(frozen=True)
class Location:
    path: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}"


# -- step nodes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """Common to every step: optional tag, optional `if` condition, where it was written."""

    tag: str | None
    when: ValueTree | None
    loc: Location

    @property
    def kind(self) -> str:
        return type(self).__name__.removesuffix("Step").lower()


@dataclass(frozen=True)
class Call:
    """A component call, ctx.<component>.<method>(**args); also the body of a rollback."""

    component: str  # "database"
    method: str  # "insert"
    resource: str | None  # the resource it addresses ("users-db"), for graphs and checks
    args: ValueTree  # evaluates to the keyword arguments (resource/event names included)
    loc: Location
    # A resource chosen by an expression: every name it can produce (proven by the compiler,
    # checked again at run time); `resource` is None then.
    resources: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.component}.{self.method}"


@dataclass(frozen=True)
class PythonCall:
    """`python: pkg.mod:fn` with `args`: fn(ctx, **args), sync or async."""

    target: str
    args: ValueTree
    loc: Location


@dataclass(frozen=True)
class LogCall:
    level: str
    message: ValueTree
    data: ValueTree | None
    loc: Location


Body = Call | PythonCall | LogCall


@dataclass(frozen=True)
class Handler:
    """One `catch:` entry: run `steps` (with `error` bound) when `when` holds or is absent."""

    when: ValueTree | None
    steps: tuple[Step, ...]


Catch = tuple[Handler, ...]


@dataclass(frozen=True)
class TaskOptions:
    """The ctx.step options of a task step (durations in milliseconds)."""

    allow_fail: bool = False
    retries: int = 0
    retry_delay: int = 1000
    timeout: int | None = None
    critical: bool = False


@dataclass(frozen=True)
class TaskStep(Step):
    """A step run through ctx.step(tag, fn, rollback, ...): a call, python or fail."""

    body: Body | FailBody
    rollback: tuple[Body, ...] = ()  # run in order, with `result` bound
    options: TaskOptions = field(default_factory=TaskOptions)
    catch: Catch = ()


@dataclass(frozen=True)
class FailBody:
    message: ValueTree
    loc: Location


@dataclass(frozen=True)
class SleepStep(Step):
    duration: ValueTree  # evaluates to a duration (ms int or "5s" string)


@dataclass(frozen=True)
class WaitStep(Step):
    names: tuple[str, ...]
    timeout: int | None  # ms
    catch: Catch = ()


@dataclass(frozen=True)
class CheckpointStep(Step):
    name: str
    metadata: ValueTree | None


@dataclass(frozen=True)
class SetStep(Step):
    values: tuple[tuple[str, ValueTree], ...]


@dataclass(frozen=True)
class LogStep(Step):
    log: LogCall


@dataclass(frozen=True)
class ForeachStep(Step):
    items: ValueTree
    alias: str | None  # `as:` name for the item, besides `item`
    concurrency: int
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class ParallelStep(Step):
    branches: tuple[tuple[Step, ...], ...]


@dataclass(frozen=True)
class Case:
    when: ValueTree
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class SwitchStep(Step):
    cases: tuple[Case, ...]
    default: tuple[Step, ...] | None


@dataclass(frozen=True)
class ChildWorkflowStep(Step):
    workflow: str  # the child's tag, same product
    input: ValueTree
    child_id: ValueTree | None
    timeout: int | None
    retries: int | None
    parent_close_policy: str
    catch: Catch = ()
    rollback: tuple[Body, ...] = ()  # with `result` = the child's output
    critical: bool = False


@dataclass(frozen=True)
class ReturnStep(Step):
    """`return: <value>`: ends the run with this output (the workflow `output:` is not read)."""

    value: ValueTree


@dataclass(frozen=True)
class TriggerRollbackStep(Step):
    """`trigger_rollback: {reason, output}`: ctx.trigger_rollback(reason), then ends the run
    with `output` (which reads the rollback's summary as `result`)."""

    reason: ValueTree
    output: ValueTree | None


# -- workflows and products --------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowOptions:
    rollback_strategy: str = "reverse_all"
    timeout: int | None = None  # ms
    retries: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rollback_strategy": self.rollback_strategy}
        if self.timeout is not None:
            out["timeout"] = self.timeout
        if self.retries is not None:
            out["retries"] = self.retries
        return out


@dataclass(frozen=True)
class WorkflowPlan:
    product: str
    tag: str
    name: str
    description: str
    input_schema: dict[str, Any] | None
    options: WorkflowOptions
    signals: dict[str, dict[str, Any]]
    envs: tuple[str, ...] | None  # None: active in every environment of the product
    steps: tuple[Step, ...]
    output: ValueTree | None
    path: str
    # name -> value answered by dw.workflows.query from the run's persisted state
    queries: dict[str, ValueTree] = field(default_factory=dict)

    def walk(self) -> list[Step]:
        """Every step, nested ones included, in document order."""
        out: list[Step] = []
        _walk(self.steps, out)
        return out


def _walk(steps: tuple[Step, ...], out: list[Step]) -> None:
    for s in steps:
        out.append(s)
        if isinstance(s, ForeachStep):
            _walk(s.steps, out)
        elif isinstance(s, ParallelStep):
            for b in s.branches:
                _walk(b, out)
        elif isinstance(s, SwitchStep):
            for c in s.cases:
                _walk(c.steps, out)
            if s.default:
                _walk(s.default, out)
        for h in catches(s):
            _walk(h.steps, out)


def rollbacks(step: Step) -> tuple[Body, ...]:
    """The rollback bodies of a step, in the order they run (calls and child workflows)."""
    if isinstance(step, TaskStep | ChildWorkflowStep):
        return step.rollback
    return ()


def bodies(step: Step) -> list[Body | FailBody]:
    """Everything a step calls: its body (for a task) and its rollback bodies."""
    own: list[Body | FailBody] = [step.body] if isinstance(step, TaskStep) else []
    return [*own, *rollbacks(step)]


def catches(step: Step) -> Catch:
    """The `catch:` handlers of a step (only calls, python, workflow and wait_for_signal)."""
    if isinstance(step, TaskStep | WaitStep | ChildWorkflowStep):
        return step.catch
    return ()


@dataclass
class ProductSpec:
    name: str
    title: str
    description: str
    envs: tuple[str, ...]
    # kind ("database") -> resource name -> the resource block as plain data
    resources: dict[str, dict[str, dict[str, Any]]]
    workflows: dict[str, WorkflowPlan]
    base_dir: str
    path: str
    # workflow tag -> its webhook as written (env, secret reference, headers...): the server
    # reads it for POST /hooks/<product>/<workflow>
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def resource(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.resources.get(kind, {}).get(name)


@dataclass
class Specs:
    """Everything loaded from a specs folder."""

    root: str
    products: dict[str, ProductSpec] = field(default_factory=dict)

    def workflow(self, product: str, tag: str) -> WorkflowPlan | None:
        p = self.products.get(product)
        return p.workflows.get(tag) if p else None
