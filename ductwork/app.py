"""The Ductwork object: a store, workflow definitions, connectors, and the engine."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ductwork.connectors.base import SecretSet
from ductwork.errors import ConfigurationError, StoreError
from ductwork.interpreter.definitions import Definitions
from ductwork.interpreter.engine import Engine
from ductwork.interpreter.observe import Observer
from ductwork.interpreter.resources import ConnectorRegistry
from ductwork.interpreter.runtime import LazyEngine, Runtime, Secrets
from ductwork.store import RunStore, open_store
from ductwork.util.durations import to_ms
from ductwork.util.text import check_text, shown
from ductwork.workflows.facade import Workflows
from ductwork.workflows.queues import Queues


class Ductwork:
    """Durable workflows: `Ductwork(specs="specs/", store="sqlite:///.ductwork/runs.db")`.

    Wiring only: the store, secrets, product specs, definitions and connectors make the
    Runtime an Engine is built from; dw.workflows gets the (lazily opened) engine."""

    def __init__(
        self,
        specs: str | os.PathLike[str] | None = None,
        store: str | RunStore | None = None,
        *,
        secrets: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
        synchronous: str = "NORMAL",
        inline_wait: Any = "30s",
        lease: Any = "30s",
        max_faults: int = 3,
        tracing: Any = None,
    ) -> None:
        _check_args(specs, store, secrets, environ, synchronous, max_faults)
        inline_wait_s = to_ms(inline_wait, "Ductwork: inline_wait") / 1000
        lease_s = to_ms(lease, "Ductwork: lease") / 1000
        self.store: RunStore = open_store(store, synchronous=synchronous)
        secret_set = Secrets(secrets, os.environ if environ is None else environ)
        products: dict[str, Any] = {}
        self.runtime = Runtime(
            store=self.store, secrets=secret_set, products=products,
            definitions=Definitions(products), connectors=ConnectorRegistry(products, secret_set),
            inline_wait_s=inline_wait_s, lease_s=lease_s, max_faults=max_faults)
        self._engines = LazyEngine(self.runtime)
        self.workflows = Workflows(self._engines)
        self.connectors = self.runtime.connectors
        self.queues = Queues(self.store)  # named queues' concurrency and rate limits
        self.specs: Any = None
        if specs is not None:
            self.load_specs(specs)
        env = os.environ if environ is None else environ
        if tracing is None:
            tracing = env.get("DUCTWORK_TRACING", "").strip().lower() in ("1", "true", "yes", "on")
        if tracing is not False:
            self.enable_tracing(None if tracing is True else tracing)

    def enable_tracing(self, tracer_provider: Any = None) -> None:
        """OpenTelemetry spans for every run from now on (pip install 'ductwork[otel]'):
        through the global tracer provider the application configured, or the one given."""
        try:
            from ductwork.interpreter import tracing
        except ImportError as e:
            raise ConfigurationError(
                f"tracing needs the OpenTelemetry API ({e.name or e} is not installed): "
                "pip install 'ductwork[otel]', or turn tracing off (unset DUCTWORK_TRACING)"
            ) from None
        self.observe(tracing.Tracing(self.runtime.redact, tracer_provider))

    # Secrets as Ductwork(secrets=, environ=) gave them; `secrets` collects every value seen.
    @property
    def secret_values(self) -> dict[str, str]:
        return self.runtime.secrets.values

    @property
    def environ(self) -> Mapping[str, str]:
        return self.runtime.secrets.environ

    @property
    def secrets(self) -> SecretSet:
        return self.runtime.secrets.seen

    def load_specs(self, path: str | os.PathLike[str]) -> None:
        """Compile a folder of products (raises CompileError with every problem found)."""
        from ductwork.dsl.specs import load_specs
        from ductwork.interpreter.plan_runner import definitions

        if not isinstance(path, str | os.PathLike):
            raise ConfigurationError(f"specs must be a folder path, got {shown(path)}")
        check_text(os.fspath(path), "specs", "Ductwork")
        if not Path(path).exists():
            raise ConfigurationError(f"specs folder {str(path)!r} does not exist")
        specs = load_specs(path)
        self.specs = specs
        self.runtime.products.update(specs.products)
        for kwargs in definitions(specs):
            self.workflows.define(**kwargs)

    def observe(self, observer: Observer) -> None:
        """Attach an engine observer (metrics, tracing: see ductwork/interpreter/observe.py)."""
        self.runtime.observe(observer)

    def secret(self, key: str) -> str:
        return self.runtime.secrets.get(key)

    def redact(self, text: str) -> str:
        return self.runtime.redact(text)

    # -- lifecycle -----------------------------------------------------------------------------
    async def _engine(self) -> Engine:
        return await self._engines.get()

    @property
    def _engine_obj(self) -> Engine | None:
        """The engine if it is open (tests look inside it)."""
        return self._engines.current

    async def recover(self) -> Any:
        return await self.workflows.recover()

    async def run_worker(self, **options: Any) -> None:
        """Claim and drive due runs and schedules until SIGTERM/SIGINT or
        dw.workflows.stop_worker(); options: concurrency, queues, poll, grace."""
        await self.workflows.run_worker(**options)

    async def aclose(self) -> None:
        await self._engines.close()
        await self.connectors.aclose()
        await self.store.close()

    async def __aenter__(self) -> Ductwork:
        await self._engines.get()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _check_args(specs: Any, store: Any, secrets: Any, environ: Any, synchronous: Any,
                max_faults: Any) -> None:
    """Ductwork(...)'s arguments, each wrong one a ConfigurationError naming it."""
    if specs is not None and not isinstance(specs, str | os.PathLike):
        raise ConfigurationError(f"Ductwork: specs must be a folder path, got {shown(specs)}")
    if store is not None and not isinstance(store, RunStore):
        if not isinstance(store, str):
            raise StoreError(f"Ductwork: store must be a URL string (sqlite:///path/to/runs.db, "
                             f"postgresql://user@host/db) or a RunStore, got {shown(store)}")
        check_text(store, "store", "Ductwork")
    for what, val in (("secrets", secrets), ("environ", environ)):
        if val is not None and (not isinstance(val, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in val.items())):
            raise ConfigurationError(f"Ductwork: {what} must be a mapping of names to text "
                                     f"values, e.g. {{'STRIPE_KEY': 'sk_...'}}, got "
                                     f"{type(val).__name__}")
    if not isinstance(synchronous, str):
        raise ConfigurationError(f"Ductwork: synchronous must be 'NORMAL' or 'FULL', got "
                                 f"{shown(synchronous)}")
    if isinstance(max_faults, bool) or not isinstance(max_faults, int) or max_faults < 1:
        raise ConfigurationError(f"Ductwork: max_faults must be a whole number >= 1, got "
                                 f"{shown(max_faults)}")
