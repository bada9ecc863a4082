"""What execute() returns, and the workflow definition record."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ductwork.interpreter import codec
from ductwork.store.protocol import RunRow, StepRow

SEED_KEYS = ("status", "workflow_id", "execution_time", "output", "completed_steps",
             "failed_step", "error")


@dataclass
class ExecutionResult:
    """The seed's result: to_dict() has exactly its keys."""

    workflow_id: str
    status: str
    output: Any = None
    error: str | None = None
    completed_steps: list[str] = field(default_factory=list)
    failed_step: str | None = None
    execution_time: int = 0
    rollback_result: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SEED_KEYS}

    @classmethod
    def from_rows(cls, run: RunRow, steps: list[StepRow]) -> ExecutionResult:
        status = run.status if run.status in ("completed", "failed", "rolled_back", "cancelled") \
            else "running"
        return cls(
            workflow_id=run.workflow_id,
            status=status,
            output=codec.loads(run.output),
            error=run.error,
            completed_steps=completed_tags(steps),
            failed_step=run.failed_step,
            execution_time=elapsed_ms(run),
            rollback_result=codec.loads(run.rollback_result),
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
