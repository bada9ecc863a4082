"""What execute() returns, and the workflow definition record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ductwork.interpreter import codec
from ductwork.store.protocol import RunRow, StepRow

SEED_KEYS = ("status", "workflow_id", "execution_time", "output", "completed_steps",
             "failed_step", "error")


class _Fielded(str):
    """A string (so comparisons and `in` read as on a plain one) that also has named fields,
    readable as attributes and as keys: FIELDS, the first being the string itself."""

    FIELDS: tuple[str, ...] = ()
    WHAT = "it"  # in the KeyError of an unknown key

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key in self.FIELDS:
                return getattr(self, key)
            raise KeyError(f"{self.WHAT} has {', '.join(self.FIELDS)}, not {key!r}")
        return str.__getitem__(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.FIELDS else default

    def keys(self) -> tuple[str, ...]:
        return self.FIELDS

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.FIELDS}

    def __reduce__(self) -> Any:
        return (type(self), tuple(getattr(self, f) for f in self.FIELDS))


class ErrorInfo(_Fielded):
    """`result.error`: the message, as a string (so `str(result.error)` and `"x" in
    result.error` read as before), that also carries the documented fields `.message`,
    `.step` (the failed step's tag, or None) and `.code`; `result.error["code"]` works too."""

    FIELDS = ("message", "step", "code")
    WHAT = "result.error"

    step: str | None
    code: str

    def __new__(cls, message: str, step: str | None = None, code: str | None = None,
                status: str | None = None) -> ErrorInfo:
        self = super().__new__(cls, message)
        self.step = step
        self.code = code or error_code(status, step, message)
        return self

    @property
    def message(self) -> str:
        return str.__str__(self)


class FailedRollback(_Fielded):
    """An entry of a rollback report's `failed_steps`: the step's tag, as a string (so
    `failed_steps == ["charge"]` reads as before), that also has the fields the product's docs
    give it, `.tag` and `.error` (the rollback's error), readable as keys too."""

    FIELDS = ("tag", "error")
    WHAT = "a failed rollback"

    error: str

    def __new__(cls, tag: str, error: str = "") -> FailedRollback:
        self = super().__new__(cls, tag)
        self.error = error
        return self

    @property
    def tag(self) -> str:
        return str.__str__(self)


class CheckpointRef(_Fielded):
    """ctx.restored_checkpoint of a resumed run: the checkpoint's name, as a string (so
    `ctx.restored_checkpoint == "paid"` reads as before), that also has the fields the docs
    read off it, `.name` and `.data` (its metadata), readable as keys too."""

    FIELDS = ("name", "data")
    WHAT = "a checkpoint"

    data: Any

    def __new__(cls, name: str, data: Any = None) -> CheckpointRef:
        self = super().__new__(cls, name)
        self.data = data
        return self

    @property
    def name(self) -> str:
        return str.__str__(self)


def checkpoint_ref(flags: Mapping[str, Any]) -> CheckpointRef | None:
    """A resumed run's restored checkpoint, from its re-run flags (None when there is none)."""
    name = flags.get("restored_checkpoint")
    return None if not isinstance(name, str) else CheckpointRef(
        name, flags.get("restored_checkpoint_data"))


def rollback_report(report: Any) -> Any:
    """A rollback report (compensate(), trigger_rollback(), a run's rollback_result) with each
    of its failed_steps a FailedRollback carrying its error; stored, they are plain tags."""
    if isinstance(report, dict) and isinstance(report.get("failed_steps"), list):
        errors = report.get("errors") or {}
        report["failed_steps"] = [
            FailedRollback(t, str(errors.get(t) or "")) if isinstance(t, str) else t
            for t in report["failed_steps"]]
    return report


def error_code(status: str | None, step: str | None, message: str) -> str:
    """The `code` of a run's error, from what the run row keeps (so it reads the same from
    execute() and from the store): cancelled, workflow_timeout, step_timeout, step_failed,
    input_field_not_found, non_determinism, or workflow_failed."""
    if status == "cancelled" or message.startswith("Workflow cancelled"):
        return "cancelled"
    if message.startswith("Workflow timed out"):
        return "workflow_timeout"
    if step is not None:
        head = message.split(": ", 1)
        if len(head) == 2 and head[1].startswith("timed out after"):
            return "step_timeout"
        return "step_failed"
    if message.startswith("Input field not found"):
        return "input_field_not_found"
    if "the code changed under a running workflow" in message or "replay asked for" in message:
        return "non_determinism"
    return "workflow_failed"


@dataclass
class ExecutionResult:
    """The seed's result: to_dict() has exactly its keys."""

    workflow_id: str
    status: str
    output: Any = None
    error: ErrorInfo | None = None   # a str given here is made an ErrorInfo
    completed_steps: list[str] = field(default_factory=list)
    failed_step: str | None = None
    execution_time: int = 0
    rollback_result: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        err: Any = self.error
        if err is not None and not isinstance(err, ErrorInfo):
            self.error = ErrorInfo(str(err), self.failed_step, status=self.status)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in SEED_KEYS}
        if out["error"] is not None:
            out["error"] = str.__str__(out["error"])  # a plain str for JSON and equality
        return out

    @classmethod
    def from_rows(cls, run: RunRow, steps: list[StepRow]) -> ExecutionResult:
        status = run.status if run.status in ("completed", "failed", "rolled_back", "cancelled") \
            else "running"
        return cls(
            workflow_id=run.workflow_id,
            status=status,
            output=codec.loads(run.output),
            error=None if run.error is None else ErrorInfo(run.error, run.failed_step,
                                                          status=status),
            completed_steps=completed_tags(steps),
            failed_step=run.failed_step,
            execution_time=elapsed_ms(run),
            rollback_result=rollback_report(codec.loads(run.rollback_result)),
        )


def completed_tags(steps: list[StepRow]) -> list[str]:
    seen: dict[str, None] = {}
    for s in sorted(steps, key=lambda s: s.seq):
        if s.kind == "step" and s.status == "completed":
            seen.setdefault(s.tag, None)
    return list(seen)


def elapsed_ms(run: RunRow) -> int:
    import time

    if run.started_at is None:
        return 0
    end = run.finished_at if run.finished_at is not None else time.time()
    return max(0, round((end - run.started_at) * 1000))


Handler = Callable[[Any], Awaitable[Any]]


@dataclass
class WorkflowDef:
    product: str
    tag: str
    handler: Handler
    name: str | None = None
    description: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, Any] = field(default_factory=dict)   # name -> JSON Schema (or None)
    queries: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    envs: list[str] | None = None
    input_schema: dict[str, Any] | None = None
    source: str | None = None   # "python" or the YAML path
    # pydantic models given for the input or a signal's payload (their JSON Schemas are in
    # input_schema and signals): they check and convert what a run is given.
    input_model: Any = None
    signal_models: dict[str, Any] = field(default_factory=dict)

    def __await__(self) -> Generator[Any, None, WorkflowDef]:
        """`await dw.workflows.define(...)`, as the docs' JavaScript writes it, gives the
        definition too (define() itself is a plain call: it does no I/O)."""
        return self
        yield  # a generator that finishes at once
