"""ductwork: durable workflows for Python."""

import logging as _logging
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ductwork.errors import (
    ChildWorkflowError,
    CompileError,
    ConfigurationError,
    ConnectorError,
    ConnectorNotConfiguredError,
    DuctworkError,
    DuplicateWorkflowError,
    ExpressionError,
    InputFieldNotFoundError,
    NonDeterminismError,
    RunNotFoundError,
    SerializationError,
    SignalTimeoutError,
    StepError,
    StepTimeoutError,
    StoreError,
    WorkflowNotFoundError,
    WorkflowTimeoutError,
)

if _TYPE_CHECKING:
    from ductwork.app import Ductwork
    from ductwork.interpreter.context import WorkflowContext
    from ductwork.interpreter.result import ErrorInfo, ExecutionResult

__all__ = [
    "ChildWorkflowError",
    "CompileError",
    "ConfigurationError",
    "ConnectorError",
    "ConnectorNotConfiguredError",
    "Ductwork",
    "DuctworkError",
    "DuplicateWorkflowError",
    "ErrorInfo",
    "ExecutionResult",
    "ExpressionError",
    "InputFieldNotFoundError",
    "NonDeterminismError",
    "RunNotFoundError",
    "SerializationError",
    "SignalTimeoutError",
    "StepError",
    "StepTimeoutError",
    "StoreError",
    "WorkflowContext",
    "WorkflowNotFoundError",
    "WorkflowTimeoutError",
]

__version__ = "0.1.0"

# Imported on first use: `import ductwork` (and every `ductwork` command, which imports the
# package first) then costs the errors module alone, not the engine, store and connectors.
_LAZY = {
    "Ductwork": "ductwork.app",
    "WorkflowContext": "ductwork.interpreter.context",
    "ErrorInfo": "ductwork.interpreter.result",
    "ExecutionResult": "ductwork.interpreter.result",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ductwork' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# A library stays silent unless the application configures logging.
_logging.getLogger("ductwork").addHandler(_logging.NullHandler())
