"""ductwork: durable workflows for Python."""

import logging as _logging

from ductwork.app import Ductwork
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

# A library stays silent unless the application configures logging.
_logging.getLogger("ductwork").addHandler(_logging.NullHandler())
