"""Health of resources: each provider of each resource of an environment, checked at once."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import TYPE_CHECKING, Any

from ductwork.connectors.health import DEFAULT_TIMEOUT_S, DOWN, UP, Health, failed, probe
from ductwork.errors import ConfigurationError
from ductwork.interpreter.fallback import PooledConnector

if TYPE_CHECKING:
    from ductwork.interpreter.journal import Journal
    from ductwork.interpreter.resources import ConnectorRegistry


async def check_resource(registry: ConnectorRegistry, kind: str, name: str, product: str,
                         env: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Health]:
    """One row per provider of resource `kind`/`name` in `env` (one for a single provider)."""
    try:
        conn = registry.get(kind, name, product, env)
    except Exception as e:  # a missing secret, a bad config: down, saying why
        provider = registry.declared_provider(kind, name, product, env)
        return [failed(kind, name, "(every)" if provider == "pool" else provider, provider, e,
                       registry.redact)]
    if isinstance(conn, PooledConnector):
        rows = await asyncio.gather(*(
            probe(member, kind=kind, resource=name, member=mname,
                  provider=member.spec.provider if member.spec else type(member).__name__,
                  timeout_s=timeout_s)
            for mname, member in conn.members.items()))
        return list(rows)
    provider = conn.spec.provider if conn.spec is not None else type(conn).__name__
    return [await probe(conn, kind=kind, resource=name, member=provider, provider=provider,
                        timeout_s=timeout_s)]


async def check_env(registry: ConnectorRegistry, product: str, env: str, *,
                    timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Health]:
    """Every resource the product declares, every provider of each, checked concurrently."""
    names = registry.resource_names(product)
    groups = await asyncio.gather(*(check_resource(registry, kind, name, product, env,
                                                   timeout_s=timeout_s)
                                    for kind, name in names))
    return [row for rows in groups for row in rows]


def summary(rows: list[Health]) -> dict[str, Any]:
    """ctx.healthcheck's answer: available when at least one provider is up (or unchecked)."""
    usable = [r for r in rows if r.status != DOWN]
    latencies = [r.latency_ms for r in rows if r.status == UP and r.latency_ms is not None]
    checked = max((r.checked_at for r in rows), default=None)
    return {
        "status": "available" if usable else "unavailable",
        "last_checked": None if checked is None else dt.datetime.fromtimestamp(
            checked, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "last_latency": min(latencies) if latencies else None,
        "providers": [{"provider": r.member, "type": r.provider, "status": r.status,
                       "latency_ms": r.latency_ms, "detail": r.detail} for r in rows],
    }


class HealthcheckComponent:
    """ctx.healthcheck: the current health of one of the product's resources, as a step."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def get_status(self, tag: str | None = None, *, kind: str | None = None,
                         timeout: Any = None, resource: str | None = None) -> dict[str, Any]:
        """{status: available|unavailable, last_checked, last_latency, providers: [...]} of
        the resource named `tag` (or `resource=`, the YAML body's key) in the run's env. A
        durable step (tag "healthcheck:<name>"), unless called inside one: a replay reads
        the recorded answer, so the run takes the same branch again."""
        from ductwork.util.durations import to_ms

        tag = tag if tag is not None else resource
        if not isinstance(tag, str) or not tag:
            raise ConfigurationError("ctx.healthcheck.get_status: name the resource, e.g. "
                                     "ctx.healthcheck.get_status('payments')")
        journal = self._journal
        run = journal.run
        registry = journal.engine.runtime.connectors
        found = [k for k, n in registry.resource_names(run.product) if n == tag]
        if kind is not None:
            kind = {"app": "action", "messaging": "broker", "publish": "broker"}.get(kind, kind)
            found = [k for k in found if k == kind]
        if not found:
            raise ConfigurationError(
                f"ctx.healthcheck.get_status: no resource named {tag!r} in product "
                f"'{run.product}'" + (f" of kind {kind}" if kind else "")
                + f"; declared: {', '.join(n for _, n in registry.resource_names(run.product))}")
        if len(found) > 1:
            raise ConfigurationError(
                f"ctx.healthcheck.get_status: {tag!r} names a resource of several kinds "
                f"({', '.join(found)}); say which with kind=...")
        secs = DEFAULT_TIMEOUT_S if timeout is None else to_ms(timeout, "timeout") / 1000

        async def check() -> dict[str, Any]:
            rows = await check_resource(registry, found[0], tag, run.product, run.env,
                                        timeout_s=secs)
            return summary(rows)

        if journal.in_step():
            return await check()
        return dict(await journal.ctx.step(f"healthcheck:{tag}", check))
