"""The public surface is pinned: changing it is a decision, not an accident."""

from __future__ import annotations

import ductwork


def test_public_names_are_pinned() -> None:
    assert sorted(ductwork.__all__) == [
        "ChildWorkflowError", "CompileError", "ConfigurationError", "ConnectorError",
        "ConnectorNotConfiguredError",
        "Ductwork", "DuctworkError", "DuplicateWorkflowError", "ExecutionResult",
        "ExpressionError", "InputFieldNotFoundError", "NonDeterminismError",
        "SerializationError", "SignalTimeoutError", "StepError", "StepTimeoutError",
        "StoreError", "WorkflowContext", "WorkflowNotFoundError", "WorkflowTimeoutError",
    ]
    for name in ductwork.__all__:
        obj = getattr(ductwork, name)
        if isinstance(obj, type) and name.endswith("Error"):
            assert issubclass(obj, ductwork.DuctworkError)
