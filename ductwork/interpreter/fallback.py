"""Provider pools: fallback in order with retries and a circuit breaker, quota by weight and limit.

State (breakers, quota windows, the weighted rotation) lives in memory, one per pool per
Ductwork instance: each process keeps its own, and a restart starts with every breaker closed
and every window empty. The durable part is the step around a call: its result (and which
provider served it) is committed once, so a replay never calls a provider again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ductwork.connectors import idempotency
from ductwork.connectors.base import Connector, ResourceSpec, build_connector
from ductwork.connectors.providers import Member, Pool, read_pool
from ductwork.errors import (
    ConfigurationError,
    ConnectorError,
    DuctworkError,
    ExpressionError,
    not_retryable,
)

# Failures that say the provider itself is unwell (the breaker counts them); any other error
# (a 4xx, say) still moves on to the next provider but does not open its breaker.
_AUTH_STATUSES = frozenset({401, 403})


@dataclass
class Breaker:
    """Closed -> open after `failures` failed calls in a row -> half open after the cooldown
    (one trial call) -> closed on success, open again on failure."""

    failures: int
    cooldown_s: float
    in_row: int = 0
    open_until: float | None = None
    trial: bool = False

    def state(self, now: float) -> str:
        if self.open_until is None:
            return "closed"
        return "open" if now < self.open_until else "half_open"

    def allows(self, now: float) -> bool:
        state = self.state(now)
        return state == "closed" or (state == "half_open" and not self.trial)

    def success(self) -> None:
        self.in_row, self.open_until, self.trial = 0, None, False

    def failure(self, now: float) -> None:
        self.in_row += 1
        self.trial = False
        if self.open_until is not None or self.in_row >= self.failures:
            self.open_until = now + self.cooldown_s


@dataclass
class Outcome:
    """Which provider served a call, what it returned, and what failed or was skipped."""

    provider: str
    value: Any
    attempts: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "output": self.value, "attempts": self.attempts,
                "skipped": self.skipped}


class Strategy:
    """One pool's runtime state and its way of choosing providers for a call."""

    def __init__(self, label: str, pool: Pool, *, now: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 redact: Callable[[str], str] = str) -> None:
        self.label, self.pool = label, pool
        self._now, self._sleep, self._redact = now, sleep, redact
        self.breakers = {m.name: Breaker(pool.failures, pool.cooldown_ms / 1000)
                         for m in pool.members}
        self._calls: dict[str, deque[float]] = {m.name: deque() for m in pool.members}
        self._current = {m.name: 0 for m in pool.members}  # smooth weighted rotation

    # -- choosing ----------------------------------------------------------------------------
    def used(self, name: str) -> int:
        """Calls made to provider `name` in the current window (quota)."""
        window = self._calls[name]
        horizon = self._now() - self.pool.window_ms / 1000
        while window and window[0] <= horizon:
            window.popleft()
        return len(window)

    def _skip_reason(self, m: Member) -> str | None:
        now = self._now()
        breaker = self.breakers[m.name]
        if not breaker.allows(now):
            left = (breaker.open_until or now) - now
            return (f"circuit open for {max(left, 0):.1f}s more after {breaker.in_row} "
                    "failure(s) in a row" if left > 0 else "a trial call is in flight")
        if self.pool.strategy == "quota" and m.limit is not None and self.used(m.name) >= m.limit:
            return f"limit {m.limit} per {self.pool.window_ms / 1000:g}s reached"
        return None

    def order(self) -> tuple[list[Member], list[dict[str, Any]]]:
        """The providers to try, first to last, and the ones skipped with why."""
        ready: list[Member] = []
        skipped: list[dict[str, Any]] = []
        for m in self.pool.members:
            reason = self._skip_reason(m)
            if reason is None:
                ready.append(m)
            else:
                skipped.append({"provider": m.name, "reason": reason})
        if self.pool.strategy == "quota" and ready:
            # Smooth weighted round robin (as nginx does): over any run of sum(weights) calls
            # each provider gets exactly its weight's share, spread out rather than bunched.
            total = sum(m.weight for m in ready)
            for m in ready:
                self._current[m.name] += m.weight
            first = max(ready, key=lambda m: self._current[m.name])
            self._current[first.name] -= total
            rest = sorted((m for m in ready if m is not first), key=lambda m: -m.weight)
            ready = [first, *rest]
        return ready, skipped

    # -- calling -----------------------------------------------------------------------------
    async def run(self, call: Callable[[Member], Awaitable[Any]]) -> Outcome:
        """Call the chosen providers until one succeeds; ConnectorError when none did."""
        with idempotency.one_call():  # a retry or a fallback repeats the call: the same key
            return await self._run(call)

    async def _run(self, call: Callable[[Member], Awaitable[Any]]) -> Outcome:
        ready, skipped = self.order()
        attempts: list[dict[str, Any]] = []
        last: BaseException | None = None
        for m in ready:
            if self.pool.strategy == "quota" and m.limit is not None \
                    and self.used(m.name) >= m.limit:
                skipped.append({"provider": m.name, "reason": f"limit {m.limit} reached"})
                continue
            breaker = self.breakers[m.name]
            if breaker.state(self._now()) == "half_open":
                breaker.trial = True
            n = 0
            while True:
                n += 1
                self._calls[m.name].append(self._now())
                try:
                    value = await call(m)
                except (ConfigurationError, ExpressionError):
                    breaker.trial = False
                    raise  # the call itself is wrong: no provider can serve it
                except Exception as e:
                    last = e
                    message = self._redact(f"{type(e).__name__}: {e}"
                                           if not isinstance(e, DuctworkError) else str(e))
                    attempts.append({"provider": m.name, "attempt": n, "error": message})
                    if n <= m.retries and not_retryable(e) is None:
                        await self._sleep(m.retry_delay_ms / 1000)
                        continue
                    if _provider_fault(e):
                        breaker.failure(self._now())
                    else:
                        breaker.trial = False
                    break
                breaker.success()
                return Outcome(m.name, value, attempts, skipped)
        raise self._exhausted(attempts, skipped, last)

    def _exhausted(self, attempts: list[dict[str, Any]], skipped: list[dict[str, Any]],
                   last: BaseException | None) -> ConnectorError:
        parts = [f"{a['provider']} failed: {a['error']}" for a in _last_per_provider(attempts)]
        parts += [f"{s['provider']} skipped: {s['reason']}" for s in skipped]
        what = "every provider failed" if attempts else "no provider could take the call"
        status = getattr(last, "status", None)
        err = ConnectorError(self._redact(f"{self.label}: {what} ({'; '.join(parts)})"),
                             status=status if isinstance(status, int) else None,
                             retryable=True if not attempts else (
                                 None if last is None else _retryable(last)))
        # ctx.quota.execute tells "every provider at its limit" apart (a result, not a failure)
        err.skipped, err.attempted = skipped, bool(attempts)  # type: ignore[attr-defined]
        return err

    def status(self) -> list[dict[str, Any]]:
        """Each provider's breaker and quota use, for doctor and ctx.healthcheck."""
        now = self._now()
        out = []
        for m in self.pool.members:
            b = self.breakers[m.name]
            row: dict[str, Any] = {"provider": m.name, "breaker": b.state(now),
                                   "failures_in_row": b.in_row}
            if self.pool.strategy == "quota":
                row.update(weight=m.weight, limit=m.limit, used=self.used(m.name))
            out.append(row)
        return out


