"""ctx.fallback and ctx.quota: a product's named `fallbacks:` / `quotas:`, each call one step."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ductwork.connectors.base import Connector
from ductwork.connectors.providers import Member, read_pool
from ductwork.errors import ConfigurationError, ConnectorError
from ductwork.interpreter.fallback import PooledConnector, Strategy
from ductwork.util.durations import to_ms
from ductwork.util.suggest import did_you_mean

if TYPE_CHECKING:
    from ductwork.interpreter.journal import Journal
    from ductwork.interpreter.resources import ConnectorRegistry

# Target key of a provider -> connector kind, and the method its call goes to.
_KINDS = {"app": "action", "notification": "notification", "database": "database",
          "storage": "storage"}
_METHODS = {"action": "run", "notification": "send", "database": "execute", "storage": "upload"}
_SECTION = {"fallback": "fallbacks", "quota": "quotas"}

# The strategies of one Ductwork instance (its connector registry), per (kind, product, env,
# name): breakers and quota windows live as long as the instance, in this process only.
_STATE: weakref.WeakKeyDictionary[Any, dict[tuple[str, str, str, str], Strategy]] = (
    weakref.WeakKeyDictionary())


def definition(registry: ConnectorRegistry, kind: str, product: str, name: str
               ) -> dict[str, Any]:
    """The declared fallback or quota `name`, or an error listing the declared ones."""
    declared = registry.policies(kind, product)
    found = declared.get(name)
    if not isinstance(found, Mapping):
        section = _SECTION[kind]
        raise ConfigurationError(
            f"ctx.{kind}.execute: no {kind} named {name!r} in product '{product}'; declare it "
            f"under `{section}:` in its product file"
            + (did_you_mean(name, declared, prefix="; ") or
               f" (declared: {', '.join(sorted(declared)) or 'none'})"))
    return dict(found)


def strategy(registry: ConnectorRegistry, kind: str, product: str, env: str, name: str,
             redact: Any) -> Strategy:
    states = _STATE.setdefault(registry, {})
    key = (kind, product, env, name)
    found = states.get(key)
    if found is None:
        spec = definition(registry, kind, product, name)
        pool_conf = {k: v for k, v in spec.items() if k not in ("description", "strategy")}
        try:
            pool = read_pool({**pool_conf, "strategy": kind})
        except ValueError as e:
            raise ConfigurationError(f"{_SECTION[kind]}.{name}: {e}") from None
        found = states[key] = Strategy(f"{kind} '{name}'", pool, redact=redact)
    return found


def _target_connector(registry: ConnectorRegistry, m: Member, product: str, env: str
                      ) -> tuple[str, Connector]:
    word = next(k for k in _KINDS if k in m.config)
    kind = _KINDS[word]
    conn = registry.get(kind, str(m.config[word]), product, env)
    pin = m.config.get("provider")
    if pin is not None:
        if not isinstance(conn, PooledConnector):
            raise ConfigurationError(
                f"{word} '{m.config[word]}' lists no providers in env {env}, so provider "
                f"{pin!r} cannot be picked")
        conn = conn.member(str(pin))
    return kind, conn


class _Policy:
    kind = ""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def _execute(self, name: str, input: Any, timeout: Any, tag: str | None) -> Any:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"ctx.{self.kind}.execute: name the {self.kind}, e.g. "
                                     f"{self.kind}='my-{self.kind}'")
        if input is not None and not isinstance(input, Mapping):
            raise ConfigurationError(f"ctx.{self.kind}.execute: input must be a mapping, got "
                                     f"{type(input).__name__}")
        journal = self._journal
        run = journal.run
        rt = journal.engine.runtime
        registry = rt.connectors
        definition(registry, self.kind, run.product, name)  # a missing one fails at once
        secs = None if timeout is None else to_ms(timeout, f"ctx.{self.kind}.execute "
                                                           "timeout") / 1000
        data = dict(input or {})

        async def call() -> dict[str, Any]:
            strat = strategy(registry, self.kind, run.product, run.env, name, rt.redact)

            async def one(m: Member) -> Any:
                kind, conn = _target_connector(registry, m, run.product, run.env)
                method = getattr(conn, _METHODS[kind])
                event = str(m.config.get("event"))
                if kind == "action" and secs is not None:
                    return await method(event, data, timeout=secs)
                return await method(event, data)

            try:
                outcome = await strat.run(one)
            except ConnectorError as e:
                denied = _over_limit(e) if self.kind == "quota" else None
                if denied is None:
                    raise
                # The docs' `if (!result.allowed)`: every provider is at its limit, which is
                # an answer, not a failure (nothing was called); later windows may allow it.
                return {"allowed": False, "provider": None, "output": None, "attempts": [],
                        "skipped": denied}
            out = outcome.to_dict()
            return {"allowed": True, **out} if self.kind == "quota" else out

        if journal.in_step():
            return await call()  # already inside a step (a YAML step, or the user's own)
        return await journal.ctx.step(tag or f"{self.kind}:{name}", call, timeout=timeout)


class FallbackComponent(_Policy):
    """ctx.fallback.execute(fallback=, input=): the providers of a declared fallback, in
    order; the result says which provider served: {provider, output, attempts, skipped}."""

    kind = "fallback"

    async def execute(self, fallback: str | Mapping[str, Any],
                      input: Mapping[str, Any] | None = None, *, timeout: Any = None,
                      tag: str | None = None) -> Any:
        """Also as the product docs write it: execute({"fallback": ..., "input": ...})."""
        if isinstance(fallback, Mapping):
            return await self.execute(**_options(fallback, "fallback"))
        return await self._execute(fallback, input, timeout, tag)


class QuotaComponent(_Policy):
    """ctx.quota.execute(quota=, input=): the providers of a declared quota, by weight
    within their limits; the result says which provider served."""

    kind = "quota"

    async def execute(self, quota: str | Mapping[str, Any],
                      input: Mapping[str, Any] | None = None, *, timeout: Any = None,
                      tag: str | None = None) -> Any:
        """Also as the product docs write it: execute({"quota": ..., "input": ...})."""
        if isinstance(quota, Mapping):
            return await self.execute(**_options(quota, "quota"))
        return await self._execute(quota, input, timeout, tag)


def _over_limit(e: ConnectorError) -> list[dict[str, Any]] | None:
    """The skipped providers when a quota call found every provider at its limit (and none
    skipped for another reason, such as an open breaker); None otherwise."""
    skipped = getattr(e, "skipped", None)
    if getattr(e, "attempted", True) or not skipped:
        return None
    if all(str(s.get("reason", "")).startswith("limit ") for s in skipped):
        return list(skipped)
    return None


def _options(given: Mapping[str, Any], kind: str) -> dict[str, Any]:
    unknown = sorted(set(given) - {kind, "input", "timeout", "tag"})
    if unknown or kind not in given:
        raise ConfigurationError(
            f"ctx.{kind}.execute({{...}}): "
            + (f"unknown key(s) {unknown}; " if unknown else f"'{kind}' is missing; ")
            + f"write ctx.{kind}.execute({{'{kind}': 'name', 'input': {{...}}}})")
    return dict(given)
