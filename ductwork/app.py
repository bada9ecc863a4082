"""The Ductwork object: a store, workflow definitions, connectors, and the engine."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ductwork.connectors.base import SecretSet
from ductwork.durations import to_ms
from ductwork.errors import ConfigurationError
from ductwork.interpreter.engine import Engine
from ductwork.interpreter.resources import ConnectorRegistry
from ductwork.store import RunStore, open_store
from ductwork.workflows.facade import Workflows
from ductwork.workflows.queues import Queues


class Ductwork:
    """Durable workflows: `Ductwork(specs="specs/", store="sqlite:///.ductwork/runs.db")`."""

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
    ) -> None:
        self.store: RunStore = open_store(store, synchronous=synchronous)
        self.secret_values: dict[str, str] = dict(secrets or {})
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.secrets = SecretSet()
        for v in self.secret_values.values():
            self.secrets.add(str(v))
        self.workflows = Workflows(self)
        self.connectors = ConnectorRegistry(self)
        self.queues = Queues(self)  # named queues' concurrency and rate limits
        self._inline_wait_s = to_ms(inline_wait, "inline_wait") / 1000
        self._lease_s = to_ms(lease, "lease") / 1000
        self._engine_obj: Engine | None = None
        self._products: dict[str, Any] = {}
        self.specs: Any = None
        if specs is not None:
            self.load_specs(specs)

    def load_specs(self, path: str | os.PathLike[str]) -> None:
        """Compile a folder of products (raises CompileError with every problem found)."""
        from ductwork.dsl.specs import load_specs
        from ductwork.interpreter.plan_runner import definitions

        if not Path(path).exists():
            raise ConfigurationError(f"specs folder {str(path)!r} does not exist")
        specs = load_specs(path)
        self.specs = specs
        for name, product in specs.products.items():
            self._products[name] = product
        for kwargs in definitions(specs):
            self.workflows.define(**kwargs)

    def product_spec(self, product: str) -> Any:
        return self._products.get(product)

    def product_envs(self, product: str) -> list[str] | None:
        spec = self._products.get(product)
        envs = getattr(spec, "envs", None)
        return list(envs) if envs else None

    # -- secrets -------------------------------------------------------------------------------
    def secret(self, key: str) -> str:
        if key in self.secret_values:
            return self.secret_values[key]
        if key in self.environ:
            val = self.environ[key]
            self.secrets.add(val)
            return val
        raise ConfigurationError(f"secret {key!r} is not set: pass it in "
                                 "Ductwork(secrets={...}) or export it in the environment")

    def redact(self, text: str) -> str:
        return self.secrets.redact(text)

    # -- lifecycle -----------------------------------------------------------------------------
    async def _engine(self) -> Engine:
        if self._engine_obj is None:
            await self.store.open()
            self._engine_obj = Engine(self, self.store, inline_wait_s=self._inline_wait_s,
                                      lease_s=self._lease_s)
            # Signals and child completions announced by other processes end inline waits.
            self.store.on_wake(self._engine_obj.wake)
        return self._engine_obj

    async def recover(self) -> Any:
        return await self.workflows.recover()

    async def run_worker(self, **options: Any) -> None:
        """Claim and drive due runs and schedules until SIGTERM/SIGINT or
        dw.workflows.stop_worker(); options: concurrency, queues, poll, grace."""
        await self.workflows.run_worker(**options)

    async def aclose(self) -> None:
        if self._engine_obj is not None:
            await self._engine_obj.close()
            self._engine_obj = None
        await self.connectors.aclose()
        await self.store.close()

    async def __aenter__(self) -> Ductwork:
        await self._engine()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