def _provider_fault(e: BaseException) -> bool:
    status = getattr(e, "status", None)
    return not_retryable(e) is None or status in _AUTH_STATUSES


def _retryable(e: BaseException) -> bool | None:
    return e.retryable if isinstance(e, DuctworkError) else None


def _last_per_provider(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last: dict[str, dict[str, Any]] = {}
    for a in attempts:
        last[a["provider"]] = a
    return list(last.values())


class PooledConnector(Connector):
    """One resource served by several providers: every operation (email, run, upload, ...)
    goes to the pool's choice, the next one on failure. Served-by is reported to `report`."""

    def __init__(self, kind: str, name: str, strategy: Strategy,
                 members: dict[str, Connector],
                 report: Callable[[str, Outcome], None] | None = None) -> None:
        super().__init__(None)
        self.kind = kind  # type: ignore[misc]  # the kind of the resource it serves
        self.name, self.strategy, self.members = name, strategy, members
        self._report = report

    def member(self, name: str) -> Connector:
        conn = self.members.get(name)
        if conn is None:
            raise ConfigurationError(
                f"{self.kind} '{self.name}' has no provider named {name!r} (its providers: "
                f"{', '.join(self.members)})")
        return conn

    def __getattr__(self, op: str) -> Any:
        if op.startswith("_"):
            raise AttributeError(op)
        first = next(iter(self.members.values()))
        if not callable(getattr(first, op, None)):
            raise AttributeError(op)

        async def call(*args: Any, **kw: Any) -> Any:
            outcome = await self.call(op, *args, **kw)
            return outcome.value

        return call

    async def call(self, op: str, *args: Any, **kw: Any) -> Outcome:
        async def one(m: Member) -> Any:
            return await getattr(self.members[m.name], op)(*args, **kw)

        outcome = await self.strategy.run(one)
        if self._report is not None:
            self._report(f"{self.kind} '{self.name}'", outcome)
        return outcome

    async def aclose(self) -> None:
        for conn in self.members.values():
            await conn.aclose()


def build_pool(spec: ResourceSpec, report: Callable[[str, Outcome], None] | None = None, *,
               prepare: Callable[[ResourceSpec], ResourceSpec] | None = None
               ) -> PooledConnector:
    """The pooled connector of a resource whose env config lists `providers:`; each member
    is built as if its config were the env's (its connection opens on first use), its spec
    passed through `prepare` first (the test sandbox's hook)."""
    label = f"{spec.kind} '{spec.name}'"
    try:
        # An app's `variables:` beside `providers:` are the app's (ctx.variable), no pool key.
        pool = read_pool({k: v for k, v in spec.config.items()
                          if not (spec.kind == "action" and k == "variables")})
    except ValueError as e:
        raise spec.error(f"providers of env {spec.env}: {e}", retryable=False) from None
    members: dict[str, Connector] = {}
    for m in pool.members:
        member = replace(spec, config=dict(m.config))
        members[m.name] = build_connector(member if prepare is None else prepare(member))
    strategy = Strategy(label, pool, redact=spec.redact)
    return PooledConnector(spec.kind, spec.name, strategy, members, report)
