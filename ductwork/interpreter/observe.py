"""Engine observers: the hook for metrics and tracing; None by default, so it costs nothing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ductwork.store.protocol import RunRow

log = logging.getLogger("ductwork.observe")


class Observer:
    """What the engine tells an observer. Every method does nothing here: subclass and override
    the ones you need. The engine calls them in the run's own task (so a context variable set
    in a `*_started` call is seen by the code of that run until the matching `*_ended`).

    A `*_started` method returns a token (a span, a start time, None...) that the engine hands
    back to the matching `*_ended` call, so an observer keeps no table of open operations.

    Rules for implementations: be quick and never raise (an exception is logged and dropped,
    the run goes on); never keep `run` beyond the call (the engine mutates it).

    Statuses: `run_ended` gets a terminal status (completed, failed, rolled_back, cancelled)
    or, when the run only leaves this process, the status it suspends with (sleeping,
    waiting, pending) or "released" (its lease was lost or the process is closing). A run
    that suspends and resumes later starts again with `resumed=True`."""

    # -- runs ----------------------------------------------------------------------------------
    def run_created(self, run: RunRow) -> None:
        """A new run row is about to be stored (execute, dispatch, a child, a schedule's
        occurrence, a re-run): the one call that may change `run`, to add keys to its stored
        context (run.context, JSON), e.g. the trace the run belongs to."""

    def run_started(self, run: RunRow, resumed: bool) -> Any:
        """This process starts (or resumes) driving `run`."""
        return None

    def run_ended(self, run: RunRow, token: Any, status: str, error: str | None) -> None:
        """The drive that run_started opened is over (see the statuses above)."""

    # -- steps ---------------------------------------------------------------------------------
    def step_started(self, run: RunRow, tag: str, key: str, attempt: int) -> Any:
        """One attempt of step `tag` (occurrence `key`) begins; attempt counts from 1."""
        return None

    def step_ended(self, run: RunRow, token: Any, tag: str, key: str, attempt: int,
                   status: str, error: BaseException | None, duration_s: float) -> None:
        """The attempt ended: status "completed", "retrying" (another attempt follows),
        "failed" (no attempt follows; allow_fail may still let the run go on) or "interrupted"
        (the run was cancelled, lost its lease or its process is closing)."""

    # -- compensation, signal waits ------------------------------------------------------------
    def compensation_started(self, run: RunRow, tag: str, key: str) -> Any:
        """The rollback of completed step `tag` begins."""
        return None

    def compensation_ended(self, run: RunRow, token: Any, tag: str, key: str, status: str,
                           error: str | None) -> None:
        """status: "rolled_back", "rollback_failed" (error says why) or "interrupted"."""

    def signal_wait_started(self, run: RunRow, names: list[str]) -> Any:
        """The run starts (or resumes) waiting for one of the signals `names`."""
        return None

    def signal_wait_ended(self, run: RunRow, token: Any, names: list[str], status: str) -> None:
        """status: "received", "timed_out", "suspended" (the run left the process to wait;
        a later drive starts a new wait) or "interrupted" (cancelled, lease lost, closing)."""

    # -- workers and schedules -----------------------------------------------------------------
    def run_claimed(self, run: RunRow, latency_s: float) -> None:
        """A worker claimed `run`, `latency_s` after it became due."""

    def schedule_fired(self, product: str, tag: str, job_id: str, workflow_id: str) -> None:
        """A schedule occurrence started run `workflow_id`."""


class Observers(Observer):
    """Several observers as one: each call goes to each, in the order they were added; one
    that raises is logged and the others still get the call."""

    def __init__(self, observers: list[Observer] | None = None) -> None:
        self.observers: list[Observer] = list(observers or [])

    def _each(self, name: str, *args: Any) -> list[Any]:
        out = []
        for obs in self.observers:
            out.append(call(getattr(obs, name), *args))
        return out

    def run_created(self, run: RunRow) -> None:
        self._each("run_created", run)

    def run_started(self, run: RunRow, resumed: bool) -> Any:
        return self._each("run_started", run, resumed)

    def run_ended(self, run: RunRow, token: Any, status: str, error: str | None) -> None:
        for obs, tok in zip(self.observers, _tokens(token, self.observers), strict=True):
            call(obs.run_ended, run, tok, status, error)

    def step_started(self, run: RunRow, tag: str, key: str, attempt: int) -> Any:
        return self._each("step_started", run, tag, key, attempt)

    def step_ended(self, run: RunRow, token: Any, tag: str, key: str, attempt: int,
                   status: str, error: BaseException | None, duration_s: float) -> None:
        for obs, tok in zip(self.observers, _tokens(token, self.observers), strict=True):
            call(obs.step_ended, run, tok, tag, key, attempt, status, error, duration_s)

    def compensation_started(self, run: RunRow, tag: str, key: str) -> Any:
        return self._each("compensation_started", run, tag, key)

    def compensation_ended(self, run: RunRow, token: Any, tag: str, key: str, status: str,
                           error: str | None) -> None:
        for obs, tok in zip(self.observers, _tokens(token, self.observers), strict=True):
            call(obs.compensation_ended, run, tok, tag, key, status, error)

    def signal_wait_started(self, run: RunRow, names: list[str]) -> Any:
        return self._each("signal_wait_started", run, names)

    def signal_wait_ended(self, run: RunRow, token: Any, names: list[str], status: str) -> None:
        for obs, tok in zip(self.observers, _tokens(token, self.observers), strict=True):
            call(obs.signal_wait_ended, run, tok, names, status)

    def run_claimed(self, run: RunRow, latency_s: float) -> None:
        self._each("run_claimed", run, latency_s)

    def schedule_fired(self, product: str, tag: str, job_id: str, workflow_id: str) -> None:
        self._each("schedule_fired", product, tag, job_id, workflow_id)


def _tokens(token: Any, observers: list[Observer]) -> list[Any]:
    # An observer added between a start and its end gets None as its token.
    toks = list(token) if isinstance(token, list) else []
    return (toks + [None] * len(observers))[:len(observers)]


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call an observer method; an observer's bug must never break a run."""
    try:
        return fn(*args)
    except Exception:
        log.exception("observer %s failed (ignored)", getattr(fn, "__qualname__", fn))
        return None


def created(observer: Observer | None, run: RunRow) -> None:
    """Tell the observer (if any) about a new run row before it is stored."""
    if observer is not None:
        call(observer.run_created, run)


def combine(current: Observer | None, added: Observer) -> Observer:
    """The observer to install when `added` joins `current` (None, one, or several)."""
    if current is None:
        return added
    if isinstance(current, Observers):
        current.observers.append(added)
        return current
    return Observers([current, added])
