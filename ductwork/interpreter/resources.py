"""dw.connectors: which connector serves a (kind, resource, product, env), built once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from ductwork.connectors.base import (
    BASES,
    DEFAULT_PROVIDER,
    KINDS,
    Connector,
    ResourceSpec,
    build_connector,
    resolve_refs,
)
from ductwork.connectors.providers import is_pool
from ductwork.errors import ConfigurationError, ConnectorNotConfiguredError
from ductwork.interpreter.fallback import Outcome, build_pool
from ductwork.interpreter.journal import current_ctx
from ductwork.util.suggest import did_you_mean

if TYPE_CHECKING:
    from ductwork.interpreter.runtime import Secrets


class SpecHook(Protocol):
    def admit(self, kind: str, name: str, provider: str, env: str) -> None:
        """Raise to refuse a resource (before its references are resolved)."""

    def prepare(self, spec: ResourceSpec) -> ResourceSpec:
        """The spec a connector is built from (its references resolved)."""


class ConnectorRegistry:
    def __init__(self, products: Mapping[str, Any], secrets: Secrets) -> None:
        self._products = products  # compiled product specs by name: their resource sections
        self._secrets = secrets
        # (kind, name, product|None, env|None) -> connector given by the user
        self._explicit: dict[tuple[str, str, str | None, str | None], Connector] = {}
        self._built: dict[tuple[str, str, str, str], Connector] = {}
        # A seam for ductwork.testing: may refuse a resource before its secrets are resolved,
        # and rewrite its spec after, so that test runs keep their files in a temporary folder.
        self.spec_hook: SpecHook | None = None

    def register(self, kind: str, name: str, connector: Connector, *, product: str | None = None,
                 env: str | None = None) -> None:
        """Serve `kind`/`name` with this instance (for every product/env unless narrowed)."""
        kind = "broker" if kind in ("messaging", "publish") else kind
        if kind not in KINDS:
            raise ConfigurationError(
                f"unknown connector kind {kind!r} (known: {', '.join(KINDS)})"
                + did_you_mean(kind, KINDS, prefix="; "))
        base = BASES[kind]
        if not isinstance(connector, base):
            raise ConfigurationError(
                f"dw.connectors.register({kind!r}, {name!r}, ...): expected a {base.__name__} "
                f"subclass instance, got {type(connector).__name__}")
        self._explicit[(kind, name, product, env)] = connector

    def get(self, kind: str, name: str, product: str, env: str) -> Connector:
        for key in ((kind, name, product, env), (kind, name, product, None),
                    (kind, name, None, env), (kind, name, None, None)):
            conn = self._explicit.get(key)
            if conn is not None:
                return conn
        built = self._built.get((kind, name, product, env))
        if built is not None:
            return built
        spec = self.spec_for(kind, name, product, env)
        hook = self.spec_hook
        made = (build_pool(spec, self._report, prepare=None if hook is None else hook.prepare)
                if is_pool(spec.config) else build_connector(spec))
        self._built[(kind, name, product, env)] = made
        return made

    def _report(self, label: str, outcome: Outcome) -> None:
        """Which provider of a pool served a call: a line in the run's log."""
        ctx = current_ctx.get()
        if ctx is None:
            return
        if outcome.attempts or outcome.skipped:
            failed = "; ".join(f"{a['provider']}: {a['error']}" for a in outcome.attempts)
            skipped = "; ".join(f"{s['provider']}: {s['reason']}" for s in outcome.skipped)
            ctx.log.warn(f"{label} served by {outcome.provider}"
                         + (f" after failures ({failed})" if failed else "")
                         + (f", skipped ({skipped})" if skipped else ""))
        else:
            ctx.log.debug(f"{label} served by {outcome.provider}")

    def spec_for(self, kind: str, name: str, product: str, env: str) -> ResourceSpec:
        section = KINDS[kind]
        prod = self._products.get(product)
        resources = (prod.resources.get(kind) or {}) if prod is not None else {}
        definition = resources.get(name)
        if definition is None:
            known = sorted(resources) + sorted(
                n for (k, n, p, _e) in self._explicit if k == kind and p in (None, product))
            where = (f"declare it under `{section}:` in the product file of {product}"
                     if prod is not None else
                     f"load a product file with Ductwork(specs=...) that declares it under "
                     f"`{section}:`")
            raise ConnectorNotConfiguredError(
                f"no {kind} resource named '{name}' is configured for product '{product}' "
                f"(env {env}); {where}, or register one with "
                f"dw.connectors.register('{kind}', '{name}', connector)"
                + did_you_mean(name, known, prefix="; "),
                kind=kind, resource=name, env=env)
        envs = definition.get("envs") or {}
        if env not in envs:
            raise ConnectorNotConfiguredError(
                f"{kind} resource '{name}' has no config for env '{env}' (configured: "
                f"{', '.join(sorted(envs)) or 'none'}); add `envs: {{{env}: ...}}` to it",
                kind=kind, resource=name, env=env)
        raw = dict(envs[env] or {})
        if self.spec_hook is not None:
            # Each provider of a `providers:` list is admitted (and prepared) on its own.
            items = raw.get("providers") if is_pool(raw) else [raw]
            for item in items if isinstance(items, list) else []:
                if isinstance(item, Mapping):
                    self.spec_hook.admit(kind, name, str(item.get(
                        "provider", DEFAULT_PROVIDER.get(kind, ""))), env)
        config = resolve_refs(raw, environ=self._secrets.environ,
                              secrets=self._secrets.values, collect=self._secrets.seen,
                              where=f"{section}.{name}.envs.{env}")
        spec = ResourceSpec(kind=kind, name=name, env=env, product=product, config=config,
                            definition=dict(definition), base_dir=prod.base_dir if prod else ".",
                            secrets=self._secrets.seen)
        if self.spec_hook is None or is_pool(config):
            return spec
        return self.spec_hook.prepare(spec)

    def resource_names(self, product: str) -> list[tuple[str, str]]:
        """(kind, name) of every resource the product file declares, in file order."""
        prod = self._products.get(product)
        if prod is None:
            return []
        return [(kind, name) for kind in KINDS for name in (prod.resources.get(kind) or {})]

    def redact(self, text: str) -> str:
        return self._secrets.redact(text)

    def policies(self, kind: str, product: str) -> dict[str, Any]:
        """The product's declared fallbacks (kind "fallback") or quotas ("quota") by name."""
        prod = self._products.get(product)
        return dict((prod.resources.get(kind) or {}) if prod is not None else {})

    def declared_provider(self, kind: str, name: str, product: str, env: str) -> str:
        """The provider an env's config names as written (no secret resolved): "smtp",
        "pool" for a `providers:` list, "?" when there is no config."""
        prod = self._products.get(product)
        definition = ((prod.resources.get(kind) or {}) if prod is not None else {}).get(name)
        config = ((definition or {}).get("envs") or {}).get(env)
        if not isinstance(config, Mapping):
            return "?"
        if is_pool(config):
            return "pool"
        return str(config.get("provider") or DEFAULT_PROVIDER.get(kind, "?"))

    def app_names(self, product: str) -> list[str]:
        """The apps the product file of `product` declares."""
        prod = self._products.get(product)
        return sorted((prod.resources.get("action") or {}) if prod is not None else {})

    def app_values(self, section: str, app: str, product: str, env: str) -> dict[str, Any]:
        """An app's `constants:`, or its `variables:` in `env` (references resolved, their
        values registered for redaction): what ctx.constant / ctx.variable read."""
        prod = self._products.get(product)
        apps = (prod.resources.get("action") or {}) if prod is not None else {}
        definition = apps.get(app)
        what = "ctx.variable" if section == "variables" else "ctx.constant"
        if definition is None:
            where = (f"declare it under `apps:` in the product file of {product} ({prod.path})"
                     if prod is not None else
                     "load a product file that declares it with Ductwork(specs=...)")
            raise ConfigurationError(
                f"{what}('{app}', ...): product '{product}' has no app '{app}'; {where}"
                + did_you_mean(app, sorted(apps), prefix="; "))
        if section == "constants":
            raw, place = definition.get("constants") or {}, f"apps.{app}.constants"
        else:
            envs = definition.get("envs") or {}
            if env not in envs:
                raise ConfigurationError(
                    f"{what}('{app}', ...): app '{app}' has no config for env '{env}' "
                    f"(configured: {', '.join(sorted(envs)) or 'none'}); add `{env}:` under "
                    f"apps.{app}.envs with its `variables:`")
            raw = (envs[env] or {}).get("variables") or {}
            place = f"apps.{app}.envs.{env}.variables"
        if not isinstance(raw, Mapping):
            raise ConfigurationError(f"{place} must be a mapping of name to value")
        values: dict[str, Any] = resolve_refs(
            dict(raw), environ=self._secrets.environ, secrets=self._secrets.values,
            collect=self._secrets.seen, where=place)
        return values

    def app_value(self, section: str, app: str, product: str, env: str, key: str) -> Any:
        """One app constant or variable; a missing key says where to declare it."""
        values = self.app_values(section, app, product, env)
        if key in values:
            return values[key]
        what = section[:-1]
        place = (f"apps.{app}.constants" if section == "constants"
                 else f"apps.{app}.envs.{env}.variables")
        prod = self._products.get(product)
        shown = ", ".join(sorted(map(str, values))) or "none"
        raise ConfigurationError(
            f"ctx.{what}('{app}', {key!r}): app '{app}' has no {what} {key!r}"
            + (f" in env '{env}'" if section == "variables" else "")
            + f" (its {section}: {shown}); declare it under {place} in "
            + (prod.path if prod is not None else "the product file")
            + did_you_mean(key, sorted(map(str, values)), prefix="; "))

    async def aclose(self) -> None:
        """Close every connector: built ones and registered ones (the instance owns them)."""
        conns = [*self._built.values(), *self._explicit.values()]
        self._built, self._explicit = {}, {}
        seen: set[int] = set()
        for conn in conns:
            if id(conn) not in seen:
                seen.add(id(conn))
                await conn.aclose()
