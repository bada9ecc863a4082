"""The public surface is pinned: changing it is a decision, not an accident."""

from __future__ import annotations

import ductwork


def test_public_names_are_pinned() -> None:
    assert sorted(ductwork.__all__) == [
        "ChildWorkflowError", "CompileError", "ConfigurationError", "ConnectorError",
        "ConnectorNotConfiguredError",
        "Ductwork", "DuctworkError", "DuplicateWorkflowError", "ErrorInfo", "ExecutionResult",
        "ExpressionError", "InputFieldNotFoundError", "NonDeterminismError", "RunNotFoundError",
        "SerializationError", "SignalTimeoutError", "StepError", "StepTimeoutError",
        "StoreError", "WorkflowContext", "WorkflowNotFoundError", "WorkflowTimeoutError",
    ]
    for name in ductwork.__all__:
        obj = getattr(ductwork, name)
        if isinstance(obj, type) and name.endswith("Error"):
            assert issubclass(obj, ductwork.DuctworkError)


def test_testing_exports_are_pinned() -> None:
    import ductwork.testing

    assert sorted(ductwork.testing.__all__) == [
        "FakeClock", "MemoryAction", "MemoryBroker", "MemoryDatabase", "MemoryGraph",
        "MemoryNotification", "MemoryStorage", "RollbackMock", "StepMock", "WorkflowTestEnv",
    ]
    for name in ductwork.testing.__all__:
        assert getattr(ductwork.testing, name).__module__.startswith("ductwork.testing.")
