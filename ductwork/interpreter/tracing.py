"""OpenTelemetry spans for runs, step attempts, compensations and signal waits (opentelemetry-api).

Imported only when tracing is turned on (Ductwork(tracing=True) or DUCTWORK_TRACING=1). One run is
one trace: when a run is created, a short `start <workflow>` span (a child of the caller's span,
if any) is stored with it as W3C trace context, and every execution of the run, in this process
or another one, after a suspension or a crash, is a child of it; a child run's start span is a
child of its parent's execution. Spans carry ids and statuses, never payloads; error messages
are redacted like the run store's.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ductwork.interpreter import codec
from ductwork.interpreter.observe import Observer
from ductwork.util import propagation

if TYPE_CHECKING:
    from ductwork.store.protocol import RunRow

_W3C = TraceContextTextMapPropagator()
_FAILED = frozenset({"failed", "rolled_back", "cancelled"})
# An open span and the context token that made it current (detached when it ends).
_Open = tuple[Span, object]


class Tracing(Observer):
    """Spans through the OpenTelemetry API: the SDK the application configured exports them
    (or the given tracer provider's)."""

    def __init__(self, redact: Callable[[str], str], tracer_provider: Any = None) -> None:
        self.redact = redact
        self.tracer = trace.get_tracer("ductwork", _version(), tracer_provider=tracer_provider)
        propagation.register(inject_http)

    # -- runs ------------------------------------------------------------------------------------
    def run_created(self, run: RunRow) -> None:
        extra = codec.loads(run.context) if run.context else {}
        if not isinstance(extra, dict) or extra.get("trace"):
            return
        span = self.tracer.start_span(f"start {run.product}/{run.tag}", kind=SpanKind.INTERNAL,
                                      attributes=_run_attrs(run))
        carrier: dict[str, str] = {}
        _W3C.inject(carrier, context=trace.set_span_in_context(span))
        span.end()
        if carrier:  # empty with a non-recording tracer (no SDK): nothing to continue
            extra["trace"] = carrier
            run.context = codec.dumps(extra)

    def run_started(self, run: RunRow, resumed: bool) -> _Open:
        stored = _stored_carrier(run)
        # A run created where tracing was off has no stored trace: this execution continues
        # the current context (its caller's), and a later execution starts its own trace.
        parent = _W3C.extract(stored) if stored else None
        span = self.tracer.start_span(
            f"workflow {run.product}/{run.tag}", context=parent, kind=SpanKind.INTERNAL,
            attributes={**_run_attrs(run), "ductwork.run.resumed": resumed})
        return span, otel_context.attach(trace.set_span_in_context(span))

    def run_ended(self, run: RunRow, token: Any, status: str, error: str | None) -> None:
        span = _close(token)
        if span is None:
            return
        span.set_attribute("ductwork.status", status)
        if status == "completed":
            span.set_status(Status(StatusCode.OK))
        elif status in _FAILED:
            span.set_status(Status(StatusCode.ERROR, self.redact(error or status)))
        span.end()

    # -- operations ------------------------------------------------------------------------------
    def step_started(self, run: RunRow, tag: str, key: str, attempt: int) -> _Open:
        return self._open(run, f"step {tag}", {"ductwork.step": tag, "ductwork.step.key": key,
                                               "ductwork.attempt": attempt})

    def step_ended(self, run: RunRow, token: Any, tag: str, key: str, attempt: int,
                   status: str, error: BaseException | None, duration_s: float) -> None:
        message = None if error is None else self.redact(str(error))
        self._end(token, status, status in ("failed", "retrying"),
                  None if error is None else type(error).__name__, message)

    def compensation_started(self, run: RunRow, tag: str, key: str) -> _Open:
        return self._open(run, f"rollback {tag}", {"ductwork.step": tag,
                                                   "ductwork.step.key": key})

    def compensation_ended(self, run: RunRow, token: Any, tag: str, key: str, status: str,
                           error: str | None) -> None:
        failed = status == "rollback_failed"
        self._end(token, status, failed, "RollbackError" if failed else None,
                  None if error is None else self.redact(error))

    def signal_wait_started(self, run: RunRow, names: list[str]) -> _Open:
        return self._open(run, f"signal {'|'.join(names)}", {"ductwork.signal": list(names)})

    def signal_wait_ended(self, run: RunRow, token: Any, names: list[str], status: str) -> None:
        timed_out = status == "timed_out"
        self._end(token, status, timed_out, "SignalTimeoutError" if timed_out else None,
                  f"no signal {' or '.join(names)} arrived before the timeout"
                  if timed_out else None)

    def _open(self, run: RunRow, name: str, attrs: dict[str, Any]) -> _Open:
        span = self.tracer.start_span(name, kind=SpanKind.INTERNAL,
                                      attributes={**_run_attrs(run), **attrs})
        return span, otel_context.attach(trace.set_span_in_context(span))

    def _end(self, token: Any, status: str, failed: bool, error_type: str | None,
             message: str | None) -> None:
        span = _close(token)
        if span is None:
            return
        span.set_attribute("ductwork.status", status)
        if failed:
            if error_type is not None:
                span.add_event("exception", {"exception.type": error_type,
                                             "exception.message": message or ""})
            span.set_status(Status(StatusCode.ERROR, f"{error_type}: {message}"
                                   if error_type and message else message or status))
        elif status != "interrupted":
            span.set_status(Status(StatusCode.OK))
        span.end()


def _close(token: Any) -> Span | None:
    """Make the span's parent current again; the span, or None for a call that had no token
    (an observer added while the operation ran)."""
    if not isinstance(token, tuple) or len(token) != 2:
        return None
    span, ctx_token = token
    otel_context.detach(ctx_token)
    return span


def _run_attrs(run: RunRow) -> dict[str, Any]:
    return {"ductwork.workflow": f"{run.product}/{run.tag}", "ductwork.run_id": run.workflow_id,
            "ductwork.env": run.env}


def _stored_carrier(run: RunRow) -> dict[str, str] | None:
    try:
        extra = codec.loads(run.context) if run.context else None
    except ValueError:
        return None
    carrier = extra.get("trace") if isinstance(extra, dict) else None
    return carrier if isinstance(carrier, dict) and carrier.get("traceparent") else None


def _version() -> str | None:
    try:
        return metadata.version("ductwork")
    except metadata.PackageNotFoundError:
        return None


def inject_http(headers: dict[str, str]) -> None:
    """The current span's traceparent (and the configured propagators' other headers) for an
    outgoing HTTP call; nothing outside a span."""
    if trace.get_current_span().get_span_context().is_valid:
        propagate.inject(headers)
