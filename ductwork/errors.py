"""The one exception hierarchy of ductwork.

    DuctworkError                     base of every error ductwork raises on purpose
    ├── ConfigurationError            bad arguments to the public API (define, execute, ...)
    │   ├── WorkflowNotFoundError     "Workflow not found: <product>/<tag>"
    │   ├── DuplicateWorkflowError    the same product/tag defined twice
    │   └── RunNotFoundError          "No workflow run with id '<id>'" (status, result, ...)
    ├── InputFieldNotFoundError       "Input field not found: <name>" (a KeyError too)
    ├── SerializationError            a value the JSON codec cannot store (names the step)
    ├── NonDeterminismError           a replay asked for other steps than were recorded
    ├── StepError                     a step failed after its retries (wraps the cause)
    │   ├── StepTimeoutError          a step ran longer than its timeout
    │   └── ChildWorkflowError        a child workflow ended without completing
    ├── WorkflowTimeoutError          the whole run exceeded define(options={"timeout"})
    ├── SignalTimeoutError            wait_for_signal(timeout=) expired (catchable)
    ├── ConnectorError                a component call failed (names resource, event, env)
    │   └── ConnectorNotConfiguredError  no connector for that resource
    ├── CompileError                  a YAML spec is wrong (carries every located diagnostic)
    ├── ExpressionError               a ${...} expression failed to parse or evaluate
    └── StoreError                    the run store is unusable (bad URL, newer schema, ...)

Retries: `retryable` says whether running a failed step again can help. False on errors no
retry can fix (configuration, a missing secret or input field, bad input to a connector, an
HTTP 4xx other than 408/409/425/429): a step fails at once whatever its `retries`. None, the
default, is no opinion: the step retries as asked (user code, 5xx, timeouts, connection errors).
`not_retryable(exc)` is the one place the step loop asks.

Control flow that must not be swallowed by a user's `except Exception` (suspend a run
for a long sleep, cancel it) uses BaseException subclasses in ductwork.interpreter.
"""

from __future__ import annotations

from typing import Any


class DuctworkError(Exception):
    """Base class of every error ductwork raises on purpose."""

    # True: a retry may help; False: it cannot (the step is not retried); None: no opinion.
    retryable: bool | None = None
    # Why a retry cannot help, for the step's message when `retryable` is False.
    permanent_because = "this error is not retryable"


class ConfigurationError(DuctworkError):
    """The public API was called with something that cannot work; the message says how to fix it."""

    retryable = False
    permanent_because = "a configuration error is not retryable"


class WorkflowNotFoundError(ConfigurationError):
    def __init__(self, product: str, tag: str, hint: str = "") -> None:
        self.product, self.tag = product, tag
        msg = f"Workflow not found: {product}/{tag}"
        super().__init__(msg + (f" ({hint})" if hint else ""))


class DuplicateWorkflowError(ConfigurationError):
    pass


class RunNotFoundError(ConfigurationError):
    """No run has this workflow_id (a ConfigurationError, as it was before it had a name)."""

    def __init__(self, workflow_id: str, hint: str = "") -> None:
        self.workflow_id = workflow_id
        super().__init__(f"No workflow run with id {workflow_id!r}" + (f"; {hint}" if hint else ""))


class InputFieldNotFoundError(DuctworkError, KeyError, AttributeError):
    retryable = False
    permanent_because = "a missing input field is not retryable"

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Input field not found: {name}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0])


class SerializationError(DuctworkError):
    retryable = False  # the same code returns a value of the same type
    permanent_because = "a value that cannot be stored is not retryable"


class NonDeterminismError(DuctworkError):
    retryable = False
    permanent_because = "non-determinism is not retryable"


class StepError(DuctworkError):
    """`cause_type` names the exception the step raised ("ConnectorError" for any connector
    error), `status` the HTTP status it carried and `retryable` the cause's classification
    (False: the step was not retried because no retry could help); all survive a replay."""

    def __init__(self, message: str, *, step: str | None = None, attempts: int = 0,
                 cause_type: str | None = None, status: int | None = None,
                 retryable: bool | None = None) -> None:
        super().__init__(message)
        self.step, self.attempts = step, attempts
        self.cause_type, self.status = cause_type, status
        if retryable is not None:
            self.retryable = retryable


class StepTimeoutError(StepError):
    pass


class ChildWorkflowError(StepError):
    """A child workflow ended without completing (failed, rolled back, cancelled, timed out).
    Catchable in the parent; `workflow_id` is the child run, `child_error` its error."""

    def __init__(self, message: str, *, step: str, workflow_id: str, child_status: str,
                 child_error: str | None, attempts: int = 1) -> None:
        super().__init__(message, step=step, attempts=attempts)
        self.workflow_id = workflow_id
        self.child_status = child_status
        self.child_error = child_error


class WorkflowTimeoutError(DuctworkError):
    retryable = False  # the run's deadline has passed
    permanent_because = "the workflow's deadline has passed"


class SignalTimeoutError(DuctworkError):
    def __init__(self, message: str, *, signals: list[str] | None = None) -> None:
        super().__init__(message)
        self.signals = signals or []


class ConnectorError(DuctworkError):
    """A component call failed. Never put a secret in the message. `retryable`: True for a
    transient failure (5xx, 408/409/425/429, timeout, connection), False for one the call
    itself causes (a 4xx, bad input, unknown event, bad config), None when unknown."""

    permanent_because = "the connector reported an error no retry can fix"

    def __init__(
        self,
        message: str,
        *,
        kind: str | None = None,
        resource: str | None = None,
        event: str | None = None,
        env: str | None = None,
        status: int | None = None,
        body: Any = None,
        retryable: bool | None = None,
    ) -> None:
        where = "/".join(p for p in (kind, resource, event) if p)
        prefix = f"{where} (env {env}): " if where and env else (f"{where}: " if where else "")
        super().__init__(prefix + message)
        self.kind, self.resource, self.event, self.env = kind, resource, event, env
        self.status, self.body = status, body
        if retryable is not None:  # else the class's own (ConnectorNotConfiguredError: False)
            self.retryable = retryable


class ConnectorNotConfiguredError(ConnectorError):
    retryable = False
    permanent_because = "a connector that is not configured is not retryable"


class CompileError(DuctworkError):
    """One or more located diagnostics; str() renders them all like a compiler."""

    retryable = False
    permanent_because = "a spec error is not retryable"

    def __init__(self, diagnostics: list[Any]) -> None:
        self.diagnostics = list(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class ExpressionError(DuctworkError):
    retryable = False  # evaluating the same expression on the same data fails the same way
    permanent_because = "an expression error is not retryable"

    def __init__(self, message: str, *, expression: str | None = None, column: int | None = None):
        super().__init__(message)
        self.expression, self.column = expression, column


class StoreError(DuctworkError):
    pass


def not_retryable(exc: BaseException) -> str | None:
    """Why running a failed step again cannot help, or None when it may: the one place the
    step loop asks (user code's own exceptions always may; they are the user's to judge)."""
    if not isinstance(exc, DuctworkError) or exc.retryable is not False:
        return None
    if isinstance(exc, ConnectorError) and exc.status is not None:
        return f"HTTP {exc.status} is not retryable"
    return exc.permanent_because
